//! The edge guard under load (`crates/magpie-server/src/guard/`): one
//! abusive client must not cost everyone else their service.
//!
//! - a user flooding `send` frames is slowed (`rate_limited`), then
//!   banned by the detector (`flood_user` / `flood_ip`), while a hundred
//!   well-behaved users keep their latency;
//! - a thousand slowloris connections and a storm of wrong-password
//!   logins are closed or refused within their deadlines and bounds,
//!   the node's memory stays bounded, and a new client still gets in.
//!
//! The node runs in the test process, so "another address" is a socket
//! bound to 127.0.0.2 (any 127.x.y.z is local on Linux), and the guard's
//! allow-list is narrowed to 127.0.0.1 so that address is limited and
//! bannable. Timings are generous: the machine may be a loaded 2-core CI
//! box, and the clients share the process (and its cores) with the node.

mod common;
use common::*;
use futures_util::{SinkExt, StreamExt};
use magpie_core::{ClientMsgId, UserId};
use magpie_proto::http::{ConnectResponse, Tokens};
use magpie_proto::{ClientFrame, ClientOp, ErrorCode, ServerFrame};
use magpie_server::guard::config::Rate;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMsg;

/// The address the abusive clients come from (not allow-listed here).
const OTHER: &str = "127.0.0.2";

/// A TCP connection to `to` from `local` (an address of this host).
async fn tcp_from(local: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(format!("{local}:0").parse().expect("local address"))?;
    sock.connect(to).await
}

/// `host:port` of a `ws://host:port/path` address.
fn ws_host(url: &str) -> SocketAddr {
    let rest = url.trim_start_matches("ws://");
    rest.split('/').next().unwrap().parse().unwrap()
}

fn http_host(s: &TestServer) -> SocketAddr {
    s.base.trim_start_matches("http://").parse().unwrap()
}

fn frame(f: ClientFrame) -> WsMsg {
    WsMsg::Binary(f.encode().into())
}

fn send_op(to: UserId, body: &str) -> ClientOp {
    ClientOp::Send {
        reply_to: None,
        recall: None,
        mentions: Vec::new(),
        mention_all: false,
        edit: None,
        traceparent: None,
        sample: false,
        to,
        cmid: ClientMsgId::new_v7(),
        body: body.into(),
        persistence: None,
        group: None,
        chain: None,
    }
}

