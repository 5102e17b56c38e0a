//! Drives the client's socket logic against a scripted fake server speaking
//! the real TCP framing (and WebSocket for one test): dedup, gap filling,
//! resync after drops and `reconnect` frames, idempotent send retries,
//! timeouts, fatal errors and logout.

use futures_util::{SinkExt, StreamExt};
use magpie_sdk::core::{
    ClientMsgId, ConvId, DeviceId, Message, Persistence, ServerMsgId, Transport, UserId,
};
use magpie_sdk::proto::http::ConnectResponse;
use magpie_sdk::proto::{
    ClientFrame, ClientOp, ErrorCode, ServerFrame, SyncConv, TcpCodec, decode_client,
};
use magpie_sdk::{Backoff, Client, ClientOptions, Event, SdkError};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

const ME: UserId = UserId(2);
const PEER: UserId = UserId(1);

fn conv() -> ConvId {
    ConvId::direct(ME, PEER)
}

fn msg(seq: i64) -> Message {
    Message {
        meta: None,
        trace: None,
        server_id: ServerMsgId(500 + seq),
        conv: conv(),
        seq,
        from: PEER,
        to: ME,
        cmid: ClientMsgId::new_v7(),
        body: format!("m{seq}"),
        persistence: Persistence::Forever,
        sent_at: 1,
        search: true,
    }
}

fn opts() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(3),
        reconnect_backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(50)),
        ..ClientOptions::default()
    }
}

/// A connector handing out tickets t1, t2, ... for `address`.
fn connector(
    address: String,
    transport: Transport,
    calls: Arc<AtomicUsize>,
) -> impl Fn() -> std::future::Ready<magpie_sdk::Result<ConnectResponse>> + Send + Sync + 'static {
    move || {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        std::future::ready(Ok(ConnectResponse {
            transport,
            address: address.clone(),
            ticket: format!("t{n}"),
            expires_in: 60,
            node: "fake".into(),
        }))
    }
}

/// The fake's message store and what the client acknowledged.
#[derive(Default, Clone)]
struct State {
    store: Arc<Mutex<Vec<Message>>>,
    acks: Arc<Mutex<Vec<i64>>>,
}

struct Peer {
    framed: Framed<TcpStream, TcpCodec>,
    state: State,
}

impl Peer {
    async fn accept(listener: &TcpListener, state: &State, ticket: &str) -> Peer {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut p = Peer {
            framed: Framed::new(tcp, TcpCodec::new(1 << 20)),
            state: state.clone(),
        };
        let hello = p.recv().await.expect("hello");
        assert_eq!(
            hello.op,
            ClientOp::Hello {
                ticket: ticket.into()
            }
        );
        p.send(ServerFrame::Welcome {
            user: ME,
            device: DeviceId::new("test").unwrap(),
            node: "fake".into(),
            heartbeat_ms: 100,
            idle_timeout_ms: 2000,
            max_frame: 65536,
            window: 64,
        })
        .await;
        p
    }

    async fn send(&mut self, f: ServerFrame) {
        self.framed.send(f.encode().into()).await.unwrap();
    }

    async fn recv(&mut self) -> Option<ClientFrame> {
        let bytes = self.framed.next().await?.ok()?;
        Some(decode_client(&bytes).expect("client frame decodes"))
    }

    async fn push(&mut self, m: Message, attempt: u32) {
        self.send(ServerFrame::Msg { msg: m, attempt }).await;
    }

    /// Answers syncs (from the store) and pings, records acks, and returns the
    /// first frame `until` accepts (after answering it), or None at EOF.
    async fn serve(&mut self, until: impl Fn(&ClientFrame) -> bool) -> Option<ClientFrame> {
        loop {
            let f = self.recv().await?;
            match &f.op {
                ClientOp::Ping => self.send(ServerFrame::Pong { rid: f.rid }).await,
                ClientOp::Ack { conv: c, seqs } => {
                    assert_eq!(c, &conv());
                    self.state.acks.lock().unwrap().extend(seqs);
                }
                ClientOp::Sync { convs, .. } => {
                    let from = convs.get(&conv()).copied().unwrap_or(0);
                    let store = self.state.store.lock().unwrap().clone();
                    let convs = if store.is_empty() {
                        vec![]
                    } else {
                        vec![SyncConv {
                            conv: conv(),
                            messages: store.iter().filter(|m| m.seq > from).cloned().collect(),
                            last_seq: store.last().unwrap().seq,
                            read_seq: 0,
                            more: false,
                            unavailable: vec![],
                        }]
                    };
                    self.send(ServerFrame::SyncResult { rid: f.rid, convs })
                        .await;
                }
                _ => {}
            }
            if until(&f) {
                return Some(f);
            }
        }
    }
}

