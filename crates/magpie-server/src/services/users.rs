//! Whether a user exists, with a cache: users are never deleted, so a hit
//! needs no store round trip on the send path; and who a user is, by id or
//! by exact username (docs/protocol.md §3.18).
//!
//! The cache is bounded (`limits.known_users`, `generations.rs`): ids in
//! use stay, and the memory is at most the bound whatever the number of
//! users ever seen.
//!
//! Ids found missing are remembered a few seconds (`missing.rs`).

use super::generations::Generations;
use super::missing::Missing;
use crate::error::{Result, ServerError};
use magpie_core::{UserId, UserProfile};
use magpie_store::Store;
use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// How long a node shows a name it read before reading it again: a
/// renamed user is seen by their new name within this.
const NAME_TTL: Duration = Duration::from_secs(60);

/// Who an account is, before its profile is read.
pub(super) fn bare(record: magpie_store::UserRecord) -> UserProfile {
    UserProfile {
        id: record.id,
        username: record.username,
        display_name: None,
        avatar_url: None,
    }
}

pub struct Users {
    pub(super) store: Store,
    known: Mutex<Generations<UserId, ()>>,
    missing: Missing<UserId>,
    /// Names shown in frames (`shown_name`), with when they were read.
    pub(super) names: Mutex<Generations<UserId, (std::sync::Arc<str>, Instant)>>,
}

impl Users {
    /// A cache of at most `bound` user ids.
    pub fn new(store: Store, bound: usize) -> Users {
        Users {
            store,
            known: Mutex::new(Generations::new(bound)),
            missing: Missing::new(),
            names: Mutex::new(Generations::new(bound)),
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

    /// The user named exactly `name`; `not_found` otherwise. Usernames
    /// are looked up whole, never listed or matched by prefix: finding
    /// users costs a request each, rate-limited per user, and misses feed
    /// the guard's `lookups` rule (docs/edge.md).
    pub async fn by_name(&self, name: &str) -> Result<UserProfile> {
        let record = self.store.accounts().user_by_name(name).await?;
        let record = record.ok_or_else(|| ServerError::NotFound(format!("no user {name:?}")))?;
        self.known.lock().insert(record.id, ());
        self.with_profile(bare(record)).await
    }

    /// The user with id `user`; `not_found` otherwise.
    pub async fn by_id(&self, user: UserId) -> Result<UserProfile> {
        let not_found = || ServerError::NotFound(format!("no user {user}"));
        if user == UserId::SYSTEM || self.missing.is_missing(user) {
            return Err(not_found());
        }
        match self.store.accounts().user_by_id(user).await? {
            Some(record) => self.with_profile(bare(record)).await,
            None => {
                self.missing.mark(user);
                Err(not_found())
            }
        }
    }

    /// What frames show for `user` (docs/protocol.md §3.18): the display
    /// name, else the username; read at most once per `NAME_TTL` on a node.
    pub async fn shown_name(&self, user: UserId) -> Result<String> {
        if let Some((name, at)) = self.names.lock().get(user)
            && at.elapsed() < NAME_TTL
        {
            return Ok(name.to_string());
        }
        let p = self.by_id(user).await?;
        let name = p.display_name.unwrap_or(p.username);
        self.names
            .lock()
            .insert(user, (name.as_str().into(), Instant::now()));
        Ok(name)
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
