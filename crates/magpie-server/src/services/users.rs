//! Whether a user exists, with a cache: users are never deleted, so a hit
//! needs no store round trip on the send path.
//!
//! The cache is bounded (`limits.known_users`, `generations.rs`): ids in
//! use stay, and the memory is at most the bound whatever the number of
//! users ever seen.
//!
//! Ids found missing are remembered a few seconds (`missing.rs`).

use super::generations::Generations;
use super::missing::Missing;
use crate::error::Result;
use magpie_core::UserId;
use magpie_store::Store;
use parking_lot::Mutex;

pub struct Users {
    store: Store,
    known: Mutex<Generations<UserId, ()>>,
    missing: Missing<UserId>,
}

impl Users {
    /// A cache of at most `bound` user ids.
    pub fn new(store: Store, bound: usize) -> Users {
        Users {
            store,
            known: Mutex::new(Generations::new(bound)),
            missing: Missing::new(),
        }
    }

    /// Whether a user exists (the system user always does).
    pub async fn exists(&self, user: UserId) -> Result<bool> {
        if user == UserId::SYSTEM || self.known.lock().get(user).is_some() {
            return Ok(true);
        }
        if self.missing.is_missing(user) {
            return Ok(false);
        }
        let found = self.store.accounts().user_by_id(user).await?.is_some();
        if found {
            self.known.lock().insert(user, ());
        } else {
            self.missing.mark(user);
        }
        Ok(found)
    }

    /// A user was just created here: it exists from now on.
    pub fn created(&self, user: UserId) {
        self.missing.found(user);
        self.known.lock().insert(user, ());
    }

    /// Ids cached now (at most the bound).
    pub fn cached(&self) -> usize {
        self.known.lock().len()
    }
}
