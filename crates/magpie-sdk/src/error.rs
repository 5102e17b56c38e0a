//! Owns `SdkError`, the one error type every SDK call returns, and the
//! classification the retry logic relies on (retryable? authentication?).

use magpie_proto::{ErrorBody, ErrorCode};

/// Everything that can go wrong talking to a Magpie server.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The server answered with an error (an HTTP error body or an `error` frame).
    /// `status` is the HTTP status, `None` for socket replies.
    #[error("{code}: {message}")]
    Server {
        code: ErrorCode,
        message: String,
        status: Option<u16>,
    },
    /// The network failed: connect refused, connection lost before the reply, I/O error.
    #[error("transport: {0}")]
    Transport(String),
    /// The server sent something this SDK does not understand.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The client was closed (or its background task ended); no further requests are possible.
    #[error("client closed")]
    Closed,
    /// No reply within the request timeout.
    #[error("request timed out")]
    Timeout,
    /// The call cannot be made as asked (fix the arguments): nothing was sent.
    #[error("usage: {0}")]
    Usage(String),
}

pub type Result<T, E = SdkError> = std::result::Result<T, E>;

impl SdkError {
    pub(crate) fn transport(e: impl std::fmt::Display) -> Self {
        SdkError::Transport(e.to_string())
    }

    pub(crate) fn protocol(e: impl std::fmt::Display) -> Self {
        SdkError::Protocol(e.to_string())
    }

    /// Builds the error for an HTTP error response.
    pub fn from_body(status: u16, body: ErrorBody) -> Self {
        SdkError::Server {
            code: body.error.code,
            message: body.error.message,
            status: Some(status),
        }
    }

    /// The server's error code, if the server produced this error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            SdkError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// A stable short name: the server's code, or `transport`, `protocol`, `closed`, `timeout`.
    pub fn code_str(&self) -> &'static str {
        match self {
            SdkError::Server { code, .. } => code.as_str(),
            SdkError::Transport(_) => "transport",
            SdkError::Protocol(_) => "protocol",
            SdkError::Closed => "closed",
            SdkError::Timeout => "timeout",
            SdkError::Usage(_) => "usage",
        }
    }

    /// The human-readable part, without the code.
    pub fn message(&self) -> String {
        match self {
            SdkError::Server { message, .. } => message.clone(),
            SdkError::Transport(m) | SdkError::Protocol(m) | SdkError::Usage(m) => m.clone(),
            SdkError::Closed => "client closed".into(),
            SdkError::Timeout => "request timed out".into(),
        }
    }

    /// Whether repeating the same request (with the same client message id) may succeed.
    /// A timeout counts: the request may or may not have been applied, which is
    /// exactly what idempotent retries are for.
    pub fn is_retryable(&self) -> bool {
        match self {
            SdkError::Server { code, .. } => code.retryable(),
            SdkError::Transport(_) | SdkError::Timeout => true,
            SdkError::Protocol(_) | SdkError::Closed | SdkError::Usage(_) => false,
        }
    }

    /// Whether the access token was rejected, so refreshing it may help.
    pub fn is_auth_failure(&self) -> bool {
        matches!(
            self.code(),
            Some(ErrorCode::TokenExpired | ErrorCode::Unauthorized)
        )
    }

    /// Whether a reconnect loop must give up: retrying cannot fix these without
    /// the user (bad credentials) or would fight another connection (`replaced`).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.code(),
            Some(
                ErrorCode::Unauthorized
                    | ErrorCode::TokenExpired
                    | ErrorCode::BadCredentials
                    | ErrorCode::Forbidden
                    | ErrorCode::Replaced
            )
        )
    }

    /// The error as the JSON error body the server itself would send.
    pub fn to_body(&self) -> serde_json::Value {
        serde_json::json!({"error": {
            "code": self.code_str(),
            "message": self.message(),
            "retryable": self.is_retryable(),
        }})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let e = SdkError::from_body(401, ErrorBody::new(ErrorCode::TokenExpired, "expired"));
        assert!(e.is_auth_failure() && e.is_terminal() && !e.is_retryable());
        assert_eq!(e.to_string(), "token_expired: expired");
        let e = SdkError::Server {
            code: ErrorCode::Unavailable,
            message: "db".into(),
            status: None,
        };
        assert!(e.is_retryable() && !e.is_terminal());
        assert!(SdkError::Timeout.is_retryable());
        assert!(!SdkError::Closed.is_retryable());
        assert_eq!(SdkError::Closed.to_body()["error"]["code"], "closed");
    }
}
