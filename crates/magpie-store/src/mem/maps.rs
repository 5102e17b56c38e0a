//! The composite structures behind `MemState`: a TTL map (Redis keys with
//! `PX` expiry), the route records with their per-node index, and the
//! service registry.

use crate::state::{NodeInfo, Route};
use magpie_core::{DeviceId, UserId};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A map whose entries expire (Redis `SET … PX`), optionally capped: past
/// the cap the entries closest to expiry go first (Redis `maxmemory` with
/// `volatile-ttl`). Expiry is kept in deadline order, so removing what
/// expired costs only what expired.
pub(super) struct TtlMap<K, V> {
    /// std's SipHash: keys hold what clients chose (client message ids,
    /// account names in the guard's counters), so no faster hash whose
    /// collisions a client could aim for.
    entries: HashMap<K, (V, Instant)>,
    /// (deadline, insertion number) → key; a record whose entry has since
    /// been replaced or removed is skipped when it comes up.
    expiry: BTreeMap<(Instant, u64), K>,
    next: u64,
    cap: usize,
}

impl<K: Eq + Hash + Clone, V> TtlMap<K, V> {
    pub(super) fn new() -> Self {
        Self::with_cap(usize::MAX)
    }

    pub(super) fn with_cap(cap: usize) -> Self {
        TtlMap {
            entries: HashMap::new(),
            expiry: BTreeMap::new(),
            next: 0,
            cap,
        }
    }

    /// Drops expired entries, then the soonest-expiring ones over the cap.
    fn purge(&mut self, now: Instant) {
        while let Some(entry) = self.expiry.first_entry() {
            let (deadline, _) = *entry.key();
            if deadline > now && self.entries.len() <= self.cap {
                break;
            }
            let k = entry.remove();
            // One hash and probe for the check and the removal.
            if let Entry::Occupied(e) = self.entries.entry(k)
                && e.get().1 == deadline
            {
                e.remove();
            }
        }
    }

    /// Inserts; `only_if_absent` is `NX`: a live entry is kept.
    pub(super) fn put(&mut self, k: K, v: V, ttl_ms: u64, only_if_absent: bool) {
        self.put_many(std::iter::once((k, v)), ttl_ms, only_if_absent);
    }

    /// `put` of several entries under one reading of the clock and one
    /// purge (a batch of accepted messages is one call).
    pub(super) fn put_many(
        &mut self,
        items: impl IntoIterator<Item = (K, V)>,
        ttl_ms: u64,
        only_if_absent: bool,
    ) {
        let now = Instant::now();
        let until = now + Duration::from_millis(ttl_ms);
        for (k, v) in items {
            // One hash and probe for the `NX` check and the insert.
            match self.entries.entry(k) {
                Entry::Occupied(e) if only_if_absent && e.get().1 > now => continue,
                Entry::Occupied(mut e) => {
                    self.expiry.insert((until, self.next), e.key().clone());
                    e.insert((v, until));
                }
                Entry::Vacant(e) => {
                    self.expiry.insert((until, self.next), e.key().clone());
                    e.insert((v, until));
                }
            }
            self.next += 1;
        }
        self.purge(now);
    }

    pub(super) fn get(&self, k: &K) -> Option<&V> {
        let (v, until) = self.entries.get(k)?;
        (*until > Instant::now()).then_some(v)
    }

    /// The live entry, to change in place (its deadline unchanged).
    pub(super) fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let now = Instant::now();
        match self.entries.get_mut(k) {
            Some((v, until)) if *until > now => Some(v),
            _ => None,
        }
    }

    /// DEL: removes the entry, live or not.
    pub(super) fn remove(&mut self, k: &K) {
        self.entries.remove(k);
    }

    /// GETDEL: removes the entry either way, returns it only if still live.
    pub(super) fn take(&mut self, k: &K) -> Option<V> {
        let (v, until) = self.entries.remove(k)?;
        (until > Instant::now()).then_some(v)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Route records per user device plus the per-node index (`HSET node:…`).
#[derive(Default)]
pub(super) struct Routes {
    pub(super) by_user: HashMap<UserId, HashMap<DeviceId, Route>>,
    pub(super) by_node: HashMap<String, HashSet<(UserId, DeviceId)>>,
}

impl Routes {
    pub(super) fn unindex(&mut self, node: &str, user: UserId, device: &DeviceId) {
        if let Some(set) = self.by_node.get_mut(node) {
            set.remove(&(user, device.clone()));
            if set.is_empty() {
                self.by_node.remove(node);
            }
        }
    }
}

/// The service registry: heartbeat records with a TTL (`SET nodeinfo:… PX`)
/// and the set of known nodes (`SADD nodes`), under one lock so a heartbeat
/// writes both atomically.
pub(super) struct Registry {
    pub(super) records: TtlMap<String, NodeInfo>,
    pub(super) known: BTreeSet<String>,
}

impl Registry {
    pub(super) fn new() -> Self {
        Registry {
            records: TtlMap::new(),
            known: BTreeSet::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nx_keeps_a_live_entry_but_not_an_expired_one() {
        let mut m = TtlMap::new();
        m.put("k", 1, 60_000, true);
        m.put("k", 2, 60_000, true);
        assert_eq!(m.get(&"k"), Some(&1));
        m.put("gone", 1, 0, true);
        assert_eq!(m.get(&"gone"), None, "a zero TTL is already expired");
        m.put("gone", 2, 60_000, true);
        assert_eq!(m.get(&"gone"), Some(&2));
    }

    #[test]
    fn take_removes_even_expired_entries() {
        let mut m = TtlMap::new();
        m.put("dead", 1, 60_000, false);
        m.entries.get_mut(&"dead").expect("entry").1 = Instant::now();
        assert_eq!(m.take(&"dead"), None);
        assert!(m.entries.is_empty());
    }

    #[test]
    fn expired_entries_are_dropped_as_time_passes() {
        let mut m = TtlMap::new();
        for i in 0..100u64 {
            m.put(i, (), 0, false);
        }
        m.put(u64::MAX, (), 60_000, false);
        assert_eq!(m.len(), 1, "only the live entry is kept");
        assert_eq!(m.expiry.len(), 1, "and only its expiry record");
    }

    #[test]
    fn the_cap_drops_the_soonest_to_expire() {
        let mut m = TtlMap::with_cap(3);
        for i in 0..10u64 {
            m.put(i, i, 60_000 + i, true);
        }
        assert_eq!(m.len(), 3);
        assert_eq!(
            (m.get(&9), m.get(&7), m.get(&6)),
            (Some(&9), Some(&7), None)
        );
        m.remove(&9);
        m.put(10, 10, 60_000, true);
        assert_eq!(m.len(), 3, "a removed entry's stale record is skipped");
    }

    #[test]
    fn unindex_forgets_empty_nodes() {
        let mut r = Routes::default();
        let phone = DeviceId::new("phone").expect("device");
        r.by_node
            .entry("n".into())
            .or_default()
            .insert((UserId(1), phone.clone()));
        r.unindex("n", UserId(1), &phone);
        assert!(r.by_node.is_empty());
    }
}
