//! What PostgreSQL and MySQL/MariaDB word differently, in one table: the
//! placeholders, the upserts, the shared row lock, the migration lock and
//! which engine a URL names. Statements are written once with `?`
//! placeholders (MySQL's) and numbered `$1, $2, …` for PostgreSQL.

use crate::error::{Result, StoreError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    MySql,
}

impl Dialect {
    /// The engine a URL names: `postgres://`/`postgresql://` or `mysql://`.
    pub(crate) fn of(url: &str) -> Result<Dialect> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Dialect::Postgres)
        } else if url.starts_with("mysql://") {
            Ok(Dialect::MySql)
        } else {
            Err(StoreError::Config(format!(
                "not a SQL store url: {url:?} (expected postgres:// or mysql://)"
            )))
        }
    }

    /// A statement written with `?` placeholders, in this dialect's words.
    pub(crate) fn finish(self, sql: &str) -> String {
        match self {
            Dialect::MySql => sql.to_string(),
            Dialect::Postgres => numbered(sql),
        }
    }

    /// `ON CONFLICT (key) DO UPDATE SET …` or `ON DUPLICATE KEY UPDATE …`,
    /// setting each of `cols` to the value the insert carried.
    pub(crate) fn upsert(self, key: &str, cols: &[&str]) -> String {
        let set = |c: &&str| match self {
            Dialect::Postgres => format!("{c} = EXCLUDED.{c}"),
            Dialect::MySql => format!("{c} = VALUES({c})"),
        };
        let set = cols.iter().map(set).collect::<Vec<_>>().join(", ");
        match self {
            Dialect::Postgres => format!("ON CONFLICT ({key}) DO UPDATE SET {set}"),
            Dialect::MySql => format!("ON DUPLICATE KEY UPDATE {set}"),
        }
    }

    /// An upsert that adds the inserted value to `col` of an existing row
    /// (a counter bumped by what the row would have been created with),
    /// which also locks the row until the transaction ends.
    pub(crate) fn upsert_add(self, table: &str, key: &str, col: &str) -> String {
        match self {
            Dialect::Postgres => {
                format!("ON CONFLICT ({key}) DO UPDATE SET {col} = {table}.{col} + EXCLUDED.{col}")
            }
            Dialect::MySql => format!("ON DUPLICATE KEY UPDATE {col} = {col} + VALUES({col})"),
        }
    }

    /// The shared (read) row lock a `SELECT` ends with.
    pub(crate) fn for_share(self) -> &'static str {
        match self {
            Dialect::Postgres => "FOR SHARE",
            Dialect::MySql => "LOCK IN SHARE MODE",
        }
    }

    /// Takes the session lock that keeps two nodes from migrating at once;
    /// returns one BIGINT, 1 when it was taken. PostgreSQL waits as long as
    /// it takes; MySQL gives up after two minutes (`GET_LOCK` is per server,
    /// so the lock is named after the database).
    pub(crate) fn migration_lock(self) -> &'static str {
        match self {
            Dialect::Postgres => {
                "SELECT CAST(1 AS BIGINT) FROM (SELECT pg_advisory_lock(120265114675557)) AS l"
            }
            Dialect::MySql => {
                "SELECT CAST(GET_LOCK(CONCAT('magpie_migrate.', DATABASE()), 120) AS SIGNED)"
            }
        }
    }

    pub(crate) fn migration_unlock(self) -> &'static str {
        match self {
            Dialect::Postgres => "SELECT pg_advisory_unlock(120265114675557)",
            Dialect::MySql => "SELECT RELEASE_LOCK(CONCAT('magpie_migrate.', DATABASE()))",
        }
    }
}

/// `?` → `$1, $2, …`. Safe because no statement has a `?` inside a string literal.
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    out
}
