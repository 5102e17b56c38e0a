//! The two sqlx drivers behind one small interface, so the store is written
//! once: [`Exec`] runs one statement with [`Arg`]s and decodes rows into
//! tuples (the pool that hands out connections is in `pool`). Each
//! operation is one `match` on the driver; binding and decoding are generic
//! over the driver and synchronous, so no async code carries sqlx's
//! higher-ranked bounds.

use sqlx::database::HasStatementCache;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::mysql::{MySql, MySqlConnection, MySqlRow};
use sqlx::postgres::{PgConnection, PgRow, Postgres};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, Database, Encode, FromRow, Type};

/// One bound value.
pub(crate) enum Arg<'a> {
    I64(i64),
    OptI64(Option<i64>),
    Str(&'a str),
    OptStr(Option<&'a str>),
    Text(String),
    Bool(bool),
    OptBool(Option<bool>),
}

macro_rules! arg_from {
    ($($t:ty => $v:ident),* $(,)?) => {
        $(impl<'a> From<$t> for Arg<'a> {
            fn from(v: $t) -> Self {
                Arg::$v(v)
            }
        })*
    };
}

arg_from! {
    i64 => I64, Option<i64> => OptI64, &'a str => Str, Option<&'a str> => OptStr,
    String => Text, bool => Bool, Option<bool> => OptBool,
}

/// `args![a, b, …]`: a statement's arguments, each converted to an [`Arg`].
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        vec![$($crate::sql::db::Arg::from($a)),*]
    };
}
pub(crate) use args;

/// Statement text: static or built for a small batch (both prepared and
/// cached per connection), or built for a large batch (parsed per use,
/// never cached; see `batch.rs` on why small ones must be cached).
pub(crate) enum Sql {
    Static(&'static str),
    Cached(String),
    Batch(String),
}

#[cfg(test)]
impl Sql {
    /// The statement's text.
    pub(crate) fn text(&self) -> &str {
        match self {
            Sql::Static(s) => s,
            Sql::Cached(s) | Sql::Batch(s) => s,
        }
    }
}

impl From<&'static str> for Sql {
    fn from(s: &'static str) -> Self {
        Sql::Static(s)
    }
}

impl From<String> for Sql {
    fn from(s: String) -> Self {
        Sql::Batch(s)
    }
}

/// A row type both drivers decode (tuples of i64, String, bool, options).
pub(crate) trait Rec:
    for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, MySqlRow> + Send + Unpin
{
}
impl<T> Rec for T where T: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, MySqlRow> + Send + Unpin {}

fn query<'q, DB>(sql: Sql, args: Vec<Arg<'_>>) -> Query<'q, DB, DB::Arguments>
where
    DB: Database + HasStatementCache,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> Option<&'t str>: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Type<DB>,
    for<'t> Option<bool>: Encode<'t, DB> + Type<DB>,
{
    let mut q = match sql {
        Sql::Static(s) => sqlx::query(s),
        Sql::Cached(s) => sqlx::query(AssertSqlSafe(s)),
        Sql::Batch(s) => sqlx::query(AssertSqlSafe(s)).persistent(false),
    };
    for a in args {
        q = match a {
            Arg::I64(v) => q.bind(v),
            Arg::OptI64(v) => q.bind(v),
            Arg::Str(v) => q.bind(v),
            Arg::OptStr(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
            Arg::Bool(v) => q.bind(v),
            Arg::OptBool(v) => q.bind(v),
        };
    }
    q
}

/// Where one statement runs: a pooled connection or a transaction's.
pub(crate) enum Exec<'c> {
    Pg(&'c mut PgConnection),
    My(&'c mut MySqlConnection),
}

impl Exec<'_> {
    /// Runs a statement; returns the rows it affected.
    pub(crate) async fn execute(&mut self, sql: impl Into<Sql>, args: Vec<Arg<'_>>) -> Sqlx<u64> {
        let (sql, args) = (sql.into(), args);
        crate::round_trips::sql();
        Ok(match self {
            Exec::Pg(c) => query::<Postgres>(sql, args)
                .execute(&mut **c)
                .await?
                .rows_affected(),
            Exec::My(c) => query::<MySql>(sql, args)
                .execute(&mut **c)
                .await?
                .rows_affected(),
        })
    }

    /// MySQL only: runs a statement; returns the rows it affected and the
    /// `LAST_INSERT_ID()` its answer carries (0 when it set none).
    pub(crate) async fn execute_last_id(
        &mut self,
        sql: impl Into<Sql>,
        args: Vec<Arg<'_>>,
    ) -> Sqlx<(u64, u64)> {
        let (sql, args) = (sql.into(), args);
        crate::round_trips::sql();
        match self {
            Exec::Pg(_) => Err(sqlx::Error::Protocol(
                "LAST_INSERT_ID is MySQL's; PostgreSQL has RETURNING".into(),
            )),
            Exec::My(c) => {
                let done = query::<MySql>(sql, args).execute(&mut **c).await?;
                Ok((done.rows_affected(), done.last_insert_id()))
            }
        }
    }

    /// Every row, decoded.
    pub(crate) async fn all<T: Rec>(
        &mut self,
        sql: impl Into<Sql>,
        args: Vec<Arg<'_>>,
    ) -> Sqlx<Vec<T>> {
        let (sql, args) = (sql.into(), args);
        crate::round_trips::sql();
        match self {
            Exec::Pg(c) => query::<Postgres>(sql, args)
                .fetch_all(&mut **c)
                .await?
                .iter()
                .map(T::from_row)
                .collect(),
            Exec::My(c) => query::<MySql>(sql, args)
                .fetch_all(&mut **c)
                .await?
                .iter()
                .map(T::from_row)
                .collect(),
        }
    }

    /// The first row, if any, decoded (for statements that select by key:
    /// one row at most).
    pub(crate) async fn optional<T: Rec>(
        &mut self,
        sql: impl Into<Sql>,
        args: Vec<Arg<'_>>,
    ) -> Sqlx<Option<T>> {
        Ok(self.all(sql, args).await?.into_iter().next())
    }

    /// The one row a statement returns.
    pub(crate) async fn one<T: Rec>(&mut self, sql: impl Into<Sql>, args: Vec<Arg<'_>>) -> Sqlx<T> {
        self.optional(sql, args)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// Applies the migrations `m` has not recorded yet (sqlx's migrator,
    /// bookkeeping in `_sqlx_migrations`).
    pub(crate) async fn migrate(&mut self, m: &Migrator) -> std::result::Result<(), MigrateError> {
        match self {
            Exec::Pg(c) => m.run(&mut **c).await,
            Exec::My(c) => m.run(&mut **c).await,
        }
    }

    /// Runs an `INSERT` of one row with a generated id and returns the id:
    /// PostgreSQL's statement ends with `RETURNING id`, MySQL reports
    /// `LAST_INSERT_ID()` with the result.
    pub(crate) async fn insert_id(&mut self, sql: &'static str, args: Vec<Arg<'_>>) -> Sqlx<i64> {
        match self {
            Exec::Pg(_) => Ok(self.one::<(i64,)>(sql, args).await?.0),
            Exec::My(c) => {
                crate::round_trips::sql();
                let done = query::<MySql>(Sql::Static(sql), args)
                    .execute(&mut **c)
                    .await?;
                i64::try_from(done.last_insert_id())
                    .map_err(|e| sqlx::Error::Decode(format!("inserted id: {e}").into()))
            }
        }
    }
}

pub(crate) type Sqlx<T> = std::result::Result<T, sqlx::Error>;
