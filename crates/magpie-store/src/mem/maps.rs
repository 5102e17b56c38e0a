//! The composite structures behind `MemState`: a TTL map (Redis keys with
//! `PX` expiry), the route records with their per-node index, and the
//! service registry.

use crate::state::{NodeInfo, Route};
use magpie_core::{DeviceId, UserId};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Sweep a TTL map for expired entries once every this many writes.
const SWEEP_EVERY: u64 = 1024;

/// A map whose entries expire (Redis `SET … PX`).
pub(super) struct TtlMap<K, V> {
    entries: HashMap<K, (V, Instant)>,
    writes: u64,
}

impl<K: Eq + Hash, V> TtlMap<K, V> {
    pub(super) fn new() -> Self {
        TtlMap {
            entries: HashMap::new(),
            writes: 0,
        }
    }

    fn is_live(&self, k: &K, now: Instant) -> bool {
        self.entries.get(k).is_some_and(|(_, until)| *until > now)
    }

    /// Inserts; `only_if_absent` is `NX`: a live entry is kept.
    pub(super) fn put(&mut self, k: K, v: V, ttl_ms: u64, only_if_absent: bool) {
        let now = Instant::now();
        self.writes += 1;
        if self.writes >= SWEEP_EVERY {
            self.writes = 0;
            self.entries.retain(|_, (_, until)| *until > now);
        }
        if only_if_absent && self.is_live(&k, now) {
            return;
        }
        self.entries
            .insert(k, (v, now + Duration::from_millis(ttl_ms)));
    }

    pub(super) fn get(&self, k: &K) -> Option<&V> {
        let (v, until) = self.entries.get(k)?;
        (*until > Instant::now()).then_some(v)
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
        m.put("dead", 1, 0, false);
        assert_eq!(m.take(&"dead"), None);
        assert!(m.entries.is_empty());
    }

    #[test]
    fn sweep_drops_expired_entries() {
        let mut m = TtlMap::new();
        for i in 0..SWEEP_EVERY - 1 {
            m.put(i, (), 0, false);
        }
        m.put(u64::MAX, (), 60_000, false);
        assert_eq!(m.entries.len(), 1, "only the live entry survives the sweep");
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
