//! The fast-state trait (shaped after Redis) and its handle.

use crate::error::{Result, StoreError};
use crate::offline::{OfflineOptions, Segment};
use async_trait::async_trait;
use magpie_core::{Accepted, ClientMsgId, ConvId, DeviceId, PostId, Seq, UserId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Where one device of a user is connected (a hash per user, indexed by a
/// hash per node on Redis).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub user: UserId,
    pub device: DeviceId,
    /// The node holding the connection.
    pub node: String,
    /// The connection on that node; a newer connection of the same device replaces it.
    pub conn: u64,
    pub since: i64,
}

/// A node as the service registry knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub node: String,
    /// Roles it runs: any of "edge", "conn", "logic", "workers".
    pub roles: Vec<String>,
    /// Where clients open a WebSocket (`ws://…/v1/ws`), empty if not a conn node.
    pub ws_url: String,
    /// Where clients open TCP (`host:port`), empty if none.
    pub tcp_addr: String,
    pub version: String,
    /// Open connections: `connect` prefers the least loaded node.
    pub load: u64,
    /// A canary (gray release) node.
    pub canary: bool,
    /// When this record was written, epoch ms.
    pub seen_at: i64,
    /// An operator is draining the node: `connect` places no new
    /// connection on it while another node can take them.
    #[serde(default)]
    pub draining: bool,
}

/// What a connection ticket stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketClaims {
    pub user: UserId,
    pub device: DeviceId,
}

/// The unread-count cache of one user: per conversation, the count and the
/// highest sequence it has counted (so a redelivered event is not counted twice).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnreadCache {
    pub per_conv: HashMap<ConvId, (i64, Seq)>,
}

impl UnreadCache {
    pub fn total(&self) -> i64 {
        self.per_conv.values().map(|(n, _)| *n).sum()
    }
}

/// What [`StateBackend::chain_advance`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainAdvance {
    /// The chain expected `expect`; it now expects `next`.
    Advanced,
    /// The chain expects this other id; nothing changed.
    Expected(String),
    /// No chain is stored (never started, expired, or the state lost it);
    /// nothing changed.
    Absent,
}

