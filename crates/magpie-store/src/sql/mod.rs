//! The PostgreSQL and MySQL/MariaDB backends of
//! [`Store`](crate::Store): the durable store of a cluster,
//! shared by every node.
//!
//! Both behave exactly like the SQLite backend (the conformance suite holds
//! them to it); they differ from it in being shared by concurrent writers, so
//! what SQLite gets from its single writer thread is done here with row locks:
//!
//! - a conversation's next sequence is allocated by an upsert on its
//!   `conversations` row, whose lock is held until COMMIT, so sends to one
//!   conversation serialize and sequences stay contiguous;
//! - the unique key (from_uid, cmid) is the idempotency truth: a racing
//!   duplicate fails on it, its transaction is retried and then finds the
//!   original;
//! - deadlocks and serialization failures are retried a few times.
//!
//! The message index `im_user_msg_box` and the bodies `im_msg_content` are
//! hash-partitioned by owner (see `schema`). One store serves both engines:
//! `dialect` words what differs (placeholders, upserts, locks, `RETURNING`),
//! `db` and `pool` put both drivers behind one small interface, `queries` and `batch`
//! and `group_queries`
//! hold the SQL text, `migrate` creates the schema; `store` (accounts,
//! retention), `messages` and `accept`, `groups`, `group_reads` and
//! `group_store` implement the domains once.

mod accept;
mod batch;
mod db;
mod dialect;
mod feed_queries;
mod feeds;
mod group_queries;
mod group_reads;
mod group_store;
mod groups;
mod messages;
mod migrate;
mod mutes;
mod pool;
mod queries;
mod schema;
mod shard;
mod store;

pub use schema::SCHEMA_VERSION;
pub use store::{SqlOptions, SqlStore};

use crate::error::{Result, StoreError};

use magpie_core::{ClientMsgId, ConvId, Message, Persistence, ServerMsgId, UserId};
use std::future::Future;
use std::time::Duration;

/// Hash partitions of the message tables when the caller names none.
pub const DEFAULT_PARTITIONS: u32 = 8;

/// Connections per database unless configured (`store_pool_size`). Small on
/// purpose: every node holds one pool per database, and a transaction here
/// is short (no waiting on anything but row locks).
pub const POOL_SIZE: u32 = 5;

/// How long a caller waits for a pooled connection before `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts of one transaction that keeps hitting deadlocks or races.
const MAX_ATTEMPTS: u32 = 8;

/// Creates or upgrades the schema of the database `url` names
/// (`postgres://…` or `mysql://…`) without opening a store: `magpie migrate`.
pub async fn migrate(url: &str) -> Result<()> {
    migrate::migrate_with(url, DEFAULT_PARTITIONS, crate::shards::Place::ALONE).await
}

/// A `LIMIT` argument; `usize::MAX` means "no limit" and saturates.
pub(crate) fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Stored data that does not decode travels as `sqlx::Error::Decode` inside
/// a transaction and becomes `StoreError::Corrupt` at the boundary.
fn bad(what: &str, e: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::Decode(format!("{what}: {e}").into())
}

pub(crate) fn conv_of(s: &str) -> std::result::Result<ConvId, sqlx::Error> {
    ConvId::parse(s).map_err(|e| bad("conv", e))
}

/// The columns of `queries::MESSAGE_COLUMNS`, in order.
pub(crate) type MessageRow = (
    i64,
    String,
    i64,
    i64,
    i64,
    String,
    String,
    String,
    i64,
    i16,
    Option<String>,
    i64,
);

pub(crate) fn message_of(r: MessageRow) -> std::result::Result<Message, sqlx::Error> {
    let (
        server_id,
        conv,
        seq,
        from,
        to,
        cmid,
        body,
        persistence,
        sent_at,
        searchable,
        meta,
        revised,
    ) = r;
    Ok(Message {
        trace: None,
        server_id: ServerMsgId(server_id),
        conv: conv_of(&conv)?,
        seq,
        from: UserId(from),
        to: UserId(to),
        cmid: ClientMsgId::try_from(cmid).map_err(|e| bad("cmid", e))?,
        body,
        persistence: persistence
            .parse::<Persistence>()
            .map_err(|e| bad("persistence", e))?,
        sent_at,
        search: searchable != 0,
        meta: magpie_core::MessageMeta::from_columns(meta.as_deref(), revised),
    })
}

pub(crate) fn device_of(s: String) -> std::result::Result<magpie_core::DeviceId, sqlx::Error> {
    magpie_core::DeviceId::new(s).map_err(|e| bad("device", e))
}

fn is_unique(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// Errors after which the whole transaction can simply run again: it was
/// rolled back by the server and nothing of it is visible.
fn is_transient(e: &sqlx::Error) -> bool {
    let Some(d) = e.as_database_error() else {
        return false;
    };
    // 40001: serialization failure / MySQL deadlock (1213); 40P01: PostgreSQL deadlock.
    if matches!(d.code().as_deref(), Some("40001" | "40P01")) {
        return true;
    }
    // MySQL 1205 (lock wait timeout) has SQLSTATE HY000 and only its number tells.
    d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .is_some_and(|m| matches!(m.number(), 1205 | 1213))
}

/// Maps a driver error to what the caller must do. A unique violation is a
/// `Conflict` (like SQLite's constraint errors); undecodable data is `Corrupt`.
pub(crate) fn store_err(e: sqlx::Error) -> StoreError {
    if is_unique(&e) {
        return StoreError::Conflict(e.to_string());
    }
    match e {
        sqlx::Error::Configuration(_) | sqlx::Error::Tls(_) => StoreError::Config(e.to_string()),
        sqlx::Error::Decode(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(e.to_string()),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Which failures make `retrying` run the operation again.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Deadlocks, serialization failures and lock wait timeouts.
    Transient,
    /// Those, and unique violations: a racing insert of the same key lost,
    /// and the next attempt reads the winner's row.
    TransientAndUnique,
}

/// Runs `op` (one whole transaction) until it succeeds, fails for good, or
/// `MAX_ATTEMPTS` are used, sleeping a jittered, growing pause between tries
/// so the contenders of a deadlock do not collide again in lockstep.
pub(crate) async fn retrying<T, F, Fut>(what: &str, retry: Retry, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, sqlx::Error>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e)
                if attempt < MAX_ATTEMPTS
                    && (is_transient(&e)
                        || (retry == Retry::TransientAndUnique && is_unique(&e))) =>
            {
                tracing::debug!(error = %e, attempt, what, "retrying store transaction");
                let pause = rand::random_range(1..=5u64) * u64::from(attempt);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                attempt += 1;
            }
            Err(e) => return Err(store_err(e)),
        }
    }
}
