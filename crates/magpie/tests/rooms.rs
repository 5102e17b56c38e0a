//! Live rooms: an audience joins and leaves freely, recent messages greet a
//! joiner, and a room flooded at ten times its rate delivers every VIP
//! message to every member of the audience while shedding ordinary ones,
//! without the process growing (resident memory before and after).

mod common;
use common::*;
use magpie_proto::{ClientOp, ServerFrame};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const CAP: u32 = 50;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn join(room: &str) -> ClientOp {
    ClientOp::RoomJoin { room: room.into() }
}

fn say(room: &str, body: &str) -> ClientOp {
    ClientOp::RoomSend {
        room: room.into(),
        body: body.into(),
        to: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flooded_room_sheds_ordinary_messages_and_never_vip_ones() {
    let s = TestServer::start_with(|c| {
        c.rooms.max_rate = CAP;
        c.rooms.vip = vec![1];
    })
    .await;
    // The configured VIP is user 1: the first user of the only database,
    // or of the first shard, wherever the other names land (ids name
    // their shard on a sharded store).
    let mut n = 0;
    let vip = loop {
        let t = s.user(&format!("star{n}"), "phone").await;
        if t.user_id.0 == 1 {
            break t;
        }
        n += 1;
    };
    // Not joined: refused. Bad name: refused.
    let mut outsider = s.conn(&s.user("outsider", "phone").await, "tcp").await;
    let r = outsider.request(say("live", "hi")).await;
    assert!(
        matches!(
            r,
            ServerFrame::Error {
                code: magpie_proto::ErrorCode::Forbidden,
                ..
            }
        ),
        "{r:?}"
    );
    let r = outsider.request(join("no spaces")).await;
    assert!(
        matches!(
            r,
            ServerFrame::Error {
                code: magpie_proto::ErrorCode::BadField,
                ..
            }
        ),
        "{r:?}"
    );

    let mut audience = Vec::new();
    for i in 0..10 {
        let t = s.user(&format!("viewer{i}"), "phone").await;
        let mut c = s.conn(&t, if i % 2 == 0 { "ws" } else { "tcp" }).await;
        assert!(matches!(
            c.request(join("live")).await,
            ServerFrame::RoomJoined { .. }
        ));
        audience.push(c);
    }
    let mut senders = Vec::new();
    for i in 0..3 {
        let t = s.user(&format!("fan{i}"), "phone").await;
        let mut c = s.conn(&t, "tcp").await;
        assert!(matches!(
            c.request(join("live")).await,
            ServerFrame::RoomJoined { .. }
        ));
        senders.push(c);
    }
    let mut star = s.conn(&vip, "ws").await;
    assert!(matches!(
        star.request(join("live")).await,
        ServerFrame::RoomJoined { .. }
    ));

    // The audience counts what it gets until told to stop.
    let stop = std::sync::Arc::new(tokio::sync::Notify::new());
    let mut readers = Vec::new();
    for mut c in audience {
        let stop = stop.clone();
        readers.push(tokio::spawn(async move {
            let (mut vip_ids, mut ordinary) = (HashSet::new(), 0usize);
            loop {
                tokio::select! {
                    f = c.recv(Duration::from_secs(30)) => match f {
                        Some(ServerFrame::RoomMsg { msg }) if msg.vip => { vip_ids.insert(msg.body); }
                        Some(ServerFrame::RoomMsg { .. }) => ordinary += 1,
                        Some(ServerFrame::Ping) => c.send_op(None, ClientOp::Pong).await,
                        Some(_) => {}
                        None => panic!("an audience connection closed"),
                    },
                    _ = stop.notified() => return (vip_ids, ordinary),
                }
            }
        }));
    }
    let rss_before = rss_kib();
    // Ten times the cap of ordinary messages for 4 s, and 5 VIP messages a second.
    const SECS: u64 = 4;
    let start = Instant::now();
    let mut sent_vip = HashSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / u64::from(CAP) * 3 / 10));
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(SECS) {
        tick.tick().await;
        for c in senders.iter_mut() {
            c.send_op(None, say("live", &format!("o{n}"))).await;
        }
        if n.is_multiple_of(40) {
            let body = format!("vip{n}");
            star.send_op(None, say("live", &body)).await;
            sent_vip.insert(body);
        }
        n += 1;
        // Senders' own frames (replies, the room's messages) are drained as we go.
        for c in senders.iter_mut().chain(std::iter::once(&mut star)) {
            while let Ok(Some(_)) = c.try_recv(Duration::from_millis(0)).await {}
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.notify_waiters();
    let offered = n * 3;
    for r in readers {
        let (vip_ids, ordinary) = r.await.unwrap();
        assert_eq!(vip_ids, sent_vip, "every VIP message reaches every viewer");
        let most = u64::from(CAP) * (SECS + 2);
        assert!(
            ordinary as u64 <= most,
            "{ordinary} ordinary messages over {SECS}s at cap {CAP}"
        );
        assert!(
            ordinary > 0 && (ordinary as u64) < offered / 2,
            "{ordinary} of {offered} delivered"
        );
    }
    let (_, metrics) = s.call("GET", "/metrics", None, None).await;
    let text = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        text.contains("magpie_room_messages_total{outcome=\"shed\"}"),
        "{text}"
    );
    let grown = rss_kib().saturating_sub(rss_before);
    eprintln!(
        "{offered} ordinary + {} VIP messages offered; resident memory grew {grown} KiB",
        sent_vip.len()
    );
    assert!(grown < 64 * 1024, "resident memory grew {grown} KiB");
}

#[tokio::test(flavor = "multi_thread")]
async fn joiners_get_recent_messages_and_leavers_get_nothing() {
    let s = TestServer::start().await;
    let [a, b] = s.users(["alice", "bob"]).await;
    let mut ca = s.conn(&a, "ws").await;
    assert!(
        matches!(ca.request(join("chat")).await, ServerFrame::RoomJoined { ref recent, .. } if recent.is_empty())
    );
    for i in 0..3 {
        let r = ca.request(say("chat", &format!("m{i}"))).await;
        assert!(
            matches!(r, ServerFrame::RoomSent { shed: false, .. }),
            "{r:?}"
        );
    }
    // The broadcast consumer fills the recent buffer; wait for it.
    let mut cb = s.conn(&b, "tcp").await;
    let mut recent = Vec::new();
    for _ in 0..100 {
        match cb.request(join("chat")).await {
            ServerFrame::RoomJoined { recent: r, .. } if r.len() == 3 => {
                recent = r;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let bodies: Vec<&str> = recent.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["m0", "m1", "m2"]);
    assert!(matches!(
        cb.request(ClientOp::RoomLeave {
            room: "chat".into()
        })
        .await,
        ServerFrame::RoomLeft { .. }
    ));
    ca.request(say("chat", "after bob left")).await;
    let got = cb.try_recv(Duration::from_millis(400)).await;
    assert!(
        !matches!(got, Ok(Some(ServerFrame::RoomMsg { .. }))),
        "{got:?}"
    );
    let m = ca
        .expect(|f| matches!(f, ServerFrame::RoomMsg { .. }))
        .await;
    assert!(matches!(m, ServerFrame::RoomMsg { ref msg } if msg.from == a.user_id));
}