/// Fast, derived state. Every operation is atomic on its own (a Lua script or
/// a single command in Redis). Keys expire where a TTL is given.
#[async_trait]
pub trait StateBackend: Send + Sync + 'static {
    // -- routes (route record per user device, hash of routes per node)
    /// Adds or replaces the route of (user, device); returns the route it
    /// replaced. A connection re-asserting its route learns from `None` that
    /// the state lost it (and pushes may have missed it meanwhile).
    async fn add_route(&self, route: &Route) -> Result<Option<Route>>;
    /// Removes the route of (user, device) only if it still points at `conn`
    /// on `node`; returns whether it did.
    async fn remove_route(
        &self,
        user: UserId,
        device: &DeviceId,
        node: &str,
        conn: u64,
    ) -> Result<bool>;
    /// Every route of each of these users (one round trip for the batch).
    async fn routes(&self, users: &[UserId]) -> Result<HashMap<UserId, Vec<Route>>>;
    /// Every route held by a node.
    async fn node_routes(&self, node: &str) -> Result<Vec<Route>>;
    /// Puts back the routes of a node's live connections after the state
    /// lost them (Redis restarted empty): each is written only where its
    /// (user, device) has no route, so a newer connection elsewhere keeps
    /// its own. Returns how many were written. One round trip per batch.
    async fn restore_routes(&self, routes: &[Route]) -> Result<usize>;

    // -- service registry: heartbeats with a TTL, and the set of known nodes
    /// Writes the node's record with a TTL (a heartbeat) and adds it to the
    /// set of known nodes. Returns whether the previous record was still
    /// there: `false` at a node's first heartbeat, after its record expired,
    /// and after the state lost everything (Redis restarted empty) — the
    /// node then restores its routes (`restore_routes`).
    async fn node_heartbeat(&self, info: &NodeInfo, ttl_ms: u64) -> Result<bool>;
    /// Removes the node's record (planned shutdown); it stays known until `forget_node`.
    async fn node_deregister(&self, node: &str) -> Result<()>;
    /// Records of live nodes (heartbeat not expired), in node-name order.
    async fn nodes(&self) -> Result<Vec<NodeInfo>>;
    /// Every node that registered and was not forgotten, live or not: the
    /// sweeper compares it with `nodes()` to find dead ones.
    async fn known_nodes(&self) -> Result<Vec<String>>;
    /// Drops a node from the known set (after its routes were cleaned).
    async fn forget_node(&self, node: &str) -> Result<()>;
    /// Takes or renews the lease `name` for `holder` (SET NX PX, or PEXPIRE
    /// when `holder` already holds it); false if someone else holds it.
    async fn lease(&self, name: &str, holder: &str, ttl_ms: u64) -> Result<bool>;
    /// Counts one admission to live room `room` in window `window` (an
    /// epoch second) and returns the window's count, this one included:
    /// the cluster-wide admission point of a room's rate. A window's count
    /// is forgotten soon after the window.
    async fn room_admit(&self, room: &str, window: i64) -> Result<u64>;

    // -- the edge guard (docs/edge.md): counters, one-time values and ban
    // decisions every node shares. `key`s are the guard's own names (no
    // braces: they become Redis hash tags).
    /// Adds one hit to counter `key` and returns its count, this hit
    /// included. A new counter lives `ttl_ms` from its first hit (a fixed
    /// window: INCR, then PEXPIRE NX), so it can never be kept alive by
    /// hitting it.
    async fn guard_hit(&self, key: &str, ttl_ms: u64) -> Result<u64>;
    /// The live count of counter `key` (0 when absent or expired).
    async fn guard_count(&self, key: &str) -> Result<u64>;
    /// Deletes counter or value `key`.
    async fn guard_reset(&self, key: &str) -> Result<()>;
    /// Writes `value` under `key` for `ttl_ms` and returns the value it
    /// replaced (SET PX GET).
    async fn guard_swap(&self, key: &str, value: &str, ttl_ms: u64) -> Result<Option<String>>;
    /// Returns and deletes the value under `key` (GETDEL): a one-time
    /// value such as a captcha's answer.
    async fn guard_take(&self, key: &str) -> Result<Option<String>>;
    /// Adds or replaces decision `id` (its JSON) and bumps the decisions'
    /// version, atomically; returns the new version.
    async fn decision_put(&self, id: &str, json: &str) -> Result<u64>;
    /// Removes decision `id` and bumps the version if it was there;
    /// returns whether it was.
    async fn decision_remove(&self, id: &str) -> Result<bool>;
    /// The decisions' version: 0 before the first change, then moving with
    /// every change, so a node re-reads the decisions only when it moved.
    async fn decisions_version(&self) -> Result<u64>;
    /// Every decision (their JSON) and the version they are at, read together.
    async fn decisions(&self) -> Result<(u64, Vec<String>)>;

    // -- presence watches (docs/protocol.md §5.7): the connections watching
    // a user's presence, each entry kept `ttl_ms` after it was written (a
    // node that died leaves entries that only expire).
    /// Adds `watcher` to the watchers of every user of `add`, and removes it
    /// from those of every user of `remove`.
    async fn presence_watch(
        &self,
        watcher: &Watcher,
        add: &[UserId],
        remove: &[UserId],
        ttl_ms: u64,
    ) -> Result<()>;
    /// The connections watching `user` (entries past their time dropped).
    async fn presence_watchers(&self, user: UserId) -> Result<Vec<Watcher>>;

    // -- idempotency fast path (SET NX with TTL), batch-shaped: one sender's
    // keys share a hash tag, so one MGET / one pipeline serves a whole batch.
    /// Records results of one sender's sends; each key is SET NX (the first
    /// recorded result wins) with the TTL.
    async fn idem_put_many(
        &self,
        from: UserId,
        items: &[(ClientMsgId, Accepted)],
        ttl_ms: u64,
    ) -> Result<()>;
    /// The recorded results of these client message ids of one sender, in order.
    async fn idem_get_many(
        &self,
        from: UserId,
        cmids: &[ClientMsgId],
    ) -> Result<Vec<Option<Accepted>>>;

    // -- client ordering chains (docs/protocol.md, "Ordering chain"): per
    // (user, device) one string, the chain id the device's next chained
    // send must carry. Every write renews the key's TTL; a key that expired
    // or was lost reads as absent, which the send path treats as a chain to
    // restart (ordering is broken only across the loss, nothing is lost).
    /// The id (user, device)'s chain expects next (GET).
    async fn chain_get(&self, user: UserId, device: &DeviceId) -> Result<Option<String>>;
    /// Starts the chain at `fresh` unless one is stored, and returns what is
    /// stored afterwards (the existing id, or `fresh`): SET NX + GET as one
    /// atomic step; the TTL is (re)set to `ttl_ms` either way.
    async fn chain_init(
        &self,
        user: UserId,
        device: &DeviceId,
        fresh: &str,
        ttl_ms: u64,
    ) -> Result<String>;
    /// Compare-and-set, atomic: if the chain expects `expect`, it expects
    /// `next` from now on (TTL `ttl_ms`); otherwise nothing changes and the
    /// answer says what is there.
    async fn chain_advance(
        &self,
        user: UserId,
        device: &DeviceId,
        expect: &str,
        next: &str,
        ttl_ms: u64,
    ) -> Result<ChainAdvance>;

    // -- one-time connection tickets (SET with TTL, GETDEL)
    async fn ticket_put(&self, ticket: &str, claims: &TicketClaims, ttl_ms: u64) -> Result<()>;
    /// Returns the claims and deletes the ticket; `None` if unknown or expired.
    async fn ticket_take(&self, ticket: &str) -> Result<Option<TicketClaims>>;

    // -- offline queues: per (receiver, conversation), what the receiver has
    // not read yet as (seq, message id) (never bodies: sync reads those from
    // the store), segmented by time bucket (`offline.rs`): one sorted set
    // per bucket, score = seq, each keeping its newest `opts.cap` entries
    // and expiring whole `opts.keep_ms` after its bucket ends. What falls
    // off is still in the store, for sync. Reads and removals span every
    // live segment and answer as one sorted set would.
    /// ZADD for many (receiver, conv, seq, payload) at once, each into the
    /// bucket of its message's time (`OfflineOptions::place`); an existing
    /// seq is replaced, in whichever segment it was. Callers holding a
    /// `State` call `State::offline_add`, which passes the handle's options.
    async fn offline_add(
        &self,
        items: &[(UserId, ConvId, Seq, String)],
        opts: &OfflineOptions,
    ) -> Result<()>;
    /// Newest `n` entries of the whole queue, highest seq first (the newest
    /// `n` of each segment, merged).
    async fn offline_newest(
        &self,
        user: UserId,
        conv: &ConvId,
        n: usize,
    ) -> Result<Vec<(Seq, String)>>;
    /// Entries with seq > `after`, ascending, at most `n` (ZRANGEBYSCORE
    /// (after +inf LIMIT 0 n on each segment, merged).
    async fn offline_after(
        &self,
        user: UserId,
        conv: &ConvId,
        after: Seq,
        n: usize,
    ) -> Result<Vec<(Seq, String)>>;
    /// ZREMRANGEBYSCORE -inf up_to on every segment: removes what the
    /// client has read; returns how many.
    async fn offline_trim(&self, user: UserId, conv: &ConvId, up_to: Seq) -> Result<usize>;
    /// Removes single entries (retention removed the message).
    async fn offline_remove(&self, user: UserId, conv: &ConvId, seqs: &[Seq]) -> Result<()>;
    /// The queue's live segments and their sizes, newest bucket first (the
    /// unsegmented key of an older version last): what ops and tests check
    /// the per-key cap and the expiry against.
    async fn offline_segments(&self, user: UserId, conv: &ConvId) -> Result<Vec<Segment>>;

    // -- feed inboxes (docs/feeds.md): per follower the keys `(author,
    // post)` pushed to it, at most `cap` (the newest), and its floor: every
    // post of a pushing author at or above the floor is in the inbox. An
    // inbox exists once its reader marked it (materialised it) and expires
    // `ttl_ms` after its reader last filled it, so an inactive follower's
    // inbox goes away and pushes skip it. Derived state: a reader finding
    // none pulls from the store and marks it again.
    /// Adds `(follower, author, post)` keys to the followers' inboxes, one
    /// round trip per batch; an inbox that does not exist is left alone
    /// (its reader pulls). A push does not extend an inbox's life. When
    /// the cap drops keys, the floor rises to the oldest key kept.
    async fn feed_push(&self, items: &[(UserId, UserId, PostId)], cap: usize) -> Result<()>;
    /// Adds `keys` to `user`'s inbox (a union: a push racing it is kept),
    /// treats its floor as `floor` says, and makes it live `ttl_ms` from now
    /// (an inbox that `floor` leaves absent takes nothing).
    async fn feed_fill(
        &self,
        user: UserId,
        keys: &[(UserId, PostId)],
        floor: Floor,
        cap: usize,
        ttl_ms: u64,
    ) -> Result<()>;
    /// Up to `n` keys of `user`'s inbox below `before`, newest first, and
    /// its floor; `None` when it does not exist (never marked, expired or
    /// lost).
    async fn feed_page(
        &self,
        user: UserId,
        before: Option<PostId>,
        n: usize,
    ) -> Result<Option<InboxPage>>;
    /// Removes keys from `user`'s inbox (an unfollow, a block, a deletion).
    async fn feed_remove(&self, user: UserId, keys: &[(UserId, PostId)]) -> Result<()>;
    /// Drops `user`'s inbox: its next read pulls and fills it again (after
    /// a follow, whose older posts the inbox does not hold).
    async fn feed_drop(&self, user: UserId) -> Result<()>;

    // -- big authors and their subscribers (docs/feeds.md, "Push, pull and
    // activity"): an author flagged big pushes only to the readers
    // subscribed to it, each until a deadline that the reader's reads
    // extend. A flag stays (until the state is lost).
    /// The flagged among `authors`, each with its flag's sequence, and the
    /// last sequence given (every flag set later has a higher one).
    async fn feed_big(&self, authors: &[UserId]) -> Result<BigAuthors>;
    /// Flags `author` big with the next sequence unless it is flagged
    /// already; returns its flag's sequence.
    async fn feed_set_big(&self, author: UserId) -> Result<i64>;
    /// Subscribes `reader` to each author's pushes until `until_ms`, or
    /// extends it, one round trip; `true` when every subscription was
    /// there and unexpired already (`false` on a refresh: pushes may have
    /// been missed, the reader's inbox cannot be trusted).
    async fn feed_subscribe(
        &self,
        reader: UserId,
        authors: &[UserId],
        until_ms: i64,
    ) -> Result<bool>;
    /// One step of a scan of `author`'s unexpired subscribers: up to about
    /// `n` readers and the cursor of the next step (0: done; start with 0).
    /// A reader subscribed for the whole scan is returned at least once
    /// (maybe twice); one subscribing during it may be missed (it
    /// subscribed before pulling, so the pull found the post).
    async fn feed_subscribers(
        &self,
        author: UserId,
        cursor: u64,
        n: usize,
    ) -> Result<(Vec<UserId>, u64)>;

    // -- unread counters (cache of the store's truth)
    /// For each (user, conv, seq): if seq is above the counted watermark of
    /// (user, conv), count it (+1) and raise the watermark; otherwise ignore.
    /// Only applies to users whose cache exists (see `unread_load`).
    async fn unread_count(&self, items: &[(UserId, ConvId, Seq)]) -> Result<()>;
    /// Messages arrived for their receivers: `offline_add` of every item
    /// and `unread_count` of its (user, conv, seq), in one round trip where
    /// the engine allows (both keys of a user share a Redis slot).
    async fn arrived(
        &self,
        items: &[(UserId, ConvId, Seq, String)],
        opts: &OfflineOptions,
    ) -> Result<()> {
        self.offline_add(items, opts).await?;
        let counts: Vec<(UserId, ConvId, Seq)> = items
            .iter()
            .map(|(u, c, s, _)| (*u, c.clone(), *s))
            .collect();
        self.unread_count(&counts).await
    }
    /// Sets (user, conv) to `count` with watermark `upto` unless the cache
    /// already counted beyond `upto`. Only applies if the user's cache exists.
    async fn unread_reset(&self, user: UserId, conv: &ConvId, count: i64, upto: Seq) -> Result<()>;
    /// Replaces the whole cache of a user (after rebuilding it from the store).
    async fn unread_load(&self, user: UserId, cache: &UnreadCache) -> Result<()>;
    /// The user's cache, `None` if it was never loaded or was lost.
    async fn unread_get(&self, user: UserId) -> Result<Option<UnreadCache>>;
}

