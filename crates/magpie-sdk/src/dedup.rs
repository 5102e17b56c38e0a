//! Owns "what has the application already been given": per-conversation
//! delivery positions, duplicate detection and gap detection.
//!
//! Pushes are at-least-once (an unacknowledged push is resent, a resync
//! overlaps pushes), so the same message can arrive several times. Sequences
//! are contiguous per conversation, which lets the state stay small: the
//! highest sequence delivered without holes, plus a bounded set of sequences
//! delivered above it (while a hole is being filled), plus a bounded FIFO of
//! recent server ids as a second key.

use magpie_core::{ConvId, Message, Seq, ServerMsgId};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

/// Sequences kept above the contiguous mark per conversation before the
/// oldest hole is given up on (bounded memory beats waiting forever).
const MAX_ABOVE: usize = 1024;
/// Recent server ids remembered across all conversations.
const RECENT_IDS: usize = 4096;

/// What to do with an incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Already delivered: drop it (but still acknowledge it).
    Duplicate,
    /// The next expected sequence: deliver it.
    Next,
    /// Sequences `from..=to` are missing before it: fetch them first.
    Gap { from: Seq, to: Seq },
}

#[derive(Debug, Default, Clone)]
struct ConvState {
    /// Every sequence up to here was delivered (or is known unrecoverable).
    contiguous: Seq,
    /// Delivered sequences above `contiguous + 1`.
    above: BTreeSet<Seq>,
}

