//! The session's timers on paused time (docs/protocol.md §5.6: heartbeat
//! `ping`, idle timeout, resends of unacknowledged pushes). A real node runs
//! in the test's runtime; one connection reaches it through an in-memory
//! transport, and tokio moves the clock (it jumps to the next timer when
//! every task waits), so each frame's arrival time is exact, not waited for.

use bytes::Bytes;
use magpie_core::{ClientMsgId, ConvId, DeviceId, Message, Persistence, ServerMsgId, UserId};
use magpie_proto::{ErrorCode, ServerFrame};
use magpie_server::conn::transport::{Inbound, Transport};
use magpie_server::services::delivery::hub::{Outbound, Push};
use magpie_server::{Config, Running};
use magpie_store::TicketClaims;
use std::io;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What the server did to the connection.
#[derive(Debug)]
enum Out {
    Frame(ServerFrame),
    Closed(Option<ErrorCode>),
}

/// The server's end of an in-memory connection.
struct Pipe {
    inbound: mpsc::UnboundedReceiver<Bytes>,
    queued: Vec<Bytes>,
    out: mpsc::UnboundedSender<Out>,
}

impl Transport for Pipe {
    async fn recv(&mut self) -> Inbound {
        match self.inbound.recv().await {
            Some(b) => Inbound::Frame(b),
            None => Inbound::Closed,
        }
    }
    fn queue(&mut self, frame: Bytes) {
        self.queued.push(frame);
    }
    async fn flush(&mut self) -> io::Result<()> {
        for b in self.queued.drain(..) {
            let f = ServerFrame::decode(&b).map_err(io::Error::other)?;
            let _ = self.out.send(Out::Frame(f));
        }
        Ok(())
    }
    async fn close(&mut self, code: Option<ErrorCode>) {
        let _ = self.out.send(Out::Closed(code));
    }
}

/// The client's end: what it sends, and what it got, when.
struct Client {
    send: mpsc::UnboundedSender<Bytes>,
    got: mpsc::UnboundedReceiver<Out>,
    user: UserId,
    /// When `welcome` arrived: every time below is counted from here.
    t0: Instant,
}

impl Client {
    fn say(&self, json: &str) {
        self.send
            .send(Bytes::from(json.to_string()))
            .expect("session alive");
    }

    /// The next thing the server did, with when (ms after `welcome`).
    async fn next(&mut self) -> (u64, Out) {
        let out = self.got.recv().await.expect("session ended silently");
        (self.t0.elapsed().as_millis() as u64, out)
    }
}

async fn node(f: impl FnOnce(&mut Config)) -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    cfg.http.listen = "127.0.0.1:0".into();
    cfg.tcp.listen = "127.0.0.1:0".into();
    cfg.internal.listen = "127.0.0.1:0".into();
    f(&mut cfg);
    (magpie_server::start(cfg).await.expect("node starts"), dir)
}

