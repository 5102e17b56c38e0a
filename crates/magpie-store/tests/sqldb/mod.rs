//! Fresh databases for the SQL conformance runs on PostgreSQL and MySQL:
//! one database per case, dropped when its guard goes.
//!
//! Without the admin URL variable the cases are skipped outside CI (a notice
//! on stderr; the conformance cases then run on in-memory SQLite as a
//! stand-in so the macro still has a store) and fail in CI.
#![allow(dead_code)]

use magpie_store::Store;
use sqlx::Connection;

/// The admin URL in `var`, or `None` (after a notice) when the case must be skipped.
pub fn admin_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) => Some(url),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("{var} is not set in CI: start scripts/services.sh")
        }
        Err(_) => {
            eprintln!("skipping SQL case: {var} is not set");
            None
        }
    }
}

/// `url` with its database (the last path segment) replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
    let (scheme, rest) = base.split_once("://").expect("url has a scheme");
    let host = rest.split('/').next().expect("url has a host");
    let q = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{scheme}://{host}/{db}{q}")
}

pub fn is_mysql(url: &str) -> bool {
    url.starts_with("mysql://")
}

/// Runs one statement on a new connection to `admin` (any database URL).
pub async fn exec(admin: &str, sql: String) -> Result<(), sqlx::Error> {
    if is_mysql(admin) {
        let mut c = sqlx::MySqlConnection::connect(admin).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut c)
            .await?;
        c.close().await
    } else {
        let mut c = sqlx::PgConnection::connect(admin).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut c)
            .await?;
        c.close().await
    }
}

/// A database that exists until the guard drops. Dropping runs on a thread
/// of its own with its own runtime: `Drop` is sync and may run inside the
/// test's runtime, where blocking on it would panic.
pub struct FreshDb {
    admin: String,
    pub name: String,
    pub url: String,
}

impl FreshDb {
    pub async fn create(admin: &str) -> FreshDb {
        let name = format!("magpie_t_{:016x}", rand::random::<u64>());
        exec(admin, format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        FreshDb {
            url: with_database(admin, &name),
            admin: admin.to_string(),
            name,
        }
    }
}

impl FreshDb {
    /// Drops the database now, ending its sessions (the guard's drop then
    /// finds nothing to drop).
    pub async fn drop_now(&self) {
        let force = if is_mysql(&self.admin) {
            ""
        } else {
            " WITH (FORCE)"
        };
        let sql = format!("DROP DATABASE IF EXISTS {}{force}", self.name);
        exec(&self.admin, sql).await.expect("drop database");
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                // PostgreSQL: FORCE ends the store's pooled sessions, which may
                // still be closing. Either engine: retry while the server is
                // briefly busy (e.g. a metadata lock of a closing session).
                let force = if is_mysql(&admin) {
                    ""
                } else {
                    " WITH (FORCE)"
                };
                let sql = format!("DROP DATABASE IF EXISTS {name}{force}");
                let mut last = None;
                for _ in 0..5 {
                    match exec(&admin, sql.clone()).await {
                        Ok(()) => return Ok(()),
                        Err(e) => last = Some(e),
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(last)
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) && !std::thread::panicking() {
            panic!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

/// A store on a fresh database (admin URL in `var`), the database being the guard.
pub async fn fresh(var: &str) -> (Store, Box<dyn std::any::Any + Send>) {
    let Some(admin) = admin_url(var) else {
        let stand_in = Store::open("sqlite::memory:")
            .await
            .expect("sqlite stand-in");
        return (stand_in, Box::new(()));
    };
    let db = FreshDb::create(&admin).await;
    let store = Store::open(&db.url).await.expect("open sql store");
    (store, Box::new(db))
}

/// A sharded store over one fresh database on each server `var` lists
/// (admin URLs separated by spaces), the databases being the guard.
pub async fn fresh_sharded(var: &str) -> (Store, Box<dyn std::any::Any + Send>) {
    let (dbs, urls) = fresh_shards(var).await;
    if dbs.is_empty() {
        let stand_in = Store::open("sqlite::memory:").await;
        return (stand_in.expect("sqlite stand-in"), Box::new(()));
    }
    let store = Store::open(&urls).await.expect("open sharded store");
    (store, Box::new(dbs))
}

/// One fresh database per server `var` lists, and their URLs joined into
/// a shard map; none when the case is skipped.
pub async fn fresh_shards(var: &str) -> (Vec<FreshDb>, String) {
    let Some(admins) = admin_url(var) else {
        return (Vec::new(), String::new());
    };
    let mut dbs = Vec::new();
    for admin in admins.split_whitespace() {
        dbs.push(FreshDb::create(admin).await);
    }
    let urls = dbs.iter().map(|d| d.url.as_str()).collect::<Vec<_>>();
    let urls = urls.join(" ");
    (dbs, urls)
}
