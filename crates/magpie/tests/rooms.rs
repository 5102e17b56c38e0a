//! Live rooms: an audience joins and leaves freely, recent messages greet a
//! joiner, and a room flooded at four times its rate or more delivers every VIP
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
    // Bursts of ordinary messages from three senders and a VIP message
    // every third round, until at least 3 s have passed and the offer is
    // at least four times what the cap can carry over the sending time.
    // The flood is counted against the time the sending really took, so a
    // slow or loaded machine floods the room as surely as a fast one.
    const BURST: u64 = 10;
    let start = Instant::now();
    let carried_at_most = |secs: u64| u64::from(CAP) * (secs + 2);
    let mut sent_vip = HashSet::new();
    let (mut offered, mut round) = (0u64, 0u64);
    let sending = loop {
        let took = start.elapsed();
        if took >= Duration::from_secs(3) && offered >= 4 * carried_at_most(took.as_secs()) {
            break took;
        }
        assert!(
            took < Duration::from_secs(60),
            "{offered} ordinary messages offered in {took:?}: too slow to flood the room"
        );
        for c in senders.iter_mut() {
            for k in 0..BURST {
                c.send_op(None, say("live", &format!("o{round}.{k}"))).await;
            }
        }
        offered += BURST * senders.len() as u64;
        if round.is_multiple_of(3) {
            let body = format!("vip{round}");
            star.send_op(None, say("live", &body)).await;
            sent_vip.insert(body);
        }
        round += 1;
        // Senders' own frames (replies, the room's messages) are drained as we go.
        for c in senders.iter_mut().chain(std::iter::once(&mut star)) {
            while let Ok(Some(_)) = c.try_recv(Duration::from_millis(0)).await {}
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    };
    // What the audience counts was carried before it stops: the cap
    // carries at most its rate in each second that time touches (a node
    // behind on its sockets carries some after the sending ended).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let most = carried_at_most(start.elapsed().as_secs());
    stop.notify_waiters();
    for r in readers {
        let (vip_ids, ordinary) = r.await.unwrap();
        assert_eq!(vip_ids, sent_vip, "every VIP message reaches every viewer");
        assert!(
            ordinary > 0 && ordinary as u64 <= most,
            "{ordinary} of {offered} ordinary messages over {sending:?} at cap {CAP}"
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
