//! A super group at scale: `MAGPIE_TEST_SUPER_MEMBERS` members (default
//! 100,000; all but the online ones added in bulk) of which
//! `MAGPIE_TEST_SUPER_ONLINE` (default 1,500) are connected, spread over
//! three nodes in cluster mode (one node embedded). One message reaches
//! every online member, and /metrics shows the work it cost is per node,
//! not per member: no route lookup, one stored row, a bus event count that
//! does not depend on the group's size, no per-member queue write. Then a
//! member who was offline for 1,000 messages syncs all of them, in order.
//!
//! One test in this binary: the metrics are process-wide.

mod common;
use common::*;
use magpie_core::{ConvId, GroupId, UserId};
use serde_json::json;

fn param(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const COUNTERS: [&str; 5] = [
    "magpie_route_lookups_total",
    "magpie_store_message_rows_total",
    "magpie_bus_events_published_total",
    "magpie_state_queue_writes_total",
    "magpie_group_broadcasts_total",
];

async fn snapshot(s: &TestServer) -> Vec<f64> {
    let mut out = Vec::new();
    for c in COUNTERS {
        out.push(counter(s, c).await);
    }
    out
}

/// Counters once the background work of the connects (presence fan-out)
/// has settled: two snapshots a second apart agree.
async fn settled(s: &TestServer) -> Vec<f64> {
    let mut last = snapshot(s).await;
    for _ in 0..60 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let now = snapshot(s).await;
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("counters never settled: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_super_group_message_costs_per_node_not_per_member() {
    let members = param("MAGPIE_TEST_SUPER_MEMBERS", 100_000);
    let online = param("MAGPIE_TEST_SUPER_ONLINE", 1_500).min(members - 2);
    // One message's cost is measured: the set-up's member events (one per
    // batch added) are not announced, so the message is the group's first.
    let n1 = TestServer::start_with(|c| {
        c.groups.super_threshold = 100;
        c.groups.member_events = false;
    })
    .await;
    let mut nodes = vec![n1];
    let multi = backends::shared_store();
    if multi {
        for (name, num) in [("node-2", 2), ("node-3", 3)] {
            let mut n = second_node(&nodes[0], name, num).await;
            n.stop().await;
            // The peers need the same threshold.
            let mut cfg = test_config(n.dir.path());
            nodes[0].ns.as_ref().unwrap().apply(&mut cfg);
            cfg.node = name.into();
            cfg.node_num = num;
            cfg.groups.super_threshold = 100;
            cfg.groups.member_events = false;
            cfg.auth.jwt_secret =
                std::fs::read_to_string(nodes[0].dir.path().join("jwt.secret")).unwrap();
            let running = magpie_server::start(cfg).await.unwrap();
            n.base = format!("http://{}", running.http_addr);
            n.running = Some(running);
            nodes.push(n);
        }
    }
    let s = &nodes[0];
    let [owner, late] = s.users(["owner", "latecomer"]).await;
    let mut users = Vec::with_capacity(online);
    for i in 0..online {
        users.push(s.user(&format!("u{i:05}"), "phone").await);
    }
    // The online users (and the latecomer) through the API, the rest in bulk.
    let (st, body) = s
        .send_json(
            &owner,
            "POST",
            "/v1/groups",
            json!({"name": "everyone", "members": [late.user_id]}),
        )
        .await;
    assert_eq!(st, 201, "{body}");
    let g = GroupId(body["id"].as_i64().unwrap());
    for chunk in users.chunks(1000) {
        let ids: Vec<UserId> = chunk.iter().map(|t| t.user_id).collect();
        let (st, body) = s
            .send_json(
                &owner,
                "POST",
                &format!("/v1/groups/{g}/members"),
                json!({"users": ids}),
            )
            .await;
        assert_eq!(st, 200, "{body}");
    }
    let store = &s.app().store;
    let mut next = 50_000_000i64;
    loop {
        let have = store.groups().group(g).await.unwrap().unwrap().members as usize;
        if have >= members {
            break;
        }
        // Each call to a shard must answer within its 3 s bound
        // (docs/deploy.md, "SQL shards"): a loaded machine inserts 10,000
        // rows in one statement slower than that.
        let n = (members - have).min(2_000);
        let bulk: Vec<UserId> = (next..next + n as i64).map(UserId).collect();
        next += n as i64;
        store.groups().add_members(g, &bulk).await.unwrap();
    }
    assert_eq!(
        store.groups().group(g).await.unwrap().unwrap().members as usize,
        members
    );

    let mut conns = Vec::with_capacity(online);
    for (i, t) in users.iter().enumerate() {
        conns.push(
            nodes[i % nodes.len()]
                .conn_here(t, if i % 2 == 0 { "tcp" } else { "ws" })
                .await,
        );
    }
    let before = settled(s).await;
    let (st, body) = s
        .send_json(
            &owner,
            "POST",
            "/v1/messages",
            json!({"group": g, "cmid": magpie_core::ClientMsgId::new_v7(), "body": "to everyone"}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    for c in conns.iter_mut() {
        let m = c.expect_msg().await;
        assert_eq!((m.body.as_str(), m.seq), ("to everyone", 1));
    }
    let after = settled(s).await;
    let delta: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    eprintln!(
        "one message to {members} members ({online} online on {} nodes): {:?}",
        nodes.len(),
        COUNTERS.iter().zip(&delta).collect::<Vec<_>>()
    );
    assert_eq!(delta[0], 0.0, "route lookups");
    assert_eq!(delta[1], 1.0, "stored rows: the body once");
    assert!(
        delta[2] <= 2.0,
        "bus events: the message and its broadcast, got {}",
        delta[2]
    );
    assert_eq!(delta[3], 0.0, "per-member queue writes");
    assert_eq!(delta[4], 1.0, "broadcasts");

    // The latecomer was offline for 1,000 messages: sync returns every one, in order.
    drop(conns);
    let mut oc = s.conn(&owner, "tcp").await;
    for i in 0..1000 {
        let f = oc.send_group(g.0, &format!("m{i}")).await;
        assert_eq!(sent_seq(&f).1, i + 2);
    }
    let mut lc = s.conn(&late, "ws").await;
    let conv = ConvId::group(g);
    let got: Vec<String> = lc
        .sync_all(&conv, 0)
        .await
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(got.len(), 1001);
    assert_eq!(got[1], "m0");
    assert_eq!(got[1000], "m999");
}
