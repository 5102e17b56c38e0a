//! Whether a user exists, with a cache: users are never deleted, so a hit
//! needs no store round trip on the send path.

use crate::error::Result;
use magpie_core::UserId;
use magpie_store::Store;
use parking_lot::Mutex;
use std::collections::HashSet;

pub struct Users {
    store: Store,
    known: Mutex<HashSet<UserId>>,
}

impl Users {
    pub fn new(store: Store) -> Users {
        Users {
            store,
            known: Mutex::new(HashSet::new()),
        }
    }

    /// Whether a user exists (the system user always does).
    pub async fn exists(&self, user: UserId) -> Result<bool> {
        if user == UserId::SYSTEM || self.known.lock().contains(&user) {
            return Ok(true);
        }
        let found = self.store.accounts().user_by_id(user).await?.is_some();
        if found {
            self.known.lock().insert(user);
        }
        Ok(found)
    }
}
