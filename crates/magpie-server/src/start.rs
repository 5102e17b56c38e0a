//! Start-up and shutdown of a node: open the backends, bind the listeners,
//! spawn the roles; on shutdown stop accepting, tell every client to
//! reconnect, let the workers finish their batch, and close the backends.
//!
//! Invariants: the internal API is served only by its own listener
//! (`internal.listen`), never by the public one; every listener admits
//! connections within the node's one [`ConnLimit`].

use crate::app::{App, AppParts};
use crate::auth::{Auth, random_token};
use crate::config::Config;
use crate::error::{Result, ServerError};
use crate::listener::{ConnLimit, HttpListener};
use magpie_bus::{Bus, Relay, RelayOptions};
use magpie_store::{State, Store};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running node.
pub struct Running {
    pub app: App,
    pub http_addr: SocketAddr,
    pub tcp_addr: Option<SocketAddr>,
    /// The internal API's bound address; `None` when it is disabled (no
    /// `internal.listen` or `internal.service_key`, or no `edge` role).
    pub internal_addr: Option<SocketAddr>,
    tasks: Vec<(String, JoinHandle<()>)>,
}

/// The shortest `auth.jwt_secret` accepted: HS256's key should be at
/// least as long as its output (RFC 7518 §3.2).
pub const MIN_JWT_SECRET: usize = 32;

fn jwt_secret(cfg: &Config) -> Result<Vec<u8>> {
    let configured = &cfg.auth.jwt_secret;
    if configured.len() >= MIN_JWT_SECRET {
        return Ok(configured.as_bytes().to_vec());
    }
    if !configured.is_empty() {
        return Err(ServerError::Internal(format!(
            "auth.jwt_secret is {} bytes: at least {MIN_JWT_SECRET} are needed \
             (or leave it empty to generate one in the data directory)",
            configured.len()
        )));
    }
    // Generated once and kept in the data directory so tokens survive restarts.
    let path = cfg.data_dir.join("jwt.secret");
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => Ok(s.trim().as_bytes().to_vec()),
        _ => {
            let s = random_token(48);
            std::fs::write(&path, &s)
                .map_err(|e| ServerError::Internal(format!("write {}: {e}", path.display())))?;
            Ok(s.into_bytes())
        }
    }
}

/// Connections the kernel may hold completed but not yet accepted. tokio's
/// default (1,024) overflowed under connect bursts: the kernel dropped the
/// handshake and the client retried its SYN a second later. The kernel caps
/// it at `net.core.somaxconn` (docs/deploy.md).
const LISTEN_BACKLOG: u32 = 8192;

async fn bind(addr: &str) -> Result<TcpListener> {
    let fail = |e: std::io::Error| ServerError::Internal(format!("bind {addr}: {e}"));
    let mut last = None;
    for sa in tokio::net::lookup_host(addr).await.map_err(fail)? {
        let socket = match sa {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        };
        // What TcpListener::bind does, with our backlog.
        let bound = socket.and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(sa)?;
            s.listen(LISTEN_BACKLOG)
        });
        match bound {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(fail(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address")
    })))
}

/// The sockets a node listens on, bound before anything is served.
struct Listeners {
    http: TcpListener,
    tcp: Option<TcpListener>,
    /// Bound only where the internal API can answer (an edge node with a
    /// service key): a disabled API leaves no port open, and nodes without a
    /// key sharing a host do not contend for the default address.
    internal: Option<TcpListener>,
}

impl Listeners {
    async fn bind(cfg: &Config) -> Result<Listeners> {
        let http = bind(&cfg.http.listen).await?;
        let tcp = match cfg.tcp.listen.as_str() {
            "" => None,
            addr => Some(bind(addr).await?),
        };
        let internal = if cfg.internal.listen.is_empty()
            || cfg.internal.service_key.is_empty()
            || !cfg.cluster.has("edge")
        {
            None
        } else {
            Some(bind(&cfg.internal.listen).await?)
        };
        Ok(Listeners {
            http,
            tcp,
            internal,
        })
    }

    fn http_addr(&self) -> Result<SocketAddr> {
        self.http
            .local_addr()
            .map_err(|e| ServerError::Internal(e.to_string()))
    }
}

