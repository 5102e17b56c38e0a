//! MySQL/MariaDB: connecting, migrating, and the statements PostgreSQL
//! writes with `RETURNING`.
//!
//! Sessions run at READ COMMITTED rather than InnoDB's REPEATABLE READ: each
//! statement then sees the latest commits (as on PostgreSQL, so a retried
//! `accept` finds the winner of a cmid race), and InnoDB takes far fewer gap
//! locks, the usual source of deadlocks between concurrent inserts.

use super::backend::sql_backend;
use super::queries::MYSQL;
use super::{ACQUIRE_TIMEOUT, POOL_SIZE, schema, store_err};
use crate::error::StoreError;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::{Connection, Executor, MySqlConnection};
use std::str::FromStr;

const READ_COMMITTED: &str = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED";

/// Seconds a starting node waits for another one's migration.
const MIGRATION_WAIT_S: i64 = 120;

pub struct MySqlStore {
    pool: MySqlPool,
    offline_ttl_ms: i64,
}

fn options(url: &str) -> crate::error::Result<MySqlConnectOptions> {
    MySqlConnectOptions::from_str(url).map_err(|e| StoreError::Config(format!("{url:?}: {e}")))
}

impl MySqlStore {
    /// Connects with `POOL_SIZE` connections, creating or checking the
    /// schema first (`partitions` applies only to a new database).
    pub async fn connect(
        url: &str,
        offline_ttl_ms: i64,
        partitions: u32,
    ) -> crate::error::Result<MySqlStore> {
        Self::migrate(url, partitions).await?;
        let pool = MySqlPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(|c, _| {
                Box::pin(async move { c.execute(READ_COMMITTED).await.map(drop) })
            })
            .connect_with(options(url)?)
            .await
            .map_err(store_err)?;
        Ok(MySqlStore {
            pool,
            offline_ttl_ms,
        })
    }

    /// Creates missing tables; refuses a newer schema. A named lock (per
    /// database: `GET_LOCK` is server-wide) keeps concurrent starts from
    /// running the DDL at the same time.
    pub async fn migrate(url: &str, partitions: u32) -> crate::error::Result<()> {
        let mut c = MySqlConnection::connect_with(&options(url)?)
            .await
            .map_err(store_err)?;
        let out = Self::migrate_locked(&mut c, partitions).await;
        // Closing the session releases the named lock in any case.
        let _ = c.close().await;
        out
    }

    async fn migrate_locked(c: &mut MySqlConnection, partitions: u32) -> crate::error::Result<()> {
        let (got,): (Option<i64>,) =
            sqlx::query_as("SELECT GET_LOCK(CONCAT('magpie_migrate.', DATABASE()), ?)")
                .bind(MIGRATION_WAIT_S)
                .fetch_one(&mut *c)
                .await
                .map_err(store_err)?;
        if got != Some(1) {
            return Err(StoreError::Unavailable(
                "timed out waiting for another node's schema migration".into(),
            ));
        }
        sqlx::query(schema::VERSION_TABLE)
            .execute(&mut *c)
            .await
            .map_err(store_err)?;
        let stored: Option<(i64, i64)> = sqlx::query_as(schema::GET_VERSION)
            .fetch_optional(&mut *c)
            .await
            .map_err(store_err)?;
        let n = schema::settle(stored, partitions)?;
        // MySQL commits DDL implicitly: no transaction around it, which is
        // why every statement is idempotent.
        for ddl in schema::mysql(n) {
            // Built from constants and an integer only.
            sqlx::query(sqlx::AssertSqlSafe(ddl))
                .execute(&mut *c)
                .await
                .map_err(store_err)?;
        }
        sqlx::query(
            "INSERT INTO schema_version (id, version, partitions) VALUES (1, ?, ?)
             ON DUPLICATE KEY UPDATE version = VALUES(version)",
        )
        .bind(schema::SCHEMA_VERSION)
        .bind(i64::from(n))
        .execute(&mut *c)
        .await
        .map_err(store_err)?;
        sqlx::query("SELECT RELEASE_LOCK(CONCAT('magpie_migrate.', DATABASE()))")
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
        let done =
            sqlx::query("INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?)")
                .bind(username)
                .bind(password_hash)
                .bind(now)
                .execute(&self.pool)
                .await?;
        i64::try_from(done.last_insert_id())
            .map_err(|e| sqlx::Error::Decode(format!("user id: {e}").into()))
    }

    /// A new group row (no members yet); its id.
    async fn insert_group(
        c: &mut MySqlConnection,
        name: &str,
        owner: i64,
        history: i64,
        now: i64,
    ) -> std::result::Result<i64, sqlx::Error> {
        let done = sqlx::query(
            "INSERT INTO im_group (name, owner_uid, created_at, members, history)
             VALUES (?, ?, ?, 0, ?)",
        )
        .bind(name)
        .bind(owner)
        .bind(now)
        .bind(history)
        .execute(c)
        .await?;
        i64::try_from(done.last_insert_id())
            .map_err(|e| sqlx::Error::Decode(format!("group id: {e}").into()))
    }

    /// The conversation's next sequence. The upsert locks the row until the
    /// transaction ends (a concurrent sender to the same conversation waits
    /// on it); the SELECT then reads this transaction's own new value.
    async fn next_seq(
        c: &mut MySqlConnection,
        conv: &str,
    ) -> std::result::Result<i64, sqlx::Error> {
        sqlx::query(
            "INSERT INTO conversations (conv, last_seq) VALUES (?, 1)
             ON DUPLICATE KEY UPDATE last_seq = last_seq + 1",
        )
        .bind(conv)
        .execute(&mut *c)
        .await?;
        let (seq,): (i64,) = sqlx::query_as("SELECT last_seq FROM conversations WHERE conv = ?")
            .bind(conv)
            .fetch_one(&mut *c)
            .await?;
        Ok(seq)
    }
}

sql_backend!(
    MySqlStore,
    sqlx::MySql,
    MYSQL,
    crate::sql::batch::MYSQL_BATCH
);
