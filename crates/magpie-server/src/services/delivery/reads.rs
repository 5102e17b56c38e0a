//! Group reads on their way to receipts (docs/protocol.md §3.14,
//! "Receipts"): the ranges read per group, gathered here between flushes,
//! and the one node that flushes each group.
//!
//! Every node handles reads, but a group's receipts are computed and sent
//! by one owner, chosen by rendezvous hashing of the group over the live
//! nodes (every node computes the same owner from the registry, and a
//! node's arrival or loss moves only its share of groups). The other nodes
//! forward their ranges to the owner over the relay once a flush
//! (`DeliverPayload::GroupReads`): one count per group and second
//! cluster-wide instead of one per node that saw a read. Best effort, like
//! receipts: a range lost on the relay is covered by the next read.

use super::Delivery;
use magpie_core::{BusEvent, DeliverPayload, EventId, GroupId, Seq, stable_hash};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};

/// Per group, the range of sequences newly read since the last flush.
pub type Ranges = HashMap<GroupId, (Seq, Seq)>;

/// Per owner node, the ranges of its groups to forward to it.
pub type Forwards = BTreeMap<String, Vec<(GroupId, Seq, Seq)>>;

#[derive(Default)]
pub struct PendingReads {
    pending: Mutex<Ranges>,
}

impl PendingReads {
    /// Some member's read position moved from `old` to `new`.
    pub fn note(&self, g: GroupId, old: Seq, new: Seq) {
        if new > old {
            merge(&mut self.pending.lock(), g, old, new);
        }
    }

    /// Ranges another node forwarded: this node owns their groups.
    pub fn merge_all(&self, ranges: &[(GroupId, Seq, Seq)]) {
        let mut p = self.pending.lock();
        for &(g, lo, hi) in ranges {
            merge(&mut p, g, lo, hi);
        }
    }

    pub fn take(&self) -> Ranges {
        std::mem::take(&mut *self.pending.lock())
    }
}

fn merge(p: &mut Ranges, g: GroupId, lo: Seq, hi: Seq) {
    let e = p.entry(g).or_insert((lo, hi));
    e.0 = e.0.min(lo);
    e.1 = e.1.max(hi);
}

/// The node that owns group `g`'s receipts among `nodes`: the highest
/// hash of (group, node). `None` without nodes.
pub fn owner_of(g: GroupId, nodes: &[String]) -> Option<&str> {
    let score = |n: &String| stable_hash(format!("{}/{n}", g.0).as_bytes());
    nodes.iter().max_by_key(|n| score(n)).map(String::as_str)
}

/// `ranges` split into this node's (`me`) and, per other owner, theirs.
pub fn split_by_owner(ranges: Ranges, nodes: &[String], me: &str) -> (Ranges, Forwards) {
    let mut mine = Ranges::new();
    let mut theirs = Forwards::new();
    for (g, (lo, hi)) in ranges {
        match owner_of(g, nodes) {
            Some(owner) if owner != me => theirs
                .entry(owner.to_string())
                .or_default()
                .push((g, lo, hi)),
            _ => {
                mine.insert(g, (lo, hi));
            }
        }
    }
    (mine, theirs)
}

impl Delivery {
    /// Where this node's group reads wait for their flush.
    pub fn reads(&self) -> &PendingReads {
        &self.reads
    }

    /// Sends each owner the ranges of its groups (one relay message per
    /// owner).
    pub fn forward_reads(&self, theirs: Forwards) {
        let events = theirs.into_iter().map(|(node, ranges)| {
            let id = EventId::DeliverOther {
                node: node.clone(),
                nonce: self.ids.next().0 as u64,
            };
            let payload = DeliverPayload::GroupReads { ranges };
            let ev = BusEvent::Deliver {
                node,
                targets: Vec::new(),
                payload,
            };
            (ev, id)
        });
        self.relay_events(events.collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_owner_per_group_and_a_lost_node_moves_only_its_groups() {
        let three: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let two: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let mut owned = HashMap::new();
        for g in 0..300 {
            let g = GroupId(g);
            let o3 = owner_of(g, &three).unwrap();
            *owned.entry(o3).or_insert(0) += 1;
            if o3 != "c" {
                assert_eq!(owner_of(g, &two), Some(o3), "{g:?} moved");
            }
        }
        assert_eq!(owned.len(), 3, "every node owns some groups");
        let ranges: Ranges = (0..30).map(|g| (GroupId(g), (1, 2))).collect();
        let (mine, theirs) = split_by_owner(ranges.clone(), &three, "a");
        let forwarded: usize = theirs.values().map(Vec::len).sum();
        assert_eq!(mine.len() + forwarded, 30);
        assert!(!theirs.contains_key("a"));
        assert!(mine.keys().all(|g| owner_of(*g, &three) == Some("a")));
        // Alone (or no registry): everything is this node's.
        let (mine, theirs) = split_by_owner(ranges, &[], "a");
        assert_eq!((mine.len(), theirs.len()), (30, 0));
    }

    #[test]
    fn ranges_widen() {
        let p = PendingReads::default();
        p.note(GroupId(1), 3, 5);
        p.note(GroupId(1), 1, 2);
        p.note(GroupId(1), 4, 4);
        p.merge_all(&[(GroupId(1), 5, 9), (GroupId(2), 0, 1)]);
        let got = p.take();
        assert_eq!(got[&GroupId(1)], (1, 9));
        assert_eq!(got[&GroupId(2)], (0, 1));
        assert!(p.take().is_empty());
    }
}
