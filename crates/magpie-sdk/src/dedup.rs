//! Owns "what has the application already been given": per-conversation
//! delivery positions, duplicate detection and gap detection.
//!
//! Pushes are at-least-once (an unacknowledged push is resent, a resync
//! overlaps pushes), so the same message can arrive several times. Sequences
//! are contiguous per conversation, which lets the state stay small: the
//! highest sequence delivered without holes, plus the runs of sequences
//! delivered above it (while a hole is being filled: a few runs, however
//! many messages), plus a bounded FIFO of recent server ids as a second key.
//!
//! It also remembers this client's own sends that have no `sent` reply yet
//! (in flight, or failed and to be retried with the same id). A sync after a
//! reconnect can return such a message before its reply: it is the
//! application's own message and reaches it as the send's result, so it
//! must not also arrive as an event.

use magpie_core::{ClientMsgId, ConvId, Message, Seq, ServerMsgId, UserId};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// Holes kept open per conversation before the oldest is given up on
/// (bounded memory beats waiting forever; it takes a thousand separate
/// holes, each left unfilled by every sync, to get there).
const MAX_RUNS: usize = 1024;
/// Recent server ids remembered across all conversations.
const RECENT_IDS: usize = 4096;
/// Own sends without a reply remembered (oldest forgotten first).
const UNRESOLVED: usize = 65_536;

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
    /// Runs `start -> end` (inclusive) delivered above `contiguous + 1`:
    /// disjoint, not touching each other, all starting above `contiguous + 1`.
    above: BTreeMap<Seq, Seq>,
}

impl ConvState {
    fn contains(&self, seq: Seq) -> bool {
        seq <= self.contiguous
            || self
                .above
                .range(..=seq)
                .next_back()
                .is_some_and(|(_, &end)| end >= seq)
    }

    /// Adds `from..=to`, merging with the runs it touches.
    fn insert(&mut self, mut from: Seq, mut to: Seq) {
        if let Some((&s, &e)) = self.above.range(..=from).next_back()
            && e + 1 >= from
        {
            from = s;
            to = to.max(e);
        }
        while let Some((&s, &e)) = self.above.range(from..).next() {
            if s > to + 1 {
                break;
            }
            to = to.max(e);
            self.above.remove(&s);
        }
        self.above.insert(from, to);
        self.normalize();
    }

    /// Folds a run that continues `contiguous` into it.
    fn normalize(&mut self) {
        while let Some((&s, &e)) = self.above.first_key_value() {
            if s > self.contiguous + 1 {
                break;
            }
            self.contiguous = self.contiguous.max(e);
            self.above.remove(&s);
        }
        if self.above.len() > MAX_RUNS
            && let Some((&s, _)) = self.above.first_key_value()
        {
            tracing::warn!(from = self.contiguous + 1, to = s - 1, "hole given up on");
            self.contiguous = s - 1;
            self.normalize();
        }
    }

    /// The sequences of `from..=to` not delivered, as ranges.
    fn holes(&self, from: Seq, to: Seq) -> Vec<(Seq, Seq)> {
        let mut out = Vec::new();
        let mut at = from.max(self.contiguous + 1);
        for (&s, &e) in self.above.range(..=to) {
            if e < at {
                continue;
            }
            if s > at {
                out.push((at, s - 1));
            }
            at = e + 1;
        }
        if at <= to {
            out.push((at, to));
        }
        out
    }
}

