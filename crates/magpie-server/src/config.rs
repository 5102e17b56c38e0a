//! Server configuration. Every key is documented here and in docs/config.md;
//! the binary layers defaults < TOML file < `MAGPIE_*` environment < flags.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This node's name, used in routes and presence events.
    pub node: String,
    /// Node number (0..1023) embedded in server message ids; unique per cluster.
    pub node_num: u16,
    /// Directory for the embedded backends (SQLite store, bus log, JWT secret).
    pub data_dir: PathBuf,
    /// Durable store URL; empty = `sqlite://{data_dir}/magpie.sqlite3`.
    /// Several `postgres://…` or `mysql://…` URLs separated by spaces are
    /// the shard map: conversations spread over those databases, shard `k`
    /// being the `k`-th (order and length fixed at first open;
    /// docs/deploy.md, "SQL shards").
    pub store: String,
    /// Hash partitions of the message tables on PostgreSQL/MySQL (used when
    /// the schema is first created).
    pub store_partitions: u32,
    /// Pooled connections per SQL database on this node.
    pub store_pool_size: u32,
    /// Fast state URL; `mem://` keeps it in process.
    pub state: String,
    /// Bus URL; empty = `embedded://{data_dir}/bus.sqlite3`.
    pub bus: String,
    /// Relay URL (best-effort pushes between nodes and broadcasts); empty =
    /// NATS core on the bus's server when the bus is NATS (subjects under
    /// `{stream}_relay`), else in process.
    pub relay: String,
    pub http: HttpConfig,
    pub tcp: TcpConfig,
    pub auth: AuthConfig,
    pub session: SessionConfig,
    pub limits: LimitsConfig,
    pub retention: RetentionConfig,
    pub groups: GroupsConfig,
    pub feeds: FeedsConfig,
    pub search: SearchConfig,
    pub rooms: RoomsConfig,
    pub presence: PresenceConfig,
    pub internal: InternalConfig,
    pub workers: WorkersConfig,
    pub cluster: ClusterConfig,
    /// Limits, login guard, bans, detector rules, access logs (docs/edge.md).
    pub guard: crate::guard::GuardConfig,
    pub chain: ChainConfig,
    /// Message traces: hop buffer and sampling (docs/observability.md).
    pub trace: crate::services::TraceConfig,
    /// Typing indicators (docs/protocol.md, "Typing").
    pub typing: crate::services::TypingConfig,
    /// Edits and recalls (docs/protocol.md §5.10).
    pub messages: crate::services::MessagesConfig,
    /// The offline push webhook (docs/protocol.md, "Offline push webhook").
    pub push: crate::workers::PushConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Roles this node runs: any of "edge" (HTTP API), "conn" (WebSocket and
    /// TCP), "workers" (bus consumers), "search" (keeps a search index and
    /// answers queries: docs/search.md); the logic runs wherever edge or conn does.
    pub roles: Vec<String>,
    /// How often the node refreshes its registry record, ms.
    pub heartbeat_ms: u64,
    /// A record not refreshed for this long means the node is gone, ms.
    pub node_ttl_ms: u64,
    /// How often the node reads back the routes of all its connections and
    /// repairs what differs, ms (`services/delivery/audit.rs`).
    pub route_audit_ms: u64,
    /// How often the sweeper looks for dead nodes, ms (one sweeper at a time
    /// across the cluster, by a lease).
    pub sweep_interval_ms: u64,
    /// This node runs a canary (gray) release.
    pub canary: bool,
    /// Percent of users (by user id) that `connect` sends to canary nodes.
    pub canary_percent: u32,
    /// Version string published in the registry.
    pub version: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            roles: ["edge", "conn", "workers", "search"]
                .map(String::from)
                .to_vec(),
            heartbeat_ms: 500,
            node_ttl_ms: 6_000,
            route_audit_ms: 30_000,
            sweep_interval_ms: 5_000,
            canary: false,
            canary_percent: 0,
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

impl ClusterConfig {
    pub fn has(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the HTTP API and WebSocket endpoint.
    pub listen: String,
    /// Base URL clients use to reach this node (for the WebSocket address
    /// `connect` returns); empty = derived from the bound address.
    pub public_url: String,
    /// Origins allowed to open a WebSocket; `*` allows any. A request without
    /// an `Origin` header (not a browser) is always allowed.
    pub allowed_origins: Vec<String>,
    /// A request's headers (and a kept-alive connection's next request)
    /// must arrive within this, or the connection is closed.
    pub header_timeout_ms: u64,
    /// A request must be answered within this once its headers have
    /// arrived — its body read and handled — or it is answered 408
    /// `request_timeout` (a body that never comes ends here).
    pub request_timeout_ms: u64,
    /// Serve the web chat client at `/` (nodes with the `edge` role;
    /// docs/web.md).
    pub web_client: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpConfig {
    /// Address of the TCP listener; empty disables TCP.
    pub listen: String,
    /// `host:port` clients use to reach it; empty = the bound address.
    pub public_addr: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HMAC secret for access tokens; empty = generated once into `{data_dir}/jwt.secret`.
    pub jwt_secret: String,
    /// Access token lifetime, seconds.
    pub access_ttl_secs: u64,
    /// Refresh token lifetime, seconds.
    pub refresh_ttl_secs: u64,
    /// Connection ticket lifetime, seconds.
    pub ticket_ttl_secs: u64,
    /// Argon2id memory cost in KiB (OWASP minimum 19456).
    pub argon2_m_kib: u32,
    /// Argon2id iterations.
    pub argon2_t: u32,
    /// Password hashes (logins, registrations) run at once; each holds
    /// `argon2_m_kib` of memory while it runs, the others wait. 0 = the
    /// number of CPU cores.
    pub hash_concurrency: usize,
    /// Password hashes that may wait for one of those; beyond them a login
    /// or registration is answered `busy` (503, `Retry-After: 1`) at once.
    pub hash_queue: usize,
}

impl AuthConfig {
    /// `hash_concurrency`, with 0 resolved to the cores.
    pub fn hash_concurrency(&self) -> usize {
        match self.hash_concurrency {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// The server sends a `ping` this often.
    pub heartbeat_ms: u64,
    /// A connection that sends nothing for this long is closed (`idle_timeout`).
    pub idle_timeout_ms: u64,
    /// Time allowed for the `hello` frame after connecting.
    pub hello_timeout_ms: u64,
    /// Pushed but unacknowledged messages a connection may have; over it the
    /// connection is closed with `slow_consumer`.
    pub window: usize,
    /// Frames queued for one connection before it counts as slow.
    pub outbound_queue: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest frame (WebSocket message, TCP frame, HTTP body), bytes.
    pub max_frame_bytes: usize,
    /// How long a client message id answers from the fast path, seconds
    /// (the durable key answers after that).
    pub idempotency_ttl_secs: u64,
    /// Most messages one sync or history page returns per conversation.
    pub max_page: usize,
    /// Open client connections (HTTP, WebSocket and TCP together) the node
    /// serves at once; beyond it new ones are answered `busy`. 0: the
    /// process's open-file limit less 256.
    pub max_connections: usize,
    /// User ids each node remembers as existing (the send path's recipient
    /// check), most recently used kept; beyond it the store is asked.
    pub known_users: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// How long `none` and `offline` messages wait for delivery/reading, seconds.
    pub offline_ttl_secs: u64,
    /// How often expired messages are removed, seconds.
    pub sweep_interval_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupsConfig {
    /// Users one request may add (create or add members).
    pub max_batch: usize,
    /// Above this many members a group is a super group: its messages are
    /// broadcast to the connection nodes with members online instead of
    /// pushed per member route (no member read, no route lookup: the cost
    /// of a message stops growing with the group).
    pub super_threshold: i64,
    /// Small groups whose member lists a node keeps in memory (0: none,
    /// every message reads its group's list). A cached list is used only
    /// when it is at least as new as the membership the message was
    /// accepted under, so removal stays exact (docs/protocol.md, groups).
    pub member_cache: usize,
    /// Membership changes (joined, left, removed, role, renamed, owner) are
    /// announced in the group's conversation as messages of the system
    /// user (docs/protocol.md §3.14, "Member events").
    pub member_events: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedsConfig {
    /// Post keys a follower's inbox keeps (the newest); older pages are
    /// pulled from the authors' outboxes (docs/feeds.md).
    pub inbox_cap: usize,
    /// A follower who has not read its feed for this many days is inactive:
    /// its inbox expires, pushes skip it, its next read pulls and fills.
    pub active_days: u64,
    /// Authors with more followers than this are big (flagged at their next
    /// post, for good): their posts are pushed only to the followers that
    /// read within `active_days`; the others pull them at read time.
    pub big_threshold: i64,
    /// Longest post, in characters.
    pub max_post_chars: usize,
    /// Followers read and pushed to per step of a fan-out (one store page
    /// and one state round trip each).
    pub fanout_batch: usize,
    /// Followees a home-feed read takes into account (the oldest follows
    /// past it are left out of the feed).
    pub max_following: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// Where a node with the `search` role keeps its index; empty =
    /// `{data_dir}/search`. A missing or deleted directory is rebuilt from
    /// the store at start (docs/search.md).
    pub dir: String,
    /// Results per page when the query does not say.
    pub page: usize,
    /// Most results per page a query may ask for.
    pub max_page: usize,
    /// How often documents of expired (`days:N`) messages are deleted from
    /// the index, ms (queries never return them in between).
    pub sweep_ms: u64,
    /// Messages read from the store per step of a rebuild.
    pub rebuild_batch: usize,
    /// How long an indexed message may wait for the index commit that
    /// makes it durable and searchable, ms (one commit for every batch in
    /// between; the bus events are acknowledged after it).
    pub commit_ms: u64,
    /// How CJK text is cut into tokens: "bigram" (no dictionary; any
    /// substring is found) or "jieba" (Chinese words; needs the `jieba`
    /// feature). Changing it rebuilds the index at the next start.
    pub tokenizer: String,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            dir: String::new(),
            page: 20,
            max_page: 100,
            sweep_ms: 60_000,
            rebuild_batch: 2_000,
            commit_ms: 1_000,
            tokenizer: "bigram".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomsConfig {
    /// Messages a second a live room carries to its audience; beyond it
    /// ordinary messages are shed (VIP ones never are).
    pub max_rate: u32,
    /// Recent messages each node keeps per room for new joiners.
    pub recent: usize,
    /// VIP users: their messages, and messages to them, are never shed.
    pub vip: Vec<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceConfig {
    /// Who is told of a device's presence changes (docs/protocol.md §5.7).
    pub fan_out: FanOut,
    /// How long an offline change waits: a device back within it shows no
    /// change at all (0 = announce at once).
    pub debounce_ms: u64,
    /// Contacts mode: users whose peer lists a node keeps (0: none).
    pub peer_cache: usize,
    /// Contacts mode: how long a user's peer list is used before it is
    /// read again (0: read on every change).
    pub peer_cache_ms: u64,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            fan_out: FanOut::default(),
            debounce_ms: 1000,
            peer_cache: 100_000,
            peer_cache_ms: 30_000,
        }
    }
}

/// Who gets a user's presence changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FanOut {
    /// Every device of every direct contact, and the connections watching
    /// the user: one conversation-list read per change.
    #[default]
    Contacts,
    /// Only the connections watching the user (`presence_watch`): one state
    /// read per change, whatever the user's number of conversations.
    Watchers,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InternalConfig {
    /// Address of the internal API's own listener, never the public one, so
    /// the service-key routes cannot be exposed with `http.listen`; loopback
    /// by default, empty disables the internal API.
    pub listen: String,
    /// Bearer credential for `/internal/v1/*`; empty disables the internal
    /// API (nothing is bound on `listen`).
    pub service_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkersConfig {
    /// Events a worker takes per fetch.
    pub batch: usize,
    /// Redeliver an event not acknowledged within this time, ms.
    pub ack_wait_ms: u64,
    /// Attempts before an event is parked on the dead-letter topic.
    pub max_attempts: u32,
}

/// Client ordering chains (docs/protocol.md, "Ordering chain").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChainConfig {
    /// How long a chained send whose predecessor has not been accepted yet
    /// is held, waiting for it, ms; then the gap is handled per `on_gap`.
    pub wait_ms: u64,
    /// How often a held send re-reads the chain from the state, ms (an
    /// advance on this node wakes it at once; this catches other nodes').
    pub poll_ms: u64,
    /// When the wait runs out: "skip" accepts the message and moves the
    /// chain past the gap; "reject" refuses it with `chain_gap`.
    pub on_gap: OnGap,
    /// Gaps of one device within `gap_window_ms` before its chained sends
    /// are answered `chain_slow_down`; beyond twice as many they are refused
    /// for `penalty_ms` (0: no limit).
    pub gap_limit: u32,
    /// The window `gap_limit` counts in, ms.
    pub gap_window_ms: u64,
    /// How long a device beyond twice `gap_limit` has its chained sends
    /// refused, ms.
    pub penalty_ms: u64,
    /// How long a device's chain is kept in the state after its last use, s.
    pub ttl_secs: u64,
}

/// What a chained send does when its predecessor never came.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnGap {
    /// Accept it and move the chain to its `next` (the gap is skipped).
    #[default]
    Skip,
    /// Refuse it with `chain_gap` naming the expected id; nothing stored.
    Reject,
}

impl Default for ChainConfig {
    fn default() -> Self {
        ChainConfig {
            wait_ms: 2_000,
            poll_ms: 25,
            on_gap: OnGap::Skip,
            gap_limit: 10,
            gap_window_ms: 60_000,
            penalty_ms: 30_000,
            ttl_secs: 30 * 86_400,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node: "node-1".into(),
            node_num: 1,
            data_dir: PathBuf::from("magpie-data"),
            store: String::new(),
            store_partitions: 8,
            store_pool_size: 5,
            state: "mem://".into(),
            bus: String::new(),
            relay: String::new(),
            http: HttpConfig::default(),
            tcp: TcpConfig::default(),
            auth: AuthConfig::default(),
            session: SessionConfig::default(),
            limits: LimitsConfig::default(),
            retention: RetentionConfig::default(),
            groups: GroupsConfig::default(),
            feeds: FeedsConfig::default(),
            search: SearchConfig::default(),
            rooms: RoomsConfig::default(),
            presence: PresenceConfig::default(),
            internal: InternalConfig::default(),
            workers: WorkersConfig::default(),
            cluster: ClusterConfig::default(),
            guard: crate::guard::GuardConfig::default(),
            chain: ChainConfig::default(),
            trace: Default::default(),
            typing: Default::default(),
            messages: Default::default(),
            push: Default::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
            public_url: String::new(),
            allowed_origins: Vec::new(),
            header_timeout_ms: 60_000,
            request_timeout_ms: 30_000,
            web_client: true,
        }
    }
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            listen: "127.0.0.1:8081".into(),
            public_addr: String::new(),
        }
    }
}

impl Default for InternalConfig {
    fn default() -> Self {
        InternalConfig {
            listen: "127.0.0.1:8082".into(),
            service_key: String::new(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: String::new(),
            access_ttl_secs: 900,
            refresh_ttl_secs: 30 * 86_400,
            ticket_ttl_secs: 30,
            argon2_m_kib: 19_456,
            argon2_t: 2,
            hash_concurrency: 0,
            hash_queue: 64,
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            heartbeat_ms: 25_000,
            idle_timeout_ms: 75_000,
            hello_timeout_ms: 10_000,
            window: 512,
            outbound_queue: 1024,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_frame_bytes: magpie_proto::DEFAULT_MAX_FRAME,
            idempotency_ttl_secs: 1800,
            max_page: 200,
            max_connections: 0,
            known_users: 1_000_000,
        }
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            offline_ttl_secs: 7 * 86_400,
            sweep_interval_secs: 60,
        }
    }
}

impl Default for GroupsConfig {
    fn default() -> Self {
        GroupsConfig {
            max_batch: 1000,
            super_threshold: 50,
            member_cache: 10_000,
            member_events: true,
        }
    }
}

impl Default for FeedsConfig {
    fn default() -> Self {
        FeedsConfig {
            inbox_cap: 800,
            active_days: 7,
            big_threshold: 10_000,
            max_post_chars: 5_000,
            fanout_batch: 1_000,
            max_following: 5_000,
        }
    }
}

impl Default for RoomsConfig {
    fn default() -> Self {
        RoomsConfig {
            max_rate: 50,
            recent: 20,
            vip: Vec::new(),
        }
    }
}

impl Default for WorkersConfig {
    fn default() -> Self {
        WorkersConfig {
            batch: 256,
            ack_wait_ms: 30_000,
            max_attempts: 5,
        }
    }
}

impl Config {
    /// How the store is opened (`magpie serve` and `magpie migrate`).
    pub fn store_options(&self) -> magpie_store::StoreOptions {
        magpie_store::StoreOptions {
            offline_ttl_ms: (self.retention.offline_ttl_secs * 1000) as i64,
            partitions: self.store_partitions,
            pool_size: self.store_pool_size,
        }
    }

    pub fn store_url(&self) -> String {
        if self.store.is_empty() {
            format!(
                "sqlite://{}",
                self.data_dir.join("magpie.sqlite3").display()
            )
        } else {
            self.store.clone()
        }
    }

    /// Where this node's search index lives (`search.dir`).
    pub fn search_dir(&self) -> PathBuf {
        if self.search.dir.is_empty() {
            self.data_dir.join("search")
        } else {
            PathBuf::from(&self.search.dir)
        }
    }

    pub fn bus_url(&self) -> String {
        if self.bus.is_empty() {
            format!("embedded://{}", self.data_dir.join("bus.sqlite3").display())
        } else {
            self.bus.clone()
        }
    }

    /// The relay's URL: `relay`, else derived from the bus (see `relay`).
    pub fn relay_url(&self) -> String {
        if !self.relay.is_empty() {
            return self.relay.clone();
        }
        let bus = self.bus_url();
        match bus.strip_prefix("nats://") {
            Some(rest) => {
                let server = rest.split(['/', '?']).next().unwrap_or(rest);
                let stream = rest
                    .split_once('?')
                    .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("stream=")))
                    .unwrap_or("magpie");
                format!("nats://{server}/?prefix={stream}_relay")
            }
            // In process: a name of its own, so nodes sharing a process
            // (tests) do not share subjects.
            None => {
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                format!("mem://node-{}-{n}", std::process::id())
            }
        }
    }
}
