//! The connection pool of a SQL store and what it hands out: transactions
//! ([`Tx`]) and connections ([`Conn`]), each giving an [`Exec`] to run
//! statements on (see `db`).

use super::db::{Exec, Sqlx};
use super::dialect::Dialect;
use super::{ACQUIRE_TIMEOUT, store_err};
use crate::error::{Result, StoreError};
use crate::shards::Place;
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, Postgres};
use sqlx::{Executor, Transaction};
use std::str::FromStr;

/// MySQL sessions run at READ COMMITTED rather than InnoDB's REPEATABLE
/// READ: each statement then sees the latest commits (as on PostgreSQL, so
/// a retried `accept` finds the winner of a cmid race), and InnoDB takes far
/// fewer gap locks, the usual source of deadlocks between concurrent inserts.
const READ_COMMITTED: &str = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED";

/// The connection pool of one database.
#[derive(Clone)]
pub(crate) enum Pool {
    Pg(sqlx::PgPool),
    My(sqlx::MySqlPool),
}

/// A transaction; dropped without `commit`, it rolls back.
pub(crate) enum Tx {
    Pg(Transaction<'static, Postgres>),
    My(Transaction<'static, MySql>),
}

/// A connection taken from the pool, outside any transaction.
pub(crate) enum Conn {
    Pg(PoolConnection<Postgres>),
    My(PoolConnection<MySql>),
}

impl Pool {
    /// The engine behind this pool.
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Pool::Pg(_) => Dialect::Postgres,
            Pool::My(_) => Dialect::MySql,
        }
    }

    /// Connects `size` connections to the database `url` names; on MySQL
    /// each session strides its generated ids for its `place` (`shard`).
    pub(crate) async fn connect(
        dialect: Dialect,
        url: &str,
        size: u32,
        place: Place,
    ) -> Result<Pool> {
        let bad = |e: sqlx::Error| StoreError::Config(format!("{url:?}: {e}"));
        Ok(match dialect {
            Dialect::Postgres => Pool::Pg(
                PgPoolOptions::new()
                    .max_connections(size)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(PgConnectOptions::from_str(url).map_err(bad)?)
                    .await
                    .map_err(store_err)?,
            ),
            Dialect::MySql => Pool::My(
                MySqlPoolOptions::new()
                    .max_connections(size)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .after_connect(move |c, _| {
                        Box::pin(async move {
                            c.execute(READ_COMMITTED).await?;
                            if let Some(stride) = super::shard::mysql_stride(place) {
                                c.execute(sqlx::AssertSqlSafe(stride)).await?;
                            }
                            Ok(())
                        })
                    })
                    .connect_with(MySqlConnectOptions::from_str(url).map_err(bad)?)
                    .await
                    .map_err(store_err)?,
            ),
        })
    }

    pub(crate) async fn begin(&self) -> Sqlx<Tx> {
        crate::round_trips::sql();
        Ok(match self {
            Pool::Pg(p) => Tx::Pg(p.begin().await?),
            Pool::My(p) => Tx::My(p.begin().await?),
        })
    }

    pub(crate) async fn acquire(&self) -> Sqlx<Conn> {
        Ok(match self {
            Pool::Pg(p) => Conn::Pg(p.acquire().await?),
            Pool::My(p) => Conn::My(p.acquire().await?),
        })
    }

    pub(crate) async fn close(&self) {
        match self {
            Pool::Pg(p) => p.close().await,
            Pool::My(p) => p.close().await,
        }
    }
}

impl Tx {
    pub(crate) fn exec(&mut self) -> Exec<'_> {
        match self {
            Tx::Pg(t) => Exec::Pg(&mut *t),
            Tx::My(t) => Exec::My(&mut *t),
        }
    }

    pub(crate) async fn commit(self) -> Sqlx<()> {
        crate::round_trips::sql();
        match self {
            Tx::Pg(t) => t.commit().await,
            Tx::My(t) => t.commit().await,
        }
    }
}

impl Conn {
    pub(crate) fn exec(&mut self) -> Exec<'_> {
        match self {
            Conn::Pg(c) => Exec::Pg(&mut *c),
            Conn::My(c) => Exec::My(&mut *c),
        }
    }
}
