//! Messages that are stored but whose bus publish failed.
//!
//! The sender was told `unavailable` and its retry (same cmid) publishes
//! the events again; but a client that never retries must not leave a
//! stored message unknown to the workers (its receiver's cached unread
//! count would stay one short). So the events are also retried here, in the
//! background, until the bus takes them (the bus drops the copy a client's
//! retry may already have published: same message ids).
//!
//! Bounded: at most `MAX_PENDING` events wait at once and each waits up to
//! `GIVE_UP`; past either, the client's retry and sync remain (and the
//! metric says so). Pending events die with the process.

use super::Events;
use magpie_bus::Outgoing;
use magpie_core::Backoff;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

const MAX_PENDING: usize = 100_000;
const GIVE_UP: Duration = Duration::from_secs(600);
use crate::metrics::REPUBLISHED;

/// Events waiting to be published again, across the process.
static PENDING: AtomicUsize = AtomicUsize::new(0);

impl Events {
    pub(crate) fn republish_later(&self, events: Vec<Outgoing>) {
        let n = events.len();
        if PENDING.fetch_add(n, Ordering::Relaxed) + n > MAX_PENDING {
            PENDING.fetch_sub(n, Ordering::Relaxed);
            metrics::counter!(REPUBLISHED, "outcome" => "dropped").increment(n as u64);
            return;
        }
        let port = self.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + GIVE_UP;
            let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
            let outcome = loop {
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = port.shutdown.cancelled() => break "dropped",
                }
                crate::metrics::meters().bus_appends.increment(1);
                match port.bus.publish(events.clone()).await {
                    Ok(_) => break "published",
                    Err(_) if Instant::now() >= deadline => break "dropped",
                    Err(_) => {}
                }
            };
            PENDING.fetch_sub(n, Ordering::Relaxed);
            metrics::counter!(REPUBLISHED, "outcome" => outcome).increment(n as u64);
            if outcome == "dropped" {
                tracing::warn!(
                    events = n,
                    "stored messages not published; their senders' retries or receivers' syncs remain"
                );
            }
        });
    }
}
