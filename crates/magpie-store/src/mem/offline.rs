//! The offline index in process, segmented like the Redis one
//! (`redis_state/offline.rs`): per queue a map of time buckets, each a
//! capped set of (seq, payload) with its own deadline. Expired segments
//! are dropped when their queue is touched, and abandoned queues by a
//! sweep once the number of queues doubled since the last one, so memory
//! follows the live buckets, not the traffic.

use crate::offline::{Bucket, OfflineOptions, Segment, merge_after, merge_newest, order_segments};
use magpie_core::{ConvId, Seq, UserId};
use std::collections::{BTreeMap, HashMap, HashSet};

type Entries = BTreeMap<Seq, String>;

/// One segment: its deadline (epoch ms) and its entries by seq.
struct Seg {
    expires_at: i64,
    entries: Entries,
}

/// One receiver's queue of one conversation. **Invariant:** a seq is in at
/// most one segment, and no segment kept is empty.
#[derive(Default)]
struct Queue {
    segs: HashMap<Bucket, Seg>,
}

impl Queue {
    /// Drops expired segments (a Redis key past its PEXPIREAT).
    fn prune(&mut self, now: i64) {
        self.segs.retain(|_, s| s.expires_at > now);
    }
}

#[derive(Default)]
pub(super) struct Offline {
    queues: HashMap<(UserId, ConvId), Queue>,
    /// Queues there were after the last sweep.
    swept: usize,
}

impl Offline {
    pub(super) fn add(
        &mut self,
        items: &[(UserId, ConvId, Seq, String)],
        opts: &OfflineOptions,
        now: i64,
    ) {
        self.sweep(now);
        let mut touched: HashSet<(UserId, ConvId, Bucket)> = HashSet::new();
        for (user, conv, seq, payload) in items {
            let Some((bucket, expires_at)) = opts.place(payload, now) else {
                continue;
            };
            let q = self.queues.entry((*user, conv.clone())).or_default();
            q.prune(now);
            // A seq moving to another bucket leaves its old one.
            for s in q.segs.values_mut() {
                s.entries.remove(seq);
            }
            let seg = q.segs.entry(bucket).or_insert_with(|| Seg {
                expires_at,
                entries: Entries::new(),
            });
            seg.expires_at = expires_at;
            seg.entries.insert(*seq, payload.clone());
            touched.insert((*user, conv.clone(), bucket));
        }
        // The cap after the batch, per segment written (as the Redis script
        // does): the newest `cap` of each stay.
        for (user, conv, bucket) in touched {
            if let Some(q) = self.queues.get_mut(&(user, conv)) {
                if let Some(seg) = q.segs.get_mut(&bucket) {
                    while seg.entries.len() > opts.cap {
                        seg.entries.pop_first();
                    }
                }
                q.segs.retain(|_, s| !s.entries.is_empty());
            }
        }
    }

    /// Every live segment's first `n` entries by `pick`, gathered.
    fn gather(
        &self,
        key: &(UserId, ConvId),
        now: i64,
        pick: impl Fn(&Entries) -> Vec<(Seq, String)>,
    ) -> Vec<(Seq, String)> {
        let Some(q) = self.queues.get(key) else {
            return Vec::new();
        };
        q.segs
            .values()
            .filter(|s| s.expires_at > now)
            .flat_map(|s| pick(&s.entries))
            .collect()
    }

    pub(super) fn newest(&self, key: &(UserId, ConvId), n: usize, now: i64) -> Vec<(Seq, String)> {
        let all = self.gather(key, now, |e| {
            e.iter()
                .rev()
                .take(n)
                .map(|(s, p)| (*s, p.clone()))
                .collect()
        });
        merge_newest(all, n)
    }

    pub(super) fn after(
        &self,
        key: &(UserId, ConvId),
        after: Seq,
        n: usize,
        now: i64,
    ) -> Vec<(Seq, String)> {
        let from = after.saturating_add(1);
        let all = self.gather(key, now, |e| {
            e.range(from..)
                .take(n)
                .map(|(s, p)| (*s, p.clone()))
                .collect()
        });
        merge_after(all, n)
    }

    /// Applies `cut` to every live segment of a queue (returning what it
    /// removed), then drops emptied segments and an emptied queue.
    fn cut(
        &mut self,
        key: (UserId, ConvId),
        now: i64,
        cut: impl Fn(&mut Entries) -> usize,
    ) -> usize {
        let Some(q) = self.queues.get_mut(&key) else {
            return 0;
        };
        q.prune(now);
        let removed = q.segs.values_mut().map(|s| cut(&mut s.entries)).sum();
        q.segs.retain(|_, s| !s.entries.is_empty());
        if q.segs.is_empty() {
            self.queues.remove(&key);
        }
        removed
    }

    pub(super) fn trim(&mut self, key: (UserId, ConvId), up_to: Seq, now: i64) -> usize {
        self.cut(key, now, |e| {
            // split_off keeps seq > up_to; what remains in `e` goes.
            let kept = e.split_off(&up_to.saturating_add(1));
            std::mem::replace(e, kept).len()
        })
    }

    pub(super) fn remove(&mut self, key: (UserId, ConvId), seqs: &[Seq], now: i64) {
        self.cut(key, now, |e| {
            seqs.iter().filter(|s| e.remove(s).is_some()).count()
        });
    }

    pub(super) fn segments(&self, key: &(UserId, ConvId), now: i64) -> Vec<Segment> {
        let Some(q) = self.queues.get(key) else {
            return Vec::new();
        };
        let segs = q.segs.iter().filter(|(_, s)| s.expires_at > now);
        order_segments(
            segs.map(|(b, s)| Segment {
                bucket: Some(*b),
                expires_at: Some(s.expires_at),
                len: s.entries.len(),
            })
            .collect(),
        )
    }

    /// Drops expired segments everywhere once the number of queues doubled
    /// since the last sweep: amortised O(1) per add, and abandoned queues
    /// (receivers who never read) cannot pile up.
    fn sweep(&mut self, now: i64) {
        if self.queues.len() < (2 * self.swept).max(1024) {
            return;
        }
        self.queues.retain(|_, q| {
            q.prune(now);
            !q.segs.is_empty()
        });
        self.swept = self.queues.len();
    }
}
