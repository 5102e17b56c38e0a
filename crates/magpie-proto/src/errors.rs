//! Error codes: one list for HTTP responses and error frames.
//!
//! Each code has one HTTP status and, where it ends a connection, one
//! WebSocket close code. docs/protocol.md documents every code.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The payload is not JSON.
    BadJson,
    /// The payload is not valid UTF-8 (fatal in a WebSocket text message,
    /// which must be UTF-8: close 1007).
    BadUtf8,
    /// The WebSocket peer broke the framing protocol (RFC 6455): fatal,
    /// close 1002.
    ProtocolError,
    /// `op` names no operation.
    UnknownOp,
    /// A field is missing, has the wrong type, or an invalid value.
    BadField,
    /// A frame or body is larger than the configured limit.
    FrameTooLarge,
    /// Missing, malformed or invalid credentials.
    Unauthorized,
    /// The access token has expired: refresh it.
    TokenExpired,
    /// The connection ticket is unknown, used or expired: ask for a new one.
    BadTicket,
    /// A socket operation came before a successful `hello`.
    NotAuthenticated,
    /// Authenticated, but not allowed (e.g. a user token on the internal API, or a disallowed Origin).
    Forbidden,
    /// The recipient user does not exist.
    UnknownRecipient,
    /// No such resource, or not yours (the same answer for both).
    NotFound,
    /// The resource exists already (e.g. the username).
    Conflict,
    /// Wrong username or password.
    BadCredentials,
    /// The server cannot take this now (storage or bus unavailable); retry with the same client message id.
    Unavailable,
    /// The client stopped acknowledging pushes and its window filled; reconnect and sync.
    SlowConsumer,
    /// Nothing was received within the idle timeout.
    IdleTimeout,
    /// The server is shutting down; reconnect (to another node).
    ShuttingDown,
    /// A newer connection of the same device replaced this one.
    Replaced,
    /// The request (its body, typically) did not complete within the
    /// server's deadline: send it again, whole.
    RequestTimeout,
    /// The server is at a capacity limit (open connections): retry after
    /// `Retry-After` (HTTP) or a second, or on another node.
    Busy,
    /// Over a rate limit (docs/edge.md): nothing of the request was done;
    /// send it again after `retry_after_ms` (HTTP: `Retry-After`). A client
    /// that keeps going is banned.
    RateLimited,
    /// Too many failed logins for this account or address: wait
    /// `retry_after_ms` before the next attempt.
    LockedOut,
    /// Too many failed logins: this login needs a solved captcha
    /// (`GET /v1/auth/captcha`, then `captcha` in the login body).
    CaptchaRequired,
    /// The client's address or account is banned (docs/edge.md) until the
    /// time in the message; retrying does not help before then.
    Banned,
    /// A chained send waited `chain.wait_ms` for its predecessor in vain
    /// and the server refuses gaps (`chain.on_gap = "reject"`): nothing was
    /// stored. The message ends with `expected=<id>`, the chain id the
    /// server expects (read it with [`chain_expected`]): send that link
    /// first, then this one again.
    ChainGap,
    /// This device's chained sends left too many gaps lately: wait before
    /// sending chained messages again. The message ends with
    /// `retry_after_ms=<n>` (read it with [`retry_after_ms`]); HTTP also
    /// sets `Retry-After` (seconds, rounded up). Nothing was stored.
    ChainSlowDown,
    /// A bug on the server.
    Internal,
}

/// The chain id a `chain_gap` error's message names: everything after its
/// `expected=` (a chain id is free text, so it comes last).
pub fn chain_expected(message: &str) -> Option<&str> {
    message.split_once("expected=").map(|(_, id)| id)
}

/// The wait a `chain_slow_down` error's message asks for, in ms.
pub fn retry_after_ms(message: &str) -> Option<u64> {
    message
        .split_once("retry_after_ms=")
        .and_then(|(_, n)| n.trim().parse().ok())
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadUtf8 => "bad_utf8",
            ErrorCode::ProtocolError => "protocol_error",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::BadField => "bad_field",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::BadTicket => "bad_ticket",
            ErrorCode::NotAuthenticated => "not_authenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::UnknownRecipient => "unknown_recipient",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::BadCredentials => "bad_credentials",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::SlowConsumer => "slow_consumer",
            ErrorCode::IdleTimeout => "idle_timeout",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Replaced => "replaced",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::Busy => "busy",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::LockedOut => "locked_out",
            ErrorCode::CaptchaRequired => "captcha_required",
            ErrorCode::Banned => "banned",
            ErrorCode::ChainGap => "chain_gap",
            ErrorCode::ChainSlowDown => "chain_slow_down",
            ErrorCode::Internal => "internal",
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadJson
            | ErrorCode::BadUtf8
            | ErrorCode::ProtocolError
            | ErrorCode::UnknownOp
            | ErrorCode::BadField => 400,
            ErrorCode::FrameTooLarge => 413,
            ErrorCode::Unauthorized
            | ErrorCode::TokenExpired
            | ErrorCode::BadTicket
            | ErrorCode::NotAuthenticated
            | ErrorCode::BadCredentials
            | ErrorCode::CaptchaRequired => 401,
            ErrorCode::Forbidden | ErrorCode::Banned => 403,
            ErrorCode::RateLimited | ErrorCode::LockedOut => 429,
            ErrorCode::UnknownRecipient | ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::SlowConsumer | ErrorCode::Replaced => 409,
            ErrorCode::Unavailable
            | ErrorCode::ShuttingDown
            | ErrorCode::IdleTimeout
            | ErrorCode::Busy => 503,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::ChainGap => 409,
            ErrorCode::ChainSlowDown => 429,
            ErrorCode::Internal => 500,
        }
    }

    /// The WebSocket close code used when this error ends a connection.
    pub fn close_code(self) -> u16 {
        match self {
            ErrorCode::ProtocolError => 1002,
            ErrorCode::BadUtf8 => 1007,
            ErrorCode::FrameTooLarge => 1009,
            ErrorCode::Internal => 1011,
            ErrorCode::ShuttingDown => 1012,
            ErrorCode::Busy => 1013,
            ErrorCode::Unauthorized | ErrorCode::TokenExpired | ErrorCode::BadTicket => 4001,
            ErrorCode::NotAuthenticated => 4002,
            ErrorCode::IdleTimeout => 4003,
            ErrorCode::SlowConsumer => 4008,
            ErrorCode::Replaced => 4009,
            ErrorCode::Banned => 4010,
            ErrorCode::RateLimited => 4029,
            _ => 4000,
        }
    }

    /// Whether retrying the same request later can succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::Unavailable
                | ErrorCode::RequestTimeout
                | ErrorCode::ShuttingDown
                | ErrorCode::Busy
                | ErrorCode::RateLimited
                | ErrorCode::LockedOut
                | ErrorCode::ChainSlowDown
                | ErrorCode::Internal
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON body of every HTTP error: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    pub retryable: bool,
    /// How long to wait before retrying (`rate_limited`, `locked_out`,
    /// `busy`), also in the `Retry-After` header in whole seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code,
                message: message.into(),
                retryable: code.retryable(),
                retry_after_ms: None,
            },
        }
    }

    /// With a retry hint (`retry_after_ms`).
    pub fn with_retry_after(mut self, ms: Option<u64>) -> Self {
        self.error.retry_after_ms = ms;
        self
    }
}
