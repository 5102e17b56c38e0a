//! A shard that stops answering must not hold up the others: a node's
//! batch of sends waits for all its parts, so one dead server would stall
//! every conversation (docs/deploy.md, "SQL shards").
//!
//! Every call to a shard is bounded (`CALL_TIMEOUT`). A call that fails
//! `Unavailable` or runs out of time marks the shard down; while it is
//! down its calls fail at once, and one background probe per shard asks
//! it a trivial read until it answers, which brings it back. A blip (say a
//! transaction that kept deadlocking) costs a fraction of a second of fast
//! failures on that shard; a dead server costs one timed-out call.
//!
//! A call cut off by the timeout may still commit: as when a node dies
//! between commit and answer, the client's retry finds the original.

use crate::Store;
use crate::error::{Result, StoreError};
use magpie_core::UserId;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The longest any call to one shard may take.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Pause between probes of a shard that is down.
const PROBE_EVERY: Duration = Duration::from_millis(250);

#[derive(Default)]
struct Flags {
    down: AtomicBool,
    probing: AtomicBool,
}

/// Per shard: down or not, and whether a probe is running.
pub(super) struct Health {
    shards: Vec<Arc<Flags>>,
}

impl Health {
    pub(super) fn new(n: usize) -> Health {
        Health {
            shards: (0..n).map(|_| Arc::default()).collect(),
        }
    }

    pub(super) fn is_down(&self, k: usize) -> bool {
        self.shards[k].down.load(Ordering::Relaxed)
    }

    /// Runs `op` on shard `k` unless it is down, within `CALL_TIMEOUT`.
    pub(super) async fn call<T>(
        &self,
        k: usize,
        store: &Store,
        op: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        if self.is_down(k) {
            return Err(StoreError::Unavailable(format!(
                "store shard {k} is down (probing)"
            )));
        }
        match tokio::time::timeout(CALL_TIMEOUT, op).await {
            Ok(Err(StoreError::Unavailable(e))) => {
                self.mark_down(k, store, &e);
                Err(StoreError::Unavailable(e))
            }
            Ok(done) => done,
            Err(_) => {
                let e = format!("store shard {k} did not answer within {CALL_TIMEOUT:?}");
                self.mark_down(k, store, &e);
                Err(StoreError::Unavailable(e))
            }
        }
    }

    fn mark_down(&self, k: usize, store: &Store, why: &str) {
        let flags = self.shards[k].clone();
        if !flags.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                shard = k,
                error = why,
                "store shard down: its calls fail fast until it answers"
            );
            metrics::counter!("magpie_store_shard_down_total").increment(1);
            metrics::gauge!("magpie_store_shards_down").increment(1.0);
        }
        if flags.probing.swap(true, Ordering::Relaxed) {
            return;
        }
        let store = store.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                let ping = store.accounts().user_by_id(UserId::SYSTEM);
                if let Ok(Ok(_)) = tokio::time::timeout(CALL_TIMEOUT, ping).await {
                    break;
                }
            }
            // Probing first: a failure from here on starts a new probe
            // (whose own end then finds the shard up already, and counts
            // nothing twice).
            flags.probing.store(false, Ordering::Relaxed);
            if flags.down.swap(false, Ordering::Relaxed) {
                metrics::gauge!("magpie_store_shards_down").decrement(1.0);
                tracing::info!(shard = k, "store shard answers again");
            }
        });
    }
}