/// Connects user 7's phone through a one-time ticket, up to `welcome`.
async fn connect(n: &Running) -> Client {
    let (send, inbound) = mpsc::unbounded_channel();
    let (out, mut got) = mpsc::unbounded_channel();
    let pipe = Pipe {
        inbound,
        queued: Vec::new(),
        out,
    };
    let user = UserId(7);
    let claims = TicketClaims {
        user,
        device: DeviceId::new("phone").expect("device id"),
    };
    n.app
        .state
        .ticket_put("t1", &claims, 60_000)
        .await
        .expect("ticket");
    tokio::spawn(magpie_server::conn::session::run(
        n.app.clone(),
        "test",
        std::net::Ipv4Addr::LOCALHOST.into(),
        pipe,
    ));
    send.send(Bytes::from_static(br#"{"op":"hello","ticket":"t1"}"#))
        .expect("session alive");
    match got.recv().await {
        Some(Out::Frame(ServerFrame::Welcome { .. })) => {}
        other => panic!("expected welcome, got {other:?}"),
    }
    Client {
        send,
        got,
        user,
        t0: Instant::now(),
    }
}

/// A node with these session timers, and user 7's phone connected to it.
async fn session(heartbeat_ms: u64, idle_timeout_ms: u64) -> (Running, tempfile::TempDir, Client) {
    let (n, dir) = node(|c| {
        c.session.heartbeat_ms = heartbeat_ms;
        c.session.idle_timeout_ms = idle_timeout_ms;
    })
    .await;
    let c = connect(&n).await;
    (n, dir, c)
}

/// A silent connection gets `ping` every heartbeat and is closed with
/// `idle_timeout` exactly when the idle timeout runs out.
#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_pinged_then_closed_at_the_idle_deadline() {
    let (_n, _dir, mut c) = session(25_000, 75_000).await;
    let mut pings = Vec::new();
    loop {
        match c.next().await {
            (at, Out::Frame(ServerFrame::Ping)) => pings.push(at),
            (at, Out::Frame(ServerFrame::Error { code, fatal, .. })) => {
                assert_eq!((code, fatal, at), (ErrorCode::IdleTimeout, true, 75_000));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(pings, vec![25_000, 50_000]);
    assert!(matches!(
        c.next().await,
        (75_000, Out::Closed(Some(ErrorCode::IdleTimeout)))
    ));
}

/// Anything the client sends moves the idle deadline: a client that pings
/// every 60 s outlives several idle timeouts of 75 s.
#[tokio::test(start_paused = true)]
async fn a_client_that_talks_is_not_closed() {
    let (_n, _dir, mut c) = session(1_000_000, 75_000).await;
    for i in 1..=4u64 {
        tokio::time::sleep_until(c.t0 + Duration::from_secs(60 * i)).await;
        c.say(r#"{"op":"ping","rid":1}"#);
        assert!(matches!(
            c.next().await,
            (at, Out::Frame(ServerFrame::Pong { .. })) if at == 60_000 * i
        ));
    }
    // Silent from 240 s on: closed 75 s later.
    assert!(matches!(
        c.next().await,
        (
            315_000,
            Out::Frame(ServerFrame::Error {
                code: ErrorCode::IdleTimeout,
                ..
            })
        )
    ));
}

/// An unacknowledged push is resent after 3, 9, 21 and 45 s (the default
/// resend level: 3 s, doubling, at most 4 times) and then left to sync;
/// an acknowledged one is not resent.
#[tokio::test(start_paused = true)]
async fn unacknowledged_pushes_are_resent_on_schedule_and_acks_stop_them() {
    let (n, _dir, mut c) = session(1_000_000, 1_000_000).await;
    let me = c.user;
    let push = |seq: i64| {
        let msg = Message {
            meta: None,
            trace: None,
            server_id: ServerMsgId(100 + seq),
            conv: ConvId::direct(UserId(8), me),
            seq,
            from: UserId(8),
            to: me,
            cmid: ClientMsgId::new_v7(),
            body: format!("m{seq}"),
            persistence: Persistence::Forever,
            sent_at: 1,
            search: false,
        };
        Outbound::Push(Push::new(msg))
    };
    let hub = &n.app.delivery.hub;
    assert_eq!(hub.deliver_user(me, None, &push(1)), 1);
    let mut attempts = Vec::new();
    while attempts.len() < 5 {
        match c.next().await {
            (at, Out::Frame(ServerFrame::Msg { msg, attempt })) => {
                assert_eq!(msg.seq, 1);
                attempts.push((at, attempt));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        attempts,
        vec![(0, 1), (3_000, 2), (9_000, 3), (21_000, 4), (45_000, 5)]
    );

    // The second push is acknowledged after its first resend: no more.
    tokio::time::sleep_until(c.t0 + Duration::from_secs(100)).await;
    assert_eq!(hub.deliver_user(me, None, &push(2)), 1);
    let conv = ConvId::direct(UserId(8), me);
    for want in [(100_000, 1), (103_000, 2)] {
        match c.next().await {
            (at, Out::Frame(ServerFrame::Msg { msg, attempt })) => {
                assert_eq!((at, attempt, msg.seq), (want.0, want.1, 2));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    c.say(&format!(r#"{{"op":"ack","conv":"{conv}","seqs":[2]}}"#));
    c.say(r#"{"op":"ping","rid":9}"#);
    let (at, pong) = c.next().await;
    assert!(matches!(
        pong,
        Out::Frame(ServerFrame::Pong { rid: Some(9) })
    ));
    assert_eq!(at, 103_000);
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(c.got.try_recv().is_err(), "nothing after the ack");
}

/// A heartbeat writes nothing to the state: a route taken away stays away
/// through many heartbeats (before, each heartbeat wrote it back, one state
/// write per connection per heartbeat). The node's route audit then puts
/// it back and tells the client to sync what pushes may have missed.
#[tokio::test(start_paused = true)]
async fn heartbeats_leave_routes_to_the_node_audit() {
    let (n, _dir) = node(|c| {
        c.session.heartbeat_ms = 1_000;
        c.session.idle_timeout_ms = 1_000_000;
        c.cluster.route_audit_ms = 20_000;
    })
    .await;
    let mut c = connect(&n).await;
    let state = &n.app.state;
    let routes = state.routes(&[c.user]).await.expect("routes");
    let route = routes[&c.user][0].clone();
    let removed = state
        .remove_route(route.user, &route.device, &route.node, route.conn)
        .await
        .expect("remove");
    assert!(removed);
    // Nine heartbeats: nine pings, and still no route.
    for i in 1..=9u64 {
        let (at, f) = c.next().await;
        assert!(matches!(f, Out::Frame(ServerFrame::Ping)), "{f:?}");
        assert!(at.abs_diff(1_000 * i) <= 1, "ping at {at} ms");
    }
    let routes = state.routes(&[c.user]).await.expect("routes");
    assert!(routes.is_empty(), "a heartbeat wrote the route: {routes:?}");
    // The audit (every 20 s of the node's clock) restores it, once.
    let resync = loop {
        match c.next().await {
            (_, Out::Frame(ServerFrame::Ping)) => continue,
            (at, Out::Frame(ServerFrame::Resync { reason })) => break (at, reason),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(resync.1, "route_restored");
    assert!(resync.0 <= 21_000, "restored only at {} ms", resync.0);
    let routes = state.routes(&[c.user]).await.expect("routes");
    assert_eq!(routes[&c.user], vec![route]);
    tokio::time::sleep(Duration::from_secs(60)).await;
    while let Ok(out) = c.got.try_recv() {
        assert!(matches!(out, Out::Frame(ServerFrame::Ping)), "{out:?}");
    }
}
