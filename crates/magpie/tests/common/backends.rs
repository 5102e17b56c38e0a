//! Which backends a test node runs on. Embedded by default; with
//! `MAGPIE_TEST_BACKENDS=cluster`, a fresh namespace on the real services
//! started by scripts/services.sh: a new database (PostgreSQL, or MySQL with
//! `MAGPIE_TEST_STORE=mysql`), a Redis key prefix and a JetStream stream,
//! all removed when the last handle to the namespace is dropped. With
//! `MAGPIE_TEST_SHARDED=1` the store is sharded: a new database on each
//! server of `MAGPIE_TEST_{POSTGRES,MYSQL}_SHARD_URLS`.

use magpie_server::Config;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

pub struct Namespace {
    pub store: String,
    pub state: String,
    pub bus: String,
    /// The relay when the bus is not NATS (`MAGPIE_TEST_BUS=kafka`): NATS
    /// core under the namespace's prefix; empty otherwise (the bus's NATS).
    pub relay: String,
    name: String,
    /// The admin URL of each SQL server holding one of the store's databases.
    admins: Vec<String>,
    redis: String,
    nats: String,
    /// The namespace's own Kafka-protocol broker (`MAGPIE_TEST_BUS=kafka`):
    /// one per namespace, as tansu cannot be shared (testsuite/tansu.rs).
    #[cfg(feature = "kafka")]
    _kafka: Option<magpie_bus::testsuite::tansu::Tansu>,
}

static NAMESPACES: Mutex<Option<HashMap<PathBuf, Weak<Namespace>>>> = Mutex::new(None);

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `eval \"$(scripts/services.sh start)\"`")
    })
}

pub fn cluster_mode() -> bool {
    std::env::var("MAGPIE_TEST_BACKENDS").is_ok_and(|v| v == "cluster")
}

/// Whether the nodes of a test can share one store (the cluster backends
/// on PostgreSQL or MySQL; the embedded store is one process's).
pub fn shared_store() -> bool {
    cluster_mode() && !std::env::var("MAGPIE_TEST_STORE").is_ok_and(|v| v == "sqlite")
}

/// Whether this run puts the bus on Kafka (`MAGPIE_TEST_BUS=kafka`).
pub fn kafka_bus() -> bool {
    std::env::var("MAGPIE_TEST_BUS").is_ok_and(|b| b == "kafka")
}

/// `shared_store()`, saying on stderr why a test is skipped when not.
pub fn needs_shared_store() -> bool {
    let ok = shared_store();
    if !ok {
        eprintln!("needs a shared store: set MAGPIE_TEST_BACKENDS=cluster (PostgreSQL or MySQL)");
    }
    ok
}

/// `cluster_mode()`, saying on stderr why a test is skipped when not.
pub fn cluster_only() -> bool {
    let ok = cluster_mode();
    if !ok {
        eprintln!("cluster-only test: set MAGPIE_TEST_BACKENDS=cluster");
    }
    ok
}

/// Runs async set-up or clean-up from sync code (`Drop`, `test_config`).
fn block_on<F: std::future::Future<Output = ()> + Send + 'static>(f: F) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(f);
    })
    .join()
    .expect("backend set-up thread panicked");
}

fn with_path(url: &str, path: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.split('/').next().unwrap();
    format!("{scheme}://{host}/{path}")
}

/// The namespace of the node whose data directory is `dir` (created on
/// first use; a restarted node on the same directory gets the same one).
pub fn namespace(dir: &Path) -> Option<Arc<Namespace>> {
    if !cluster_mode() {
        return None;
    }
    let mut map = NAMESPACES.lock().unwrap();
    let map = map.get_or_insert_with(HashMap::new);
    if let Some(ns) = map.get(dir).and_then(Weak::upgrade) {
        return Some(ns);
    }
    let name = format!("magpie_e2e_{:016x}", rand::random::<u64>());
    let store_kind = std::env::var("MAGPIE_TEST_STORE").unwrap_or_default();
    let sharded = std::env::var("MAGPIE_TEST_SHARDED").is_ok_and(|v| v == "1");
    let admins: Vec<String> = match (store_kind.as_str(), sharded) {
        // The embedded store under shared Redis and JetStream.
        ("sqlite", _) => Vec::new(),
        ("mysql", false) => vec![env("MAGPIE_TEST_MYSQL_URL")],
        ("mysql", true) => split(&env("MAGPIE_TEST_MYSQL_SHARD_URLS")),
        (_, false) => vec![env("MAGPIE_TEST_POSTGRES_URL")],
        (_, true) => split(&env("MAGPIE_TEST_POSTGRES_SHARD_URLS")),
    };
    let (a, n) = (admins.clone(), name.clone());
    block_on(async move {
        use sqlx::Connection;
        for admin in a {
            let sql = sqlx::AssertSqlSafe(format!("CREATE DATABASE {n}"));
            if admin.starts_with("mysql") {
                let mut c = sqlx::MySqlConnection::connect(&admin).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
            } else {
                let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
            }
        }
    });
    let redis = env("MAGPIE_TEST_REDIS_URL");
    let nats = env("MAGPIE_TEST_NATS_URL");
    let kafka_bus = kafka_bus();
    #[cfg(feature = "kafka")]
    let broker = kafka_bus.then(|| {
        magpie_bus::testsuite::tansu::Tansu::start()
            .expect("MAGPIE_TEST_BUS=kafka needs MAGPIE_TEST_TANSU_BIN")
    });
    #[cfg(feature = "kafka")]
    let kafka = broker.as_ref().map(|b| b.addr.clone());
    #[cfg(not(feature = "kafka"))]
    let kafka: Option<String> =
        kafka_bus.then(|| panic!("MAGPIE_TEST_BUS=kafka needs the kafka feature"));
    let ns = Arc::new(Namespace {
        // One database: its URL; several: the shard map.
        store: admins
            .iter()
            .map(|a| with_path(a, &name))
            .collect::<Vec<_>>()
            .join(" "),
        state: format!("{}?prefix={name}", with_path(&redis, "")),
        // MAGPIE_TEST_BUS_OPTIONS adds bus URL options (scripts/test.sh
        // runs a phase on partitioned, replicated streams).
        bus: match &kafka {
            Some(addr) => format!("kafka://{addr}/{name}{}", options("?")),
            None => format!("{}?stream={name}{}", with_path(&nats, ""), options("&")),
        },
        relay: match &kafka {
            Some(_) => format!("{}?prefix={name}_relay", with_path(&nats, "")),
            None => String::new(),
        },
        #[cfg(feature = "kafka")]
        _kafka: broker,
        name,
        admins,
        redis,
        nats,
    });
    map.insert(dir.to_path_buf(), Arc::downgrade(&ns));
    Some(ns)
}