/// How `StateBackend::feed_fill` treats an inbox's floor (docs/feeds.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Floor {
    /// Leave it; only an inbox that exists is touched.
    Keep,
    /// Create the inbox, or reset it, knowing nothing yet (the floor above
    /// every post): pushes from now on are kept, no key is trusted.
    Unknown,
    /// A pull made after `Unknown` found everything from this post up: it
    /// becomes the floor if the inbox still exists and still knows nothing.
    /// A drop (a follow) or another reader's `Settle` in between wins. The
    /// second field becomes the inbox's `big_seen`: the flag sequence read
    /// (`feed_big`) after the mark, before the reader subscribed and pulled.
    Settle(PostId, i64),
    /// Set it outright, creating the inbox (an import, a test).
    Set(PostId),
}

/// Flagged big authors (`StateBackend::feed_big`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BigAuthors {
    /// `(author, flag sequence)`.
    pub flagged: Vec<(UserId, i64)>,
    /// The last flag sequence given.
    pub seq: i64,
}

/// The floor of an inbox that knows nothing yet.
pub const FLOOR_UNKNOWN: PostId = PostId(i64::MAX);

/// What a feed inbox holds below a cursor (`StateBackend::feed_page`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxPage {
    /// Newest first.
    pub keys: Vec<(UserId, PostId)>,
    /// Every post of an author who pushes, at or above it, is in the inbox.
    pub floor: PostId,
    /// Its reader subscribed to the big authors it followed whose flag
    /// sequence is at or below this (0 from the mark until it settles).
    pub big_seen: i64,
}