#[derive(Debug, Default, Clone)]
pub struct Dedup {
    convs: HashMap<ConvId, ConvState>,
    recent: HashSet<ServerMsgId>,
    order: VecDeque<ServerMsgId>,
    unresolved: HashSet<(UserId, ClientMsgId)>,
    unresolved_order: VecDeque<(UserId, ClientMsgId)>,
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
            Some(c) => (c.contiguous, c.contains(msg.seq)),
            None => (0, false),
        };
        if seen {
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
            state.insert(seq, seq);
        }
    }

    /// A send of `cmid` by `from` (this client's user) is about to go out.
    pub fn begin_send(&mut self, from: UserId, cmid: ClientMsgId) {
        if self.unresolved.insert((from, cmid)) {
            self.unresolved_order.push_back((from, cmid));
            let excess = self.unresolved_order.len().saturating_sub(UNRESOLVED);
            for old in self.unresolved_order.drain(..excess) {
                self.unresolved.remove(&old);
            }
        }
    }

    /// The send of `cmid` got its reply: the application has the message.
    pub fn end_send(&mut self, from: UserId, cmid: ClientMsgId) {
        self.unresolved.remove(&(from, cmid));
    }

    /// Whether `msg` is one of this client's sends still waiting for its reply.
    pub fn is_unresolved_own(&self, msg: &Message) -> bool {
        self.unresolved.contains(&(msg.from, msg.cmid))
    }

    /// Declares everything up to `seq` accounted for (delivered, or reported
    /// unrecoverable by the server). Returns the ranges that were skipped
    /// without ever being delivered.
    pub fn advance(&mut self, conv: &ConvId, seq: Seq) -> Vec<(Seq, Seq)> {
        let state = self.convs.entry(conv.clone()).or_default();
        if seq <= state.contiguous {
            return Vec::new();
        }
        let skipped = state.holes(state.contiguous + 1, seq);
        state.insert(state.contiguous + 1, seq);
        skipped
    }

    /// Marks `from..=to` as unrecoverable: it must not be waited for.
    pub fn skip_range(&mut self, conv: &ConvId, from: Seq, to: Seq) {
        if from <= to {
            self.convs.entry(conv.clone()).or_default().insert(from, to);
        }
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
            meta: None,
            trace: None,
            server_id: ServerMsgId(1000 + seq),
            conv: ConvId::direct(UserId(1), UserId(2)),
            seq,
            from: UserId(1),
            to: UserId(2),
            cmid: ClientMsgId::new_v7(),
            body: format!("m{seq}"),
            persistence: Persistence::Forever,
            sent_at: 0,
            search: false,
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
    fn own_sends_without_a_reply_are_accounted_but_not_delivered() {
        let mut d = Dedup::default();
        let mine = msg(1);
        d.begin_send(mine.from, mine.cmid);
        assert!(d.is_unresolved_own(&mine));
        // Another device of the same user sent msg(2): it is delivered.
        assert!(!d.is_unresolved_own(&msg(2)));
        d.end_send(mine.from, mine.cmid);
        assert!(!d.is_unresolved_own(&mine));
        for i in 0..(UNRESOLVED + 5) {
            d.begin_send(UserId(1), ClientMsgId::new_v7());
            assert!(d.unresolved.len() <= UNRESOLVED, "{i}");
        }
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
        assert_eq!(d.advance(&conv, 9), Vec::new());
        assert_eq!(d.advance(&conv, 12), vec![(10, 12)]);
        // Only the holes are reported, not what was delivered above the mark.
        d.mark(&msg(14));
        d.mark(&msg(16));
        assert_eq!(d.advance(&conv, 17), vec![(13, 13), (15, 15), (17, 17)]);
        assert_eq!(d.positions(), BTreeMap::from([(conv, 17)]));
    }

    #[test]
    fn a_long_wait_for_one_hole_keeps_the_hole() {
        let mut d = Dedup::default();
        let conv = msg(1).conv;
        // Seq 1 is late while 100,000 later messages arrive: one run, one hole.
        for s in 2..100_002 {
            d.mark(&msg(s));
        }
        assert_eq!(d.position(&conv), 0);
        assert_eq!(d.convs[&conv].above.len(), 1);
        assert_eq!(d.check(&msg(1)), Verdict::Next);
        d.mark(&msg(1));
        assert_eq!(d.position(&conv), 100_001);
        assert!(d.recent.len() <= RECENT_IDS);
    }

    #[test]
    fn state_above_the_mark_is_bounded() {
        let mut d = Dedup::default();
        let conv = msg(1).conv;
        // Every other sequence: a thousand separate holes and more.
        for i in 1..=(MAX_RUNS as Seq + 10) {
            d.mark(&msg(2 * i));
        }
        assert!(d.convs[&conv].above.len() <= MAX_RUNS);
        // The oldest holes were given up on rather than growing without bound.
        assert!(d.position(&conv) >= 20);
    }

    #[test]
    fn runs_merge_and_split_correctly() {
        let mut st = ConvState::default();
        st.insert(5, 7);
        st.insert(10, 10);
        st.insert(8, 9); // bridges 5..=7 and 10
        assert_eq!(st.above.iter().collect::<Vec<_>>(), vec![(&5, &10)]);
        assert!(st.contains(7) && !st.contains(4) && !st.contains(11));
        assert_eq!(st.holes(1, 12), vec![(1, 4), (11, 12)]);
        st.insert(1, 4); // reaches the mark: folded in
        assert_eq!((st.contiguous, st.above.len()), (10, 0));
    }
}
