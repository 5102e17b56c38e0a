//! The durable store's handle and the records it returns; the per-domain
//! traits behind it are in `backend`.

use crate::backend::{AccountStore, FeedStore, GroupStore, MessageStore, RetentionStore};
use crate::error::{Result, StoreError};
use magpie_core::{Accepted, ConvId, DeviceId, Seq, UserId};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    pub username: String,
    pub password_hash: String,
    pub created_at: i64,
}

/// What using a refresh token found (`AccountStore::use_refresh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// Not used before: it is now, and a new pair may be issued.
    Fresh {
        user: UserId,
        device: DeviceId,
        expires_at: i64,
    },
    /// Used before: a copy is being replayed (stolen, or a client bug). The
    /// whole family — every token issued from the same login — is revoked.
    Reused { user: UserId, device: DeviceId },
    /// Never issued, revoked, or gone.
    Unknown,
}

/// One conversation as seen by one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvSummary {
    pub conv: ConvId,
    /// The other party of a direct conversation.
    pub peer: UserId,
    /// The newest sequence in the conversation.
    pub last_seq: Seq,
    /// How far this member has read.
    pub read_seq: Seq,
    /// Messages received (not sent) by this member with seq > read_seq.
    pub unread: i64,
    /// Of those, the group messages that mention this member (by name or
    /// `@all`) and are not recalled: exact, like `unread`.
    pub mentions: i64,
    /// This member muted the conversation's notifications.
    pub muted: bool,
}

/// Which page of a conversation's timeline (`MessageStore::page`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// Sequences above this one, ascending.
    After(Seq),
    /// Sequences below this one, newest first.
    Before(Seq),
}

/// Who has read one message of a group, a page of them, and both counts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadBy {
    /// The page asked for (readers, or members who have not read), by user id.
    pub users: Vec<UserId>,
    /// Members who could see the message and have read it.
    pub read: i64,
    /// Members who could see the message and have not read it.
    pub unread: i64,
}

/// One message's outcome in an accepted batch: accepted (or the original
/// of a duplicate), or refused without writing anything.
pub type Outcome = std::result::Result<Accepted, StoreError>;

/// What retention removes (`RetentionStore::retire`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retire {
    /// Messages whose expiry is <= `now`, at most `limit`.
    Expired { now: i64, limit: usize },
    /// The `none`-level messages among `seqs` of `conv` addressed to `to`.
    Delivered {
        to: UserId,
        conv: ConvId,
        seqs: Vec<Seq>,
    },
    /// `offline`- and `none`-level messages of `conv` addressed to `to`
    /// with seq <= `up_to`.
    Read {
        to: UserId,
        conv: ConvId,
        up_to: Seq,
    },
}

/// A message removed by retention, reported so caches can be trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionHit {
    pub conv: ConvId,
    pub seq: Seq,
    pub to: UserId,
}

/// A user's follow counts, kept beside the follow edges in the same
/// transaction as each edge's insert or delete, so they are exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FollowCounts {
    pub followers: i64,
    pub following: i64,
}

/// What storing a post did: the post as stored (the original one for a
/// retry, `duplicate = true`, whatever body the retry carried).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostOutcome {
    pub post: magpie_core::Post,
    pub duplicate: bool,
}

/// Cheap, cloneable handle to the configured store: one trait object per
/// domain (usually the same backend object behind all four).
#[derive(Clone)]
pub struct Store {
    accounts: Arc<dyn AccountStore>,
    messages: Arc<dyn MessageStore>,
    groups: Arc<dyn GroupStore>,
    retention: Arc<dyn RetentionStore>,
    feeds: Arc<dyn FeedStore>,
}

impl Store {
    /// A handle on one backend that serves every domain.
    pub fn new<B>(backend: B) -> Self
    where
        B: AccountStore + MessageStore + GroupStore + RetentionStore + FeedStore,
    {
        let b = Arc::new(backend);
        Store {
            accounts: b.clone(),
            messages: b.clone(),
            groups: b.clone(),
            retention: b.clone(),
            feeds: b,
        }
    }

    /// Users, refresh tokens and settings.
    pub fn accounts(&self) -> &dyn AccountStore {
        &*self.accounts
    }

    /// Accepting sends, timelines, conversation summaries, read positions.
    pub fn messages(&self) -> &dyn MessageStore {
        &*self.messages
    }

