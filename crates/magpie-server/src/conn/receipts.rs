//! Delivery receipts of one connection (docs/protocol.md, "`delivered`").
//!
//! When this device acknowledges pushes of a direct conversation that the
//! peer sent, the peer is told "delivered up to `seq`". A receipt is
//! relayed like typing: never stored, published or resent. The session
//! paces them (its timer sends the held ones), so an ack costs a map
//! look-up here and a receipt is queued to the companion task only when it
//! goes out. Cost is bounded per connection and conversation: the first
//! goes out at once, later ones within `EVERY` of it are merged (the
//! highest sequence wins) and go out when the interval ends, so a busy
//! conversation costs a few receipts a second, not one per message, and
//! the last one is never dropped.

use magpie_core::{ConvId, Seq};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::time::Instant;

/// The shortest time between two receipts of one conversation.
pub const EVERY: Duration = Duration::from_millis(250);

/// Past this many remembered conversations, the ones quiet for longer than
/// `EVERY` are forgotten: the memory follows the active conversations.
const PRUNE_AT: usize = 256;

#[derive(Default)]
pub struct Receipts {
    /// When each conversation's last receipt went out.
    last: HashMap<ConvId, Instant>,
    /// Receipts held back, with the time they are due.
    pending: BTreeMap<ConvId, (Seq, Instant)>,
}

impl Receipts {
    /// The device acknowledged the peer's messages of `conv` up to `seq`:
    /// true when the receipt goes out now; otherwise it is held (merged
    /// with one already held) until `due`.
    pub fn offer(&mut self, conv: &ConvId, seq: Seq, now: Instant) -> bool {
        if let Some((held, _)) = self.pending.get_mut(conv) {
            *held = (*held).max(seq);
            return false;
        }
        match self.last.get(conv) {
            Some(t) if now.duration_since(*t) < EVERY => {
                self.pending.insert(conv.clone(), (seq, *t + EVERY));
                false
            }
            _ => {
                if self.last.len() >= PRUNE_AT {
                    self.last.retain(|_, t| now.duration_since(*t) < EVERY);
                }
                self.last.insert(conv.clone(), now);
                true
            }
        }
    }

    /// When the next held receipt is due.
    pub fn due(&self) -> Option<Instant> {
        self.pending.values().map(|(_, due)| *due).min()
    }

    /// The held receipts due by `now`, recorded as sent.
    pub fn take_due(&mut self, now: Instant) -> Vec<(ConvId, Seq)> {
        let (due, held) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition::<BTreeMap<_, _>, _>(|(_, (_, at))| *at <= now);
        self.pending = held;
        due.into_iter()
            .map(|(c, (seq, _))| {
                self.last.insert(c.clone(), now);
                (c, seq)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv() -> ConvId {
        ConvId::parse("d:1:2").unwrap()
    }

    #[test]
    fn the_first_goes_out_and_later_ones_merge_until_due() {
        let mut r = Receipts::default();
        let t0 = Instant::now();
        assert!(r.offer(&conv(), 3, t0));
        assert_eq!(r.due(), None);
        assert!(!r.offer(&conv(), 5, t0 + Duration::from_millis(10)));
        assert!(!r.offer(&conv(), 4, t0 + Duration::from_millis(20)));
        assert_eq!(r.due(), Some(t0 + EVERY));
        assert!(r.take_due(t0 + Duration::from_millis(100)).is_empty());
        let at = t0 + EVERY;
        assert_eq!(r.take_due(at), vec![(conv(), 5)]);
        assert_eq!(r.due(), None);
        // Sent at `at`: the next within EVERY of it is held again.
        assert!(!r.offer(&conv(), 6, at + Duration::from_millis(1)));
        assert!(r.offer(&ConvId::parse("d:1:3").unwrap(), 1, at));
    }

    #[test]
    fn a_quiet_conversation_sends_at_once() {
        let mut r = Receipts::default();
        let t0 = Instant::now();
        assert!(r.offer(&conv(), 1, t0));
        assert!(r.offer(&conv(), 2, t0 + EVERY));
    }
}
