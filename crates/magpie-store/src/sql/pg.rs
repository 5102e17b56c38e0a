//! PostgreSQL: connecting, migrating, and the statements that use
//! `RETURNING`. Runs at the default READ COMMITTED isolation: each statement
//! sees the latest commits, and the row locks taken by upserts order the
//! writers that matter (see `sql::backend`).

use super::backend::sql_backend;
use super::queries::PG;
use super::{ACQUIRE_TIMEOUT, POOL_SIZE, schema, store_err};
use crate::error::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use std::str::FromStr;

/// Any fixed key works: advisory locks are per database, and this one only
/// keeps two nodes from running the DDL at the same time.
const MIGRATION_LOCK: i64 = 0x6d61_6770_6965; // "magpie"

pub struct PgStore {
    pool: PgPool,
    offline_ttl_ms: i64,
}

fn options(url: &str) -> crate::error::Result<PgConnectOptions> {
    PgConnectOptions::from_str(url).map_err(|e| StoreError::Config(format!("{url:?}: {e}")))
}

impl PgStore {
    /// Connects with `POOL_SIZE` connections, creating or checking the
    /// schema first (`partitions` applies only to a new database).
    pub async fn connect(
        url: &str,
        offline_ttl_ms: i64,
        partitions: u32,
    ) -> crate::error::Result<PgStore> {
        Self::migrate(url, partitions).await?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options(url)?)
            .await
            .map_err(store_err)?;
        Ok(PgStore {
            pool,
            offline_ttl_ms,
        })
    }

    /// Creates missing tables and partitions; refuses a newer schema. Holds
    /// an advisory lock so concurrent starts do not race on the DDL (two
    /// `CREATE TABLE IF NOT EXISTS` of one table can both try to create it).
    pub async fn migrate(url: &str, partitions: u32) -> crate::error::Result<()> {
        let mut c = PgConnection::connect_with(&options(url)?)
            .await
            .map_err(store_err)?;
        let out = Self::migrate_locked(&mut c, partitions).await;
        // Closing the session releases the advisory lock in any case.
        let _ = c.close().await;
        out
    }

    async fn migrate_locked(c: &mut PgConnection, partitions: u32) -> crate::error::Result<()> {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *c)
            .await
            .map_err(store_err)?;
        sqlx::query(schema::VERSION_TABLE)
            .execute(&mut *c)
            .await
            .map_err(store_err)?;
        let stored: Option<(i64, i64)> = sqlx::query_as(schema::GET_VERSION)
            .fetch_optional(&mut *c)
            .await
            .map_err(store_err)?;
        let n = schema::settle(stored, partitions)?;
        let mut tx = c.begin().await.map_err(store_err)?;
        for ddl in schema::postgres(n) {
            // Built from constants and an integer only.
            sqlx::query(sqlx::AssertSqlSafe(ddl))
                .execute(&mut *tx)
                .await
                .map_err(store_err)?;
        }
        sqlx::query(
            "INSERT INTO schema_version (id, version, partitions) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version",
        )
        .bind(schema::SCHEMA_VERSION)
        .bind(i64::from(n))
        .execute(&mut *tx)
        .await
        .map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *c)
            .await
            .map_err(store_err)?;
        Ok(())
    }

    async fn insert_user(
        &self,
        username: &str,
        password_hash: &str,
        now: i64,
    ) -> std::result::Result<i64, sqlx::Error> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO users (username, password_hash, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(username)
        .bind(password_hash)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// A new group row (no members yet); its id.
    async fn insert_group(
        c: &mut PgConnection,
        name: &str,
        owner: i64,
        history: i64,
        now: i64,
    ) -> std::result::Result<i64, sqlx::Error> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO im_group (name, owner_uid, created_at, members, history)
             VALUES ($1, $2, $3, 0, $4) RETURNING id",
        )
        .bind(name)
        .bind(owner)
        .bind(now)
        .bind(history)
        .fetch_one(c)
        .await?;
        Ok(id)
    }

    /// The conversation's next sequence. The upsert locks the row until the
    /// transaction ends; a concurrent sender to the same conversation waits
    /// here and then sees this one's committed value.
    async fn next_seq(c: &mut PgConnection, conv: &str) -> std::result::Result<i64, sqlx::Error> {
        let (seq,): (i64,) = sqlx::query_as(
            "INSERT INTO conversations (conv, last_seq) VALUES ($1, 1)
             ON CONFLICT (conv) DO UPDATE SET last_seq = conversations.last_seq + 1
             RETURNING last_seq",
        )
        .bind(conv)
        .fetch_one(c)
        .await?;
        Ok(seq)
    }
}

sql_backend!(PgStore, sqlx::Postgres, PG, crate::sql::batch::PG_BATCH);
