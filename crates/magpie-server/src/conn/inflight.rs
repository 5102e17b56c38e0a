//! The per-connection window of pushed, unacknowledged messages, and their
//! resend schedule (the device's resend level).
//!
//! Bounded: a client that stops acknowledging fills the window and is
//! closed with `slow_consumer`; its messages stay pullable by sync.

use magpie_core::{ConvId, Message, ResendPolicy, Seq};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

struct Entry {
    msg: Arc<Message>,
    attempt: u32,
    due: Instant,
}

pub struct Inflight {
    window: usize,
    policy: ResendPolicy,
    entries: BTreeMap<(ConvId, Seq), Entry>,
}

/// The window is full.
#[derive(Debug)]
pub struct WindowFull;

impl Inflight {
    pub fn new(window: usize, policy: ResendPolicy) -> Self {
        Inflight {
            window,
            policy,
            entries: BTreeMap::new(),
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.policy.first_after_ms.max(1);
        Duration::from_millis(base.saturating_mul(1u64 << (attempt - 1).min(10)))
    }

    /// Starts tracking a first push. With resends off nothing is tracked:
    /// the device relies on sync alone.
    pub fn track(&mut self, msg: Arc<Message>, now: Instant) -> Result<(), WindowFull> {
        if self.policy.max_resends == 0 {
            return Ok(());
        }
        let key = (msg.conv.clone(), msg.seq);
        if self.entries.contains_key(&key) {
            return Ok(());
        }
        if self.entries.len() >= self.window {
            return Err(WindowFull);
        }
        let due = now + self.backoff(1);
        self.entries.insert(
            key,
            Entry {
                msg,
                attempt: 1,
                due,
            },
        );
        Ok(())
    }

    /// Stops tracking acknowledged messages; returns those that were tracked.
    pub fn ack(&mut self, conv: &ConvId, seqs: &[Seq]) -> Vec<Arc<Message>> {
        seqs.iter()
            .filter_map(|s| self.entries.remove(&(conv.clone(), *s)).map(|e| e.msg))
            .collect()
    }

    /// Messages due for a resend, with their new attempt number. Messages
    /// past the last resend are dropped from tracking (sync still has them).
    pub fn due(&mut self, now: Instant) -> Vec<(Arc<Message>, u32)> {
        let mut out = Vec::new();
        let mut expired = Vec::new();
        let max = self.policy.max_resends;
        for (key, e) in self.entries.iter_mut() {
            if e.due > now {
                continue;
            }
            if e.attempt > max {
                expired.push(key.clone());
                continue;
            }
            e.attempt += 1;
            let base = self.policy.first_after_ms.max(1);
            e.due =
                now + Duration::from_millis(base.saturating_mul(1u64 << (e.attempt - 1).min(10)));
            out.push((e.msg.clone(), e.attempt));
        }
        for k in expired {
            self.entries.remove(&k);
        }
        out
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use magpie_core::{ClientMsgId, Persistence, ServerMsgId, UserId};

    fn msg(seq: Seq) -> Arc<Message> {
        Arc::new(Message {
            server_id: ServerMsgId(seq),
            conv: ConvId::direct(UserId(1), UserId(2)),
            seq,
            from: UserId(1),
            to: UserId(2),
            cmid: ClientMsgId::new_v7(),
            body: "x".into(),
            persistence: Persistence::Forever,
            sent_at: 0,
        })
    }

    #[test]
    fn window_is_bounded_and_acks_free_it() {
        let now = Instant::now();
        let mut w = Inflight::new(
            2,
            ResendPolicy {
                first_after_ms: 100,
                max_resends: 2,
            },
        );
        w.track(msg(1), now).unwrap();
        w.track(msg(2), now).unwrap();
        assert!(w.track(msg(3), now).is_err());
        assert_eq!(w.ack(&msg(1).conv, &[1]).len(), 1);
        w.track(msg(3), now).unwrap();
    }

    #[test]
    fn resends_back_off_then_stop() {
        let now = Instant::now();
        let mut w = Inflight::new(
            8,
            ResendPolicy {
                first_after_ms: 100,
                max_resends: 2,
            },
        );
        w.track(msg(1), now).unwrap();
        assert!(w.due(now).is_empty());
        let d = w.due(now + Duration::from_millis(100));
        assert_eq!(d[0].1, 2);
        assert!(w.due(now + Duration::from_millis(250)).is_empty());
        assert_eq!(w.due(now + Duration::from_millis(300))[0].1, 3);
        assert!(w.due(now + Duration::from_secs(10)).is_empty());
        assert!(w.is_empty());
    }

    #[test]
    fn resend_off_tracks_nothing() {
        let mut w = Inflight::new(
            1,
            ResendPolicy {
                first_after_ms: 0,
                max_resends: 0,
            },
        );
        for s in 0..10 {
            w.track(msg(s), Instant::now()).unwrap();
        }
        assert_eq!(w.len(), 0);
    }
}