/// The addresses clients are told to connect to: the configured public
/// ones, else the bound ones.
fn public_addresses(
    cfg: &Config,
    http_addr: SocketAddr,
    tcp_addr: Option<SocketAddr>,
) -> (String, Option<String>) {
    let base = if cfg.http.public_url.is_empty() {
        format!("http://{http_addr}")
    } else {
        cfg.http.public_url.clone()
    };
    let ws_url = format!(
        "{}/v1/ws",
        base.replacen("http", "ws", 1).trim_end_matches('/')
    );
    let tcp_public = tcp_addr.map(|a| {
        if cfg.tcp.public_addr.is_empty() {
            a.to_string()
        } else {
            cfg.tcp.public_addr.clone()
        }
    });
    (ws_url, tcp_public)
}

/// Opens the backends, binds the listeners (port 0 is fine) and starts every role.
pub async fn start(cfg: Config) -> Result<Running> {
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| ServerError::Internal(format!("create {}: {e}", cfg.data_dir.display())))?;
    crate::roles::check(&cfg)?;
    // Configuration errors before any backend is touched.
    let secret = jwt_secret(&cfg)?;
    crate::guard::check(&cfg.guard)?;
    crate::services::trace::check(&cfg.trace)?;
    crate::metrics::catalog::register_all();
    let store = Store::open_with(&cfg.store_url(), &cfg.store_options()).await?;
    let state = State::open(&cfg.state).await?;
    let bus = Bus::open(&cfg.bus_url()).await?;
    let search = if cfg.cluster.has("search") {
        let segmenter = magpie_search::Segmenter::parse(&cfg.search.tokenizer)?;
        Some(magpie_search::SearchIndex::open(
            &cfg.search_dir(),
            segmenter,
        )?)
    } else {
        None
    };
    let relay_opts = RelayOptions {
        // A restarted node is recognised: its possibly lost last frames
        // are reported to the subscribers.
        publisher: Some(cfg.node.clone()),
        ..RelayOptions::default()
    };
    // A Kafka bus carries no relay: left to default, each node would relay
    // in process only, and pushes for another node's connections would be
    // lost without a word. Say so at start instead (docs/deploy.md).
    if cfg.relay.is_empty() && cfg.bus_url().starts_with("kafka://") {
        return Err(magpie_bus::BusError::Config(
            "a kafka:// bus needs `relay`: nats://HOST:PORT/?prefix=P for a cluster, \
             mem://NAME for one node (docs/deploy.md)"
                .into(),
        )
        .into());
    }
    let relay = Relay::open_with(&cfg.relay_url(), relay_opts).await?;
    let auth = Auth::new(
        &secret,
        cfg.auth.access_ttl_secs,
        cfg.auth.argon2_m_kib,
        cfg.auth.argon2_t,
        cfg.auth.hash_concurrency(),
        cfg.auth.hash_queue,
    )?;
    let listeners = Listeners::bind(&cfg).await?;
    let http_addr = listeners.http_addr()?;
    let tcp_addr = listeners.tcp.as_ref().and_then(|l| l.local_addr().ok());
    let internal_addr = listeners
        .internal
        .as_ref()
        .and_then(|l| l.local_addr().ok());
    let (ws_url, tcp_public) = public_addresses(&cfg, http_addr, tcp_addr);
    let shutdown = CancellationToken::new();
    let app = App::new(AppParts {
        cfg,
        store,
        state,
        bus,
        relay,
        auth,
        ws_url,
        tcp_addr: tcp_public,
        shutdown,
        search,
    });
    let mut tasks = crate::roles::spawn(&app).await;
    tasks.extend(crate::guard::spawn(&app));
    tasks.extend(serve(&app, listeners));
    tracing::info!(
        node = %app.cfg.node,
        %http_addr,
        tcp = ?tcp_addr,
        internal = ?internal_addr,
        "magpie node started"
    );
    Ok(Running {
        app,
        http_addr,
        tcp_addr,
        internal_addr,
        tasks,
    })
}

