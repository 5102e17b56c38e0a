//! Whether a user exists, with a cache: users are never deleted, so a hit
//! needs no store round trip on the send path.
//!
//! The cache is bounded (`limits.known_users`): two generations of ids, the
//! current one filling up to half the bound, then becoming the previous
//! one (the one before it forgotten). A hit in the previous generation is
//! carried into the current one, so ids in use stay and the memory is at
//! most the bound, whatever the number of users ever seen.

use crate::error::Result;
use magpie_core::UserId;
use magpie_store::Store;
use parking_lot::Mutex;
use std::collections::HashSet;

pub struct Users {
    store: Store,
    known: Mutex<Generations>,
}

struct Generations {
    current: HashSet<UserId>,
    previous: HashSet<UserId>,
    /// Ids per generation: half the bound, at least 1.
    per_generation: usize,
}

impl Generations {
    fn contains(&mut self, user: UserId) -> bool {
        if self.current.contains(&user) {
            return true;
        }
        if self.previous.remove(&user) {
            self.insert(user);
            return true;
        }
        false
    }

    fn insert(&mut self, user: UserId) {
        if self.current.len() >= self.per_generation {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(user);
    }

    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

impl Users {
    /// A cache of at most `bound` user ids.
    pub fn new(store: Store, bound: usize) -> Users {
        Users {
            store,
            known: Mutex::new(Generations {
                current: HashSet::new(),
                previous: HashSet::new(),
                per_generation: (bound / 2).max(1),
            }),
        }
    }

    /// Whether a user exists (the system user always does).
    pub async fn exists(&self, user: UserId) -> Result<bool> {
        if user == UserId::SYSTEM || self.known.lock().contains(user) {
            return Ok(true);
        }
        let found = self.store.accounts().user_by_id(user).await?.is_some();
        if found {
            self.known.lock().insert(user);
        }
        Ok(found)
    }

    /// Ids cached now (at most the bound).
    pub fn cached(&self) -> usize {
        self.known.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_stays_within_its_bound_and_keeps_ids_in_use() {
        let mut g = Generations {
            current: HashSet::new(),
            previous: HashSet::new(),
            per_generation: 5,
        };
        g.insert(UserId(0));
        for i in 1..100 {
            g.insert(UserId(i));
            // Id 0 is used all the time: it is never dropped.
            assert!(g.contains(UserId(0)), "after {i}");
            assert!(g.len() <= 10, "{} cached", g.len());
        }
        assert!(!g.contains(UserId(1)), "an id unused for long is forgotten");
        assert!(g.contains(UserId(99)));
    }
}
