//! The subscriber's side of loss detection: per publisher, the numbering
//! (epoch) and the last sequence seen, and when its next frame is due.
//!
//! A `Gap` is reported when (see `frame.rs` for the header):
//! - a frame's sequence skips numbers, or goes back, within one numbering;
//! - a publisher starts a new numbering while its old one was not closed by
//!   a final heartbeat (it restarted or dropped state mid-stream: its last
//!   frames may be lost), or the new numbering's first frame is not its
//!   number 1;
//! - the first frame seen of an unknown publisher says frames are missing
//!   that were sent after this subscription started (`at` within `skew` of
//!   the start or later; earlier ones were never owed to this subscriber);
//! - a publisher that promised another frame (`LINGERS`) sends nothing for
//!   `MISSES + 1` heartbeat intervals: it died, or everything it sent since
//!   was lost.
//!
//! A false `Gap` costs a resync; a missed one a silent loss, so every
//! doubtful case reports one.

use super::RelayEvent;
use super::frame::Frame;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Heartbeats that may be missed in a row before the publisher is presumed
/// gone; more than one, so the drop knob alone rarely causes a false gap.
const MISSES: u32 = 3;
/// Closed publishers not heard from for this long are forgotten once the
/// table is large; a frame from them is then judged as a first sight.
const FORGET_AFTER: Duration = Duration::from_secs(600);
const FORGET_ABOVE: usize = 1024;

struct Peer {
    id: Arc<str>,
    epoch: u64,
    last: u64,
    /// When the next frame is due; `None` once closed.
    due: Option<Instant>,
    heard: Instant,
}

pub(crate) struct Tracker {
    /// Wall-clock ns when the subscription started (taken before it went
    /// live, so it errs towards reporting).
    since: u64,
    skew: u64,
    peers: HashMap<Arc<str>, Peer>,
}

impl Tracker {
    pub fn new(since: u64, skew: Duration) -> Tracker {
        Tracker {
            since,
            skew: skew.as_nanos() as u64,
            peers: HashMap::new(),
        }
    }

    /// Accounts for one frame, queueing a `Gap` (before the message) when
    /// something is missing, then the message for a data frame.
    pub fn on_frame(&mut self, f: Frame<'_>, now: Instant, out: &mut VecDeque<RelayEvent>) {
        let unseen_to = f.unseen_to();
        let gap = match self.peers.get(f.publisher) {
            Some(p) if p.epoch == f.epoch => {
                unseen_to > p.last || (!f.heartbeat && f.seq <= p.last)
            }
            Some(p) => p.due.is_some() || unseen_to > 0,
            None => unseen_to > 0 && f.at.saturating_add(self.skew) >= self.since,
        };
        if !self.peers.contains_key(f.publisher) {
            self.forget_idle(now);
            let id: Arc<str> = Arc::from(f.publisher);
            let fresh = Peer {
                id: id.clone(),
                epoch: f.epoch,
                last: 0,
                due: None,
                heard: now,
            };
            self.peers.insert(id, fresh);
        }
        let Some(p) = self.peers.get_mut(f.publisher) else {
            return;
        };
        if p.epoch != f.epoch {
            p.epoch = f.epoch;
            p.last = 0;
        }
        p.last = if f.heartbeat {
            p.last.max(f.seq)
        } else {
            f.seq
        };
        let interval = Duration::from_millis(u64::from(f.heartbeat_ms.max(1)));
        p.due = f.lingers.then(|| now + interval * (MISSES + 1));
        p.heard = now;
        if gap {
            out.push_back(RelayEvent::Gap {
                from: Some(p.id.clone()),
            });
        }
        if !f.heartbeat {
            out.push_back(RelayEvent::Message {
                from: p.id.clone(),
                payload: f.payload,
            });
        }
    }

    /// The earliest time a publisher's next frame is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.peers.values().filter_map(|p| p.due).min()
    }

    /// Reports every publisher whose frame is overdue; each is then treated
    /// as closed (its later frames are judged by their sequence as usual).
    pub fn expire(&mut self, now: Instant, out: &mut VecDeque<RelayEvent>) {
        for p in self.peers.values_mut() {
            if p.due.is_some_and(|due| due <= now) {
                p.due = None;
                out.push_back(RelayEvent::Gap {
                    from: Some(p.id.clone()),
                });
            }
        }
    }

    fn forget_idle(&mut self, now: Instant) {
        if self.peers.len() >= FORGET_ABOVE {
            self.peers
                .retain(|_, p| p.due.is_some() || now.duration_since(p.heard) < FORGET_AFTER);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const SINCE: u64 = 1_000_000;

    fn data(epoch: u64, seq: u64, at: u64) -> Frame<'static> {
        Frame {
            heartbeat: false,
            lingers: true,
            publisher: "n1",
            epoch,
            seq,
            at,
            heartbeat_ms: 100,
            payload: Bytes::from_static(b"x"),
        }
    }

    /// Feeds frames; returns `true` per gap and `false` per message.
    fn feed(t: &mut Tracker, frames: Vec<Frame<'static>>) -> Vec<bool> {
        let mut out = VecDeque::new();
        for f in frames {
            t.on_frame(f, Instant::now(), &mut out);
        }
        out.iter()
            .map(|e| matches!(e, RelayEvent::Gap { .. }))
            .collect()
    }

    #[test]
    fn first_sight_reports_only_what_was_sent_after_subscribing() {
        // Frame 4 was sent before the subscription: not owed.
        let mut t = Tracker::new(SINCE, Duration::ZERO);
        assert_eq!(feed(&mut t, vec![data(1, 5, SINCE - 1)]), vec![false]);
        // Frame 4 was sent after it (or within the skew): lost.
        let mut t = Tracker::new(SINCE, Duration::ZERO);
        assert_eq!(feed(&mut t, vec![data(1, 5, SINCE)]), vec![true, false]);
        let mut t = Tracker::new(SINCE, Duration::from_nanos(10));
        assert_eq!(feed(&mut t, vec![data(1, 5, SINCE - 5)]), vec![true, false]);
    }

    #[test]
    fn numbering_skips_restarts_and_closes() {
        let mut t = Tracker::new(SINCE, Duration::ZERO);
        let skip = vec![data(1, 1, 0), data(1, 2, SINCE), data(1, 4, SINCE)];
        assert_eq!(feed(&mut t, skip), vec![false, false, true, false]);
        // A new numbering while the old one still lingered: a gap.
        assert_eq!(feed(&mut t, vec![data(2, 1, 0)]), vec![true, false]);
        // Closed by a final heartbeat, then a new numbering: clean.
        let close = Frame {
            heartbeat: true,
            lingers: false,
            payload: Bytes::new(),
            ..data(2, 1, SINCE)
        };
        assert_eq!(feed(&mut t, vec![close, data(3, 1, 0)]), vec![false]);
        assert!(t.next_due().is_some(), "a data frame promises a heartbeat");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_publisher_is_reported_once() {
        let mut t = Tracker::new(SINCE, Duration::ZERO);
        feed(&mut t, vec![data(1, 1, 0)]);
        let due = t.next_due().expect("due");
        assert_eq!(
            due - Instant::now(),
            Duration::from_millis(100) * (MISSES + 1)
        );
        let mut out = VecDeque::new();
        t.expire(due - Duration::from_millis(1), &mut out);
        assert!(out.is_empty());
        t.expire(due, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(t.next_due(), None);
    }
}
