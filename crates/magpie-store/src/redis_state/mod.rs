//! `RedisState`: the [`StateBackend`] on Redis (or a Redis Cluster).
//!
//! This module owns the Redis key layout of the fast state, its Lua scripts
//! and the mapping of Redis errors to [`StoreError`]. Every key lives under
//! `{prefix}:` so several deployments (or test runs) can share one server:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:route:{uid}` | hash | device → JSON [`Route`] (the truth) |
//! | `P:node:{node}` | hash | `uid:device` → JSON [`Route`] (an index) |
//! | `P:idem:{from}:cmid` | string, PX | JSON [`Accepted`] |
//! | `P:ticket:t` | string, PX | JSON [`TicketClaims`] |
//! | `P:offb:{uid}:conv:BUCKET` | zset, PXAT | an offline segment: score seq, member `seq:payload` (`offline.rs`) |
//! | `P:offix:{uid}:conv` | zset, PXAT | the offline queue's live buckets |
//! | `P:offline:{uid}:conv` | zset | an offline queue of the unsegmented layout (read, drained) |
//! | `P:unread:{uid}` | hash | `c:conv` count, `w:conv` watermark, `loaded` |
//! | `P:nodeinfo:{reg}:node` | string, PX | JSON [`NodeInfo`] (a heartbeat) |
//! | `P:nodes:{reg}` | set | names of known nodes |
//! | `P:lease:{name}` | string, PX | the holder's name |
//! | `P:guard:…`, `P:decisions:{guard}…` | | the edge guard (`guard.rs`) |
//! | `P:chain:{uid}:device` | string, PX | the chain id the device's next chained send carries |
//!
//! The braces are Redis Cluster hash tags: every key a Lua script touches is
//! a single key, all keys of one user share a slot, and the registry keys
//! share the `{reg}` slot so `nodes()` can MGET every record at once. The
//! connection is a [`ConnectionManager`] (standalone, `redis://`) or a
//! cluster connection (`redis+cluster://host:port,host:port/`, pipelines
//! split per slot by [`con`]); both reconnect by themselves and are cheap
//! clones of multiplexed connections, so each call clones one and no lock
//! is ever held across an `.await`.

use crate::error::{Result, StoreError};
use crate::offline::{OfflineOptions, Segment};
use crate::state::{
    BigAuthors, ChainAdvance, Floor, InboxPage, NodeInfo, Route, StateBackend, TicketClaims,
    UnreadCache, Watcher,
};
use async_trait::async_trait;
use con::Con;
use magpie_core::{Accepted, ClientMsgId, ConvId, DeviceId, PostId, Seq, UserId};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use scripts::Scripts;
use std::collections::HashMap;
use std::time::Duration;

mod chains;
mod con;
mod guard;
mod inboxes;
mod offline;
mod offline_lua;
mod queues;
mod registry;
mod routes;
mod scripts;
mod subscribers;
mod watches;

/// The prefix used when a `redis://` URL does not name one.
pub const DEFAULT_PREFIX: &str = "magpie";

/// Fast state kept in one Redis server (standalone or behind a proxy).
pub struct RedisState {
    con: Con,
    keys: Keys,
    scripts: Scripts,
}