/// `MAGPIE_TEST_BUS_OPTIONS` after `sep`, or nothing.
fn options(sep: &str) -> String {
    std::env::var("MAGPIE_TEST_BUS_OPTIONS")
        .map(|o| format!("{sep}{o}"))
        .unwrap_or_default()
}

fn split(urls: &str) -> Vec<String> {
    urls.split_whitespace().map(str::to_string).collect()
}

/// Each server of a Redis URL: the one of `redis://`, every listed primary
/// of `redis+cluster://h:p,h:p/`.
pub fn redis_servers(url: &str) -> Vec<String> {
    match url.strip_prefix("redis+cluster://") {
        Some(hosts) => hosts
            .split(['/', '?'])
            .next()
            .unwrap_or_default()
            .split(',')
            .map(|h| format!("redis://{h}/"))
            .collect(),
        None => vec![url.to_string()],
    }
}

/// Deletes every key under `prefix:` on every server of `url`, one key per
/// DEL (on a cluster node the keys still live in different slots).
pub async fn delete_keys(url: &str, prefix: &str) -> usize {
    let mut deleted = 0;
    for server in redis_servers(url) {
        let Ok(client) = redis::Client::open(server.as_str()) else {
            continue;
        };
        let Ok(mut c) = client.get_multiplexed_async_connection().await else {
            continue;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut c)
            .await
            .unwrap_or_default();
        for k in keys {
            let gone: Result<i64, _> = redis::cmd("DEL").arg(k).query_async(&mut c).await;
            deleted += gone.unwrap_or(0) as usize;
        }
    }
    deleted
}

impl Namespace {
    /// Deletes every key of this namespace's state: as far as its nodes can
    /// tell, Redis restarted empty.
    pub async fn wipe_state(&self) -> usize {
        delete_keys(&self.redis, &self.name).await
    }

    /// The same backends as `magpie serve` flags, for a node run as a process.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--store",
            &self.store,
            "--state",
            &self.state,
            "--bus",
            &self.bus,
        ];
        if !self.relay.is_empty() {
            a.extend(["--relay", &self.relay]);
        }
        a.into_iter().map(String::from).collect()
    }

    pub fn apply(&self, cfg: &mut Config) {
        cfg.store = self.store.clone();
        cfg.state = self.state.clone();
        cfg.bus = self.bus.clone();
        if !self.relay.is_empty() {
            cfg.relay = self.relay.clone();
        }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let (name, admins, redis, nats) = (
            self.name.clone(),
            self.admins.clone(),
            self.redis.clone(),
            self.nats.clone(),
        );
        block_on(async move {
            use sqlx::Connection;
            for admin in admins {
                if admin.starts_with("mysql") {
                    if let Ok(mut c) = sqlx::MySqlConnection::connect(&admin).await {
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name}"
                        )))
                        .execute(&mut c)
                        .await;
                    }
                } else if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut c)
                    .await;
                }
            }
            delete_keys(&redis, &name).await;
            let first = nats.split(',').next().unwrap_or_default().to_string();
            if let Ok(client) = async_nats::connect(first.as_str()).await {
                let js = async_nats::jetstream::new(client);
                // The stream, or its partitions `{name}-{i}`.
                let mut names = js.stream_names();
                let mut mine = Vec::new();
                while let Some(Ok(s)) = futures_util::StreamExt::next(&mut names).await {
                    if s == name || s.strip_prefix(&format!("{name}-")).is_some() {
                        mine.push(s);
                    }
                }
                for s in mine {
                    let _ = js.delete_stream(&s).await;
                }
            }
        });
    }
}