/// A connection watching presence: the address pushes take (its user, the
/// node holding it and its id there).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Watcher {
    pub user: UserId,
    pub node: String,
    pub conn: u64,
}

impl Watcher {
    /// The entry's text: `{user}:{conn}:{node}` (the node last, as it is
    /// the only part that is free text).
    pub fn member(&self) -> String {
        format!("{}:{}:{}", self.user.0, self.conn, self.node)
    }

    /// Reads `member` back; `None` for text that is not one.
    pub fn parse(member: &str) -> Option<Watcher> {
        let mut parts = member.splitn(3, ':');
        let user = UserId(parts.next()?.parse().ok()?);
        let conn = parts.next()?.parse().ok()?;
        let node = parts.next().filter(|n| !n.is_empty())?.to_string();
        Some(Watcher { user, node, conn })
    }
}

/// Entries one offline segment (one receiver, one conversation, one time
/// bucket) keeps at most unless the state URL says otherwise (`offline_cap`).
pub const OFFLINE_CAP: usize = 100;

/// Cheap, cloneable handle to the configured fast state, with the options
/// its offline calls pass to the backend (`offline.rs`).
#[derive(Clone)]
pub struct State {
    backend: Arc<dyn StateBackend>,
    offline: OfflineOptions,
}

impl State {
    /// The backend with the default offline options.
    pub fn new(backend: impl StateBackend) -> Self {
        State {
            backend: Arc::new(backend),
            offline: OfflineOptions::default(),
        }
    }

