//! Sends calls to `push.webhook_url`: a bounded queue, at most
//! `push.concurrency` calls in flight, each retried with doubling delays
//! until a 2xx answer or `push.max_attempts` attempts (docs/protocol.md,
//! "Offline push webhook").
//!
//! Invariant: nothing here ever makes the bus consumer wait. `enqueue`
//! never blocks: a full queue drops the call and counts it
//! (`magpie_push_calls_total{outcome="dropped"}`). Best effort: calls in
//! the queue or between attempts are lost with the process.

use super::config::PushConfig;
use super::payload::{Call, signature};
use crate::error::{Result, ServerError};
use magpie_core::Backoff;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// The handle the coalescer enqueues on.
#[derive(Clone)]
pub struct Sender {
    tx: mpsc::Sender<Call>,
}

impl Sender {
    /// Starts the dispatcher; it stops when `shutdown` is cancelled.
    pub fn start(cfg: &PushConfig, shutdown: CancellationToken) -> Sender {
        let (tx, rx) = mpsc::channel(cfg.queue.max(1));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms.max(1)))
            .build()
            .unwrap_or_default();
        let shared = Arc::new(Shared {
            http,
            cfg: cfg.clone(),
        });
        tokio::spawn(dispatch(shared, rx, cfg.concurrency.max(1), shutdown));
        Sender { tx }
    }

    /// Queues `call`, or drops and counts it when the queue is full.
    pub fn enqueue(&self, call: Call) {
        if self.tx.try_send(call).is_err() {
            outcome("dropped");
        }
    }
}

struct Shared {
    http: reqwest::Client,
    cfg: PushConfig,
}

/// Counts how a call ended (`magpie_push_calls_total{outcome}`).
pub(super) fn outcome(what: &'static str) {
    metrics::counter!(crate::metrics::PUSH_CALLS, "outcome" => what).increment(1);
}

async fn dispatch(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Call>,
    concurrency: usize,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(concurrency));
    loop {
        let call = tokio::select! {
            c = rx.recv() => match c { Some(c) => c, None => return },
            _ = shutdown.cancelled() => return,
        };
        // Waiting for a slot fills the queue, never the consumer.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = deliver(&shared, &call) => {}
                _ = shutdown.cancelled() => {}
            }
            drop(slot);
        });
    }
}

/// One call, with its retries; counts how it ended.
async fn deliver(shared: &Shared, call: &Call) {
    let cfg = &shared.cfg;
    let body = match serde_json::to_vec(call) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "push call not encodable; dropped");
            outcome("dropped");
            return;
        }
    };
    let mut backoff = Backoff::new(
        Duration::from_millis(cfg.backoff_ms),
        Duration::from_millis(cfg.max_backoff_ms.max(cfg.backoff_ms)),
    );
    let attempts = cfg.max_attempts.max(1);
    for attempt in 1..=attempts {
        match attempt_once(shared, &body).await {
            Ok(()) => {
                outcome(if attempt == 1 { "sent" } else { "retried" });
                return;
            }
            Err(why) => {
                tracing::debug!(call = %call.id, attempt, error = %why, "push call failed");
                if attempt < attempts {
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
    tracing::warn!(call = %call.id, user = %call.user, attempts, "push call dropped after its last attempt");
    outcome("failed");
    metrics::counter!(crate::metrics::PUSH_DEAD_LETTERS).increment(1);
}

/// One POST, signed now; Ok on a 2xx answer, `Unavailable` otherwise.
async fn attempt_once(shared: &Shared, body: &[u8]) -> Result<()> {
    let ts = magpie_core::now_ms() / 1000;
    let sig = signature(shared.cfg.secret.as_bytes(), ts, body);
    let resp = shared
        .http
        .post(&shared.cfg.webhook_url)
        .header("content-type", "application/json")
        .header("x-magpie-timestamp", ts.to_string())
        .header("x-magpie-signature", sig)
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| ServerError::Unavailable(format!("push webhook: {e}")))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        let why = format!("push webhook answered {}", resp.status());
        Err(ServerError::Unavailable(why))
    }
}