/// Serves the listeners, every one within the node's one connection cap.
fn serve(app: &App, l: Listeners) -> Vec<(String, JoinHandle<()>)> {
    let limit = ConnLimit::new(app.cfg.limits.max_connections).with_guard(app.guard.clone());
    tracing::info!(max = limit.max(), "client connection cap");
    let mut tasks = vec![(
        "http".to_string(),
        serve_http(app, l.http, limit.clone(), crate::edge::router(app.clone())),
    )];
    if let Some(internal) = l.internal {
        let router = crate::edge::internal_router(app.clone());
        let task = serve_http(app, internal, limit.clone(), router);
        tasks.push(("internal".into(), task));
    }
    if let Some(tcp) = l.tcp {
        let task = tokio::spawn(crate::conn::tcp::serve(app.clone(), tcp, limit));
        tasks.push(("tcp".into(), task));
    }
    tasks
}

/// Serves `router` on `listener`, each connection holding a permit of
/// `limit` and held to the header deadline, until `stop` is cancelled;
/// requests in progress then finish (`http_conn.rs`).
fn serve_http(
    app: &App,
    listener: TcpListener,
    limit: ConnLimit,
    router: axum::Router,
) -> JoinHandle<()> {
    let listener = HttpListener { listener, limit };
    let headers = Duration::from_millis(app.cfg.http.header_timeout_ms.max(1));
    tokio::spawn(crate::http_conn::serve(
        listener,
        router,
        app.shutdown.clone(),
        headers,
    ))
}

impl Running {
    /// Graceful shutdown: stop accepting, send every client a `reconnect`
    /// frame and close it, wait (up to `grace`) for sessions to end, then
    /// for the workers to finish their current batch. Nothing acknowledged
    /// is at risk: acknowledgements only ever follow durable writes.
    pub async fn shutdown(self, grace: Duration) {
        // Five steps: leave the registry (no new connections), tell every
        // client to reconnect elsewhere and close it, wait, then clean up
        // any route still pointing here and announce it offline.
        if let Err(e) = self.app.state.node_deregister(&self.app.cfg.node).await {
            tracing::warn!(error = %e, "deregistration failed; the sweeper will clean up");
        }
        self.app.shutdown.cancel();
        let deadline = tokio::time::Instant::now() + grace;
        // Every session runs in `app.sessions`, and each one ends on the
        // cancel above (after its `reconnect` frame and close); once the
        // tracker is closed, `wait` returns as soon as the last one has.
        self.app.sessions.close();
        if tokio::time::timeout_at(deadline, self.app.sessions.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.app.sessions.len(),
                "sessions still open at the end of the grace period"
            );
        }
        if let Err(e) =
            crate::cluster::sweeper::release_node(&self.app, &self.app.cfg.node, "shutdown").await
        {
            tracing::warn!(error = %e, "route clean-up failed; the sweeper will finish it");
        }
        // The offline changes of the steps above are fanned out, then the
        // presence tasks stop (services/presence.rs).
        self.app.presence.close();
        for (name, task) in self.tasks {
            if tokio::time::timeout_at(
                deadline.max(tokio::time::Instant::now() + Duration::from_secs(1)),
                task,
            )
            .await
            .is_err()
            {
                tracing::warn!(task = name, "did not stop in time");
            }
        }
        // What the last tasks published (the offline presence above, the
        // final pushes) must leave the process before the relay's
        // connection is dropped with it; closing also ends this node's
        // relay numbering, so subscribers see no gap from a node that left.
        match tokio::time::timeout(Duration::from_secs(2), self.app.relay.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "relay not flushed at shutdown"),
            Err(_) => tracing::warn!("relay not flushed within 2 s of shutdown"),
        }
        // The indexer has stopped: let the index finish its merges and
        // release its directory before the process (or a restart) goes on.
        if let Some(index) = self.app.search.index().cloned() {
            let _ = tokio::task::spawn_blocking(move || index.close()).await;
        }
        // Spans still batched go to the collector (docs/observability.md).
        let traces = self.app.traces.clone();
        let _ = tokio::task::spawn_blocking(move || traces.flush()).await;
        tracing::info!(node = %self.app.cfg.node, "magpie node stopped");
    }
}
