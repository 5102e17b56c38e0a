//! Process-level tests against the real `magpie` binary: kill -9 in the
//! middle of a burst, and SIGTERM.

mod common;
use common::process::{Node, node, spawn_cmd};
use common::*;
use magpie_core::{ClientMsgId, ConvId};
use magpie_proto::{ClientOp, ServerFrame};
use std::collections::{HashMap, HashSet};
use std::process::Command;

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_a_burst_loses_no_acknowledged_message() {
    const TOTAL: usize = 10_000;
    let mut n = node(tempfile::tempdir().unwrap());
    let (ta, tb) = (
        n.server.user("alice", "phone").await,
        n.server.user("bob", "phone").await,
    );
    let mut a = n.server.conn(&ta, "tcp").await;
    let cmids: Vec<ClientMsgId> = (0..TOTAL).map(|_| ClientMsgId::new_v7()).collect();
    let mut acked: HashMap<ClientMsgId, i64> = HashMap::new();
    let mut next = 0;
    let mut killed = false;
    // Keep up to 200 sends in flight; kill the server once 3,000 are acknowledged.
    while acked.len() < TOTAL {
        while next < TOTAL && next - acked.len() < 200 && !killed {
            let op = ClientOp::Send {
                reply_to: None,
                recall: None,
                mentions: Vec::new(),
                mention_all: false,
                edit: None,
                traceparent: None,
                sample: false,
                to: tb.user_id,
                cmid: cmids[next],
                body: format!("b{next}"),
                persistence: None,
                group: None,
                chain: None,
            };
            a.send_op(Some(next as u64), op).await;
            next += 1;
        }
        if !killed && acked.len() >= 3_000 {
            n.child.kill().unwrap(); // SIGKILL
            n.child.wait().unwrap();
            killed = true;
        }
        match a.try_recv(WAIT).await {
            Ok(Some(ServerFrame::Sent {
                rid: Some(rid),
                seq,
                ..
            })) => {
                acked.insert(cmids[rid as usize], seq);
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break, // the connection died with the process
        }
    }
    assert!(killed, "the burst finished before the kill");
    let acked_before_kill = acked.len();

    // Restart on the same directory.
    let dir = std::mem::replace(&mut n.server.dir, tempfile::tempdir().unwrap());
    let n2 = node(dir);
    let tb = n2.server.login("bob", "phone").await;
    let conv = ConvId::direct(ta.user_id, tb.user_id);
    let mut b = n2.server.conn(&tb, "ws").await;
    let got: Vec<(i64, ClientMsgId)> = b
        .sync_all(&conv, 0)
        .await
        .iter()
        .map(|m| (m.seq, m.cmid))
        .collect();
    let stored: HashMap<ClientMsgId, i64> = got.iter().map(|(s, c)| (*c, *s)).collect();
    assert_eq!(stored.len(), got.len(), "a message appears twice");
    for (cmid, seq) in &acked {
        assert_eq!(
            stored.get(cmid),
            Some(seq),
            "acknowledged message {cmid} lost or moved"
        );
    }
    // The client retries everything not acknowledged, with the same ids: no duplicates.
    let ta = n2.server.login("alice", "phone").await;
    let mut a = n2.server.conn(&ta, "tcp").await;
    let mut retried = HashSet::new();
    for (i, cmid) in cmids
        .iter()
        .enumerate()
        .filter(|(_, c)| !acked.contains_key(c))
    {
        a.send_op(
            Some(i as u64),
            ClientOp::Send {
                reply_to: None,
                recall: None,
                mentions: Vec::new(),
                mention_all: false,
                edit: None,
                traceparent: None,
                sample: false,
                to: tb.user_id,
                cmid: *cmid,
                body: format!("b{i}"),
                persistence: None,
                group: None,
                chain: None,
            },
        )
        .await;
        retried.insert(i as u64);
    }
    while !retried.is_empty() {
        match a.recv(WAIT).await {
            Some(ServerFrame::Sent { rid: Some(rid), .. }) => {
                retried.remove(&rid);
            }
            Some(ServerFrame::Ping) => a.send_op(None, ClientOp::Pong).await,
            Some(ServerFrame::Error { code, message, .. }) => {
                panic!("retry failed: {code}: {message}")
            }
            Some(_) => {} // e.g. bob, who reads nothing here, going offline as a slow consumer
            None => panic!(
                "connection closed with {} retries unanswered",
                retried.len()
            ),
        }
    }
    let (_, page) = n2.server.history(&tb, &conv, "?limit=1").await;
    assert_eq!(
        page["messages"][0]["seq"].as_i64(),
        Some(TOTAL as i64),
        "exactly {TOTAL} messages, acked before kill: {acked_before_kill}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_sends_reconnect_and_exits_cleanly() {
    let mut n = node(tempfile::tempdir().unwrap());
    let (ta, tb) = (
        n.server.user("alice", "phone").await,
        n.server.user("bob", "phone").await,
    );
    let mut a = n.server.conn(&ta, "ws").await;
    let mut b = n.server.conn(&tb, "tcp").await;
    let (_, seq, _) = sent_seq(&a.send_msg(tb.user_id, "before shutdown").await);
    assert_eq!(b.expect_msg().await.seq, seq);
    let status = Command::new("kill")
        .args(["-TERM", &n.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for c in [&mut a, &mut b] {
        assert!(matches!(
            c.expect(|f| matches!(f, ServerFrame::Reconnect { .. }))
                .await,
            ServerFrame::Reconnect { .. }
        ));
    }
    let exit = tokio::task::spawn_blocking(move || n.child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sweeper_cleans_up_after_a_killed_node() {
    if !backends::needs_shared_store() {
        return;
    }
    // Node 1 in process (its sweeper runs every 300 ms), node B a real process.
    let n1 = TestServer::start().await;
    let ns = n1.ns.clone().unwrap();
    let secret = std::fs::read_to_string(n1.dir.path().join("jwt.secret")).unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_magpie"));
    cmd.args(["serve", "--node", "node-b", "--node-num", "9"])
        .args(ns.args())
        .env("MAGPIE_AUTH__JWT_SECRET", &secret)
        .env("MAGPIE_CLUSTER__HEARTBEAT_MS", "200")
        .env("MAGPIE_CLUSTER__NODE_TTL_MS", "1000");
    let (child, base_b) = spawn_cmd(cmd, &dir_b);
    let mut b_node = Node {
        child,
        server: TestServer {
            running: None,
            base: base_b,
            dir: dir_b,
            http: reqwest::Client::new(),
            ns: Some(ns.clone()),
        },
    };

    let [ta, tb] = n1.users(["alice", "bob"]).await;
    let mut a = n1.conn_here(&ta, "ws").await;
    // Bob on node B: a ticket from any edge, the socket on B.
    let mut c = b_node.server.ticket(&tb, "tcp").await;
    let (_, body) = b_node.server.call("GET", "/healthz", None, None).await;
    assert_eq!(body["node"], "node-b");
    let routes_before = n1.app().state.node_routes("node-b").await.unwrap().len();
    if c.node != "node-b" {
        // Placement chose node 1: connect to B's own TCP address instead.
        let b_nodes = n1.app().state.nodes().await.unwrap();
        c.address = b_nodes
            .iter()
            .find(|n| n.node == "node-b")
            .unwrap()
            .tcp_addr
            .clone();
    }
    let mut b = Conn::open(&c).await;
    b.send_op(None, ClientOp::Hello { ticket: c.ticket }).await;
    assert!(matches!(b.next().await, ServerFrame::Welcome { node, .. } if node == "node-b"));
    a.send_msg(tb.user_id, "we are contacts").await;
    assert_eq!(b.expect_msg().await.body, "we are contacts");
    assert_eq!(
        n1.app().state.node_routes("node-b").await.unwrap().len(),
        routes_before + 1
    );

    b_node.child.kill().unwrap(); // SIGKILL: no drain, no offline event from B
    b_node.child.wait().unwrap();
    let f = a
        .expect(|f| matches!(f, ServerFrame::Presence { online: false, .. }))
        .await;
    match f {
        ServerFrame::Presence { user, reason, .. } => {
            assert_eq!((user, reason.as_deref()), (tb.user_id, Some("node_lost")));
        }
        other => panic!("{other:?}"),
    }
    assert_node_forgotten(&n1.app().state, "node-b").await;
}

/// Group traffic with reads in flight, then kill -9: after the restart every
/// acknowledged send and read is there, and each member's unread total is
/// exactly the group's last sequence minus their read position.
#[tokio::test(flavor = "multi_thread")]
async fn group_unread_stays_exact_across_kill_9() {
    let mut n = node(tempfile::tempdir().unwrap());
    let owner = n.server.user("owner", "phone").await;
    let mut members = Vec::new();
    for i in 0..5 {
        members.push(n.server.user(&format!("member{i}"), "phone").await);
    }
    let ids: Vec<i64> = members.iter().map(|t| t.user_id.0).collect();
    let (st, body) = n
        .server
        .send_json(
            &owner,
            "POST",
            "/v1/groups",
            serde_json::json!({"name": "crash", "members": ids}),
        )
        .await;
    assert_eq!(st, 201, "{body}");
    let g = body["id"].as_i64().unwrap();
    let conv = ConvId::group(magpie_core::GroupId(g));
    let mut conns = Vec::new();
    for t in &members {
        conns.push(n.server.conn(t, "tcp").await);
    }
    // Per member: highest acknowledged own send and read.
    let mut acked_send = vec![0i64; members.len()];
    let mut acked_read = vec![0i64; members.len()];
    let mut rid = 0u64;
    for round in 0..60 {
        for (i, c) in conns.iter_mut().enumerate() {
            rid += 1;
            let op = if (round + i) % 3 == 0 {
                ClientOp::Read {
                    conv: conv.clone(),
                    seq: (round * 5) as i64,
                }
            } else {
                ClientOp::Send {
                    reply_to: None,
                    recall: None,
                    mentions: Vec::new(),
                    mention_all: false,
                    edit: None,
                    traceparent: None,
                    sample: false,
                    to: magpie_core::UserId(0),
                    cmid: ClientMsgId::new_v7(),
                    body: format!("r{round}"),
                    persistence: None,
                    group: Some(magpie_core::GroupId(g)),
                    chain: None,
                }
            };
            c.send_op(Some(rid), op).await;
        }
        if round == 40 {
            n.child.kill().unwrap(); // SIGKILL with requests in flight
            n.child.wait().unwrap();
            break;
        }
        for (i, c) in conns.iter_mut().enumerate() {
            while let Ok(Some(f)) = c.try_recv(std::time::Duration::from_millis(20)).await {
                match f {
                    ServerFrame::Sent { seq, .. } => acked_send[i] = acked_send[i].max(seq),
                    ServerFrame::ReadOk { seq, .. } => acked_read[i] = acked_read[i].max(seq),
                    _ => {}
                }
            }
        }
    }
    let dir = std::mem::replace(&mut n.server.dir, tempfile::tempdir().unwrap());
    let n2 = node(dir);
    let owner = n2.server.login("owner", "phone").await;
    let (_, info) = n2.server.get(&owner, &format!("/v1/groups/{g}")).await;
    let last = info["last_seq"].as_i64().unwrap();
    assert!(
        last >= *acked_send.iter().max().unwrap(),
        "an acknowledged send is lost"
    );
    let (_, page) = n2
        .server
        .get(&owner, &format!("/v1/groups/{g}/members?limit=50"))
        .await;
    for (i, t) in members.iter().enumerate() {
        let m = page["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["user"].as_i64() == Some(t.user_id.0))
            .expect("still a member");
        let read = m["read_seq"].as_i64().unwrap();
        assert!(
            read >= acked_read[i].max(acked_send[i]),
            "an acknowledged read or send of member {i} is lost"
        );
        assert!(read <= last);
        let tok = n2.server.login(&format!("member{i}"), "phone").await;
        let (_, u) = n2.server.get(&tok, "/v1/unread").await;
        assert_eq!(
            u["total"].as_i64(),
            Some(last - read),
            "unread of member {i}"
        );
    }
}
