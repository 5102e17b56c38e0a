//! Black-box test harness: a real node on 127.0.0.1:0 with the embedded
//! backends in a fresh temporary directory, HTTP helpers, and raw socket
//! clients for both transports (raw so tests see exactly what is on the wire).
#![allow(dead_code)]

pub mod backends;
mod conn;
mod http;
pub mod process;

// Each test binary uses some of these: the rest are unused there.
#[allow(unused_imports)]
pub use conn::{Conn, Wire};
#[allow(unused_imports)]
pub use http::{page_seqs, unread_truth};

use magpie_core::Seq;
use magpie_proto::ServerFrame;
use magpie_proto::http::Tokens;
use magpie_server::{Config, Running};
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(10);

#[allow(unused_imports)]
pub use magpie_bus::testsuite::free_port;

/// A program or directory a test needs from `scripts/services.sh`, named
/// by an environment variable: `None` (the test skips, saying why) when it
/// is not set, except under CI, where a missing service is a failure.
pub fn tool(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var_os("CI").is_some() => panic!("{var} is not set: scripts/services.sh"),
        _ => {
            eprintln!("needs {var}: run `eval \"$(scripts/services.sh start)\"`");
            None
        }
    }
}

pub fn test_config(dir: &std::path::Path) -> Config {
    let mut cfg = Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    cfg.http.listen = "127.0.0.1:0".into();
    cfg.tcp.listen = "127.0.0.1:0".into();
    cfg.internal.listen = "127.0.0.1:0".into();
    cfg.auth.argon2_m_kib = 64;
    cfg.auth.argon2_t = 1;
    cfg.internal.service_key = "service-key-for-tests".into();
    cfg.retention.sweep_interval_secs = 1;
    cfg.workers.ack_wait_ms = 5_000;
    cfg.cluster.heartbeat_ms = 200;
    cfg.cluster.node_ttl_ms = 1_000;
    cfg.cluster.sweep_interval_ms = 300;
    // Load and chaos tests send far beyond a person's rate from one user;
    // the guard's tests set the production limits they exercise.
    cfg.guard.rates.sends_user = magpie_server::guard::config::Rate::new(1e6, 1_000_000);
    cfg.guard.rates.frames_user = magpie_server::guard::config::Rate::new(1e6, 1_000_000);
    if let Some(ns) = backends::namespace(dir) {
        ns.apply(&mut cfg);
    }
    cfg
}

/// A second node on the same namespace as `first`.
pub async fn second_node(first: &TestServer, name: &str, num: u16) -> TestServer {
    second_node_with(first, name, num, |_| {}).await
}

/// A second node on the same namespace as `first`, its configuration
/// adjusted by `f` after the namespace and identity are applied.
pub async fn second_node_with(
    first: &TestServer,
    name: &str,
    num: u16,
    f: impl FnOnce(&mut Config),
) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    first
        .ns
        .as_ref()
        .expect("cluster namespace")
        .apply(&mut cfg);
    cfg.node = name.into();
    cfg.node_num = num;
    // Every node must sign and check tokens with the same secret.
    cfg.auth.jwt_secret = std::fs::read_to_string(first.dir.path().join("jwt.secret")).unwrap();
    f(&mut cfg);
    TestServer::launch(cfg, dir, first.ns.clone()).await
}

pub struct TestServer {
    pub running: Option<Running>,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    /// The cluster namespace (None with embedded backends); kept alive as long as the server.
    pub ns: Option<std::sync::Arc<backends::Namespace>>,
}

