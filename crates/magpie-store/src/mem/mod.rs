//! `MemState`: the in-process [`StateBackend`], emulating the Redis layout of
//! `state.rs` for a single node (and for tests).
//!
//! Each Redis keyspace is its own map behind its own mutex; every trait
//! method takes one lock for a few map operations, which gives the same
//! per-command atomicity a Lua script gives in Redis. No lock is held across
//! an `.await` (the methods never await). Expiring entries carry a
//! `std::time::Instant` deadline checked on read, plus an occasional sweep so
//! abandoned keys do not accumulate.

use crate::error::Result;
use crate::offline::{OfflineOptions, Segment};
use crate::state::{
    BigAuthors, ChainAdvance, Floor, InboxPage, NodeInfo, Route, StateBackend, TicketClaims,
    UnreadCache, Watcher,
};
use async_trait::async_trait;
use magpie_core::{Accepted, ClientMsgId, ConvId, DeviceId, PostId, Seq, UserId, now_ms};
use maps::{Registry, Routes, TtlMap};
use parking_lot::Mutex;
use std::collections::HashMap;

mod guard;
mod inboxes;
mod maps;
mod offline;
mod subscribers;
mod watches;

/// Entries of the idempotency fast path kept at most (about 200 bytes
/// each): the newest sends; older retries are answered by the store.
const IDEM_CAP: usize = 50_000;
/// Unused connection tickets kept at most (they live 30 s anyway).
const TICKET_CAP: usize = 100_000;
/// Devices' ordering chains kept at most (about 150 bytes each); past it
/// the soonest-expiring go, which the send path sees as a lost chain.
const CHAIN_CAP: usize = 1_000_000;
/// Rooms' admission windows kept before stale ones are swept.
const ROOM_WINDOWS_KEPT: usize = 10_000;

pub struct MemState {
    routes: Mutex<Routes>,
    registry: Mutex<Registry>,
    leases: Mutex<TtlMap<String, String>>,
    /// Capped: the store's durable key answers what falls off.
    idem: Mutex<TtlMap<(UserId, ClientMsgId), Accepted>>,
    tickets: Mutex<TtlMap<String, TicketClaims>>,
    /// Per (user, device), the chain id expected next.
    chains: Mutex<TtlMap<(UserId, DeviceId), String>>,
    /// Segmented by time bucket, each segment capped and expiring.
    offline: Mutex<offline::Offline>,
    unread: Mutex<HashMap<UserId, UnreadCache>>,
    /// Per live room, its current admission window and count.
    rooms: Mutex<HashMap<String, (i64, u64)>>,
    guard: Mutex<guard::Guard>,
    watches: Mutex<watches::Watches>,
    /// Not expired: each is capped, and only readers of feeds have one.
    inboxes: Mutex<inboxes::Inboxes>,
    subscribers: Mutex<subscribers::Subscribers>,
}

impl MemState {
    pub fn new() -> Self {
        MemState {
            routes: Mutex::new(Routes::default()),
            registry: Mutex::new(Registry::new()),
            leases: Mutex::new(TtlMap::new()),
            idem: Mutex::new(TtlMap::with_cap(IDEM_CAP)),
            tickets: Mutex::new(TtlMap::with_cap(TICKET_CAP)),
            chains: Mutex::new(TtlMap::with_cap(CHAIN_CAP)),
            offline: Mutex::new(offline::Offline::default()),
            unread: Mutex::new(HashMap::new()),
            rooms: Mutex::new(HashMap::new()),
            guard: Mutex::new(guard::Guard::new()),
            watches: Mutex::new(watches::Watches::default()),
            inboxes: Mutex::new(inboxes::Inboxes::default()),
            subscribers: Mutex::new(subscribers::Subscribers::default()),
        }
    }
}

impl Default for MemState {
    fn default() -> Self {
        MemState::new()
    }
}

#[async_trait]
impl StateBackend for MemState {
    async fn add_route(&self, route: &Route) -> Result<Option<Route>> {
        let mut r = self.routes.lock();
        let old = r
            .by_user
            .entry(route.user)
            .or_default()
            .insert(route.device.clone(), route.clone());
        if let Some(old) = old.as_ref().filter(|o| o.node != route.node) {
            r.unindex(&old.node, old.user, &old.device);
        }
        r.by_node
            .entry(route.node.clone())
            .or_default()
            .insert((route.user, route.device.clone()));
        Ok(old)
    }