    /// Groups and members.
    pub fn groups(&self) -> &dyn GroupStore {
        &*self.groups
    }

    /// Removal of messages whose time is up.
    pub fn retention(&self) -> &dyn RetentionStore {
        &*self.retention
    }

    /// Follow edges, blocks and the authors' outboxes of posts.
    pub fn feeds(&self) -> &dyn FeedStore {
        &*self.feeds
    }

    /// Opens the backend a URL names, with default options.
    pub async fn open(url: &str) -> Result<Store> {
        Store::open_with(url, &StoreOptions::default()).await
    }

    /// Opens the backend a URL names: `sqlite:///path/to/file.sqlite3` or
    /// `sqlite::memory:`; with the `sql` feature also `postgres://…` and
    /// `mysql://…` (schema migrated at open), or several of those separated
    /// by whitespace: the shard map, shard `k` being the `k`-th URL (see
    /// `shards`; the list's order and length are fixed once its databases
    /// are first opened).
    pub async fn open_with(url: &str, opts: &StoreOptions) -> Result<Store> {
        let urls: Vec<&str> = url.split_whitespace().collect();
        if urls.len() > 1 {
            return Store::open_shards(&urls, opts).await;
        }
        let url = url.trim();
        let ttl = opts.offline_ttl_ms;
        if let Some(path) = url.strip_prefix("sqlite://") {
            let store = crate::sqlite::SqliteStore::open(path).await?;
            return Ok(Store::new(store.with_offline_ttl_ms(ttl)));
        }
        #[cfg(feature = "sql")]
        if is_sql(url) {
            let store = crate::sql::SqlStore::open(url, &opts.sql(crate::Place::ALONE)).await?;
            return Ok(Store::new(store));
        }
        if url == "sqlite::memory:" {
            let store = crate::sqlite::SqliteStore::open_in_memory().await?;
            return Ok(Store::new(store.with_offline_ttl_ms(ttl)));
        }
        Err(StoreError::Config(format!(
            "unknown store url {url:?}: expected sqlite://PATH, postgres://… or mysql://… (the latter two need the `sql` feature)"
        )))
    }

    /// One SQL store per URL, each told its place, behind a `ShardedStore`.
    #[cfg(feature = "sql")]
    async fn open_shards(urls: &[&str], opts: &StoreOptions) -> Result<Store> {
        let shards =
            u32::try_from(urls.len()).map_err(|_| StoreError::Config("too many shards".into()))?;
        let mut opened = Vec::with_capacity(urls.len());
        for (shard, url) in (0..shards).zip(urls) {
            if !is_sql(url) {
                return Err(StoreError::Config(format!(
                    "shard {shard} is {url:?}: only postgres://… and mysql://… stores can be shards"
                )));
            }
            let place = crate::Place { shards, shard };
            let store = crate::sql::SqlStore::open(url, &opts.sql(place)).await?;
            opened.push(Store::new(store));
        }
        Ok(Store::new(crate::ShardedStore::new(opened)))
    }

    #[cfg(not(feature = "sql"))]
    async fn open_shards(_: &[&str], _: &StoreOptions) -> Result<Store> {
        Err(StoreError::Config(
            "a store of several shards needs the `sql` feature".into(),
        ))
    }
}

#[cfg(feature = "sql")]
fn is_sql(url: &str) -> bool {
    url.starts_with("postgres") || url.starts_with("mysql://")
}

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// How long `none` and `offline` messages are kept at most, ms.
    pub offline_ttl_ms: i64,
    /// Hash partitions of the message tables (PostgreSQL, MySQL; fixed when
    /// the schema is first created).
    pub partitions: u32,
    /// Pooled connections per SQL database, on each node.
    pub pool_size: u32,
}

impl StoreOptions {
    #[cfg(feature = "sql")]
    fn sql(&self, place: crate::Place) -> crate::sql::SqlOptions {
        crate::sql::SqlOptions {
            offline_ttl_ms: self.offline_ttl_ms,
            partitions: self.partitions,
            pool_size: self.pool_size,
            place,
        }
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            offline_ttl_ms: crate::sqlite::DEFAULT_OFFLINE_TTL_MS,
            partitions: 8,
            pool_size: 5,
        }
    }
}
