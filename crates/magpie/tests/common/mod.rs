//! Black-box test harness: a real node on 127.0.0.1:0 with the embedded
//! backends in a fresh temporary directory, HTTP helpers, and raw socket
//! clients for both transports (raw so tests see exactly what is on the wire).
#![allow(dead_code)]

pub mod backends;

use futures_util::{SinkExt, StreamExt};
use magpie_core::{ClientMsgId, ConvId, Seq, UserId};
use magpie_proto::http::{ConnectResponse, Tokens};
use magpie_proto::{ClientFrame, ClientOp, ServerFrame, TcpCodec};
use magpie_server::{Config, Running};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMsg;
use tokio_util::codec::Framed;

pub const WAIT: Duration = Duration::from_secs(10);

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
    if let Some(ns) = backends::namespace(dir) {
        ns.apply(&mut cfg);
    }
    cfg
}

/// A second node on the same namespace as `first`.
pub async fn second_node(first: &TestServer, name: &str, num: u16) -> TestServer {
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
    let running = magpie_server::start(cfg).await.unwrap();
    let base = format!("http://{}", running.http_addr);
    TestServer {
        running: Some(running),
        base,
        dir,
        http: reqwest::Client::new(),
        ns: first.ns.clone(),
    }
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

    /// POST/GET on the public API returning (status, json body).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_at(&self.base, method, path, token, body).await
    }

    /// Like `call`, on the internal API's listener.
    pub async fn call_internal(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_at(&self.internal(), method, path, token, body)
            .await
    }

    /// Like `call`, on any base URL.
    pub async fn call_at(
        &self,
        base: &str,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{base}{path}");
        let mut req = match method {
            "GET" => self.http.get(url),
            "PUT" => self.http.put(url),
            "PATCH" => self.http.patch(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url),
        };
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn user(&self, name: &str, device: &str) -> Tokens {
        let (s, _) = self
            .call(
                "POST",
                "/v1/auth/register",
                None,
                Some(json!({"username": name, "password": "password123"})),
            )
            .await;
        assert!(s == 201 || s == 409, "register {name}: {s}");
        self.login(name, device).await
    }

    pub async fn login(&self, name: &str, device: &str) -> Tokens {
        let (s, body) = self
            .call(
                "POST",
                "/v1/auth/login",
                None,
                Some(json!({"username": name, "password": "password123", "device": device})),
            )
            .await;
        assert_eq!(s, 200, "login: {body}");
        serde_json::from_value(body).unwrap()
    }

    pub async fn ticket(&self, t: &Tokens, transport: &str) -> ConnectResponse {
        let (s, body) = self
            .call(
                "POST",
                "/v1/connect",
                Some(&t.access_token),
                Some(json!({"transport": transport})),
            )
            .await;
        assert_eq!(s, 200, "connect: {body}");
        serde_json::from_value(body).unwrap()
    }

    pub async fn conn(&self, t: &Tokens, transport: &str) -> Conn {
        let c = self.ticket(t, transport).await;
        let mut conn = Conn::open(&c).await;
        conn.send_op(None, ClientOp::Hello { ticket: c.ticket })
            .await;
        match conn.next().await {
            ServerFrame::Welcome { .. } => conn,
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    /// Like `conn`, but on this node whatever the placement says (cluster tests).
    pub async fn conn_here(&self, t: &Tokens, transport: &str) -> Conn {
        let mut c = self.ticket(t, transport).await;
        let app = self.app();
        c.address = match c.transport {
            magpie_core::Transport::Ws => app.ws_url.clone(),
            magpie_core::Transport::Tcp => app.tcp_addr.clone().unwrap(),
        };
        let mut conn = Conn::open(&c).await;
        conn.send_op(None, ClientOp::Hello { ticket: c.ticket })
            .await;
        match conn.next().await {
            ServerFrame::Welcome { .. } => conn,
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    pub async fn http_send(
        &self,
        t: &Tokens,
        to: UserId,
        cmid: ClientMsgId,
        body: &str,
    ) -> (u16, Value) {
        self.call(
            "POST",
            "/v1/messages",
            Some(&t.access_token),
            Some(json!({"to": to, "cmid": cmid, "body": body})),
        )
        .await
    }
}

pub enum Wire {
    Ws(tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>),
    Tcp(Framed<TcpStream, TcpCodec>),
}

/// A raw client connection. Frames that arrive while waiting for a reply
/// are kept in `backlog`, so pushes are never lost to a test.
pub struct Conn {
    pub wire: Wire,
    pub backlog: VecDeque<ServerFrame>,
    next_rid: u64,
}

impl Conn {
    pub async fn open(c: &ConnectResponse) -> Conn {
        let wire = match c.transport {
            magpie_core::Transport::Ws => Wire::Ws(
                tokio_tungstenite::connect_async(c.address.as_str())
                    .await
                    .unwrap()
                    .0,
            ),
            magpie_core::Transport::Tcp => {
                let s = TcpStream::connect(c.address.as_str()).await.unwrap();
                Wire::Tcp(Framed::new(s, TcpCodec::new(1 << 20)))
            }
        };
        Conn {
            wire,
            backlog: VecDeque::new(),
            next_rid: 1,
        }
    }

    pub async fn send_raw(&mut self, bytes: Vec<u8>) {
        match &mut self.wire {
            Wire::Ws(ws) => ws.send(WsMsg::Binary(bytes.into())).await.unwrap(),
            Wire::Tcp(t) => t.send(bytes::Bytes::from(bytes)).await.unwrap(),
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        match &mut self.wire {
            Wire::Ws(ws) => ws.send(WsMsg::Text(text.to_string().into())).await.unwrap(),
            Wire::Tcp(t) => t
                .send(bytes::Bytes::from(text.as_bytes().to_vec()))
                .await
                .unwrap(),
        }
    }

    pub async fn send_op(&mut self, rid: Option<u64>, op: ClientOp) {
        self.send_raw(ClientFrame { rid, op }.encode()).await;
    }

    /// The next frame from the wire; `None` when the connection closed.
    pub async fn recv(&mut self, wait: Duration) -> Option<ServerFrame> {
        self.try_recv(wait)
            .await
            .expect("timed out waiting for a frame")
    }

    /// Like `recv`, but `Err` on timeout instead of panicking.
    pub async fn try_recv(
        &mut self,
        wait: Duration,
    ) -> Result<Option<ServerFrame>, tokio::time::error::Elapsed> {
        let fut = async {
            loop {
                match &mut self.wire {
                    Wire::Ws(ws) => match ws.next().await {
                        Some(Ok(WsMsg::Text(t))) => {
                            return Some(ServerFrame::decode(t.as_bytes()).unwrap());
                        }
                        Some(Ok(WsMsg::Binary(b))) => {
                            return Some(ServerFrame::decode(&b).unwrap());
                        }
                        Some(Ok(WsMsg::Close(_))) | None | Some(Err(_)) => return None,
                        Some(Ok(_)) => continue,
                    },
                    Wire::Tcp(t) => match t.next().await {
                        Some(Ok(b)) => return Some(ServerFrame::decode(&b).unwrap()),
                        _ => return None,
                    },
                }
            }
        };
        tokio::time::timeout(wait, fut).await
    }

    /// The next frame other than pings (answered), backlog first.
    pub async fn next(&mut self) -> ServerFrame {
        if let Some(f) = self.backlog.pop_front() {
            return f;
        }
        loop {
            match self.recv(WAIT).await.expect("connection closed") {
                ServerFrame::Ping => self.send_op(None, ClientOp::Pong).await,
                f => return f,
            }
        }
    }

    /// Sends a request and waits for the frame that answers its rid.
    pub async fn request(&mut self, op: ClientOp) -> ServerFrame {
        let rid = self.next_rid;
        self.next_rid += 1;
        self.send_op(Some(rid), op).await;
        loop {
            let f = match self.recv(WAIT).await.expect("connection closed") {
                ServerFrame::Ping => {
                    self.send_op(None, ClientOp::Pong).await;
                    continue;
                }
                f => f,
            };
            if frame_rid(&f) == Some(rid) {
                return f;
            }
            self.backlog.push_back(f);
        }
    }

    pub async fn send_msg(&mut self, to: UserId, body: &str) -> ServerFrame {
        self.request(ClientOp::Send {
            to,
            cmid: ClientMsgId::new_v7(),
            body: body.into(),
            persistence: None,
            group: None,
        })
        .await
    }

    pub async fn send_group(&mut self, group: i64, body: &str) -> ServerFrame {
        self.request(ClientOp::Send {
            to: UserId(0),
            cmid: ClientMsgId::new_v7(),
            body: body.into(),
            persistence: None,
            group: Some(magpie_core::GroupId(group)),
        })
        .await
    }

    /// The next pushed message, acknowledged.
    pub async fn expect_msg(&mut self) -> magpie_core::Message {
        loop {
            if let ServerFrame::Msg { msg, .. } = self.next().await {
                self.send_op(
                    None,
                    ClientOp::Ack {
                        conv: msg.conv.clone(),
                        seqs: vec![msg.seq],
                    },
                )
                .await;
                return msg;
            }
        }
    }

    /// The next frame matching `pred`, skipping others.
    pub async fn expect(&mut self, pred: impl Fn(&ServerFrame) -> bool) -> ServerFrame {
        loop {
            let f = self.next().await;
            if pred(&f) {
                return f;
            }
        }
    }

    pub async fn sync(
        &mut self,
        convs: &[(ConvId, Seq)],
        limit: usize,
    ) -> Vec<magpie_proto::SyncConv> {
        let op = ClientOp::Sync {
            convs: convs.iter().cloned().collect(),
            limit: Some(limit),
        };
        match self.request(op).await {
            ServerFrame::SyncResult { convs, .. } => convs,
            other => panic!("expected sync_result, got {other:?}"),
        }
    }
}

/// The value of a counter in a node's /metrics, summed over its labels (0
/// when absent).
pub async fn counter(s: &TestServer, name: &str) -> f64 {
    let text = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
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