/// A node still running when its test ends is shut down first, so nothing
/// writes into a cluster namespace after it has been cleaned up.
impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(r.shutdown(Duration::from_secs(2)))
            });
        }
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(f: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let ns = backends::namespace(dir.path());
        let mut cfg = test_config(dir.path());
        f(&mut cfg);
        Self::launch(cfg, dir, ns).await
    }

    /// Starts a node on `cfg`, which owns `dir` (and `ns`, if any).
    async fn launch(
        cfg: Config,
        dir: tempfile::TempDir,
        ns: Option<std::sync::Arc<backends::Namespace>>,
    ) -> TestServer {
        let running = magpie_server::start(cfg).await.unwrap();
        let base = format!("http://{}", running.http_addr);
        TestServer {
            running: Some(running),
            base,
            dir,
            http: reqwest::Client::new(),
            ns,
        }
    }

    /// Base URL of the internal API's own listener (`internal.listen`).
    /// Derived from the running node rather than stored, so it follows
    /// restarts and every way a test builds a `TestServer`.
    pub fn internal(&self) -> String {
        let running = self.running.as_ref().expect("a running node");
        let addr = running.internal_addr.expect("the internal API is enabled");
        format!("http://{addr}")
    }

    pub fn app(&self) -> &magpie_server::App {
        &self.running.as_ref().unwrap().app
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown(Duration::from_secs(3)).await;
        }
    }

    /// Stops the node and starts it again on the same data directory (and
    /// cluster namespace): what survives is what was durable.
    pub async fn restart(&mut self) {
        self.stop().await;
        let running = magpie_server::start(test_config(self.dir.path()))
            .await
            .unwrap();
        self.base = format!("http://{}", running.http_addr);
        self.running = Some(running);
    }

    pub async fn conn(&self, t: &Tokens, transport: &str) -> Conn {
        Conn::hello(self.ticket(t, transport).await).await
    }

    /// Like `conn`, but on this node whatever the placement says (cluster tests).
    pub async fn conn_here(&self, t: &Tokens, transport: &str) -> Conn {
        let mut c = self.ticket(t, transport).await;
        let app = self.app();
        c.address = match c.transport {
            magpie_core::Transport::Ws => app.ws_url.clone(),
            magpie_core::Transport::Tcp => app.tcp_addr.clone().unwrap(),
        };
        Conn::hello(c).await
    }
}

/// The value of a counter in a node's /metrics, summed over its labels (0
/// when absent).
pub async fn counter(s: &TestServer, name: &str) -> f64 {
    counter_at(&s.base, name).await
}

/// `counter` of the node whose HTTP base URL is `base` (any process).
pub async fn counter_at(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The state has forgotten `node`: no route points at it and it is not
/// among the known nodes (what the sweeper leaves after a node dies).
pub async fn assert_node_forgotten(state: &magpie_store::State, node: &str) {
    assert!(state.node_routes(node).await.unwrap().is_empty());
    let known = state.known_nodes().await.unwrap();
    assert!(!known.iter().any(|n| n == node), "{node} still known");
}

pub fn frame_rid(f: &ServerFrame) -> Option<u64> {
    match f {
        ServerFrame::Sent { rid, .. }
        | ServerFrame::ReadOk { rid, .. }
        | ServerFrame::SyncResult { rid, .. }
        | ServerFrame::HistoryResult { rid, .. }
        | ServerFrame::UnreadResult { rid, .. }
        | ServerFrame::Pong { rid }
        | ServerFrame::RoomJoined { rid, .. }
        | ServerFrame::RoomLeft { rid, .. }
        | ServerFrame::RoomSent { rid, .. }
        | ServerFrame::PresenceWatchOk { rid, .. }
        | ServerFrame::ChainResult { rid, .. }
        | ServerFrame::FollowOk { rid, .. }
        | ServerFrame::UnfollowOk { rid, .. }
        | ServerFrame::Posted { rid, .. }
        | ServerFrame::PostDeleted { rid, .. }
        | ServerFrame::FeedResult { rid, .. }
        | ServerFrame::SearchResult { rid, .. }
        | ServerFrame::Error { rid, .. } => *rid,
        _ => None,
    }
}

pub fn sent_seq(f: &ServerFrame) -> (magpie_core::ServerMsgId, Seq, bool) {
    match f {
        ServerFrame::Sent {
            server_id,
            seq,
            duplicate,
            ..
        } => (*server_id, *seq, *duplicate),
        other => panic!("expected sent, got {other:?}"),
    }
}

/// A node's own periodic upkeep moved beyond any test's length: no
/// retention or search sweep, node heartbeat, node sweep, route audit, ban
/// refresh or detector lease after the start, so a test counting round
/// trips counts only what it causes.
pub fn quiet_upkeep(c: &mut Config) {
    c.retention.sweep_interval_secs = 3600;
    c.search.sweep_ms = 3_600_000;
    c.cluster.heartbeat_ms = 3_600_000;
    c.cluster.node_ttl_ms = 7_200_000;
    c.cluster.sweep_interval_ms = 3_600_000;
    c.cluster.route_audit_ms = 3_600_000;
    c.guard.ban_refresh_ms = 3_600_000;
    c.guard.detector_lease_ms = 3_600_000;
}
