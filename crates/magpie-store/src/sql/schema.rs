//! The schema of both dialects: the SQLite layout with BIGINT ids and
//! epoch-ms times, plus hash partitioning of the two message tables.
//!
//! Partitioning rule of both engines: every unique key of a partitioned table
//! must contain the partition key. So `im_user_msg_box` is partitioned by
//! `owner_uid` (primary key (owner_uid, conv, seq), all of one user's box in
//! one partition) and `im_msg_content` by `from_uid` (primary key
//! (from_uid, server_id), unique (from_uid, cmid): the idempotency key stays
//! a real unique index). SQLite's UNIQUE (conv, seq) on the bodies cannot
//! exist here; per-conversation sequence uniqueness is instead guaranteed by
//! allocating sequences under the `conversations` row lock (see `accept`),
//! and (conv, seq) is a plain index for the retention deletes.
//!
//! The tables come from the versioned migrations (`migrations/postgres`,
//! `migrations/mysql`, run by `sql::migrate`); the partitions, whose count
//! is a setting, from `partitions` below. The `schema_version` row says
//! which layout a database has and with how many partitions it was created
//! (fixed from then on); it predates the migrations and is kept, so a
//! database and the builds before them still agree on it.

use super::dialect::Dialect;
use crate::error::{Result, StoreError};

/// Bumped whenever the layout changes shape; a database with a newer
/// version is refused rather than half-understood. 2: groups (`im_group`,
/// `im_group_member`), the layout of migration 0001; 3: `member_version`
/// (migration 0003); 4: refresh-token families (migration 0004); 5: follow
/// edges, blocks and posts (migration 0005); 6: each message's search flag
/// (migration 0006).
pub const SCHEMA_VERSION: i64 = 8;

/// The partition count is an integer the DDL is built from; cap it so a typo
/// cannot create thousands of tables.
const MAX_PARTITIONS: u32 = 1024;

pub(crate) fn check_partitions(n: u32) -> Result<u32> {
    if (1..=MAX_PARTITIONS).contains(&n) {
        Ok(n)
    } else {
        Err(StoreError::Config(format!(
            "partitions must be 1..={MAX_PARTITIONS}, got {n}"
        )))
    }
}

pub(crate) const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    id         INT    NOT NULL PRIMARY KEY,
    version    BIGINT NOT NULL,
    partitions BIGINT NOT NULL
)";
pub(crate) const GET_VERSION: &str = "SELECT version, partitions FROM schema_version WHERE id = 1";

/// Refuses a database written by a newer build; returns the partition count
/// to build the DDL with: the stored one for an existing database (changing
/// it would need a data migration), else the requested one.
pub(crate) fn settle(stored: Option<(i64, i64)>, requested: u32) -> Result<u32> {
    let Some((version, partitions)) = stored else {
        return check_partitions(requested);
    };
    if version > SCHEMA_VERSION {
        return Err(StoreError::Config(format!(
            "database schema version {version} is newer than this build ({SCHEMA_VERSION})"
        )));
    }
    let partitions = u32::try_from(partitions)
        .map_err(|_| StoreError::Corrupt(format!("schema_version.partitions = {partitions}")))?;
    if partitions != requested {
        tracing::warn!(
            partitions,
            requested,
            "message tables keep the partition count they were created with"
        );
    }
    check_partitions(partitions)
}

/// The partitions of the two message tables, after the migrations created
/// them (`migrations/*/0001_baseline.sql`). PostgreSQL: one `PARTITION OF`
/// table per remainder, idempotent. MySQL: a new database's tables are
/// repartitioned (`new`: no `schema_version` row yet; cheap while empty).
pub(crate) fn partitions(d: Dialect, n: u32, new: bool) -> Vec<String> {
    let tables = [
        ("im_msg_content", "from_uid"),
        ("im_user_msg_box", "owner_uid"),
    ];
    match d {
        Dialect::Postgres => tables
            .iter()
            .flat_map(|(table, _)| {
                (0..n).map(move |i| {
                    format!(
                        "CREATE TABLE IF NOT EXISTS {table}_p{i} PARTITION OF {table}
                         FOR VALUES WITH (MODULUS {n}, REMAINDER {i})"
                    )
                })
            })
            .collect(),
        Dialect::MySql if new => tables
            .iter()
            .map(|(table, key)| {
                format!("ALTER TABLE {table} PARTITION BY HASH ({key}) PARTITIONS {n}")
            })
            .collect(),
        Dialect::MySql => Vec::new(),
    }
}