impl RedisState {
    /// Connects to `url` (a plain redis URL, without our `prefix` parameter);
    /// every key is written under `{prefix}:`.
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisState> {
        // Braces would break the hash tags; glob characters would make the
        // prefix unusable in SCAN MATCH for cleanup and sweeps.
        if prefix.is_empty() || prefix.contains(['{', '}', '*', '?', '[', ']', ' ']) {
            return Err(StoreError::Config(format!(
                "bad redis key prefix {prefix:?}: must be non-empty, without braces, globs or spaces"
            )));
        }
        // Fail fast rather than queue callers behind a dead server: the
        // library's 500 ms response timeout is tight for a large HGETALL.
        let timeout = Duration::from_secs(2);
        let con = if let Some(hosts) = url.strip_prefix("redis+cluster://") {
            let hosts = hosts.split(['/', '?']).next().unwrap_or_default();
            let nodes: Vec<String> = hosts
                .split(',')
                .filter(|h| !h.is_empty())
                .map(|h| format!("redis://{h}/"))
                .collect();
            let client = redis::cluster::ClusterClientBuilder::new(nodes)
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .build()
                .map_err(|e| StoreError::Config(format!("bad redis cluster url: {e}")))?;
            Con::Cluster(client.get_async_connection().await.map_err(unavailable)?)
        } else {
            let client = redis::Client::open(url)
                .map_err(|e| StoreError::Config(format!("bad redis url: {e}")))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(3);
            Con::Single(
                ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(unavailable)?,
            )
        };
        Ok(RedisState {
            con,
            keys: Keys {
                prefix: prefix.to_string(),
            },
            scripts: Scripts::new(),
        })
    }

    /// Opens `redis://host:port/db?prefix=name&…`: the `prefix` parameter
    /// (default [`DEFAULT_PREFIX`]) is ours and is removed before the URL is
    /// handed to the redis client, which would reject it.
    pub async fn open_url(url: &str) -> Result<RedisState> {
        let (url, prefix) = split_prefix(url);
        RedisState::connect(&url, &prefix).await
    }

    /// The key prefix, without the trailing `:`.
    pub fn prefix(&self) -> &str {
        &self.keys.prefix
    }

    /// A connection handle for one call (a clone shares the multiplexed
    /// connection; cloning never blocks).
    fn con(&self) -> Con {
        self.con.clone()
    }
}

/// Splits our `prefix` query parameter off a redis URL.
fn split_prefix(url: &str) -> (String, String) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), DEFAULT_PREFIX.to_string());
    };
    let mut prefix = DEFAULT_PREFIX.to_string();
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.strip_prefix("prefix=") {
            Some(p) => prefix = p.to_string(),
            None => rest.push(pair),
        }
    }
    if rest.is_empty() {
        (base.to_string(), prefix)
    } else {
        (format!("{base}?{}", rest.join("&")), prefix)
    }
}

/// The key names. Per-user keys carry the user id as hash tag.
struct Keys {
    prefix: String,
}

impl Keys {
    fn route(&self, user: UserId) -> String {
        format!("{}:route:{{{}}}", self.prefix, user.0)
    }
    fn node(&self, node: &str) -> String {
        format!("{}:node:{{{node}}}", self.prefix)
    }
    fn idem(&self, from: UserId, cmid: ClientMsgId) -> String {
        format!("{}:idem:{{{}}}:{cmid}", self.prefix, from.0)
    }
    fn ticket(&self, ticket: &str) -> String {
        format!("{}:ticket:{ticket}", self.prefix)
    }
    /// The unsegmented offline queue of an older version (`offline.rs`).
    fn offline(&self, user: UserId, conv: &ConvId) -> String {
        format!("{}:offline:{{{}}}:{conv}", self.prefix, user.0)
    }
    fn offline_index(&self, user: UserId, conv: &ConvId) -> String {
        format!("{}:offix:{{{}}}:{conv}", self.prefix, user.0)
    }
    /// A segment's key is this and its bucket id.
    fn offline_base(&self, user: UserId, conv: &ConvId) -> String {
        format!("{}:offb:{{{}}}:{conv}:", self.prefix, user.0)
    }
    fn inbox(&self, user: UserId) -> String {
        format!("{}:inbox:{{{}}}", self.prefix, user.0)
    }
    fn feed_big(&self) -> String {
        format!("{}:feedbig:{{feeds}}", self.prefix)
    }
    fn feed_big_seq(&self) -> String {
        format!("{}:feedbig:{{feeds}}:seq", self.prefix)
    }
    fn subscribers(&self, author: UserId) -> String {
        format!("{}:subs:{{{}}}", self.prefix, author.0)
    }
    fn unread(&self, user: UserId) -> String {
        format!("{}:unread:{{{}}}", self.prefix, user.0)
    }
    fn node_info(&self, node: &str) -> String {
        format!("{}:nodeinfo:{{reg}}:{node}", self.prefix)
    }
    fn nodes(&self) -> String {
        format!("{}:nodes:{{reg}}", self.prefix)
    }
    fn lease(&self, name: &str) -> String {
        format!("{}:lease:{{{name}}}", self.prefix)
    }
    fn room(&self, room: &str, window: i64) -> String {
        format!("{}:room:{{{room}}}:{window}", self.prefix)
    }
    fn chain(&self, user: UserId, device: &DeviceId) -> String {
        format!("{}:chain:{{{}}}:{device}", self.prefix, user.0)
    }
    fn watch(&self, user: UserId) -> String {
        format!("{}:watch:{{{}}}", self.prefix, user.0)
    }
}