    async fn remove_route(
        &self,
        user: UserId,
        device: &DeviceId,
        node: &str,
        conn: u64,
    ) -> Result<bool> {
        let mut r = self.routes.lock();
        let Some(devices) = r.by_user.get_mut(&user) else {
            return Ok(false);
        };
        // A newer connection of the device replaced this one: leave it alone.
        if !devices
            .get(device)
            .is_some_and(|cur| cur.node == node && cur.conn == conn)
        {
            return Ok(false);
        }
        devices.remove(device);
        if devices.is_empty() {
            r.by_user.remove(&user);
        }
        r.unindex(node, user, device);
        Ok(true)
    }

    async fn routes(&self, users: &[UserId]) -> Result<HashMap<UserId, Vec<Route>>> {
        let r = self.routes.lock();
        Ok(users
            .iter()
            .filter_map(|u| {
                r.by_user
                    .get(u)
                    .map(|d| (*u, d.values().cloned().collect()))
            })
            .collect())
    }

    async fn restore_routes(&self, routes: &[Route]) -> Result<usize> {
        let mut r = self.routes.lock();
        let mut written = 0;
        for route in routes {
            let devices = r.by_user.entry(route.user).or_default();
            if devices.contains_key(&route.device) {
                continue;
            }
            devices.insert(route.device.clone(), route.clone());
            r.by_node
                .entry(route.node.clone())
                .or_default()
                .insert((route.user, route.device.clone()));
            written += 1;
        }
        Ok(written)
    }

    async fn node_routes(&self, node: &str) -> Result<Vec<Route>> {
        let r = self.routes.lock();
        let Some(keys) = r.by_node.get(node) else {
            return Ok(Vec::new());
        };
        Ok(keys
            .iter()
            .filter_map(|(u, d)| r.by_user.get(u)?.get(d).cloned())
            .collect())
    }

    async fn node_heartbeat(&self, info: &NodeInfo, ttl_ms: u64) -> Result<bool> {
        let mut reg = self.registry.lock();
        let was_there = reg.records.get(&info.node).is_some();
        reg.records
            .put(info.node.clone(), info.clone(), ttl_ms, false);
        reg.known.insert(info.node.clone());
        Ok(was_there)
    }

    async fn node_deregister(&self, node: &str) -> Result<()> {
        self.registry.lock().records.remove(&node.to_string());
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        // Like Redis (SMEMBERS, then MGET): live records of known nodes, in
        // the known set's name order.
        let reg = self.registry.lock();
        Ok(reg
            .known
            .iter()
            .filter_map(|n| reg.records.get(n).cloned())
            .collect())
    }

    async fn known_nodes(&self) -> Result<Vec<String>> {
        Ok(self.registry.lock().known.iter().cloned().collect())
    }

    async fn forget_node(&self, node: &str) -> Result<()> {
        self.registry.lock().known.remove(node);
        Ok(())
    }

    async fn lease(&self, name: &str, holder: &str, ttl_ms: u64) -> Result<bool> {
        let mut leases = self.leases.lock();
        let key = name.to_string();
        // Free (or expired), or already ours: (re)take it with a fresh TTL.
        if leases.get(&key).is_some_and(|cur| cur != holder) {
            return Ok(false);
        }
        leases.put(key, holder.to_string(), ttl_ms, false);
        Ok(true)
    }

    async fn room_admit(&self, room: &str, window: i64) -> Result<u64> {
        let mut rooms = self.rooms.lock();
        if rooms.len() >= ROOM_WINDOWS_KEPT && !rooms.contains_key(room) {
            // Forget rooms nobody sent to in this window or the last.
            rooms.retain(|_, (w, _)| *w >= window - 1);
        }
        let (w, n) = rooms.entry(room.to_string()).or_insert((window, 0));
        if *w != window {
            (*w, *n) = (window, 0);
        }
        *n += 1;
        Ok(*n)
    }

    async fn guard_hit(&self, key: &str, ttl_ms: u64) -> Result<u64> {
        Ok(self.guard.lock().hit(key, ttl_ms))
    }

    async fn guard_count(&self, key: &str) -> Result<u64> {
        Ok(self
            .guard
            .lock()
            .counters
            .get(&key.to_string())
            .copied()
            .unwrap_or(0))
    }

    async fn guard_reset(&self, key: &str) -> Result<()> {
        let mut g = self.guard.lock();
        g.counters.remove(&key.to_string());
        g.values.remove(&key.to_string());
        Ok(())
    }

