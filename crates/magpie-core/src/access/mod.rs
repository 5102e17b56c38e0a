//! Access events: one per HTTP request, socket operation and refused
//! connection attempt, whether Magpie served it or a gateway in front of
//! it logged it. The edge guard's detector (`magpie-server`, `guard/`)
//! reads nothing else, so Magpie's own traffic and an nginx or APISIX
//! access log feed the same rules (docs/edge.md).
//!
//! The formats live beside the type: Magpie writes its access log in them
//! and the log-file followers parse them back. They are pure text to and
//! from events (this crate does no I/O): `nginx.rs` (nginx `combined`),
//! `apisix.rs` (APISIX logger JSON), `format.rs` (the configurable
//! [`LogFormat`] and the one [`ParseError`]), `civil.rs` (dates).

pub mod apisix;
mod civil;
mod format;
pub mod nginx;
#[cfg(test)]
mod round_trip_tests;

pub use apisix::{format_apisix, parse_apisix};
pub use format::{LogFormat, ParseError};
pub use nginx::{format_combined, parse_combined};

use crate::UserId;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// One request, socket operation or connection attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessEvent {
    /// When it ended, epoch milliseconds.
    pub at_ms: i64,
    /// The client's address (behind a trusted proxy, the one it forwarded).
    pub ip: IpAddr,
    /// The authenticated user, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
    /// The HTTP method, or `WS` / `TCP` for a socket operation or
    /// connection attempt.
    pub method: String,
    /// The HTTP path (without the query), or the socket operation's name.
    pub path: String,
    /// The HTTP status, or for a socket operation the status its error
    /// code maps to (200 when it succeeded).
    pub status: u16,
    /// Magpie's error code (docs/protocol.md §6), when it answered one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Response body bytes.
    #[serde(default)]
    pub bytes: u64,
    /// Time from the request's start to its answer.
    #[serde(default)]
    pub latency_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// A look-up found nothing (an unknown user, group or conversation):
    /// what the cache-penetration rule counts.
    #[serde(default)]
    pub miss: bool,
}