/// The next server frame; `None` when the connection ended.
async fn next_frame<S>(ws: &mut WebSocketStream<S>) -> Option<ServerFrame>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match ws.next().await {
            Some(Ok(WsMsg::Text(t))) => return Some(ServerFrame::decode(t.as_bytes()).unwrap()),
            Some(Ok(WsMsg::Binary(b))) => return Some(ServerFrame::decode(&b).unwrap()),
            Some(Ok(WsMsg::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

/// A WebSocket session on ticket `c` from address `local`, welcomed.
async fn ws_from(local: &str, c: &ConnectResponse) -> WebSocketStream<TcpStream> {
    let tcp = tcp_from(local, ws_host(&c.address)).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(c.address.as_str(), tcp)
        .await
        .unwrap();
    let hello = ClientOp::Hello {
        ticket: c.ticket.clone(),
    };
    ws.send(frame(ClientFrame {
        rid: None,
        op: hello,
    }))
    .await
    .unwrap();
    match tokio::time::timeout(WAIT, next_frame(&mut ws)).await {
        Ok(Some(ServerFrame::Welcome { .. })) => ws,
        other => panic!("expected welcome, got {other:?}"),
    }
}

/// The process's resident memory, bytes (the node runs in it).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

/// Samples the RSS every 20 ms until stopped; the highest seen.
fn rss_peak() -> (Arc<AtomicBool>, tokio::task::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let task = tokio::spawn(async move {
        let mut peak = rss();
        while !s.load(Ordering::Relaxed) {
            peak = peak.max(rss());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        peak.max(rss())
    });
    (stop, task)
}

const MB: u64 = 1 << 20;

/// The tests measure latency and the process's RSS: one at a time (under
/// cargo-nextest, a process per test, the `load` test group of
/// .config/nextest.toml keeps them apart instead).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn p99(lat: &mut [Duration]) -> Duration {
    assert!(!lat.is_empty(), "no samples");
    lat.sort();
    lat[(lat.len() * 99).div_ceil(100) - 1]
}

// ---------------------------------------------------------------------------
// 1. Flood vs well-behaved clients
// ---------------------------------------------------------------------------

/// Well-behaved users (in pairs, each sending to the other).
const USERS: usize = 100;
/// Each one's steady rate (200 messages a second in all: what the slowest
/// cluster configuration of CI — sharded MariaDB, a NATS cluster with
/// three replicas — serves in a debug build without queueing).
const EVERY: Duration = Duration::from_millis(500);
/// Per-user send rate for the test: well above a well-behaved user's 2/s,
/// so only the flooder is limited, and low enough that the flood is
/// limited (and its refusals fill the detector's bucket) quickly.
const SENDS_USER: Rate = Rate::new(200.0, 100);

/// What one well-behaved client saw in a phase.
#[derive(Default)]
struct Steady {
    /// (when it was sent, from the phase's start; its time to `sent`).
    lat: Vec<(Duration, Duration)>,
    errors: Vec<String>,
    sent: usize,
    accepted: usize,
    unanswered: usize,
}

/// Sends to `to` every `EVERY` from `start + offset` until `start + run`,
/// acknowledging what is pushed, then waits for the last replies.
async fn steady<S>(
    ws: &mut WebSocketStream<S>,
    to: UserId,
    start: tokio::time::Instant,
    offset: Duration,
    run: Duration,
    rids: u64,
) -> Steady
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut st = Steady::default();
    let mut pending: HashMap<u64, Instant> = HashMap::new();
    let mut rid = rids;
    let mut tick = tokio::time::interval_at(start + offset, EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = start + run;
    let give_up = end + Duration::from_secs(20);
    loop {
        let now = tokio::time::Instant::now();
        let sending = now < end;
        if (!sending && pending.is_empty()) || now > give_up {
            break;
        }
        tokio::select! {
            _ = tick.tick(), if sending => {
                rid += 1;
                pending.insert(rid, Instant::now());
                ws.send(frame(ClientFrame { rid: Some(rid), op: send_op(to, "hello") }))
                    .await
                    .unwrap();
                st.sent += 1;
            }
            f = next_frame(ws) => match f {
                Some(ServerFrame::Sent { rid: Some(r), .. }) => {
                    if let Some(at) = pending.remove(&r) {
                        st.lat.push((at.duration_since(start.into_std()), at.elapsed()));
                        st.accepted += 1;
                    }
                }
                Some(ServerFrame::Msg { msg, .. }) => {
                    let ack = ClientOp::Ack { conv: msg.conv, seqs: vec![msg.seq] };
                    ws.send(frame(ClientFrame { rid: None, op: ack })).await.unwrap();
                }
                Some(ServerFrame::Ping) => {
                    ws.send(frame(ClientFrame { rid: None, op: ClientOp::Pong })).await.unwrap();
                }
                Some(ServerFrame::Error { code, message, .. }) => {
                    st.errors.push(format!("{code:?}: {message}"));
                }
                Some(_) => {}
                None => {
                    st.errors.push("the connection closed".into());
                    break;
                }
            },
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    st.unanswered = pending.len();
    st
}

/// What the flooder saw.
#[derive(Debug, Default)]
struct Flood {
    sent: u64,
    accepted: u64,
    limited: u64,
    /// From the flood's start.
    first_limited: Option<Duration>,
    banned: Option<Duration>,
    /// Error frames other than `rate_limited` and the ban.
    other: Vec<String>,
    /// Frames after the fatal `banned` one (there must be none).
    after_ban: u64,
}

/// The flood: 25 times the test's per-user send rate.
const FLOOD_RATE: f64 = 5_000.0;

/// Sends `send` frames to `to` at `FLOOD_RATE` for at most `run`, reading
/// every answer, until the connection ends.
async fn flood(ws: WebSocketStream<TcpStream>, to: UserId, run: Duration) -> Flood {
    let started = Instant::now();
    let (mut tx, mut rx) = ws.split();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, sent) = (stop.clone(), sent.clone());
        tokio::spawn(async move {
            let mut rid = 0u64;
            // FLOOD_RATE frames a second, in bursts of 32.
            let mut tick = tokio::time::interval(Duration::from_secs_f64(32.0 / FLOOD_RATE));
            'out: while !stop.load(Ordering::Relaxed) && started.elapsed() < run {
                tick.tick().await;
                for _ in 0..32 {
                    rid += 1;
                    let f = frame(ClientFrame {
                        rid: Some(rid),
                        op: send_op(to, "flood"),
                    });
                    if tx.feed(f).await.is_err() {
                        break 'out;
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                if tx.flush().await.is_err() {
                    break;
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), tx.close()).await;
        })
    };
    let mut out = Flood::default();
    let deadline = started + run + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = match tokio::time::timeout(left, rx.next()).await {
            Err(_) => break,
            Ok(m) => m,
        };
        let f = match msg {
            Some(Ok(WsMsg::Text(t))) => ServerFrame::decode(t.as_bytes()).unwrap(),
            Some(Ok(WsMsg::Binary(b))) => ServerFrame::decode(&b).unwrap(),
            Some(Ok(WsMsg::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => continue,
        };
        if out.banned.is_some() {
            out.after_ban += 1;
            continue;
        }
        match f {
            ServerFrame::Sent { .. } => out.accepted += 1,
            ServerFrame::Error {
                code: ErrorCode::RateLimited,
                fatal: false,
                ..
            } => {
                out.limited += 1;
                out.first_limited.get_or_insert(started.elapsed());
            }
            ServerFrame::Error {
                code: ErrorCode::Banned,
                fatal: true,
                ..
            } => {
                out.banned = Some(started.elapsed());
                stop.store(true, Ordering::Relaxed);
            }
            ServerFrame::Error {
                code,
                message,
                fatal,
                ..
            } => out.other.push(format!("{code:?} fatal={fatal}: {message}")),
            _ => {}
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    out.sent = sent.load(Ordering::Relaxed);
    out
}

type Ws = WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Runs every well-behaved client for one phase; their sessions come back.
async fn phase(
    conns: Vec<(Ws, UserId)>,
    start: tokio::time::Instant,
    run: Duration,
    rids: u64,
) -> (Vec<(Ws, UserId)>, Vec<Steady>) {
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, (mut ws, to))| {
            // Spread over the period, as real clients are.
            let offset = EVERY * i as u32 / USERS as u32;
            tokio::spawn(async move {
                let st = steady(&mut ws, to, start, offset, run, rids).await;
                (ws, to, st)
            })
        })
        .collect();
    let (mut back, mut stats) = (Vec::new(), Vec::new());
    for t in tasks {
        let (ws, to, st) = t.await.unwrap();
        back.push((ws, to));
        stats.push(st);
    }
    (back, stats)
}

/// Every well-behaved client got every send accepted, with no error frame.
fn assert_well_served(stats: &[Steady], what: &str) {
    for (i, st) in stats.iter().enumerate() {
        assert!(
            st.errors.is_empty(),
            "{what}: user {i} saw errors: {:?}",
            st.errors
        );
        assert_eq!(
            (st.accepted, st.unanswered),
            (st.sent, 0),
            "{what}: user {i}: sends accepted, unanswered"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flooder_is_slowed_then_banned_and_everyone_else_keeps_their_latency() {
    let _serial = SERIAL.lock().await;
    let s = TestServer::start_with(|c| {
        c.guard.allow = vec!["127.0.0.1/32".parse().unwrap()];
        c.guard.rates.sends_user = SENDS_USER;
        c.guard.ban_refresh_ms = 100;
        // The flood rules fill after 50 refusals: a slow node (which reads
        // the flooder's frames only as fast as it serves them) still bans
        // within seconds.
        c.guard.rules = magpie_server::guard::config::default_rules()
            .into_iter()
            .map(|mut r| {
                if r.name.starts_with("flood") {
                    r.capacity = 50;
                }
                r
            })
            .collect();
    })
    .await;
    let started = Instant::now();
    assert!(EVERY.as_secs_f64().recip() * 2.0 < SENDS_USER.rate);

    // 100 users in 50 pairs, plus the flooder and the one it floods.
    let names: Vec<String> = (0..USERS).map(|i| format!("steady{i}")).collect();
    let tokens: Vec<Tokens> = futures_util::stream::iter(names.iter())
        .map(|n| s.user(n, "phone"))
        .buffered(4)
        .collect()
        .await;
    let [flooder, sink] = s.users(["flooder", "sink"]).await;
    let mut conns = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let partner = tokens[i ^ 1].user_id;
        let Wire::Ws(ws) = s.conn(t, "ws").await.wire else {
            unreachable!("a WebSocket ticket")
        };
        conns.push((ws, partner));
    }
    eprintln!("{USERS} users connected after {:?}", started.elapsed());

    // Warm-up (not measured): each conversation's first rows, caches.
    let start = tokio::time::Instant::now() + Duration::from_millis(200);
    let (conns, warm) = phase(conns, start, Duration::from_secs(1), 0).await;
    assert_well_served(&warm, "warming up");

    // Phase 1: the steady load alone.
    let base_run = Duration::from_secs(3);
    let start = tokio::time::Instant::now() + Duration::from_millis(200);
    let (conns, base) = phase(conns, start, base_run, 0).await;
    assert_well_served(&base, "without the flood");
    let mut lat: Vec<Duration> = base
        .iter()
        .flat_map(|s| s.lat.iter().map(|l| l.1))
        .collect();
    let sent_base = lat.len();
    let p99_base = p99(&mut lat);

    // Phase 2: the same, and one user flooding from another address.
    let flood_run = Duration::from_secs(6);
    let ticket = s.ticket(&flooder, "ws").await;
    let start = tokio::time::Instant::now() + Duration::from_millis(200);
    let to = sink.user_id;
    // The flooder is another machine's client: its own thread and runtime,
    // not a task among the node's (which it would starve of its workers).
    let flood_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let fws = ws_from(OTHER, &ticket).await;
            tokio::time::sleep_until(start).await;
            flood(fws, to, flood_run).await
        })
    });
    let (conns, loaded) = phase(conns, start, flood_run, 1 << 32).await;
    let fl = tokio::task::spawn_blocking(move || flood_thread.join().unwrap())
        .await
        .unwrap();
    assert_well_served(&loaded, "during the flood");
    let mut lat: Vec<Duration> = loaded
        .iter()
        .flat_map(|s| s.lat.iter().map(|l| l.1))
        .collect();
    let sent_loaded = lat.len();
    let p99_loaded = p99(&mut lat);
    // The sends made while the flood was on and in the second after its
    // ban (when the messages it got through are still being worked off):
    // where a flood could hurt the others. The rest of the phase is the
    // node as it was, and its p99 (printed) is the machine's noise.
    let flood_end = fl.banned.unwrap_or(flood_run) + Duration::from_secs(1);
    let mut during: Vec<Duration> = loaded
        .iter()
        .flat_map(|s| s.lat.iter().filter(|l| l.0 <= flood_end).map(|l| l.1))
        .collect();
    let sent_during = during.len();
    let p99_during = p99(&mut during);

    let bans: Vec<String> = s
        .app()
        .guard
        .bans
        .all()
        .iter()
        .map(|d| format!("{} ({})", d.id, d.reason))
        .collect();
    eprintln!(
        "relay {:?}; access events dropped {}, bans {}, banned refusals {}",
        s.app().relay.stats(),
        counter(&s, "magpie_access_events_dropped_total").await,
        counter(&s, "magpie_bans_total").await,
        counter(&s, "magpie_banned_refusals_total").await,
    );
    eprintln!(
        "p99 without the flood: {p99_base:?} ({sent_base} sends); with it: {p99_loaded:?} \
         ({sent_loaded} sends), {p99_during:?} during the flood and the second after its ban ({sent_during} sends)"
    );
    eprintln!(
        "flooder: {} frames sent, {} accepted, {} rate_limited (first after {:?}), \
         banned after {:?}; decisions {bans:?}",
        fl.sent, fl.accepted, fl.limited, fl.first_limited, fl.banned
    );

    // The flooder: slowed first, then banned by the detector.
    assert!(fl.other.is_empty(), "the flooder got {:?}", fl.other);
    let first = fl
        .first_limited
        .expect("the flooder was never rate_limited");
    let banned = fl.banned.expect("the flooder was never banned");
    assert!(first < banned, "rate_limited before the ban");
    assert!(banned < flood_run, "banned {banned:?} into the flood");
    assert_eq!(fl.after_ban, 0, "nothing after the fatal banned frame");
    assert!(
        fl.accepted
            <= u64::from(SENDS_USER.burst)
                + (SENDS_USER.rate * (banned.as_secs_f64() + 1.0)) as u64,
        "the flooder got {} messages through",
        fl.accepted
    );
    let user_ban = format!("user:{}", flooder.user_id.0);
    assert!(
        bans.iter().any(|b| b.starts_with(&user_ban)),
        "no ban on the flooding user: {bans:?}"
    );
    // Well-behaved users kept their latency. The floor is a debug build's
    // on a shared 2-core machine, where a 3 s phase's p99 alone swings
    // between about 10 and 45 ms (a sub-millisecond base would make the
    // bound meaningless).
    // On the cluster engines (a debug build, the databases and NATS on the
    // same two cores and disk) a phase's p99 is the engines' own stalls —
    // seen at 59 ms in one phase and 460 ms in the next with a flood
    // banned after 136 ms — so there the figures are printed and the
    // bound holds on the embedded backends, where the node is what is
    // measured.
    // The bound catches a flooder that starves the others (seconds of
    // delay), not a phase's noise: with the suite's other test binaries on
    // the same two cores a debug build's p99 during the flood was seen at
    // 339 ms over a 69 ms base, the flooder banned after 136 ms. What the
    // guard costs the others is measured with the load tool
    // (docs/performance.md, "The edge guard").
    let bound = (5 * p99_base.max(Duration::from_millis(20))).max(Duration::from_secs(1));
    if !backends::cluster_mode() {
        assert!(
            p99_during <= bound,
            "p99 during the flood and the second after its ban {p99_during:?} over {bound:?} \
             (the whole phase: {p99_loaded:?})"
        );
    }

    // A banned account's new sessions are refused too.
    let (st, body) = s
        .call(
            "POST",
            "/v1/connect",
            Some(&flooder.access_token),
            Some(json!({"transport": "ws"})),
        )
        .await;
    assert_eq!((st, body["error"]["code"].as_str()), (403, Some("banned")));

    for (mut ws, _) in conns {
        let _ = ws.close(None).await;
    }
    eprintln!("done after {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------
// 2. Slowloris and a wrong-password storm
// ---------------------------------------------------------------------------

const SLOWLORIS: usize = 1_000;
const STORM: usize = 256;
/// `http.header_timeout_ms` and `http.request_timeout_ms` in the test.
const DEADLINE_MS: u64 = 2_000;

/// A slowloris connection of kind `i % 3`: a partial header; full headers
/// announcing 100,000 bytes of body and a few of them; a partial
/// WebSocket upgrade.
fn slow_request(i: usize) -> String {
    match i % 3 {
        0 => "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ".into(),
        1 => "POST /v1/auth/refresh HTTP/1.1\r\nHost: x\r\n\
              Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n\
              {\"refresh_token\":\""
            .into(),
        _ => "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            .into(),
    }
}

/// Reads until the server closes; what it said, and when it closed.
async fn until_closed(mut c: TcpStream, within: Duration) -> Result<(String, Instant), String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(within, c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Ok((String::from_utf8_lossy(&got).into_owned(), Instant::now()));
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => {
                return Err(format!(
                    "still open after {within:?}; read so far: {:?}",
                    String::from_utf8_lossy(&got)
                ));
            }
        }
    }
}

/// One wrong-password login as user `i` (status, code, how long it took).
async fn wrong_login(s: &TestServer, http: &reqwest::Client, i: usize) -> (u16, String, Duration) {
    let t0 = Instant::now();
    let body = json!({"username": format!("nobody{i}"), "password": "wrong-password"});
    let resp = tokio::time::timeout(
        Duration::from_secs(30),
        http.post(format!("{}/v1/auth/login", s.base))
            .json(&body)
            .send(),
    )
    .await
    .expect("a login hung")
    .unwrap();
    let st = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let code = body["error"]["code"].as_str().unwrap_or("").to_string();
    (st, code, t0.elapsed())
}

/// A new client from `local`: registers, logs in, connects and sends a
/// message to `to`, retrying what the node answers `busy` (as the answer's
/// `Retry-After` asks). How long it took.
async fn newcomer(s: &TestServer, local: &str, to: UserId) -> Duration {
    let t0 = Instant::now();
    let http = reqwest::Client::builder()
        .local_address(local.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let call = |path: &'static str, token: Option<String>, body: Value| {
        let http = http.clone();
        async move {
            loop {
                let mut req = http.post(format!("{}{path}", s.base)).json(&body);
                if let Some(t) = &token {
                    req = req.bearer_auth(t);
                }
                let resp = req.send().await.unwrap();
                let st = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                if st == 503 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                return (st, body);
            }
        }
    };
    let creds = json!({"username": "newcomer", "password": "password123", "device": "phone"});
    let (st, body) = call("/v1/auth/register", None, creds.clone()).await;
    assert_eq!(st, 201, "register: {body}");
    let (st, body) = call("/v1/auth/login", None, creds).await;
    assert_eq!(st, 200, "login: {body}");
    let t: Tokens = serde_json::from_value(body).unwrap();
    let (st, body) = call(
        "/v1/connect",
        Some(t.access_token.clone()),
        json!({"transport": "ws"}),
    )
    .await;
    assert_eq!(st, 200, "connect: {body}");
    let c: ConnectResponse = serde_json::from_value(body).unwrap();
    let mut ws = ws_from(local, &c).await;
    ws.send(frame(ClientFrame {
        rid: Some(1),
        op: send_op(to, "made it"),
    }))
    .await
    .unwrap();
    loop {
        match next_frame(&mut ws).await {
            Some(ServerFrame::Sent { rid: Some(1), .. }) => break,
            Some(ServerFrame::Error { code, message, .. }) => panic!("send: {code:?} {message}"),
            Some(_) => {}
            None => panic!("the newcomer's connection closed"),
        }
    }
    let _ = ws.close(None).await;
    t0.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn slowloris_and_a_wrong_password_storm_are_bounded_and_a_newcomer_gets_in() {
    let _serial = SERIAL.lock().await;
    let s = TestServer::start_with(|c| {
        c.guard.allow = vec!["127.0.0.1/32".parse().unwrap()];
        // The design: each address holds at most `conns_per_ip` open
        // connections. 2,000 lets all 1,000 in, so what closes them is the
        // deadlines under test (the connect rate is raised for the same
        // reason: at its default, 20/s with a burst of 100, most would be
        // refused at once and 127.0.0.2 banned by `flood_ip`).
        c.guard.conns_per_ip = 2_000;
        c.guard.rates.connect_ip = Rate::new(2_000.0, 2_000);
        c.http.header_timeout_ms = DEADLINE_MS;
        c.http.request_timeout_ms = DEADLINE_MS;
    })
    .await;
    let [bob] = s.users(["bob"]).await;
    let before = rss();
    let (stop_rss, peak) = rss_peak();
    let t0 = Instant::now();

    // The slowloris connections, from 127.0.0.2.
    let mut slow = Vec::with_capacity(SLOWLORIS);
    for i in 0..SLOWLORIS {
        let mut c = tcp_from(OTHER, http_host(&s)).await.unwrap();
        c.write_all(slow_request(i).as_bytes()).await.unwrap();
        slow.push((c, Instant::now()));
    }
    let opened = t0.elapsed();
    let readers: Vec<_> = slow
        .into_iter()
        .enumerate()
        .map(|(i, (c, at))| {
            tokio::spawn(async move {
                let r = until_closed(c, Duration::from_secs(20)).await;
                (i, r.map(|(said, end)| (said, end.duration_since(at))))
            })
        })
        .collect();

    // The storm, from 127.0.0.1: every login at once, each on its own
    // connection.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let storm: Vec<_> = (0..STORM)
        .map(|i| {
            let (s, http) = (&s, &http);
            async move { wrong_login(s, http, i).await }
        })
        .collect();
    let (storm, newcomer_took) = tokio::join!(
        futures_util::future::join_all(storm),
        newcomer(&s, "127.0.0.3", bob.user_id)
    );

    let mut answers: HashMap<(u16, String), usize> = HashMap::new();
    let mut slowest = Duration::ZERO;
    for (st, code, took) in &storm {
        *answers.entry((*st, code.clone())).or_default() += 1;
        slowest = slowest.max(*took);
    }
    let mut closed = Vec::with_capacity(SLOWLORIS);
    for r in readers {
        closed.push(r.await.unwrap());
    }
    stop_rss.store(true, Ordering::Relaxed);
    let peak = peak.await.unwrap();
    let grew = peak.saturating_sub(before);

    let mut answers: Vec<_> = answers.into_iter().collect();
    answers.sort();
    let held = closed
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().map(|(_, d)| *d));
    let (shortest, longest) = (held.clone().min(), held.max());
    eprintln!(
        "{SLOWLORIS} slowloris opened in {opened:?}, each held {shortest:?}..{longest:?}; \
         {STORM} wrong logins answered {answers:?}, the slowest in {slowest:?}; \
         the newcomer got through in {newcomer_took:?}; \
         RSS {} MB before, {} MB at the peak (+{} MB); {} hashes at most at once",
        before / MB,
        peak / MB,
        grew / MB,
        s.app().auth.peak_hashing(),
    );

    // Every slowloris connection was closed by a deadline: a partial
    // header or upgrade at the header deadline (nothing said, or 408), a
    // body that never comes with 408 `request_timeout`.
    for (i, r) in &closed {
        let (said, held) = r.as_ref().unwrap_or_else(|e| panic!("slowloris {i}: {e}"));
        assert!(
            *held >= Duration::from_millis(DEADLINE_MS - 500),
            "slowloris {i} closed after {held:?}, before its deadline: {said:?}"
        );
        if i % 3 == 1 {
            assert!(
                said.starts_with("HTTP/1.1 408") && said.contains("request_timeout"),
                "slowloris {i} (a body that never comes) got {said:?}"
            );
        } else {
            assert!(
                said.is_empty() || said.starts_with("HTTP/1.1 408"),
                "slowloris {i} (a partial header) got {said:?}"
            );
        }
    }
    // Every wrong login was answered, and only with the guard's answers:
    // a wrong password (401 `bad_credentials`), a captcha or lockout once
    // the address has failed enough (401 `captcha_required`, 429
    // `locked_out`), or no room in the hash queue (503 `busy`).
    let allowed = [
        (401, "bad_credentials"),
        (401, "captcha_required"),
        (429, "locked_out"),
        (429, "rate_limited"),
        (503, "busy"),
    ];
    for ((st, code), n) in &answers {
        assert!(
            allowed.contains(&(*st, code.as_str())),
            "{n} wrong logins answered {st} {code:?}"
        );
    }
    // 1,000 idle sockets and 256 cheap hashes (64 KiB each): measured
    // at +10..30 MB here; 150 MB leaves room for allocator slack on a
    // loaded machine while still catching a per-connection leak.
    assert!(grew < 150 * MB, "RSS grew by {} MB", grew / MB);
}

/// The same storm at production-like argon2 parameters (19 MiB a hash):
/// at most `hash_concurrency` hashes hold their memory at once, and the
/// logins beyond those and the `hash_queue` behind them are refused
/// `busy` at once, so the storm's memory is bounded by the concurrency,
/// not by the number of logins.
#[tokio::test(flavor = "multi_thread")]
async fn at_production_argon2_params_a_storm_beyond_the_hash_queue_is_refused_busy() {
    let _serial = SERIAL.lock().await;
    const CONCURRENCY: usize = 2;
    const QUEUE: usize = 16;
    const M_KIB: u32 = 19_456;
    let s = TestServer::start_with(|c| {
        c.auth.argon2_m_kib = M_KIB;
        c.auth.argon2_t = 2;
        c.auth.hash_concurrency = CONCURRENCY;
        c.auth.hash_queue = QUEUE;
    })
    .await;
    let before = rss();
    let (stop_rss, peak) = rss_peak();
    let t0 = Instant::now();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let storm = futures_util::future::join_all((0..STORM).map(|i| {
        let (s, http) = (&s, &http);
        async move { wrong_login(s, http, i).await }
    }))
    .await;
    let took = t0.elapsed();
    stop_rss.store(true, Ordering::Relaxed);
    let peak = peak.await.unwrap();
    let grew = peak.saturating_sub(before);
    let mut answers: HashMap<(u16, String), usize> = HashMap::new();
    for (st, code, _) in &storm {
        *answers.entry((*st, code.clone())).or_default() += 1;
    }
    let mut answers: Vec<_> = answers.into_iter().collect();
    answers.sort();
    let count = |st: u16, code: &str| {
        answers
            .iter()
            .find(|((s, c), _)| *s == st && c == code)
            .map_or(0, |(_, n)| *n)
    };
    let (hashed, busy) = (count(401, "bad_credentials"), count(503, "busy"));
    eprintln!(
        "argon2 m={M_KIB} KiB: {STORM} wrong logins answered {answers:?} in {took:?}; \
         {} hashes at most at once; RSS {} MB before, {} MB at the peak (+{} MB)",
        s.app().auth.peak_hashing(),
        before / MB,
        peak / MB,
        grew / MB,
    );
    assert!(s.app().auth.peak_hashing() <= CONCURRENCY);
    assert_eq!(
        hashed + busy + count(401, "captcha_required") + count(429, "locked_out"),
        STORM,
        "unexpected answers: {answers:?}"
    );
    assert!(busy > 0, "the hash queue refused nothing: {answers:?}");
    // The hashes in use: CONCURRENCY × 19 MiB at once (38 MiB); measured
    // +52 MB at the peak (256 hashes at once would need 4.75 GiB). Before
    // the hashing threads kept glibc from holding on to freed hash blocks
    // (`hashers.rs`) it was +300 MB. 120 MB: the hashes, the storm's
    // connections and allocator slack on a loaded machine.
    assert!(grew < 120 * MB, "RSS grew by {} MB", grew / MB);
}
