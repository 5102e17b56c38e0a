//! Contacts mode's peer lists (`presence.fan_out = "contacts"`): whom a
//! user's presence changes go to besides its watchers — the peers of its
//! direct conversations.
//!
//! A list is read from the store (the user's conversation list, on every
//! shard) at most once per `presence.peer_cache_ms` per user and node, and
//! kept in a bounded cache (`generations.rs`, `presence.peer_cache`
//! users), so a reconnect storm or a device that flaps reads it once
//! instead of per change. A conversation started meanwhile drops both
//! parties' lists on the nodes that see its first message (the sender's
//! node when it is accepted, each receiving device's node when it is
//! pushed: `conversation_started`), so a change that follows it is told to
//! the new peer; elsewhere it reaches the list when the list expires.
//! Presence is best effort (ARCHITECTURE.md), and a client showing a
//! peer's presence watches it anyway (`presence_watch`).

use super::Presence;
use crate::error::Result;
use crate::services::generations::Generations;
use magpie_core::{ConvId, Seq, UserId};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Peers = Arc<[UserId]>;

pub(super) struct PeerLists {
    lists: Mutex<Generations<UserId, (Instant, Peers)>>,
    ttl: Duration,
}

impl PeerLists {
    /// `ttl` zero (or a `bound` of zero) caches nothing.
    pub(super) fn new(bound: usize, ttl: Duration) -> PeerLists {
        let ttl = if bound == 0 { Duration::ZERO } else { ttl };
        PeerLists {
            lists: Mutex::new(Generations::new(bound)),
            ttl,
        }
    }

    fn fresh(&self, user: UserId, now: Instant) -> Option<Peers> {
        let (at, peers) = self.lists.lock().get(user)?;
        (now.duration_since(at) < self.ttl).then_some(peers)
    }

    fn forget(&self, user: UserId) {
        self.lists.lock().remove(user);
    }

    fn put(&self, user: UserId, at: Instant, peers: Peers) {
        if !self.ttl.is_zero() {
            self.lists.lock().insert(user, (at, peers));
        }
    }
}

impl Presence {
    /// `conv` got message `seq`: if it is the first of a direct
    /// conversation, both parties have a new peer, so their cached lists
    /// on this node are dropped. One comparison for every other message.
    pub fn conversation_started(&self, conv: &ConvId, seq: Seq) {
        if seq != 1 {
            return;
        }
        if let Some((a, b)) = conv.direct_members() {
            self.peers.forget(a);
            self.peers.forget(b);
        }
    }

    /// The peers of `user`'s direct conversations (not `user`), from the
    /// cache while it is fresh.
    pub(super) async fn contacts(&self, user: UserId) -> Result<Peers> {
        let now = Instant::now();
        if let Some(peers) = self.peers.fresh(user, now) {
            return Ok(peers);
        }
        let mut peers: Vec<UserId> = self
            .store
            .messages()
            .conversations(user)
            .await?
            .into_iter()
            .map(|c| c.peer)
            .filter(|p| *p != user)
            .collect();
        peers.sort_unstable();
        peers.dedup();
        let peers: Peers = peers.into();
        self.peers.put(user, now, Arc::clone(&peers));
        Ok(peers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_serves_until_it_expires() {
        let p = PeerLists::new(10, Duration::from_secs(30));
        let t0 = Instant::now();
        p.put(UserId(1), t0, Arc::from(vec![UserId(2)]));
        assert!(p.fresh(UserId(1), t0 + Duration::from_secs(29)).is_some());
        assert!(p.fresh(UserId(1), t0 + Duration::from_secs(30)).is_none());
        assert!(p.fresh(UserId(2), t0).is_none());
    }

    #[test]
    fn zero_caches_nothing() {
        for p in [
            PeerLists::new(0, Duration::from_secs(30)),
            PeerLists::new(10, Duration::ZERO),
        ] {
            p.put(UserId(1), Instant::now(), Arc::from(vec![UserId(2)]));
            assert!(p.fresh(UserId(1), Instant::now()).is_none());
        }
    }
}