/// Any Redis failure (connection, timeout, server error) may be retried.
fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("encode: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("redis value: {e}")))
}

#[async_trait]
impl StateBackend for RedisState {
    async fn add_route(&self, route: &Route) -> Result<Option<Route>> {
        self.add_route_impl(route).await
    }

    async fn remove_route(
        &self,
        user: UserId,
        device: &DeviceId,
        node: &str,
        conn: u64,
    ) -> Result<bool> {
        self.remove_route_impl(user, device, node, conn).await
    }

    async fn routes(&self, users: &[UserId]) -> Result<HashMap<UserId, Vec<Route>>> {
        self.routes_impl(users).await
    }

    async fn node_routes(&self, node: &str) -> Result<Vec<Route>> {
        self.node_routes_impl(node).await
    }

    async fn restore_routes(&self, routes: &[Route]) -> Result<usize> {
        self.restore_routes_impl(routes).await
    }

    async fn node_heartbeat(&self, info: &NodeInfo, ttl_ms: u64) -> Result<bool> {
        self.node_heartbeat_impl(info, ttl_ms).await
    }

    async fn node_deregister(&self, node: &str) -> Result<()> {
        self.node_deregister_impl(node).await
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        self.nodes_impl().await
    }

    async fn known_nodes(&self) -> Result<Vec<String>> {
        self.known_nodes_impl().await
    }

    async fn forget_node(&self, node: &str) -> Result<()> {
        self.forget_node_impl(node).await
    }

    async fn lease(&self, name: &str, holder: &str, ttl_ms: u64) -> Result<bool> {
        self.lease_impl(name, holder, ttl_ms).await
    }

    async fn room_admit(&self, room: &str, window: i64) -> Result<u64> {
        // INCR then a short expiry, one round trip: a window's counter
        // outlives its second by at most two.
        let key = self.keys.room(room, window);
        let (n,): (u64,) = redis::pipe()
            .atomic()
            .incr(&key, 1)
            .pexpire(&key, 3_000)
            .ignore()
            .query_async(&mut self.con())
            .await
            .map_err(unavailable)?;
        Ok(n)
    }

    async fn guard_hit(&self, key: &str, ttl_ms: u64) -> Result<u64> {
        self.guard_hit_impl(key, ttl_ms).await
    }

    async fn guard_count(&self, key: &str) -> Result<u64> {
        self.guard_count_impl(key).await
    }

    async fn guard_reset(&self, key: &str) -> Result<()> {
        self.guard_reset_impl(key).await
    }

    async fn guard_swap(&self, key: &str, value: &str, ttl_ms: u64) -> Result<Option<String>> {
        self.guard_swap_impl(key, value, ttl_ms).await
    }

    async fn guard_take(&self, key: &str) -> Result<Option<String>> {
        self.guard_take_impl(key).await
    }

    async fn decision_put(&self, id: &str, json: &str) -> Result<u64> {
        self.decision_put_impl(id, json).await
    }

