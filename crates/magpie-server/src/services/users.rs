//! Whether a user exists, with a cache: users are never deleted, so a hit
//! needs no store round trip on the send path.
//!
//! The cache is bounded (`limits.known_users`, `generations.rs`): ids in
//! use stay, and the memory is at most the bound whatever the number of
//! users ever seen.
//!
//! Ids found missing are remembered for [`MISSING_FOR`] (negative
//! caching, docs/edge.md): a client probing ids that do not exist costs
//! one store read per id and window, not one per request. A user created
//! on this node is forgotten as missing at once; one created on another
//! node may be answered `unknown_recipient` here for up to that window
//! by someone who guessed its id before it existed.

use super::generations::Generations;
use crate::error::Result;
use magpie_core::UserId;
use magpie_store::Store;
use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// How long an id found missing is answered from memory.
const MISSING_FOR: Duration = Duration::from_secs(10);
/// Missing ids remembered at most.
const MISSING_KEPT: usize = 10_000;

pub struct Users {
    store: Store,
    known: Mutex<Generations<UserId, ()>>,
    missing: Mutex<Generations<UserId, Instant>>,
}

impl Users {
    /// A cache of at most `bound` user ids.
    pub fn new(store: Store, bound: usize) -> Users {
        Users {
            store,
            known: Mutex::new(Generations::new(bound)),
            missing: Mutex::new(Generations::new(MISSING_KEPT)),
        }
    }

    /// Whether a user exists (the system user always does).
    pub async fn exists(&self, user: UserId) -> Result<bool> {
        if user == UserId::SYSTEM || self.known.lock().get(user).is_some() {
            return Ok(true);
        }
        if self
            .missing
            .lock()
            .get(user)
            .is_some_and(|until| until > Instant::now())
        {
            return Ok(false);
        }
        let found = self.store.accounts().user_by_id(user).await?.is_some();
        if found {
            self.known.lock().insert(user, ());
        } else {
            self.missing
                .lock()
                .insert(user, Instant::now() + MISSING_FOR);
        }
        Ok(found)
    }

    /// A user was just created here: it exists from now on.
    pub fn created(&self, user: UserId) {
        self.missing.lock().remove(user);
        self.known.lock().insert(user, ());
    }

    /// Ids cached now (at most the bound).
    pub fn cached(&self) -> usize {
        self.known.lock().len()
    }
}
