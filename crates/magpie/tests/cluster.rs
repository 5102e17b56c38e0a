//! Several nodes on shared real backends (run with
//! `MAGPIE_TEST_BACKENDS=cluster`; the embedded backends are single-node by
//! nature, so there these tests have nothing to run on).

mod common;
use common::*;
use magpie_core::{ConvId, UserId};
use magpie_proto::{ClientOp, ServerFrame};

#[tokio::test(flavor = "multi_thread")]
async fn clients_on_different_nodes_chat() {
    if !backends::needs_shared_store() {
        return;
    }
    let n1 = TestServer::start().await;
    let n2 = second_node(&n1, "node-2", 2).await;
    let (ta, tb) = (
        n1.user("alice", "phone").await,
        n2.user("bob", "phone").await,
    );
    let mut a = n1.conn_here(&ta, "ws").await;
    let mut b = n2.conn_here(&tb, "tcp").await;
    // Pushed across nodes, both ways.
    let (_, seq, _) = sent_seq(&a.send_msg(tb.user_id, "from node 1").await);
    let got = b.expect_msg().await;
    assert_eq!((got.body.as_str(), got.seq), ("from node 1", seq));
    sent_seq(&b.send_msg(ta.user_id, "from node 2").await);
    assert_eq!(a.expect_msg().await.body, "from node 2");
    // A second device of alice on node 2 gets her own message too.
    let ta2 = n2.login("alice", "laptop").await;
    let mut a2 = n2.conn_here(&ta2, "ws").await;
    a.send_msg(tb.user_id, "third").await;
    assert_eq!(b.expect_msg().await.body, "third");
    assert_eq!(a2.expect_msg().await.body, "third");
    // Receipts cross nodes as well.
    let conv = ConvId::direct(ta.user_id, tb.user_id);
    assert!(matches!(
        b.read(&conv, 3).await,
        ServerFrame::ReadOk { seq: 3, .. }
    ));
    let r = a.expect(|f| matches!(f, ServerFrame::Receipt { .. })).await;
    assert_eq!(
        r,
        ServerFrame::Receipt {
            conv: conv.clone(),
            reader: tb.user_id,
            seq: 3
        }
    );
    // A third node: bob's new device syncs there, with no gap.
    let n3 = second_node(&n1, "node-3", 3).await;
    let tb3 = n3.login("bob", "tablet").await;
    let mut b3 = n3.conn_here(&tb3, "ws").await;
    let convs = b3.sync(&[], 10).await;
    let seqs: Vec<i64> = convs[0].messages.iter().map(|m| m.seq).collect();
    assert_eq!((seqs, convs[0].read_seq), (vec![1, 2, 3], 3));
    // History, unread and sync agree whichever node answers.
    for s in [&n1, &n2, &n3] {
        let (_, unread) = s.get(&ta, "/v1/unread").await;
        assert_eq!(
            unread["total"].as_i64(),
            Some(1),
            "alice has bob's one message unread"
        );
        let (_, page) = s.history(&tb, &conv, "?after=0").await;
        let bodies: Vec<&str> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["body"].as_str().unwrap())
            .collect();
        assert_eq!(bodies, ["from node 1", "from node 2", "third"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_draining_node_moves_its_clients_and_cleans_up() {
    if !backends::needs_shared_store() {
        return;
    }
    let n1 = TestServer::start().await;
    let mut n2 = second_node(&n1, "node-2", 2).await;
    let (ta, tb) = (
        n1.user("alice", "phone").await,
        n2.user("bob", "phone").await,
    );
    let mut a = n1.conn_here(&ta, "ws").await;
    let mut b = n2.conn_here(&tb, "tcp").await;
    sent_seq(&a.send_msg(tb.user_id, "hello").await);
    assert_eq!(b.expect_msg().await.body, "hello");
    let state = n1.app().state.clone();
    assert!(
        state
            .nodes()
            .await
            .unwrap()
            .iter()
            .any(|n| n.node == "node-2")
    );
    n2.stop().await;
    assert!(matches!(
        b.expect(|f| matches!(f, ServerFrame::Reconnect { .. }))
            .await,
        ServerFrame::Reconnect { .. }
    ));
    // Alice hears bob go offline (node-2's own announcement reaches her
    // although bob's contacts were cached before their conversation began:
    // its first message dropped the cached list); node-2 left the registry
    // and holds no route.
    let f = a
        .expect(|f| matches!(f, ServerFrame::Presence { online: false, .. }))
        .await;
    assert!(
        matches!(f, ServerFrame::Presence { user, .. } if user == tb.user_id),
        "{f:?}"
    );
    assert!(
        !state
            .nodes()
            .await
            .unwrap()
            .iter()
            .any(|n| n.node == "node-2")
    );
    assert!(state.node_routes("node-2").await.unwrap().is_empty());
    // Bob reconnects: connect now places him on the remaining node.
    let again = n1.ticket(&tb, "tcp").await;
    assert_eq!(again.node, "node-1");
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_sends_the_canary_share_to_canary_nodes() {
    if !backends::needs_shared_store() {
        return;
    }
    let n1 = TestServer::start_with(|c| c.cluster.canary_percent = 100).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    n1.ns.as_ref().unwrap().apply(&mut cfg);
    cfg.node = "canary-1".into();
    cfg.node_num = 3;
    cfg.cluster.canary = true;
    cfg.auth.jwt_secret = std::fs::read_to_string(n1.dir.path().join("jwt.secret")).unwrap();
    let canary = magpie_server::start(cfg).await.unwrap();
    let _canary = TestServer {
        base: format!("http://{}", canary.http_addr),
        running: Some(canary),
        dir,
        http: reqwest::Client::new(),
        ns: n1.ns.clone(),
    };
    let t = n1.user("alice", "phone").await;
    let c = n1.ticket(&t, "ws").await;
    assert_eq!(c.node, "canary-1");
    // And the ticket works there.
    let mut conn = Conn::open(&c).await;
    conn.send_op(None, ClientOp::Hello { ticket: c.ticket })
        .await;
    assert!(matches!(conn.next().await, ServerFrame::Welcome { node, .. } if node == "canary-1"));
}

/// A device that connects again on another node takes its route there; the
/// old connection's node finds that at its route audit (200 ms here; a
/// connection's own heartbeat, 25 s, no longer touches the state) and
/// closes it with `replaced`. Pushes go to the new connection meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn a_device_that_moves_node_is_closed_on_the_old_one() {
    if !backends::needs_shared_store() {
        return;
    }
    let n1 = TestServer::start_with(|c| c.cluster.route_audit_ms = 200).await;
    let n2 = second_node(&n1, "node-2", 2).await;
    let [ta, tb] = n1.users(["alice", "bob"]).await;
    let mut old = n1.conn_here(&ta, "ws").await;
    let ta2 = n2.login("alice", "phone").await;
    let mut new = n2.conn_here(&ta2, "tcp").await;
    let moved = std::time::Instant::now();
    let f = old.expect(|f| matches!(f, ServerFrame::Error { .. })).await;
    let took = moved.elapsed();
    assert!(
        matches!(
            &f,
            ServerFrame::Error {
                code: magpie_proto::ErrorCode::Replaced,
                fatal: true,
                ..
            }
        ),
        "{f:?}"
    );
    assert!(
        took < std::time::Duration::from_secs(5),
        "closed only after {took:?}"
    );
    let mut b = n1.conn_here(&tb, "ws").await;
    b.send_msg(ta.user_id, "to the new connection").await;
    assert_eq!(new.expect_msg().await.body, "to the new connection");
}

/// Broadcasts go only where there is an audience: a node with no member of
/// a super group and no viewer of a room receives none of their messages
/// (its own counter says so), and listens again once a member connects
/// there.
#[tokio::test(flavor = "multi_thread")]
async fn broadcasts_reach_only_nodes_with_an_audience() {
    if !backends::needs_shared_store() {
        return;
    }
    let n1 = TestServer::start_with(|c| c.groups.super_threshold = 2).await;
    let n2 = second_node(&n1, "node-2", 2).await;
    let [owner, m1, m2] = n1.users(["owner", "member1", "member2"]).await;
    let (st, body) = n1
        .send_json(
            &owner,
            "POST",
            "/v1/groups",
            serde_json::json!({"name": "big", "members": [m1.user_id, m2.user_id]}),
        )
        .await;
    assert_eq!(st, 201, "{body}");
    let g = body["id"].as_i64().unwrap();
    let mut sender = n1.conn_here(&owner, "ws").await;
    let mut here = n1.conn_here(&m1, "tcp").await;
    let room = ClientOp::RoomJoin {
        room: "stage".into(),
    };
    assert!(matches!(
        here.request(room.clone()).await,
        ServerFrame::RoomJoined { .. }
    ));
    assert!(matches!(
        sender.request(room.clone()).await,
        ServerFrame::RoomJoined { .. }
    ));
    let before = n2.app().delivery.broadcasts_arrived();
    for i in 0..5 {
        sent_seq(&sender.send_group(g, &format!("g{i}")).await);
        let say = ClientOp::RoomSend {
            room: "stage".into(),
            body: format!("r{i}"),
            to: None,
        };
        assert!(matches!(
            sender.request(say).await,
            ServerFrame::RoomSent { .. }
        ));
    }
    let (mut group, mut live) = (Vec::new(), Vec::new());
    while group.len() < 5 || live.len() < 5 {
        match here
            .expect(|f| matches!(f, ServerFrame::Msg { .. } | ServerFrame::RoomMsg { .. }))
            .await
        {
            ServerFrame::Msg { msg, .. } => {
                here.ack(&msg).await;
                group.push(msg.body);
            }
            ServerFrame::RoomMsg { msg } => live.push(msg.body),
            _ => unreachable!(),
        }
    }
    let want = |p: &str| (0..5).map(|i| format!("{p}{i}")).collect::<Vec<_>>();
    assert_eq!((group, live), (want("g"), want("r")));
    assert!(n1.app().delivery.broadcasts_arrived() >= 10);
    assert_eq!(
        n2.app().delivery.broadcasts_arrived(),
        before,
        "a node with no audience received broadcasts"
    );
    assert!(n2.app().delivery.broadcast_topics().is_empty());
    // A member connects to node 2: it listens to the group from then on.
    let mut there = n2.conn_here(&m2, "ws").await;
    assert_eq!(
        n2.app().delivery.broadcast_topics(),
        vec![format!("bcast.g.{g}")]
    );
    sent_seq(&sender.send_group(g, "to both nodes").await);
    assert_eq!(there.expect_msg().await.body, "to both nodes");
    assert_eq!(here.expect_msg().await.body, "to both nodes");
    drop(there);
    for _ in 0..100 {
        if n2.app().delivery.broadcast_topics().is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("node 2 still listens after its last member left");
}

/// A live room admits at most `rooms.max_rate` ordinary messages a second
/// wherever they are sent: two nodes flooding one room at once share the
/// one admission point (before, each node admitted the full rate).
#[tokio::test(flavor = "multi_thread")]
async fn a_room_rate_holds_across_nodes() {
    if !backends::needs_shared_store() {
        return;
    }
    const CAP: u32 = 20;
    let n1 = TestServer::start_with(|c| c.rooms.max_rate = CAP).await;
    let n2 = second_node_with(&n1, "node-2", 2, |c| c.rooms.max_rate = CAP).await;
    let [ta, tb] = n1.users(["alice", "bob"]).await;
    let mut a = n1.conn_here(&ta, "ws").await;
    let mut b = n2.conn_here(&tb, "tcp").await;
    for c in [&mut a, &mut b] {
        let joined = c
            .request(ClientOp::RoomJoin {
                room: "arena".into(),
            })
            .await;
        assert!(
            matches!(joined, ServerFrame::RoomJoined { .. }),
            "{joined:?}"
        );
    }
    async fn flood(c: &mut Conn, n: usize) -> usize {
        let mut admitted = 0;
        for i in 0..n {
            let say = ClientOp::RoomSend {
                room: "arena".into(),
                body: format!("m{i}"),
                to: None,
            };
            match c.request(say).await {
                ServerFrame::RoomSent { shed, .. } => admitted += usize::from(!shed),
                f => panic!("{f:?}"),
            }
        }
        admitted
    }
    let start = magpie_core::now_ms();
    let (x, y) = tokio::join!(flood(&mut a, 60), flood(&mut b, 60));
    let end = magpie_core::now_ms();
    let seconds = (end.div_euclid(1000) - start.div_euclid(1000) + 1) as usize;
    assert!(
        x + y <= CAP as usize * seconds,
        "{x} + {y} admitted over {seconds} s at {CAP} a second"
    );
    assert!(x + y >= CAP as usize, "the room admitted only {}", x + y);
}

/// Deletes every state key of the test's namespace: what a Redis restart
/// without persistence (or FLUSHALL) does to us, without touching the
/// namespaces of tests running beside this one.
async fn flush_state(ns: &backends::Namespace) {
    let url = std::env::var("MAGPIE_TEST_REDIS_URL").unwrap();
    let prefix = ns.state.split("prefix=").nth(1).unwrap().to_string();
    assert!(
        backends::delete_keys(&url, &prefix).await > 0,
        "the state should hold routes and counters by now"
    );
}

/// After the state comes back empty, the node notices at its next registry
/// heartbeat (200 ms here) and puts back every connection's route at once:
/// pushes resume without waiting for each connection's own heartbeat (25 s
/// by default, kept here), and each client is told to sync.
#[tokio::test(flavor = "multi_thread")]
async fn pushes_resume_at_once_after_the_state_comes_back_empty() {
    if !backends::cluster_only() {
        return;
    }
    let n1 = TestServer::start().await;
    let [ta, tb] = n1.users(["alice", "bob"]).await;
    let mut a = n1.conn_here(&ta, "tcp").await;
    let mut b = n1.conn_here(&tb, "ws").await;
    a.send_msg(tb.user_id, "before").await;
    b.expect_msg().await;
    flush_state(n1.ns.as_ref().unwrap()).await;
    let lost = std::time::Instant::now();
    let hint = b.expect(|f| matches!(f, ServerFrame::Resync { .. })).await;
    let took = lost.elapsed();
    eprintln!("routes restored and resync sent {took:?} after the state was flushed");
    assert!(
        matches!(&hint, ServerFrame::Resync { reason } if reason == "route_restored"),
        "{hint:?}"
    );
    // The issue's bound (pushes resume within a second of the state's
    // return), with the registry heartbeat at 200 ms here; the
    // connections' own heartbeats would take 25 s.
    assert!(
        took < std::time::Duration::from_secs(1),
        "routes not back within a second ({took:?})"
    );
    a.send_msg(tb.user_id, "after").await;
    assert_eq!(
        b.expect_msg().await.body,
        "after",
        "pushed, not only synced"
    );
}

/// Routes lost on their own (a Redis shard restarted empty, an eviction)
/// while the node's registry record survives: the registry heartbeat sees
/// nothing wrong, the node's route audit (300 ms here) finds each missing
/// route, writes it back and tells the client to sync; pushes resume
/// without the connections' own heartbeats (25 s, kept here), which write
/// nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_route_audit_restores_routes_lost_on_their_own() {
    if !backends::cluster_only() {
        return;
    }
    let n1 = TestServer::start_with(|c| c.cluster.route_audit_ms = 300).await;
    let [ta, tb] = n1.users(["alice", "bob"]).await;
    let mut a = n1.conn_here(&ta, "tcp").await;
    let mut b = n1.conn_here(&tb, "ws").await;
    let url = std::env::var("MAGPIE_TEST_REDIS_URL").unwrap();
    let ns = n1.ns.as_ref().unwrap();
    let prefix = ns.state.split("prefix=").nth(1).unwrap();
    let lost = std::time::Instant::now();
    assert!(backends::delete_keys(&url, &format!("{prefix}:route")).await >= 2);
    let hint = b.expect(|f| matches!(f, ServerFrame::Resync { .. })).await;
    let took = lost.elapsed();
    assert!(
        matches!(&hint, ServerFrame::Resync { reason } if reason == "route_restored"),
        "{hint:?}"
    );
    assert!(
        took < std::time::Duration::from_secs(5),
        "restored only after {took:?}"
    );
    a.send_msg(tb.user_id, "after").await;
    assert_eq!(
        b.expect_msg().await.body,
        "after",
        "pushed, not only synced"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn losing_the_state_loses_no_message_and_reuses_no_sequence() {
    if !backends::cluster_only() {
        return;
    }
    let n1 = TestServer::start_with(|c| c.session.heartbeat_ms = 200).await;
    let [ta, tb] = n1.users(["alice", "bob"]).await;
    let mut a = n1.conn_here(&ta, "tcp").await;
    let mut b = n1.conn_here(&tb, "ws").await;
    let mut acked = Vec::new();
    for i in 0..20 {
        acked.push(sent_seq(&a.send_msg(tb.user_id, &format!("before {i}")).await).1);
    }
    for _ in 0..20 {
        b.expect_msg().await;
    }
    flush_state(n1.ns.as_ref().unwrap()).await;
    // Sending goes on: sequences continue from the store, never reused.
    for i in 0..20 {
        acked.push(sent_seq(&a.send_msg(tb.user_id, &format!("after {i}")).await).1);
    }
    assert_eq!(acked, (1..=40).collect::<Vec<i64>>());
    // Routes come back with the next heartbeat: pushes reach bob again.
    let mut pushed_after = false;
    for i in 0..100 {
        a.send_msg(tb.user_id, &format!("probe {i}")).await;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(300);
        while let Ok(Some(f)) = b.try_recv(deadline - tokio::time::Instant::now()).await {
            if let ServerFrame::Msg { msg, .. } = &f {
                b.ack(msg).await;
                pushed_after |= msg.body.starts_with("probe");
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
        }
        if pushed_after {
            break;
        }
    }
    assert!(
        pushed_after,
        "pushes never resumed after the state was lost"
    );
    // Nothing acknowledged is missing; unread counts equal the store's truth.
    let conv = ConvId::direct(ta.user_id, tb.user_id);
    let convs = b.sync(&[(conv.clone(), 0)], 200).await;
    let seqs: Vec<i64> = convs[0].messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=convs[0].last_seq).collect::<Vec<i64>>());
    let truth: i64 = unread_truth(&n1.app().store, tb.user_id).await;
    match b.request(ClientOp::Unread).await {
        ServerFrame::UnreadResult { total, .. } => assert_eq!(total, truth),
        f => panic!("{f:?}"),
    }
}

/// A group's receipts come from its one owner (rendezvous over the live
/// nodes, `services/delivery/reads.rs`): a node that handles a read of a
/// group it does not own forwards the range instead of flushing it. With
/// that node's relay dropping everything it publishes, a read there yields
/// no receipt, even for a sender connected to the same node; once the
/// relay carries again, the next read reaches the owner, whose receipt
/// comes back over the relay.
#[tokio::test(flavor = "multi_thread")]
async fn group_receipts_come_from_the_groups_one_owner() {
    if !backends::needs_shared_store() {
        return;
    }
    let n1 = TestServer::start().await;
    let n2 = second_node(&n1, "node-2", 2).await;
    let [to, tr] = n1.users(["owner", "reader"]).await;
    let g = n1.create_group(&to, &[tr.user_id]).await;
    let nodes = ["node-1".to_string(), "node-2".to_string()];
    let owner = magpie_server::services::delivery::owner_of(magpie_core::GroupId(g), &nodes);
    // Both clients on the node that does not own the group.
    let other = if owner == Some("node-1") { &n2 } else { &n1 };
    let mut o = other.conn_here(&to, "ws").await;
    let mut r = other.conn_here(&tr, "tcp").await;
    let conv = ConvId::group(magpie_core::GroupId(g));
    let read = |seq| ClientOp::Read {
        conv: conv.clone(),
        seq,
    };

    other.app().delivery.relay().set_drop(1.0);
    o.send_group(g, "one").await;
    r.expect_msg().await;
    assert!(matches!(
        r.request(read(1)).await,
        ServerFrame::ReadOk { .. }
    ));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    while let Some(left) = deadline.checked_duration_since(tokio::time::Instant::now()) {
        match o.try_recv(left).await {
            Ok(Some(ServerFrame::GroupReceipt { .. })) => {
                panic!("the node that does not own the group flushed its receipts")
            }
            Ok(Some(ServerFrame::Ping)) => o.send_op(None, ClientOp::Pong).await,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }

    other.app().delivery.relay().set_drop(0.0);
    o.send_group(g, "two").await;
    r.expect_msg().await;
    assert!(matches!(
        r.request(read(2)).await,
        ServerFrame::ReadOk { .. }
    ));
    let f = o
        .expect(|f| matches!(f, ServerFrame::GroupReceipt { .. }))
        .await;
    assert!(
        matches!(
            f,
            ServerFrame::GroupReceipt {
                seq: 2,
                read: 2,
                unread: 0,
                ..
            }
        ),
        "{f:?}"
    );
}

/// A small group's member list is cached on the node that pushes; a join
/// or leave made through another node reaches that node's very next
/// message, with nothing sent between the nodes: the store's membership
/// version comes back with the acceptance (docs/protocol.md, groups).
#[tokio::test(flavor = "multi_thread")]
async fn a_membership_change_on_one_node_holds_for_the_next_push_on_another() {
    if !backends::needs_shared_store() {
        return;
    }
    let n1 = TestServer::start().await;
    let n2 = second_node(&n1, "node-2", 2).await;
    let [to, ta, tb] = n1.users(["owner", "alice", "bob"]).await;
    let g = n1.create_group(&to, &[ta.user_id, tb.user_id]).await;
    // Every client on node 2, which pushes the group's messages.
    let mut o = n2.conn_here(&to, "ws").await;
    let mut a = n2.conn_here(&ta, "tcp").await;
    let mut b = n2.conn_here(&tb, "ws").await;
    let hits = || counter(&n2, "magpie_member_list_hits_total");
    o.send_group(g, "one").await;
    o.send_group(g, "two").await;
    for c in [&mut a, &mut b] {
        assert_eq!(c.expect_msg().await.body, "one");
        assert_eq!(c.expect_msg().await.body, "two");
    }
    let before = hits().await;
    o.send_group(g, "three").await;
    assert_eq!(b.expect_msg().await.body, "three");
    assert_eq!(a.expect_msg().await.body, "three");
    assert!(hits().await > before, "node 2 read the list again");

    let members = format!("/v1/groups/{g}/members");
    let (st, _) = n1
        .call(
            "DELETE",
            &format!("{members}/{}", tb.user_id),
            Some(&to.access_token),
            None,
        )
        .await;
    assert_eq!(st, 204);
    o.send_group(g, "after bob left").await;
    // The removal is announced before it (a member event, pushed from
    // node 1: it may arrive second), to the members only.
    let got = two_in_order(&mut a).await;
    assert_eq!(
        (got[0].from, got[1].body.as_str()),
        (UserId::SYSTEM, "after bob left")
    );
    assert!(
        !matches!(
            b.try_recv(std::time::Duration::from_millis(300)).await,
            Ok(Some(ServerFrame::Msg { .. }))
        ),
        "node 2 pushed from a list older than the message's membership"
    );
    let body = serde_json::json!({"users": [tb.user_id]});
    let (st, _) = n1.send_json(&to, "POST", &members, body).await;
    assert_eq!(st, 200);
    o.send_group(g, "bob is back").await;
    for c in [&mut a, &mut b] {
        let got = two_in_order(c).await;
        assert_eq!(
            (got[0].from, got[1].body.as_str()),
            (UserId::SYSTEM, "bob is back")
        );
    }
}

/// The next two messages pushed to `c`, in sequence order (pushed from two
/// nodes, they may arrive in either).
async fn two_in_order(c: &mut Conn) -> Vec<magpie_core::Message> {
    let mut got = vec![c.expect_msg().await, c.expect_msg().await];
    got.sort_by_key(|m| m.seq);
    got
}