    async fn decision_remove(&self, id: &str) -> Result<bool> {
        self.decision_remove_impl(id).await
    }

    async fn decisions_version(&self) -> Result<u64> {
        self.decisions_version_impl().await
    }

    async fn decisions(&self) -> Result<(u64, Vec<String>)> {
        self.decisions_impl().await
    }

    async fn presence_watch(
        &self,
        watcher: &Watcher,
        add: &[UserId],
        remove: &[UserId],
        ttl_ms: u64,
    ) -> Result<()> {
        self.presence_watch_impl(watcher, add, remove, ttl_ms).await
    }

    async fn feed_push(&self, items: &[(UserId, UserId, PostId)], cap: usize) -> Result<()> {
        self.feed_push_impl(items, cap).await
    }

    async fn feed_fill(
        &self,
        user: UserId,
        keys: &[(UserId, PostId)],
        floor: Floor,
        cap: usize,
        ttl_ms: u64,
    ) -> Result<()> {
        self.feed_fill_impl(user, keys, floor, (cap, ttl_ms)).await
    }

    async fn feed_page(
        &self,
        user: UserId,
        before: Option<PostId>,
        n: usize,
    ) -> Result<Option<InboxPage>> {
        self.feed_page_impl(user, before, n).await
    }

    async fn feed_remove(&self, user: UserId, keys: &[(UserId, PostId)]) -> Result<()> {
        self.feed_remove_impl(user, keys).await
    }

    async fn feed_drop(&self, user: UserId) -> Result<()> {
        redis::cmd("DEL")
            .arg(self.keys.inbox(user))
            .query_async::<()>(&mut self.con())
            .await
            .map_err(unavailable)
    }

    async fn feed_big(&self, authors: &[UserId]) -> Result<BigAuthors> {
        self.feed_big_impl(authors).await
    }

    async fn feed_set_big(&self, author: UserId) -> Result<i64> {
        self.feed_set_big_impl(author).await
    }

    async fn feed_subscribe(
        &self,
        reader: UserId,
        authors: &[UserId],
        until_ms: i64,
    ) -> Result<bool> {
        self.feed_subscribe_impl(reader, authors, until_ms).await
    }

    async fn feed_subscribers(
        &self,
        author: UserId,
        cursor: u64,
        n: usize,
    ) -> Result<(Vec<UserId>, u64)> {
        self.feed_subscribers_impl(author, cursor, n).await
    }

    async fn presence_watchers(&self, user: UserId) -> Result<Vec<Watcher>> {
        self.presence_watchers_impl(user).await
    }

    async fn idem_put_many(
        &self,
        from: UserId,
        items: &[(ClientMsgId, Accepted)],
        ttl_ms: u64,
    ) -> Result<()> {
        self.idem_put_impl(from, items, ttl_ms).await
    }

    async fn idem_get_many(
        &self,
        from: UserId,
        cmids: &[ClientMsgId],
    ) -> Result<Vec<Option<Accepted>>> {
        self.idem_get_impl(from, cmids).await
    }

    async fn chain_get(&self, user: UserId, device: &DeviceId) -> Result<Option<String>> {
        self.chain_get_impl(user, device).await
    }

    async fn chain_init(
        &self,
        user: UserId,
        device: &DeviceId,
        fresh: &str,
        ttl_ms: u64,
    ) -> Result<String> {
        self.chain_init_impl(user, device, fresh, ttl_ms).await
    }

    async fn chain_advance(
        &self,
        user: UserId,
        device: &DeviceId,
        expect: &str,
        next: &str,
        ttl_ms: u64,
    ) -> Result<ChainAdvance> {
        self.chain_advance_impl(user, device, expect, next, ttl_ms)
            .await
    }

    async fn ticket_put(&self, ticket: &str, claims: &TicketClaims, ttl_ms: u64) -> Result<()> {
        self.ticket_put_impl(ticket, claims, ttl_ms).await
    }

