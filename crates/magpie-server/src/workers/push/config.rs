//! `[push]`: the offline push webhook (docs/config.md, docs/protocol.md
//! "Offline push webhook"). Off unless `webhook_url` is set.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// Where calls are POSTed; empty turns the webhook off (no worker runs).
    pub webhook_url: String,
    /// HMAC-SHA256 key of `X-Magpie-Signature`; empty signs with an empty
    /// key (set one in production).
    pub secret: String,
    /// Messages for one user and conversation within this of the first are
    /// one call carrying their count and the latest, ms.
    pub coalesce_ms: u64,
    /// Attempts of one call (the first included) before it is dropped and
    /// counted in `magpie_push_dead_letters_total`.
    pub max_attempts: u32,
    /// Delay before the first retry, ms; doubles with each retry, capped at
    /// `max_backoff_ms`.
    pub backoff_ms: u64,
    /// Longest delay between two attempts, ms.
    pub max_backoff_ms: u64,
    /// One attempt's deadline (connect, send and answer), ms.
    pub timeout_ms: u64,
    /// Calls waiting to be sent, and (user, conversation) pairs waiting for
    /// their coalescing window, each at most this many; beyond it a call is
    /// dropped and counted (`outcome="dropped"`), the bus never waits.
    pub queue: usize,
    /// Calls in flight at once (each with its retries).
    pub concurrency: usize,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            webhook_url: String::new(),
            secret: String::new(),
            coalesce_ms: 1_000,
            max_attempts: 5,
            backoff_ms: 500,
            max_backoff_ms: 30_000,
            timeout_ms: 5_000,
            queue: 10_000,
            concurrency: 32,
        }
    }
}

impl PushConfig {
    pub fn enabled(&self) -> bool {
        !self.webhook_url.is_empty()
    }
}
