//! Presence watches in process: per watched user, each watching
//! connection's entry and when it expires (Redis keeps the same in a
//! sorted set scored by expiry: `redis_state/watches.rs`).

use crate::state::Watcher;
use magpie_core::UserId;
use std::collections::HashMap;

#[derive(Default)]
pub(super) struct Watches(HashMap<UserId, HashMap<Watcher, i64>>);

impl Watches {
    pub fn watch(&mut self, w: &Watcher, add: &[UserId], remove: &[UserId], until: i64) {
        for u in add {
            self.0.entry(*u).or_default().insert(w.clone(), until);
        }
        for u in remove {
            if let Some(set) = self.0.get_mut(u) {
                set.remove(w);
                if set.is_empty() {
                    self.0.remove(u);
                }
            }
        }
    }

    /// `user`'s watchers at `now`, dropping the expired ones.
    pub fn watchers(&mut self, user: UserId, now: i64) -> Vec<Watcher> {
        let Some(set) = self.0.get_mut(&user) else {
            return Vec::new();
        };
        set.retain(|_, until| *until > now);
        let out = set.keys().cloned().collect();
        if set.is_empty() {
            self.0.remove(&user);
        }
        out
    }
}