    async fn guard_swap(&self, key: &str, value: &str, ttl_ms: u64) -> Result<Option<String>> {
        let mut g = self.guard.lock();
        let old = g.values.take(&key.to_string());
        g.values
            .put(key.to_string(), value.to_string(), ttl_ms.max(1), false);
        Ok(old)
    }

    async fn guard_take(&self, key: &str) -> Result<Option<String>> {
        Ok(self.guard.lock().values.take(&key.to_string()))
    }

    async fn decision_put(&self, id: &str, json: &str) -> Result<u64> {
        let mut g = self.guard.lock();
        g.decisions.insert(id.to_string(), json.to_string());
        g.version += 1;
        Ok(g.version)
    }

    async fn decision_remove(&self, id: &str) -> Result<bool> {
        let mut g = self.guard.lock();
        let was = g.decisions.remove(id).is_some();
        if was {
            g.version += 1;
        }
        Ok(was)
    }

    async fn decisions_version(&self) -> Result<u64> {
        Ok(self.guard.lock().version)
    }

    async fn decisions(&self) -> Result<(u64, Vec<String>)> {
        let g = self.guard.lock();
        Ok((g.version, g.decisions.values().cloned().collect()))
    }

    async fn presence_watch(
        &self,
        watcher: &Watcher,
        add: &[UserId],
        remove: &[UserId],
        ttl_ms: u64,
    ) -> Result<()> {
        let until = magpie_core::now_ms() + ttl_ms as i64;
        self.watches.lock().watch(watcher, add, remove, until);
        Ok(())
    }

    async fn presence_watchers(&self, user: UserId) -> Result<Vec<Watcher>> {
        Ok(self.watches.lock().watchers(user, magpie_core::now_ms()))
    }

    async fn idem_put_many(
        &self,
        from: UserId,
        items: &[(ClientMsgId, Accepted)],
        ttl_ms: u64,
    ) -> Result<()> {
        let items = items.iter().map(|(c, a)| ((from, *c), a.clone()));
        self.idem.lock().put_many(items, ttl_ms, true);
        Ok(())
    }

    async fn idem_get_many(
        &self,
        from: UserId,
        cmids: &[ClientMsgId],
    ) -> Result<Vec<Option<Accepted>>> {
        let idem = self.idem.lock();
        Ok(cmids
            .iter()
            .map(|c| idem.get(&(from, *c)).cloned())
            .collect())
    }

    async fn ticket_put(&self, ticket: &str, claims: &TicketClaims, ttl_ms: u64) -> Result<()> {
        self.tickets
            .lock()
            .put(ticket.to_string(), claims.clone(), ttl_ms, false);
        Ok(())
    }

    async fn ticket_take(&self, ticket: &str) -> Result<Option<TicketClaims>> {
        Ok(self.tickets.lock().take(&ticket.to_string()))
    }

    async fn chain_get(&self, user: UserId, device: &DeviceId) -> Result<Option<String>> {
        Ok(self.chains.lock().get(&(user, device.clone())).cloned())
    }

    async fn chain_init(
        &self,
        user: UserId,
        device: &DeviceId,
        fresh: &str,
        ttl_ms: u64,
    ) -> Result<String> {
        let mut chains = self.chains.lock();
        let key = (user, device.clone());
        let id = chains
            .get(&key)
            .cloned()
            .unwrap_or_else(|| fresh.to_string());
        chains.put(key, id.clone(), ttl_ms, false);
        Ok(id)
    }

    async fn chain_advance(
        &self,
        user: UserId,
        device: &DeviceId,
        expect: &str,
        next: &str,
        ttl_ms: u64,
    ) -> Result<ChainAdvance> {
        let mut chains = self.chains.lock();
        let key = (user, device.clone());
        match chains.get(&key) {
            None => Ok(ChainAdvance::Absent),
            Some(cur) if cur != expect => Ok(ChainAdvance::Expected(cur.clone())),
            Some(_) => {
                chains.put(key, next.to_string(), ttl_ms, false);
                Ok(ChainAdvance::Advanced)
            }
        }
    }

    async fn feed_push(&self, items: &[(UserId, UserId, PostId)], cap: usize) -> Result<()> {
        self.inboxes.lock().push(items, cap, magpie_core::now_ms());
        Ok(())
    }

    async fn feed_fill(
        &self,
        user: UserId,
        keys: &[(UserId, PostId)],
        floor: Floor,
        cap: usize,
        ttl_ms: u64,
    ) -> Result<()> {
        let now = magpie_core::now_ms();
        let until = now.saturating_add(ttl_ms as i64);
        self.inboxes
            .lock()
            .fill(user, keys, floor, cap, (now, until));
        Ok(())
    }