    /// The same backend (same keys, same connection) with other offline
    /// options.
    pub fn with_offline(&self, offline: OfflineOptions) -> State {
        State {
            backend: self.backend.clone(),
            offline,
        }
    }

    /// The offline options this handle writes with.
    pub fn offline(&self) -> &OfflineOptions {
        &self.offline
    }

    pub(crate) fn backend(&self) -> &dyn StateBackend {
        &*self.backend
    }

    /// Opens the backend a URL names: `mem://`, `redis://…`, `redis+cluster://…`,
    /// any of them with the offline options as query parameters
    /// (`offline_bucket`, `offline_cap`, `offline_keep_ms`; docs/config.md).
    pub async fn open(url: &str) -> Result<State> {
        let (url, offline) = OfflineOptions::split_url(url)?;
        if url.starts_with("mem://") {
            return Ok(State::new(crate::mem::MemState::new()).with_offline(offline));
        }
        #[cfg(feature = "redis")]
        if url.starts_with("redis://") || url.starts_with("redis+cluster://") {
            let backend = crate::redis_state::RedisState::open_url(&url).await?;
            return Ok(State::new(backend).with_offline(offline));
        }
        Err(StoreError::Config(format!(
            "unknown state url {url:?}: expected mem://, redis:// or redis+cluster://"
        )))
    }
}

impl State {
    /// One key of the idempotency fast path (see `idem_put_many`).
    pub async fn idem_put(
        &self,
        from: UserId,
        cmid: ClientMsgId,
        accepted: &Accepted,
        ttl_ms: u64,
    ) -> Result<()> {
        self.backend
            .idem_put_many(from, &[(cmid, accepted.clone())], ttl_ms)
            .await
    }

    /// One key of the idempotency fast path (see `idem_get_many`).
    pub async fn idem_get(&self, from: UserId, cmid: ClientMsgId) -> Result<Option<Accepted>> {
        Ok(self
            .backend
            .idem_get_many(from, &[cmid])
            .await?
            .pop()
            .flatten())
    }
}

impl std::ops::Deref for State {
    type Target = dyn StateBackend;
    fn deref(&self) -> &Self::Target {
        &*self.backend
    }
}