fn is_sync(f: &ClientFrame) -> bool {
    matches!(f.op, ClientOp::Sync { .. })
}

async fn next(client: &Client) -> Event {
    tokio::time::timeout(Duration::from_secs(5), client.next_event())
        .await
        .expect("event in time")
        .expect("open")
}

/// A fake server's listener on a free loopback port, its address and its
/// (empty) state.
async fn bind() -> (TcpListener, String, State) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr, State::default())
}

/// The sync request of a client that has seen `conv()` up to `pos` (none
/// of it at all with `None`).
fn sync_from(pos: Option<i64>) -> ClientOp {
    ClientOp::Sync {
        convs: pos
            .map(|p| BTreeMap::from([(conv(), p)]))
            .unwrap_or_default(),
        limit: None,
    }
}

/// Whether the client acknowledged `seq`.
fn acked(st: &State, seq: i64) -> bool {
    st.acks.lock().unwrap().contains(&seq)
}

#[tokio::test]
async fn dedup_gap_fill_reconnect_and_idempotent_send() {
    let (listener, addr, state) = bind().await;
    let st = state.clone();
    let server = tokio::spawn(async move {
        let add = |m: Message| st.store.lock().unwrap().push(m);
        // 1: initial sync (empty), seq 1 twice, seq 2 lost, seq 3 → the client syncs for 2.
        let mut p = Peer::accept(&listener, &st, "t1").await;
        let initial = p.serve(is_sync).await.unwrap();
        assert_eq!(initial.op, sync_from(None));
        for s in 1..=3 {
            add(msg(s));
        }
        p.push(msg(1), 1).await;
        p.push(msg(1), 2).await;
        p.push(msg(3), 1).await;
        let gap = p.serve(is_sync).await.unwrap();
        assert_eq!(gap.op, sync_from(Some(1)));
        p.serve(|_| acked(&st, 3)).await.unwrap();
        drop(p); // connection lost

        // 2: seq 4 arrived while offline; the resync must ask from 3.
        add(msg(4));
        let mut p = Peer::accept(&listener, &st, "t2").await;
        let resync = p.serve(is_sync).await.unwrap();
        assert_eq!(resync.op, sync_from(Some(3)));
        p.serve(|_| acked(&st, 4)).await.unwrap();
        p.send(ServerFrame::Reconnect {
            reason: "draining".into(),
            after_ms: 20,
        })
        .await;
        assert!(
            p.serve(|_| false).await.is_none(),
            "client closes after a reconnect frame"
        );

        // 3: a send whose reply is lost with the connection.
        let mut p = Peer::accept(&listener, &st, "t3").await;
        let first = p
            .serve(|f| matches!(f.op, ClientOp::Send { .. }))
            .await
            .unwrap();
        drop(p);

        // 4: the retry carries the same cmid.
        let mut p = Peer::accept(&listener, &st, "t4").await;
        let retry = p
            .serve(|f| matches!(f.op, ClientOp::Send { .. }))
            .await
            .unwrap();
        let (ClientOp::Send { cmid: c1, .. }, ClientOp::Send { cmid: c2, to, .. }) =
            (&first.op, &retry.op)
        else {
            unreachable!()
        };
        assert_eq!(c1, c2);
        assert_eq!(*to, PEER);
        let m = msg(5);
        let sent = ServerFrame::Sent {
            rid: retry.rid,
            cmid: *c2,
            server_id: m.server_id,
            conv: conv(),
            seq: 5,
            sent_at: 7,
            duplicate: true,
        };
        p.send(sent).await;
        p.serve(|f| f.op == ClientOp::Logout)
            .await
            .expect("logout on close");
    });

    let calls = Arc::new(AtomicUsize::new(0));
    let client = Client::connect_with(connector(addr, Transport::Tcp, calls.clone()), opts())
        .await
        .unwrap();
    assert_eq!(client.welcome().user, ME);

    let mut bodies = Vec::new();
    let mut reconnects = 0;
    let mut resynced = 0;
    // Until the resync after the reconnect frame: initial + after drop + after reconnect frame.
    while resynced < 3 {
        match next(&client).await {
            Event::Message(m) => bodies.push(m.body),
            Event::Reconnecting { .. } => reconnects += 1,
            Event::Resynced => resynced += 1,
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(bodies, ["m1", "m2", "m3", "m4"]);
    assert_eq!(reconnects, 2);
    assert_eq!(client.positions(), BTreeMap::from([(conv(), 4)]));

    let res = client.send(PEER, "hi").await.unwrap();
    assert!(res.duplicate);
    assert_eq!(res.seq, 5);
    client.close().await.unwrap();
    server.await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert!(matches!(client.unread().await, Err(SdkError::Closed)));
    // Every delivered message was acknowledged; the duplicate push was acked too.
    let acks = state.acks.lock().unwrap().clone();
    for s in 1..=4 {
        assert!(acks.contains(&s), "seq {s} acked: {acks:?}");
    }
    assert!(acks.iter().filter(|&&s| s == 1).count() >= 2);
}

#[tokio::test]
async fn requests_time_out_and_fatal_errors_end_the_session() {
    let (listener, addr, state) = bind().await;
    let st = state.clone();
    let server = tokio::spawn(async move {
        let mut p = Peer::accept(&listener, &st, "t1").await;
        // Swallow the unread request: the client must time out.
        p.serve(|f| f.op == ClientOp::Unread).await.unwrap();
        let hist = p
            .serve(|f| matches!(f.op, ClientOp::History { .. }))
            .await
            .unwrap();
        p.send(ServerFrame::error(
            hist.rid,
            ErrorCode::NotFound,
            "no such conversation",
            false,
        ))
        .await;
        p.send(ServerFrame::Receipt {
            conv: conv(),
            reader: PEER,
            seq: 3,
        })
        .await;
        p.send(ServerFrame::error(
            None,
            ErrorCode::Replaced,
            "newer connection",
            true,
        ))
        .await;
        p.serve(|_| false).await;
    });
    let options = ClientOptions {
        request_timeout: Duration::from_millis(300),
        sync_on_connect: false,
        ..opts()
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let client = Client::connect_with(connector(addr, Transport::Tcp, calls.clone()), options)
        .await
        .unwrap();
    assert!(matches!(client.unread().await, Err(SdkError::Timeout)));
    let err = client.history(&conv(), None, Some(10)).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound));
    assert_eq!(
        next(&client).await,
        Event::Receipt {
            conv: conv(),
            reader: PEER,
            seq: 3
        }
    );
    match next(&client).await {
        Event::Closed { code, .. } => assert_eq!(code, Some(ErrorCode::Replaced)),
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(client.next_event().await.is_none());
    assert_eq!(calls.load(Ordering::SeqCst), 1, "replaced is not retried");
    server.await.unwrap();
}

#[tokio::test]
async fn websocket_transport_delivers_and_acks() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("ws://{}/v1/ws", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        use tokio_tungstenite::tungstenite::Message as Ws;
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let hello = loop {
            if let Ws::Text(t) = ws.next().await.unwrap().unwrap() {
                break decode_client(t.as_bytes()).unwrap();
            }
        };
        assert!(matches!(hello.op, ClientOp::Hello { .. }));
        let welcome = ServerFrame::Welcome {
            user: ME,
            device: DeviceId::new("web").unwrap(),
            node: "fake".into(),
            heartbeat_ms: 10_000,
            idle_timeout_ms: 30_000,
            max_frame: 65536,
            window: 64,
        };
        let text = |f: ServerFrame| Ws::text(String::from_utf8(f.encode()).unwrap());
        ws.send(text(welcome)).await.unwrap();
        ws.send(text(ServerFrame::Ping)).await.unwrap();
        ws.send(text(ServerFrame::Msg {
            msg: msg(1),
            attempt: 1,
        }))
        .await
        .unwrap();
        let (mut pong, mut ack) = (false, false);
        while !(pong && ack) {
            let Ws::Text(t) = ws.next().await.unwrap().unwrap() else {
                continue;
            };
            match decode_client(t.as_bytes()).unwrap().op {
                ClientOp::Pong => pong = true,
                ClientOp::Ack { seqs, .. } => ack = seqs == [1],
                _ => {}
            }
        }
    });
    let options = ClientOptions {
        sync_on_connect: false,
        ..opts()
    };
    let client = Client::connect_with(connector(address, Transport::Ws, Arc::default()), options)
        .await
        .unwrap();
    match next(&client).await {
        Event::Message(m) => assert_eq!(m.body, "m1"),
        other => panic!("expected a message, got {other:?}"),
    }
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
}
