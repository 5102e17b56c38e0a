//! Creating and upgrading the schema of a SQL store, once for both engines.
//!
//! Under a migration lock (so nodes starting together do not race on the
//! DDL): read the layout marker (`schema_version`, refusing a newer layout),
//! run the versioned migrations of the engine (`migrations/postgres`,
//! `migrations/mysql`, embedded at build time and applied by sqlx's
//! migrator), create the partitions, record the marker and the database's
//! place in the shard map (`shard`). Migration 0001 is
//! all `IF NOT EXISTS`: a database created before migrations were versioned
//! adopts it without losing anything.

use super::db::{Exec, Sqlx, args};
use super::dialect::Dialect;
use super::pool::Pool;
use super::{schema, store_err};
use crate::error::{Result, StoreError};
use crate::shards::Place;
use sqlx::SqlSafeStr;
use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};

/// One engine's migrations: (version, description, SQL), in order.
type Steps = &'static [(i64, &'static str, &'static str)];

const POSTGRES: Steps = &[
    (
        1,
        "baseline",
        include_str!("../../migrations/postgres/0001_baseline.sql"),
    ),
    (
        2,
        "shard",
        include_str!("../../migrations/postgres/0002_shard.sql"),
    ),
    (
        3,
        "member_version",
        include_str!("../../migrations/postgres/0003_member_version.sql"),
    ),
    (
        4,
        "refresh_family",
        include_str!("../../migrations/postgres/0004_refresh_family.sql"),
    ),
    (
        5,
        "feeds",
        include_str!("../../migrations/postgres/0005_feeds.sql"),
    ),
    (
        6,
        "search",
        include_str!("../../migrations/postgres/0006_search.sql"),
    ),
    (
        7,
        "revisions",
        include_str!("../../migrations/postgres/0007_revisions.sql"),
    ),
    (
        8,
        "mentions",
        include_str!("../../migrations/postgres/0008_mentions.sql"),
    ),
];

const MYSQL: Steps = &[
    (
        1,
        "baseline",
        include_str!("../../migrations/mysql/0001_baseline.sql"),
    ),
    (
        2,
        "shard",
        include_str!("../../migrations/mysql/0002_shard.sql"),
    ),
    (
        3,
        "member_version",
        include_str!("../../migrations/mysql/0003_member_version.sql"),
    ),
    (
        4,
        "refresh_family",
        include_str!("../../migrations/mysql/0004_refresh_family.sql"),
    ),
    (
        5,
        "feeds",
        include_str!("../../migrations/mysql/0005_feeds.sql"),
    ),
    (
        6,
        "search",
        include_str!("../../migrations/mysql/0006_search.sql"),
    ),
    (
        7,
        "revisions",
        include_str!("../../migrations/mysql/0007_revisions.sql"),
    ),
    (
        8,
        "mentions",
        include_str!("../../migrations/mysql/0008_mentions.sql"),
    ),
];

fn migrator(d: Dialect) -> Migrator {
    let steps = match d {
        Dialect::Postgres => POSTGRES,
        Dialect::MySql => MYSQL,
    };
    let migrations = steps
        .iter()
        .map(|&(version, what, sql)| {
            let sql = sqlx::AssertSqlSafe(sql).into_sql_str();
            Migration::new(version, what.into(), MigrationType::Simple, sql, false)
        })
        .collect();
    let mut m = Migrator::with_migrations(migrations);
    // The session already holds the migration lock (see `migrate_with`).
    m.set_locking(false);
    m
}

fn migrate_err(e: MigrateError) -> StoreError {
    match e {
        MigrateError::Execute(e) => store_err(e),
        MigrateError::VersionMissing(v) => StoreError::Config(format!(
            "the database has migration {v}, which this build does not know (a newer build?)"
        )),
        other => StoreError::Unavailable(format!("migration failed: {other}")),
    }
}

/// Creates or upgrades the schema of the database `url` names
/// (`postgres://…` or `mysql://…`) with `partitions` hash partitions for a
/// new database, and records or checks its place in the shard map.
pub(crate) async fn migrate_with(url: &str, partitions: u32, place: Place) -> Result<()> {
    let dialect = Dialect::of(url)?;
    // One connection: the migration lock belongs to its session, and
    // closing the session releases it in any case.
    let pool = Pool::connect(dialect, url, 1, Place::ALONE).await?;
    let out = async {
        let mut c = pool.acquire().await.map_err(store_err)?;
        let mut x = c.exec();
        let (got,): (Option<i64>,) = x
            .one(dialect.migration_lock(), args![])
            .await
            .map_err(store_err)?;
        if got != Some(1) {
            return Err(StoreError::Unavailable(
                "timed out waiting for another node's schema migration".into(),
            ));
        }
        let done = locked(&mut x, dialect, partitions, place).await;
        x.execute(dialect.migration_unlock(), args![])
            .await
            .map_err(store_err)?;
        done
    }
    .await;
    pool.close().await;
    out
}

/// Under the migration lock.
async fn locked(x: &mut Exec<'_>, d: Dialect, partitions: u32, place: Place) -> Result<()> {
    x.execute(schema::VERSION_TABLE, args![])
        .await
        .map_err(store_err)?;
    let stored: Option<(i64, i64)> = x
        .optional(schema::GET_VERSION, args![])
        .await
        .map_err(store_err)?;
    let n = schema::settle(stored, partitions)?;
    x.migrate(&migrator(d)).await.map_err(migrate_err)?;
    run_all(x, schema::partitions(d, n, stored.is_none()))
        .await
        .map_err(store_err)?;
    let set = d.finish(&format!(
        "INSERT INTO schema_version (id, version, partitions) VALUES (1, ?, ?) {}",
        d.upsert("id", &["version"])
    ));
    x.execute(set, args![schema::SCHEMA_VERSION, i64::from(n)])
        .await
        .map_err(store_err)?;
    super::shard::settle(x, d, place).await
}

async fn run_all(x: &mut Exec<'_>, ddl: Vec<String>) -> Sqlx<()> {
    for stmt in ddl {
        // Built from constants and an integer only.
        x.execute(stmt, args![]).await?;
    }
    Ok(())
}