    async fn feed_page(
        &self,
        user: UserId,
        before: Option<PostId>,
        n: usize,
    ) -> Result<Option<InboxPage>> {
        Ok(self
            .inboxes
            .lock()
            .page(user, before, n, magpie_core::now_ms()))
    }

    async fn feed_remove(&self, user: UserId, keys: &[(UserId, PostId)]) -> Result<()> {
        self.inboxes.lock().remove(user, keys);
        Ok(())
    }

    async fn feed_drop(&self, user: UserId) -> Result<()> {
        self.inboxes.lock().drop_inbox(user);
        Ok(())
    }

    async fn feed_big(&self, authors: &[UserId]) -> Result<BigAuthors> {
        Ok(self.subscribers.lock().big(authors))
    }

    async fn feed_set_big(&self, author: UserId) -> Result<i64> {
        Ok(self.subscribers.lock().set_big(author))
    }

    async fn feed_subscribe(
        &self,
        reader: UserId,
        authors: &[UserId],
        until_ms: i64,
    ) -> Result<bool> {
        let now = magpie_core::now_ms();
        let mut subscribers = self.subscribers.lock();
        Ok(subscribers.subscribe(reader, authors, until_ms, now))
    }

    async fn feed_subscribers(
        &self,
        author: UserId,
        cursor: u64,
        n: usize,
    ) -> Result<(Vec<UserId>, u64)> {
        let now = magpie_core::now_ms();
        Ok(self.subscribers.lock().scan(author, cursor, n, now))
    }

    async fn offline_add(
        &self,
        items: &[(UserId, ConvId, Seq, String)],
        opts: &OfflineOptions,
    ) -> Result<()> {
        self.offline.lock().add(items, opts, now_ms());
        Ok(())
    }

    async fn offline_newest(
        &self,
        user: UserId,
        conv: &ConvId,
        n: usize,
    ) -> Result<Vec<(Seq, String)>> {
        let key = (user, conv.clone());
        Ok(self.offline.lock().newest(&key, n, now_ms()))
    }

    async fn offline_after(
        &self,
        user: UserId,
        conv: &ConvId,
        after: Seq,
        n: usize,
    ) -> Result<Vec<(Seq, String)>> {
        let key = (user, conv.clone());
        Ok(self.offline.lock().after(&key, after, n, now_ms()))
    }

    async fn offline_trim(&self, user: UserId, conv: &ConvId, up_to: Seq) -> Result<usize> {
        let key = (user, conv.clone());
        Ok(self.offline.lock().trim(key, up_to, now_ms()))
    }

    async fn offline_remove(&self, user: UserId, conv: &ConvId, seqs: &[Seq]) -> Result<()> {
        let key = (user, conv.clone());
        self.offline.lock().remove(key, seqs, now_ms());
        Ok(())
    }

    async fn offline_segments(&self, user: UserId, conv: &ConvId) -> Result<Vec<Segment>> {
        let key = (user, conv.clone());
        Ok(self.offline.lock().segments(&key, now_ms()))
    }

    async fn unread_count(&self, items: &[(UserId, ConvId, Seq)]) -> Result<()> {
        let mut caches = self.unread.lock();
        for (user, conv, seq) in items {
            // No cache: the next reader rebuilds it from the store, which
            // already includes this message.
            let Some(cache) = caches.get_mut(user) else {
                continue;
            };
            let (count, mark) = cache.per_conv.entry(conv.clone()).or_insert((0, 0));
            if *seq > *mark {
                *count += 1;
                *mark = *seq;
            }
        }
        Ok(())
    }

    async fn unread_reset(&self, user: UserId, conv: &ConvId, count: i64, upto: Seq) -> Result<()> {
        let mut caches = self.unread.lock();
        let Some(cache) = caches.get_mut(&user) else {
            return Ok(());
        };
        let entry = cache.per_conv.entry(conv.clone()).or_insert((0, 0));
        // The cache counted messages past `upto` that the caller's count
        // cannot include; overwriting would lose them.
        if entry.1 <= upto {
            *entry = (count, upto);
        }
        Ok(())
    }

    async fn unread_load(&self, user: UserId, cache: &UnreadCache) -> Result<()> {
        self.unread.lock().insert(user, cache.clone());
        Ok(())
    }

    async fn unread_get(&self, user: UserId) -> Result<Option<UnreadCache>> {
        Ok(self.unread.lock().get(&user).cloned())
    }
}