impl ConvState {
    /// Folds `above` into `contiguous` while it continues the run.
    fn normalize(&mut self) {
        while self.above.remove(&(self.contiguous + 1)) {
            self.contiguous += 1;
        }
        let contiguous = self.contiguous;
        self.above.retain(|&s| s > contiguous);
        let overflow = self.above.len() > MAX_ABOVE;
        if let Some(&first) = self.above.first().filter(|_| overflow) {
            self.contiguous = first - 1;
            self.normalize();
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Dedup {
    convs: HashMap<ConvId, ConvState>,
    recent: HashSet<ServerMsgId>,
    order: VecDeque<ServerMsgId>,
}

impl Dedup {
    /// Starts from positions the application already has (e.g. persisted).
    /// A conversation not listed starts at 0: everything in it is new.
    pub fn new(positions: &BTreeMap<ConvId, Seq>) -> Self {
        let mut d = Dedup::default();
        for (conv, &seq) in positions {
            d.advance(conv, seq);
        }
        d
    }

    pub fn check(&self, msg: &Message) -> Verdict {
        if self.recent.contains(&msg.server_id) {
            return Verdict::Duplicate;
        }
        let (contiguous, seen) = match self.convs.get(&msg.conv) {
            Some(c) => (c.contiguous, c.above.contains(&msg.seq)),
            None => (0, false),
        };
        if msg.seq <= contiguous || seen {
            Verdict::Duplicate
        } else if msg.seq == contiguous + 1 {
            Verdict::Next
        } else {
            Verdict::Gap {
                from: contiguous + 1,
                to: msg.seq - 1,
            }
        }
    }

    /// Records that `msg` was handed to the application.
    pub fn mark(&mut self, msg: &Message) {
        self.mark_sent(&msg.conv, msg.seq, msg.server_id);
    }

    /// Records a message this client sent itself (from the server's `sent`
    /// reply): the application already has it, so a sync or a push returning
    /// it must not hand it over again, and it is no gap before later ones.
    pub fn mark_sent(&mut self, conv: &ConvId, seq: Seq, server_id: ServerMsgId) {
        if self.recent.insert(server_id) {
            self.order.push_back(server_id);
            let excess = self.order.len().saturating_sub(RECENT_IDS);
            for old in self.order.drain(..excess) {
                self.recent.remove(&old);
            }
        }
        let state = self.convs.entry(conv.clone()).or_default();
        if seq > state.contiguous {
            state.above.insert(seq);
            state.normalize();
        }
    }

    /// Declares everything up to `seq` accounted for (delivered, or reported
    /// unrecoverable by the server). Returns the range that was skipped
    /// without ever being delivered, if any.
    pub fn advance(&mut self, conv: &ConvId, seq: Seq) -> Option<(Seq, Seq)> {
        let state = self.convs.entry(conv.clone()).or_default();
        if seq <= state.contiguous {
            return None;
        }
        let from = state.contiguous + 1;
        let all_seen = (from..=seq).all(|s| state.above.contains(&s));
        state.contiguous = seq;
        state.normalize();
        (!all_seen).then_some((from, seq))
    }

    /// Marks `from..=to` as unrecoverable: it must not be waited for.
    pub fn skip_range(&mut self, conv: &ConvId, from: Seq, to: Seq) {
        let state = self.convs.entry(conv.clone()).or_default();
        if from <= state.contiguous + 1 || to - from >= MAX_ABOVE as Seq {
            // Contiguous with what we have (or too wide to track): move the mark.
            state.contiguous = state.contiguous.max(to);
        } else {
            state.above.extend(from..=to);
        }
        state.normalize();
    }

    /// The highest sequence delivered without holes in `conv` (0 if none).
    pub fn position(&self, conv: &ConvId) -> Seq {
        self.convs.get(conv).map_or(0, |c| c.contiguous)
    }

    /// Every known conversation's contiguous position: what `sync` is asked from.
    pub fn positions(&self) -> BTreeMap<ConvId, Seq> {
        self.convs
            .iter()
            .map(|(c, s)| (c.clone(), s.contiguous))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use magpie_core::{ClientMsgId, Persistence, UserId};

    fn msg(seq: Seq) -> Message {
        Message {
            server_id: ServerMsgId(1000 + seq),
            conv: ConvId::direct(UserId(1), UserId(2)),
            seq,
            from: UserId(1),
            to: UserId(2),
            cmid: ClientMsgId::new_v7(),
            body: format!("m{seq}"),
            persistence: Persistence::Forever,
            sent_at: 0,
        }
    }

    #[test]
    fn duplicates_by_seq_and_by_server_id() {
        let mut d = Dedup::default();
        assert_eq!(d.check(&msg(1)), Verdict::Next);
        d.mark(&msg(1));
        assert_eq!(d.check(&msg(1)), Verdict::Duplicate);
        // Same server id under a different seq (should not happen, but is still a dup).
        let mut odd = msg(2);
        odd.server_id = msg(1).server_id;
        assert_eq!(d.check(&odd), Verdict::Duplicate);
        assert_eq!(d.check(&msg(2)), Verdict::Next);
    }

    #[test]
    fn gaps_are_detected_and_filled() {
        let mut d = Dedup::default();
        d.mark(&msg(1));
        assert_eq!(d.check(&msg(4)), Verdict::Gap { from: 2, to: 3 });
        // Delivered out of order (fallback when the gap fetch failed).
        d.mark(&msg(4));
        assert_eq!(d.position(&msg(1).conv), 1);
        assert_eq!(d.check(&msg(4)), Verdict::Duplicate);
        assert_eq!(d.check(&msg(3)), Verdict::Gap { from: 2, to: 2 });
        d.mark(&msg(2));
        d.mark(&msg(3));
        assert_eq!(d.position(&msg(1).conv), 4);
        assert_eq!(d.check(&msg(5)), Verdict::Next);
    }

    #[test]
    fn own_sends_are_no_gap_and_never_delivered() {
        let mut d = Dedup::default();
        let conv = msg(1).conv;
        d.mark_sent(&conv, 1, msg(1).server_id);
        assert_eq!(d.check(&msg(1)), Verdict::Duplicate);
        assert_eq!(d.check(&msg(2)), Verdict::Next);
        // Sent while seq 2 (from the peer) is still in flight.
        d.mark_sent(&conv, 3, msg(3).server_id);
        assert_eq!(d.check(&msg(2)), Verdict::Next);
        d.mark(&msg(2));
        assert_eq!(d.position(&conv), 3);
        assert_eq!(d.check(&msg(3)), Verdict::Duplicate);
    }

    #[test]
    fn positions_and_skips() {
        let conv = msg(1).conv;
        let mut d = Dedup::new(&BTreeMap::from([(conv.clone(), 5)]));
        assert_eq!(d.check(&msg(5)), Verdict::Duplicate);
        assert_eq!(d.check(&msg(6)), Verdict::Next);
        d.skip_range(&conv, 6, 7);
        assert_eq!(d.position(&conv), 7);
        d.mark(&msg(9));
        d.skip_range(&conv, 8, 8);
        assert_eq!(d.position(&conv), 9);
        assert_eq!(d.advance(&conv, 9), None);
        assert_eq!(d.advance(&conv, 12), Some((10, 12)));
        assert_eq!(d.positions(), BTreeMap::from([(conv, 12)]));
    }

    #[test]
    fn state_above_the_mark_is_bounded() {
        let mut d = Dedup::default();
        for s in 3..(3 + MAX_ABOVE as Seq + 10) {
            d.mark(&msg(s));
        }
        // The hole at 1..=2 was given up on rather than growing without bound.
        assert!(d.position(&msg(1).conv) >= 2 + MAX_ABOVE as Seq);
        assert!(d.recent.len() <= RECENT_IDS);
    }
}
