//! A cluster of real `magpie` processes for fault injection: its own
//! redis-server and nats-server (so a test may kill, restart or flush them
//! without touching the tests beside it), a fresh database on the shared
//! PostgreSQL or MySQL (one per shard on a sharded run), optionally one
//! more shard on a mariadbd of its own (which it may kill), and nodes that
//! can be killed with SIGKILL or drained with SIGTERM.
#![allow(dead_code)]

pub mod check;
pub mod load;
pub mod services;

use crate::common::backends;
use services::{MariaDb, Nats, NatsCluster, Redis};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// One `magpie serve` process.
pub struct NodeProc {
    pub name: String,
    pub base: String,
    child: Child,
    _dir: tempfile::TempDir,
}

/// A node left running by a failed test would hold the test's output pipe
/// open (and CI with it): always kill it.
impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Fleet {
    pub redis: Redis,
    pub nats: Nats,
    /// The bus on a Kafka-protocol broker of the fleet's own instead of
    /// JetStream (`MAGPIE_TEST_BUS=kafka`); the relay stays on `nats`.
    #[cfg(feature = "kafka")]
    pub kafka: Option<magpie_bus::testsuite::tansu::Tansu>,
    /// The database (its `store` URL); the namespace's Redis and stream parts are unused.
    pub ns: Arc<backends::Namespace>,
    /// The nodes' store: the namespace's, plus `shard` when there is one.
    store: String,
    /// A last shard on a server of the fleet's own (`with_own_shard`).
    pub shard: Option<MariaDb>,
    /// Three NATS servers the bus and relay use instead of `nats`
    /// (`with_nats_cluster`).
    pub nats_cluster: Option<NatsCluster>,
    pub nodes: Vec<Option<NodeProc>>,
    secret: String,
    _dir: tempfile::TempDir,
}

impl Fleet {
    /// Services up, no node yet. `None` unless the suite runs on the real
    /// services with a shared store (the embedded store is one process's).
    pub fn new() -> Option<Fleet> {
        if !backends::needs_shared_store() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ns = backends::namespace(dir.path()).expect("cluster namespace");
        Some(Fleet {
            redis: Redis::start(dir.path()),
            nats: Nats::start(dir.path()),
            #[cfg(feature = "kafka")]
            kafka: backends::kafka_bus().then(|| {
                magpie_bus::testsuite::tansu::Tansu::start()
                    .expect("MAGPIE_TEST_BUS=kafka needs MAGPIE_TEST_TANSU_BIN")
            }),
            store: ns.store.clone(),
            shard: None,
            nats_cluster: None,
            ns,
            nodes: Vec::new(),
            secret: format!("fleet-secret-{:032x}", rand::random::<u128>()),
            _dir: dir,
        })
    }

    /// Adds a shard on a mariadbd of the fleet's own to the namespace's
    /// MySQL store, before any node starts.
    pub async fn with_own_shard(mut self) -> Fleet {
        assert!(
            self.nodes.is_empty(),
            "the shard map is fixed at first open"
        );
        let own = MariaDb::start(self._dir.path());
        let admin = own.url();
        use sqlx::Connection;
        let mut c = sqlx::MySqlConnection::connect(&admin).await.unwrap();
        let sql = sqlx::AssertSqlSafe("CREATE DATABASE fleet_shard");
        sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
        let url = format!("{}/fleet_shard", admin.trim_end_matches("/mysql"));
        self.store = format!("{} {url}", self.store);
        self.shard = Some(own);
        self
    }

    pub fn state_url(&self) -> String {
        format!("{}?prefix=fleet", self.redis.url())
    }

    pub fn bus_url(&self) -> String {
        #[cfg(feature = "kafka")]
        if let Some(k) = &self.kafka {
            return format!("kafka://{}/fleet?partitions=3", k.addr);
        }
        match &self.nats_cluster {
            Some(c) => format!("{}/?stream=fleet&partitions=3&replicas=3", c.url()),
            None => format!("{}/?stream=fleet", self.nats.url()),
        }
    }

    /// Whether the bus is on Kafka (the relay then on NATS core).
    pub fn on_kafka(&self) -> bool {
        #[cfg(feature = "kafka")]
        return self.kafka.is_some();
        #[cfg(not(feature = "kafka"))]
        false
    }

    /// The relay's URL: none (it rides the bus) unless the bus is Kafka.
    fn relay_url(&self) -> Option<String> {
        self.on_kafka()
            .then(|| format!("{}/?prefix=fleet_relay", self.nats.url()))
    }

    /// SIGKILL of the bus's engine: the NATS server, or the Kafka broker.
    pub fn kill9_bus(&mut self) {
        #[cfg(feature = "kafka")]
        if let Some(k) = &mut self.kafka {
            return k.kill9();
        }
        self.nats.kill9();
    }

    /// Starts the bus's engine again on its address and storage.
    pub fn restart_bus(&mut self) {
        #[cfg(feature = "kafka")]
        if let Some(k) = &mut self.kafka {
            return k.restart();
        }
        self.nats.restart();
    }

    /// Puts the bus (and so the relay) on three NATS servers of the
    /// fleet's own, in three partitions of three replicas, before any node
    /// starts.
    pub async fn with_nats_cluster(mut self) -> Fleet {
        assert!(
            self.nodes.is_empty(),
            "nodes keep the bus they started with"
        );
        self.nats_cluster = Some(NatsCluster::start(self._dir.path()));
        NatsCluster::bus_when_ready(&self.bus_url()).await;
        self
    }

    /// Starts node `node-{i}` (numbered from 1) with `roles`.
    pub fn spawn(&mut self, roles: &str) -> usize {
        self.spawn_with(roles, &[])
    }

