//! The per-connection window of pushed, unacknowledged messages, and their
//! resend schedule (the device's resend level).
//!
//! Bounded: a client that stops acknowledging fills the window and is
//! closed with `slow_consumer`; its messages stay pullable by sync. The
//! session's timer runs only while something here is due to be resent
//! (`next_due`), so an idle connection costs no wake-ups.

use crate::services::delivery::hub::Push;
use magpie_core::{ConvId, Persistence, ResendPolicy, Seq};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

struct Entry {
    push: Arc<Push>,
    attempt: u32,
    due: Instant,
}

pub struct Inflight {
    window: usize,
    policy: ResendPolicy,
    /// Per conversation (one key allocation per conversation, not per push).
    entries: HashMap<ConvId, BTreeMap<Seq, Entry>>,
    len: usize,
    /// No entry is due before this (it may be earlier than the true next
    /// due time after acks: the timer then wakes once for nothing).
    next_due: Option<Instant>,
}

/// The window is full.
#[derive(Debug)]
pub struct WindowFull;

/// What an acknowledgement settled.
#[derive(Debug, Default)]
pub struct Acked {
    /// The acknowledged pushes this window tracked.
    pub pushes: Vec<Arc<Push>>,
    /// Sequences whose removal on delivery may be due: `none`-level
    /// messages, and anything this window did not track (it cannot tell).
    pub deliveries: Vec<Seq>,
}

impl Inflight {
    pub fn new(window: usize, policy: ResendPolicy) -> Self {
        Inflight {
            window,
            policy,
            entries: HashMap::new(),
            len: 0,
            next_due: None,
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.policy.first_after_ms.max(1);
        Duration::from_millis(base.saturating_mul(1u64 << (attempt - 1).min(10)))
    }

    /// Starts tracking a first push. With resends off nothing is tracked:
    /// the device relies on sync alone.
    pub fn track(&mut self, push: Arc<Push>, now: Instant) -> Result<(), WindowFull> {
        if self.policy.max_resends == 0 {
            return Ok(());
        }
        let due = now + self.backoff(1);
        let conv = match self.entries.get_mut(&push.msg.conv) {
            Some(c) => c,
            None => self.entries.entry(push.msg.conv.clone()).or_default(),
        };
        if conv.contains_key(&push.msg.seq) {
            return Ok(());
        }
        if self.len >= self.window {
            return Err(WindowFull);
        }
        conv.insert(
            push.msg.seq,
            Entry {
                push,
                attempt: 1,
                due,
            },
        );
        self.len += 1;
        self.next_due = Some(self.next_due.map_or(due, |d| d.min(due)));
        Ok(())
    }

    /// Stops tracking acknowledged messages.
    pub fn ack(&mut self, conv: &ConvId, seqs: &[Seq]) -> Acked {
        let mut out = Acked::default();
        let Some(tracked) = self.entries.get_mut(conv) else {
            out.deliveries.extend_from_slice(seqs);
            return out;
        };
        for &s in seqs {
            match tracked.remove(&s) {
                Some(e) => {
                    self.len -= 1;
                    if e.push.msg.persistence == Persistence::None {
                        out.deliveries.push(s);
                    }
                    out.pushes.push(e.push);
                }
                None => out.deliveries.push(s),
            }
        }
        if tracked.is_empty() {
            self.entries.remove(conv);
        }
        if self.len == 0 {
            self.next_due = None;
        }
        out
    }

    /// When the session should next look for resends, if ever.
    pub fn next_due(&self) -> Option<Instant> {
        self.next_due
    }

    /// Messages due for a resend, with their new attempt number. Messages
    /// past the last resend are dropped from tracking (sync still has them).
    pub fn due(&mut self, now: Instant) -> Vec<(Arc<Push>, u32)> {
        let mut out = Vec::new();
        let max = self.policy.max_resends;
        let base = self.policy.first_after_ms.max(1);
        let mut next: Option<Instant> = None;
        let mut dropped = 0;
        for conv in self.entries.values_mut() {
            conv.retain(|_, e| {
                if e.due <= now {
                    if e.attempt > max {
                        dropped += 1;
                        return false;
                    }
                    e.attempt += 1;
                    let wait = base.saturating_mul(1u64 << (e.attempt - 1).min(10));
                    e.due = now + Duration::from_millis(wait);
                    out.push((e.push.clone(), e.attempt));
                }
                next = Some(next.map_or(e.due, |d| d.min(e.due)));
                true
            });
        }
        self.entries.retain(|_, c| !c.is_empty());
        self.len -= dropped;
        self.next_due = next;
        out
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use magpie_core::{ClientMsgId, Message, ServerMsgId, UserId};

    fn push(seq: Seq, persistence: Persistence) -> Arc<Push> {
        Push::new(Message {
            meta: None,
            trace: None,
            server_id: ServerMsgId(seq),
            conv: ConvId::direct(UserId(1), UserId(2)),
            seq,
            from: UserId(1),
            to: UserId(2),
            cmid: ClientMsgId::new_v7(),
            body: "x".into(),
            persistence,
            sent_at: 0,
            search: false,
        })
    }

    fn msg(seq: Seq) -> Arc<Push> {
        push(seq, Persistence::Forever)
    }

    fn policy(first_after_ms: u64, max_resends: u32) -> ResendPolicy {
        ResendPolicy {
            first_after_ms,
            max_resends,
        }
    }

    #[test]
    fn window_is_bounded_and_acks_free_it() {
        let now = Instant::now();
        let mut w = Inflight::new(2, policy(100, 2));
        w.track(msg(1), now).unwrap();
        w.track(msg(2), now).unwrap();
        assert!(w.track(msg(3), now).is_err());
        let conv = msg(1).msg.conv.clone();
        assert_eq!(w.ack(&conv, &[1]).pushes.len(), 1);
        w.track(msg(3), now).unwrap();
    }

    #[test]
    fn resends_back_off_then_stop() {
        let now = Instant::now();
        let mut w = Inflight::new(8, policy(100, 2));
        w.track(msg(1), now).unwrap();
        assert_eq!(w.next_due(), Some(now + Duration::from_millis(100)));
        assert!(w.due(now).is_empty());
        let d = w.due(now + Duration::from_millis(100));
        assert_eq!(d[0].1, 2);
        assert!(w.due(now + Duration::from_millis(250)).is_empty());
        assert_eq!(w.due(now + Duration::from_millis(300))[0].1, 3);
        assert!(w.due(now + Duration::from_secs(10)).is_empty());
        assert!(w.is_empty());
        assert_eq!(w.next_due(), None, "nothing tracked: no timer");
    }

    #[test]
    fn resend_off_tracks_nothing() {
        let mut w = Inflight::new(1, policy(0, 0));
        for s in 0..10 {
            w.track(msg(s), Instant::now()).unwrap();
        }
        assert_eq!(w.len(), 0);
        assert_eq!(w.next_due(), None);
    }

    /// Only what retention may act on is reported for a delivery event.
    #[test]
    fn acks_report_none_level_and_untracked_deliveries() {
        let now = Instant::now();
        let mut w = Inflight::new(8, policy(100, 2));
        w.track(msg(1), now).unwrap();
        w.track(push(2, Persistence::None), now).unwrap();
        let conv = msg(1).msg.conv.clone();
        let acked = w.ack(&conv, &[1, 2, 3]);
        assert_eq!(acked.pushes.len(), 2);
        assert_eq!(acked.deliveries, vec![2, 3]);
        assert!(w.is_empty());
    }
}
