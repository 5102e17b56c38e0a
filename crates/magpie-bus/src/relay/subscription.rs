//! A relay subscription: the backend's raw frames, checked for loss
//! (`track.rs`), and the relay's counters.

use super::frame;
use super::track::Tracker;
use super::{RawEvent, RawSubscription, RelayEvent};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::time::Instant;

/// A snapshot of a relay's counters, for tests and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Data frames `publish` accepted.
    pub published: u64,
    /// Frames (data and heartbeats) thrown away by the fault knob.
    pub dropped: u64,
    /// Frames the backend refused to send.
    pub failed: u64,
    /// `Gap` events yielded by this relay's subscriptions.
    pub gaps: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub published: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
    pub gaps: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> RelayStats {
        RelayStats {
            published: self.published.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            gaps: self.gaps.load(Ordering::Relaxed),
        }
    }
}

/// Messages and gaps of one subject, in order. Dropping it unsubscribes.
pub struct RelaySubscription {
    raw: Box<dyn RawSubscription>,
    tracker: Tracker,
    /// Events decided but not yet yielded (a gap and then its message).
    pending: VecDeque<RelayEvent>,
    counters: std::sync::Arc<Counters>,
}

impl RelaySubscription {
    pub(crate) fn new(
        raw: Box<dyn RawSubscription>,
        tracker: Tracker,
        counters: std::sync::Arc<Counters>,
    ) -> Self {
        RelaySubscription {
            raw,
            tracker,
            pending: VecDeque::new(),
            counters,
        }
    }

    /// The next message or gap (gaps already queued together come as one);
    /// `None` once the backend is gone for good.
    /// Cancel-safe: an event is only taken out when it is returned.
    pub async fn next(&mut self) -> Option<RelayEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(self.merge_gaps(event));
            }
            let due = self.tracker.next_due();
            tokio::select! {
                raw = self.raw.recv() => match raw? {
                    RawEvent::Lost => self.pending.push_back(RelayEvent::Gap { from: None }),
                    RawEvent::Frame(bytes) => match frame::decode(&bytes) {
                        Some(f) => self.tracker.on_frame(f, Instant::now(), &mut self.pending),
                        None => tracing::debug!("relay: skipped a frame no relay wrote"),
                    },
                },
                _ = sleep_until(due), if due.is_some() => {
                    self.tracker.expire(Instant::now(), &mut self.pending);
                }
            }
        }
    }

    /// Folds the gaps queued right behind a gap into it (one resync covers
    /// them all): the same publisher's stays, different ones become
    /// `from: None`. Counts the gap yielded.
    fn merge_gaps(&mut self, event: RelayEvent) -> RelayEvent {
        let RelayEvent::Gap { mut from } = event else {
            return event;
        };
        while let Some(RelayEvent::Gap { from: next }) = self.pending.front() {
            if *next != from {
                from = None;
            }
            self.pending.pop_front();
        }
        self.counters.gaps.fetch_add(1, Ordering::Relaxed);
        RelayEvent::Gap { from }
    }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Relay, RelayEvent};
    use bytes::Bytes;

    /// Handles and subscriptions move into spawned tasks (what a server's
    /// workers do with them).
    #[tokio::test(start_paused = true)]
    async fn a_subscription_runs_in_a_spawned_task() {
        let relay = Relay::open("mem://spawned").await.expect("open");
        let mut sub = relay.subscribe("node.a").await.expect("subscribe");
        let task = tokio::spawn(async move { sub.next().await });
        let publisher = relay.clone();
        tokio::spawn(async move { publisher.publish("node.a", Bytes::from_static(b"x")) })
            .await
            .expect("publisher task")
            .expect("publish");
        let got = task.await.expect("subscriber task");
        let from = relay.id().into();
        let payload = Bytes::from_static(b"x");
        assert_eq!(got, Some(RelayEvent::Message { from, payload }));
    }
}