    async fn ticket_take(&self, ticket: &str) -> Result<Option<TicketClaims>> {
        self.ticket_take_impl(ticket).await
    }

    async fn offline_add(
        &self,
        items: &[(UserId, ConvId, Seq, String)],
        opts: &OfflineOptions,
    ) -> Result<()> {
        self.offline_add_impl(items, opts).await
    }

    async fn arrived(
        &self,
        items: &[(UserId, ConvId, Seq, String)],
        opts: &OfflineOptions,
    ) -> Result<()> {
        self.arrived_impl(items, opts).await
    }

    async fn offline_newest(
        &self,
        user: UserId,
        conv: &ConvId,
        n: usize,
    ) -> Result<Vec<(Seq, String)>> {
        self.offline_newest_impl(user, conv, n).await
    }

    async fn offline_after(
        &self,
        user: UserId,
        conv: &ConvId,
        after: Seq,
        n: usize,
    ) -> Result<Vec<(Seq, String)>> {
        self.offline_after_impl(user, conv, after, n).await
    }

    async fn offline_trim(&self, user: UserId, conv: &ConvId, up_to: Seq) -> Result<usize> {
        self.offline_trim_impl(user, conv, up_to).await
    }

    async fn offline_remove(&self, user: UserId, conv: &ConvId, seqs: &[Seq]) -> Result<()> {
        self.offline_remove_impl(user, conv, seqs).await
    }

    async fn offline_segments(&self, user: UserId, conv: &ConvId) -> Result<Vec<Segment>> {
        self.offline_segments_impl(user, conv).await
    }

    async fn unread_count(&self, items: &[(UserId, ConvId, Seq)]) -> Result<()> {
        self.unread_count_impl(items).await
    }

    async fn unread_reset(&self, user: UserId, conv: &ConvId, count: i64, upto: Seq) -> Result<()> {
        self.unread_reset_impl(user, conv, count, upto).await
    }

    async fn unread_load(&self, user: UserId, cache: &UnreadCache) -> Result<()> {
        self.unread_load_impl(user, cache).await
    }

    async fn unread_get(&self, user: UserId) -> Result<Option<UnreadCache>> {
        self.unread_get_impl(user).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_parameter_is_split_off_and_defaults() {
        let (url, p) = split_prefix("redis://h:1/");
        assert_eq!((url.as_str(), p.as_str()), ("redis://h:1/", DEFAULT_PREFIX));
        let (url, p) = split_prefix("redis://h:1/2?prefix=im");
        assert_eq!((url.as_str(), p.as_str()), ("redis://h:1/2", "im"));
        let (url, p) = split_prefix("redis://h/?protocol=resp3&prefix=x&a=b");
        assert_eq!(
            (url.as_str(), p.as_str()),
            ("redis://h/?protocol=resp3&a=b", "x")
        );
    }

    #[test]
    fn per_user_keys_share_the_user_hash_tag() {
        let k = Keys { prefix: "m".into() };
        let c = ConvId::direct(UserId(1), UserId(2));
        assert_eq!(k.route(UserId(7)), "m:route:{7}");
        assert_eq!(k.offline(UserId(7), &c), "m:offline:{7}:d:1:2");
        assert_eq!(k.offline_index(UserId(7), &c), "m:offix:{7}:d:1:2");
        assert_eq!(k.offline_base(UserId(7), &c), "m:offb:{7}:d:1:2:");
        assert_eq!(k.unread(UserId(7)), "m:unread:{7}");
        assert_eq!(k.node("n-1"), "m:node:{n-1}");
        assert_eq!(k.node_info("n-1"), "m:nodeinfo:{reg}:n-1");
        assert_eq!(k.nodes(), "m:nodes:{reg}");
        assert_eq!(k.lease("sweeper"), "m:lease:{sweeper}");
        let phone = DeviceId::new("phone").unwrap();
        assert_eq!(k.chain(UserId(7), &phone), "m:chain:{7}:phone");
    }
}