    /// `spawn`, with environment variables (`MAGPIE_…` settings) that
    /// override the fleet's.
    pub fn spawn_with(&mut self, roles: &str, env: &[(&str, &str)]) -> usize {
        let i = self.nodes.len() + 1;
        let dir = tempfile::tempdir().unwrap();
        let name = format!("node-{i}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_magpie"));
        cmd.args(["serve", "--node", &name, "--node-num", &i.to_string()])
            .args(["--roles", roles])
            .args(["--store", &self.store])
            .args(["--state", &self.state_url()])
            .args(["--bus", &self.bus_url()])
            .args(
                self.relay_url()
                    .map(|r| ["--relay".to_string(), r])
                    .into_iter()
                    .flatten(),
            )
            .args([
                "--http-listen",
                "127.0.0.1:0",
                "--tcp-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .env("MAGPIE_AUTH__JWT_SECRET", &self.secret)
            .env("MAGPIE_AUTH__ARGON2_M_KIB", "64")
            .env("MAGPIE_AUTH__ARGON2_T", "1")
            // Bursts far beyond a person's rate from one user (docs/edge.md).
            .env("MAGPIE_GUARD__RATES__SENDS_USER__RATE", "1000000")
            .env("MAGPIE_GUARD__RATES__SENDS_USER__BURST", "1000000")
            .env("MAGPIE_GUARD__RATES__FRAMES_USER__RATE", "1000000")
            .env("MAGPIE_GUARD__RATES__FRAMES_USER__BURST", "1000000")
            .env("MAGPIE_CLUSTER__HEARTBEAT_MS", "250")
            .env("MAGPIE_CLUSTER__NODE_TTL_MS", "1500")
            .env("MAGPIE_CLUSTER__SWEEP_INTERVAL_MS", "500")
            // Routes are re-asserted (and lost pushes detected) every heartbeat.
            .env("MAGPIE_SESSION__HEARTBEAT_MS", "5000")
            // A killed worker's in-flight events come back to the others soon.
            .env("MAGPIE_WORKERS__ACK_WAIT_MS", "3000")
            .env(
                "MAGPIE_LOG",
                std::env::var("MAGPIE_TEST_FLEET_LOG_LEVEL").unwrap_or_else(|_| "warn".into()),
            )
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log_path(&dir, &name)).unwrap());
        let mut child = cmd.spawn().expect("start magpie");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            let log = std::fs::read_to_string(log_path(&dir, &name)).unwrap_or_default();
            panic!("{name} printed no listening line ({e}):\n{log}")
        });
        let base = format!("http://{}", v["http"].as_str().unwrap());
        self.nodes.push(Some(NodeProc {
            name,
            base,
            child,
            _dir: dir,
        }));
        i
    }

    pub fn node(&self, i: usize) -> &NodeProc {
        self.nodes[i - 1].as_ref().expect("node is running")
    }

    /// Edge addresses of every node started, dead or alive: clients try
    /// them in turn, as a load balancer in front of the edges would.
    pub fn edges(&self) -> Vec<String> {
        self.nodes
            .iter()
            .flatten()
            .map(|n| n.base.clone())
            .collect()
    }

    /// SIGKILL: no drain, no clean-up; the sweeper and the bus's redelivery must cope.
    pub fn kill9(&mut self, i: usize) {
        let mut n = self.nodes[i - 1].take().expect("node is running");
        n.child.kill().unwrap();
        n.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the planned drain to finish and the process to exit.
    pub async fn drain(&mut self, i: usize) {
        let mut n = self.nodes[i - 1].take().expect("node is running");
        let status = Command::new("kill")
            .args(["-TERM", &n.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = tokio::task::spawn_blocking(move || {
            let exit = n.child.wait().unwrap();
            drop(n);
            exit
        })
        .await
        .unwrap();
        assert!(exit.success(), "drained node exited with {exit:?}");
    }

    /// The durable store, opened by the test itself: the truth the checks compare with.
    pub async fn store(&self) -> magpie_store::Store {
        magpie_store::Store::open(&self.store).await.unwrap()
    }

    pub async fn state(&self) -> magpie_store::State {
        magpie_store::State::open(&self.state_url()).await.unwrap()
    }

    /// Waits until every running node is in the registry, where placement
    /// looks for it: a node prints its listening line before its first
    /// heartbeat lands, and clients placed before that land elsewhere.
    pub async fn registered(&self) {
        let state = self.state().await;
        let names: Vec<&str> = self
            .nodes
            .iter()
            .flatten()
            .map(|n| n.name.as_str())
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let live = state.nodes().await.unwrap_or_default();
            if names.iter().all(|n| live.iter().any(|l| l.node == *n)) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "nodes {names:?} not all in the registry after 30 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// Nodes stop before the namespace (their database) is dropped.
impl Drop for Fleet {
    fn drop(&mut self) {
        self.nodes.clear();
    }
}

/// The node's log: in its data directory, or under `MAGPIE_TEST_FLEET_LOGS`
/// (kept after the test) when that is set.
fn log_path(dir: &tempfile::TempDir, name: &str) -> std::path::PathBuf {
    match std::env::var("MAGPIE_TEST_FLEET_LOGS") {
        Ok(keep) => {
            std::fs::create_dir_all(&keep).unwrap();
            let tag = dir
                .path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string();
            std::path::Path::new(&keep).join(format!("{name}-{tag}.log"))
        }
        Err(_) => dir.path().join("magpie.log"),
    }
}

/// How long the fault tests wait for the cluster to settle after the load.
pub const SETTLE: Duration = Duration::from_secs(120);
