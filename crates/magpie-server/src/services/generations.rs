//! A bounded cache of two generations, for what a node keeps per key in
//! memory (known users, small groups' member lists): the current
//! generation fills up to half the bound, then becomes the previous one
//! and the one before it is forgotten. A hit in the previous generation is
//! carried into the current one, so keys in use stay, and the entries held
//! never exceed the bound whatever the number of keys ever seen — without
//! the per-access bookkeeping of an exact LRU.

use std::collections::HashMap;
use std::hash::Hash;

pub(crate) struct Generations<K, V> {
    current: HashMap<K, V>,
    previous: HashMap<K, V>,
    /// Entries per generation: half the bound, at least 1.
    per_generation: usize,
}

impl<K: Hash + Eq + Copy, V: Clone> Generations<K, V> {
    /// A cache of at most `bound` entries (at least 2).
    pub(crate) fn new(bound: usize) -> Self {
        Generations {
            current: HashMap::new(),
            previous: HashMap::new(),
            per_generation: (bound / 2).max(1),
        }
    }

    /// The value of `key`, kept in the current generation.
    pub(crate) fn get(&mut self, key: K) -> Option<V> {
        if let Some(v) = self.current.get(&key) {
            return Some(v.clone());
        }
        let v = self.previous.remove(&key)?;
        self.insert(key, v.clone());
        Some(v)
    }

    pub(crate) fn insert(&mut self, key: K, value: V) {
        if self.current.len() >= self.per_generation && !self.current.contains_key(&key) {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, value);
    }

    pub(crate) fn remove(&mut self, key: K) {
        self.current.remove(&key);
        self.previous.remove(&key);
    }

    pub(crate) fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_stays_within_its_bound_and_keeps_keys_in_use() {
        let mut g = Generations::new(10);
        g.insert(0, ());
        for i in 1..100 {
            g.insert(i, ());
            // Key 0 is used all the time: it is never dropped.
            assert!(g.get(0).is_some(), "after {i}");
            assert!(g.len() <= 10, "{} cached", g.len());
        }
        assert!(g.get(1).is_none(), "a key unused for long is forgotten");
        assert!(g.get(99).is_some());
    }

    #[test]
    fn a_value_is_replaced_in_place() {
        let mut g = Generations::new(4);
        g.insert(1, "a");
        g.insert(1, "b");
        assert_eq!(g.get(1), Some("b"));
        assert_eq!(g.len(), 1);
    }
}
