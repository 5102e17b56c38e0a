//! The node's bounded buffer of hops: sharded by conversation so hops of
//! different conversations (recorded from different threads) rarely meet
//! on one lock, each shard a ring that forgets its oldest hop when full.
//!
//! Invariant: memory is bounded by `trace.buffer` hops, whatever the
//! traffic; a query scans every shard (queries are rare, hops are not).

use super::{Hop, HopKind};
use parking_lot::Mutex;
use std::collections::VecDeque;

const SHARDS: usize = 16;

pub struct Ring {
    shards: Vec<Mutex<VecDeque<Hop>>>,
    per_shard: usize,
}

/// What a query asks for: the hops of message `id`, and, once its
/// conversation and sequence are known, the reads that cover it.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    pub id: i64,
    pub conv: Option<u64>,
    pub seq: i64,
}

impl Ring {
    pub fn new(capacity: usize) -> Ring {
        let per_shard = capacity.div_ceil(SHARDS);
        Ring {
            shards: (0..SHARDS).map(|_| Mutex::new(VecDeque::new())).collect(),
            per_shard,
        }
    }

    pub fn enabled(&self) -> bool {
        self.per_shard > 0
    }

    pub fn push(&self, hop: Hop) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shards[shard_of(&hop)].lock();
        self.append(&mut shard, hop);
    }

    /// The hops of a batch, each shard locked once: a shard's lock (and its
    /// ring's ends) is a cache line every recording thread pulls to its
    /// core, so a batch pays for it per shard rather than per hop.
    pub fn push_all(&self, mut hops: Vec<Hop>) {
        if self.per_shard == 0 || hops.is_empty() {
            return;
        }
        hops.sort_by_key(shard_of);
        let mut hops = hops.into_iter().peekable();
        while let Some(first) = hops.next() {
            let i = shard_of(&first);
            let mut shard = self.shards[i].lock();
            self.append(&mut shard, first);
            while let Some(hop) = hops.next_if(|h| shard_of(h) == i) {
                self.append(&mut shard, hop);
            }
        }
    }

    fn append(&self, shard: &mut VecDeque<Hop>, hop: Hop) {
        if shard.len() >= self.per_shard {
            shard.pop_front();
        } else if shard.len() == shard.capacity() {
            // Doubling, but never past the bound: a full shard holds
            // `per_shard` hops, not the next power of two (a third more).
            let grown = (shard.capacity() * 2).max(64).min(self.per_shard);
            shard.reserve_exact(grown - shard.len());
        }
        shard.push_back(hop);
    }

    /// The matching hops, oldest first, at most `limit`.
    pub fn find(&self, w: Wanted, limit: usize) -> Vec<Hop> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock();
            out.extend(shard.iter().filter(|h| matches(h, w)).cloned());
        }
        out.sort_by_key(|h| h.at_us);
        out.truncate(limit);
        out
    }
}

fn shard_of(hop: &Hop) -> usize {
    (hop.conv % SHARDS as u64) as usize
}

fn matches(h: &Hop, w: Wanted) -> bool {
    if h.server_id == w.id && w.id != 0 {
        return true;
    }
    if w.seq <= 0 || w.conv != Some(h.conv) {
        return false;
    }
    match h.kind {
        // A read names no message: it covers every sequence up to its own.
        HopKind::Read => h.seq >= w.seq,
        // A removal names its conversation and sequence (the store's
        // retention answers no server id).
        HopKind::Removed => h.seq == w.seq,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(kind: HopKind, id: i64, conv: u64, seq: i64, at_us: i64) -> Hop {
        let mut h = Hop::default();
        (h.kind, h.at_us, h.server_id, h.conv, h.seq) = (kind, at_us, id, conv, seq);
        h
    }

    #[test]
    fn a_full_shard_forgets_its_oldest_and_memory_stays_bounded() {
        let r = Ring::new(32);
        for i in 0..1_000 {
            r.push(hop(HopKind::Accepted, i, 7, i, i));
        }
        let all = r.find(
            Wanted {
                id: 999,
                conv: None,
                seq: 0,
            },
            10,
        );
        assert_eq!(all.len(), 1);
        let gone = r.find(
            Wanted {
                id: 3,
                conv: None,
                seq: 0,
            },
            10,
        );
        assert!(gone.is_empty(), "the oldest went first");
        let kept: usize = r.shards.iter().map(|s| s.lock().len()).sum();
        assert_eq!(kept, 2, "32 hops over 16 shards: 2 for this conversation");
    }

    #[test]
    fn reads_that_cover_the_sequence_and_its_removal_match_and_others_do_not() {
        let r = Ring::new(1_000);
        r.push(hop(HopKind::Pushed, 42, 9, 5, 2));
        r.push(hop(HopKind::Accepted, 42, 9, 0, 1));
        r.push(hop(HopKind::Read, 0, 9, 4, 3));
        r.push(hop(HopKind::Read, 0, 9, 6, 4));
        r.push(hop(HopKind::Read, 0, 8, 9, 5));
        r.push(hop(HopKind::Removed, 0, 9, 5, 6));
        r.push(hop(HopKind::Removed, 0, 9, 4, 7));
        let w = Wanted {
            id: 42,
            conv: Some(9),
            seq: 5,
        };
        let kinds: Vec<HopKind> = r.find(w, 10).iter().map(|h| h.kind).collect();
        assert_eq!(
            kinds,
            vec![
                HopKind::Accepted,
                HopKind::Pushed,
                HopKind::Read,
                HopKind::Removed
            ],
            "in time order; the read up to 4, the other conversation's and \
             the removal of 4 are not its"
        );
        assert!(!Ring::new(0).enabled());
    }

    #[test]
    fn a_full_shard_holds_its_bound_not_the_next_power_of_two() {
        let r = Ring::new(16 * 100);
        r.push_all(
            (0..1_000)
                .map(|i| hop(HopKind::Durable, i + 1, 7, i, i))
                .collect(),
        );
        let shard = r.shards[shard_of(&hop(HopKind::Durable, 1, 7, 0, 0))].lock();
        assert_eq!(shard.len(), 100);
        assert!(shard.capacity() < 128, "capacity {}", shard.capacity());
    }

    #[test]
    fn a_batch_lands_like_single_pushes_and_keeps_each_shard_bounded() {
        let r = Ring::new(32);
        let batch: Vec<Hop> = (0..100)
            .map(|i| hop(HopKind::Durable, i + 1, i as u64 % 3, i, i))
            .collect();
        r.push_all(batch);
        let kept: Vec<usize> = r.shards.iter().map(|s| s.lock().len()).collect();
        assert_eq!(
            kept.iter().sum::<usize>(),
            6,
            "2 per shard of 3 conversations"
        );
        let w = |id| Wanted {
            id,
            conv: None,
            seq: 0,
        };
        assert_eq!(
            r.find(w(100), 10).len(),
            1,
            "the newest of conversation 0 kept"
        );
        assert!(r.find(w(1), 10).is_empty(), "its oldest forgotten");
    }
}
