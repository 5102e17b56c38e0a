//! The acknowledgements a staging worker (`Worker::flush_every`) holds
//! back until a flush makes its work durable.
//!
//! Invariant (commit-after-apply, as for every worker): an offset is
//! acknowledged only after a flush returned that holds what its event
//! staged — the flush succeeded and reported the mark read before the
//! event was applied. Otherwise the offsets are given back (`nak`) and the
//! events are applied again; every worker tolerates that (idempotent).

use super::Worker;
use magpie_bus::Consumer;
use std::time::Duration;
use tokio::time::Instant;

/// Staged events past which a flush runs at once, whatever the interval:
/// bounds what a crash makes the worker apply again, and the consumer's
/// unacknowledged set.
const MAX_STAGED: usize = 50_000;

pub(super) struct Staged {
    every: Option<Duration>,
    offsets: Vec<u64>,
    /// The worker's mark before the first staged event was applied.
    mark: u64,
    /// When the first staged event was applied.
    since: Option<Instant>,
}

impl Staged {
    pub fn new(every: Option<Duration>) -> Self {
        Staged {
            every,
            offsets: Vec::new(),
            mark: 0,
            since: None,
        }
    }

    /// The worker stages its work (else the runner acknowledges each batch).
    pub fn enabled(&self) -> bool {
        self.every.is_some()
    }

    pub fn add(&mut self, offsets: Vec<u64>, mark: u64) {
        if self.since.is_none() {
            self.since = Some(Instant::now());
            self.mark = mark;
        }
        self.offsets.extend(offsets);
    }

    fn deadline(&self) -> Option<Instant> {
        Some(self.since? + self.every?)
    }

    /// A flush is owed: the oldest staged event waited long enough, or too
    /// many are staged.
    pub fn due(&self) -> bool {
        !self.offsets.is_empty()
            && (self.offsets.len() >= MAX_STAGED
                || self.deadline().is_some_and(|d| Instant::now() >= d))
    }

    /// How long the next fetch may wait: `max`, or less when a flush falls
    /// due sooner.
    pub fn wait(&self, max: Duration) -> Duration {
        match self.deadline() {
            Some(d) => max.min(d.saturating_duration_since(Instant::now())),
            None => max,
        }
    }

    /// Flushes the worker, then acknowledges what the flush holds, or gives
    /// it back when the flush failed or lost it.
    pub async fn flush(&mut self, worker: &dyn Worker, consumer: &mut dyn Consumer, group: &str) {
        if self.offsets.is_empty() {
            return;
        }
        let offsets = std::mem::take(&mut self.offsets);
        self.since = None;
        match worker.flush().await {
            Ok(mark) if mark == self.mark => {
                if let Err(e) = consumer.ack(&offsets).await {
                    tracing::warn!(group, error = %e, "ack failed");
                }
            }
            outcome => {
                if let Err(e) = outcome {
                    tracing::warn!(group, error = %e, "flush failed; the events will be applied again");
                } else {
                    tracing::warn!(
                        group,
                        "staged work was rolled back; the events will be applied again"
                    );
                }
                for off in offsets {
                    if let Err(e) = consumer.nak(off).await {
                        // Left unacknowledged, it comes back after ack_wait.
                        tracing::warn!(group, offset = off, error = %e, "nak failed");
                        break;
                    }
                }
            }
        }
    }
}
