//! The server's one error type and its single mapping to the wire: an HTTP
//! status with a JSON body, or an `error` frame. Variants say what the
//! caller must do.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use magpie_proto::{ErrorBody, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The request is malformed: fix it (code says how: bad_json, bad_field, …).
    #[error("{1}")]
    BadRequest(ErrorCode, String),
    /// A body or frame over the configured limit: send less.
    #[error("{0}")]
    TooLarge(String),
    /// Authenticate again (or refresh the token).
    #[error("{1}")]
    Unauthenticated(ErrorCode, String),
    /// Not allowed, whatever the credentials.
    #[error("{0}")]
    Forbidden(String),
    /// The recipient does not exist: do not retry.
    #[error("unknown recipient {0}")]
    UnknownRecipient(i64),
    /// No such resource, or not yours.
    #[error("{0}")]
    NotFound(String),
    /// It exists already.
    #[error("{0}")]
    Conflict(String),
    /// Retry later with the same client message id.
    #[error("{0}")]
    Unavailable(String),
    /// The request took too long to arrive: send it again, whole.
    #[error("{0}")]
    TimedOut(String),
    /// At a capacity limit: retry after a second (HTTP: `Retry-After`).
    #[error("{0}")]
    Busy(String),
    /// Over a rate limit, or locked out after failed logins: wait the
    /// milliseconds given, then retry (docs/edge.md).
    #[error("{2}")]
    Limited(ErrorCode, u64, String),
    /// The client's address or account is banned: stop.
    #[error("{0}")]
    Banned(String),
    /// A chained send's predecessor never came and gaps are refused
    /// (`chain.on_gap = "reject"`): send the link the chain expects (named
    /// last, after `expected=`), then this one again.
    #[error("chain gap: the predecessor never came; expected={0}")]
    ChainGap(String),
    /// Too many chain gaps from this device lately: wait `retry_after_ms`
    /// before the next chained send (the hint is last in the message).
    #[error("{why}; retry_after_ms={retry_after_ms}")]
    ChainSlowDown {
        why: &'static str,
        retry_after_ms: u64,
    },
    /// A bug; reported, not retried.
    #[error("{0}")]
    Internal(String),
}

impl ServerError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ServerError::BadRequest(c, _) | ServerError::Unauthenticated(c, _) => *c,
            ServerError::TooLarge(_) => ErrorCode::FrameTooLarge,
            ServerError::Forbidden(_) => ErrorCode::Forbidden,
            ServerError::UnknownRecipient(_) => ErrorCode::UnknownRecipient,
            ServerError::NotFound(_) => ErrorCode::NotFound,
            ServerError::Conflict(_) => ErrorCode::Conflict,
            ServerError::Unavailable(_) => ErrorCode::Unavailable,
            ServerError::TimedOut(_) => ErrorCode::RequestTimeout,
            ServerError::Busy(_) => ErrorCode::Busy,
            ServerError::Limited(c, _, _) => *c,
            ServerError::Banned(_) => ErrorCode::Banned,
            ServerError::ChainGap(_) => ErrorCode::ChainGap,
            ServerError::ChainSlowDown { .. } => ErrorCode::ChainSlowDown,
            ServerError::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn bad_field(msg: impl Into<String>) -> Self {
        ServerError::BadRequest(ErrorCode::BadField, msg.into())
    }

    pub fn unauthorized(msg: impl Into<String>) -> Self {
        ServerError::Unauthenticated(ErrorCode::Unauthorized, msg.into())
    }

    /// How long the caller should wait before retrying, when the error says.
    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            ServerError::Busy(_) => Some(1_000),
            ServerError::Limited(_, ms, _) => Some(*ms),
            ServerError::ChainSlowDown { retry_after_ms, .. } => Some(*retry_after_ms),
            _ => None,
        }
    }
}

impl From<magpie_store::StoreError> for ServerError {
    fn from(e: magpie_store::StoreError) -> Self {
        use magpie_store::StoreError as E;
        if matches!(e, E::Unavailable(_) | E::Corrupt(_)) {
            crate::metrics::meters().store_errors.increment(1);
        }
        match e {
            E::Conflict(m) => ServerError::Conflict(m),
            E::Forbidden(m) => ServerError::Forbidden(m),
            E::Unavailable(m) => ServerError::Unavailable(format!("storage: {m}")),
            E::Config(m) | E::Corrupt(m) => ServerError::Internal(m),
        }
    }
}

impl From<magpie_search::SearchError> for ServerError {
    fn from(e: magpie_search::SearchError) -> Self {
        match e {
            magpie_search::SearchError::BadQuery(m) => ServerError::bad_field(m),
            magpie_search::SearchError::Config(m) => ServerError::Internal(m),
            magpie_search::SearchError::Unavailable(m) => {
                ServerError::Unavailable(format!("search: {m}"))
            }
        }
    }
}

impl From<magpie_bus::BusError> for ServerError {
    fn from(e: magpie_bus::BusError) -> Self {
        crate::metrics::meters().bus_errors.increment(1);
        match e {
            magpie_bus::BusError::Unavailable(m) => ServerError::Unavailable(format!("bus: {m}")),
            magpie_bus::BusError::Config(m) => ServerError::Internal(m),
        }
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        let code = self.code();
        if code == ErrorCode::Internal {
            tracing::error!(error = %self, "internal error");
        }
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry = self.retry_after_ms();
        let body = ErrorBody::new(code, self.to_string()).with_retry_after(retry);
        let mut res = (status, axum::Json(body)).into_response();
        // For the access event (`edge/guarded.rs`).
        res.extensions_mut().insert(code);
        if let Some(ms) = retry {
            // Whole seconds, rounded up: never earlier than the limit allows.
            let secs = ms.div_ceil(1_000).max(1);
            res.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        res
    }
}

pub type Result<T, E = ServerError> = std::result::Result<T, E>;
