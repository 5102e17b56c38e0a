//! An operator's drain of a running node (`PUT /internal/v1/drain`,
//! docs/protocol.md §3.13): its clients are told to reconnect, the
//! registry marks it draining, `connect` places new connections on other
//! nodes while there are any, and ending the drain makes it a candidate
//! again. Nothing is lost across it: clients sync on reconnect. The
//! console's cluster survey (`GET /internal/v1/cluster`) shows every node's
//! state, metrics and alarms.

mod common;
use common::*;
use magpie_core::ConvId;
use magpie_proto::ServerFrame;
use serde_json::json;

fn reconnect_after(f: &ServerFrame) -> u64 {
    match f {
        ServerFrame::Reconnect { reason, after_ms } => {
            assert_eq!(reason, "draining");
            *after_ms
        }
        other => unreachable!("{other:?}"),
    }
}

/// The survey's answers by node: (draining, has metrics).
async fn survey(s: &TestServer) -> Vec<(String, bool, bool)> {
    let (st, v) = s.operator("GET", "/internal/v1/cluster", None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["missing"], json!([]), "every live node answered: {v}");
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let metrics = n["metrics"].as_str().unwrap();
            (
                n["node"].as_str().unwrap().to_string(),
                n["draining"].as_bool().unwrap(),
                metrics.contains("magpie_messages_accepted_total"),
            )
        })
        .collect()
}

async fn draining_in_registry(s: &TestServer, node: &str) -> bool {
    let (st, v) = s.operator("GET", "/internal/v1/nodes", None).await;
    assert_eq!(st, 200, "{v}");
    let nodes = v["nodes"].as_array().unwrap();
    let n = nodes.iter().find(|n| n["node"] == node).expect("listed");
    n["draining"].as_bool().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drain_sends_the_clients_away_and_loses_nothing() {
    let s = TestServer::start().await;
    let node = s.app().cfg.node.clone();
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let conv = ConvId::direct(ta.user_id, tb.user_id);
    let mut a = s.conn_here(&ta, "ws").await;
    let mut b = s.conn_here(&tb, "tcp").await;
    a.send_msg(tb.user_id, "before").await;
    assert_eq!(b.expect_msg().await.body, "before");
    assert!(!draining_in_registry(&s, &node).await);

    let (st, v) = s
        .operator("PUT", "/internal/v1/drain", Some(json!({"draining": true})))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["draining"], true);
    assert_eq!(v["closed"], 2, "{v}");
    for c in [&mut a, &mut b] {
        let f = c
            .expect(|f| matches!(f, ServerFrame::Reconnect { .. }))
            .await;
        assert!((500..=5_000).contains(&reconnect_after(&f)));
    }
    assert!(draining_in_registry(&s, &node).await);
    assert_eq!(survey(&s).await, [(node.clone(), true, true)]);
    let (_, v) = s.operator("GET", "/internal/v1/drain", None).await;
    assert_eq!(v["draining"], true, "{v}");

    // The only node still takes connections (nowhere else to go), and a
    // message sent meanwhile is there for Bob's sync.
    s.send_until_accepted(
        &ta,
        tb.user_id,
        magpie_core::ClientMsgId::new_v7(),
        "during",
    )
    .await;
    let mut b = s.conn(&tb, "ws").await;
    let bodies: Vec<String> = b
        .sync_all(&conv, 1)
        .await
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, ["during"]);

    // Naming this node is the same as naming none.
    let order = json!({"draining": false, "node": node});
    let (st, v) = s.operator("PUT", "/internal/v1/drain", Some(order)).await;
    assert_eq!(
        (st, &v["draining"], &v["closed"]),
        (200, &json!(false), &json!(0))
    );
    assert!(!draining_in_registry(&s, &node).await);
    let (st, v) = s
        .operator(
            "PUT",
            "/internal/v1/drain",
            Some(json!({"draining": "yes"})),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("bad_field")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_avoids_a_draining_node_while_another_serves() {
    if !backends::needs_shared_store() {
        return;
    }
    let n1 = TestServer::start().await;
    let n2 = second_node(&n1, "node-2", 2).await;
    let mut a = n1.conn_here(&n1.user("alice", "phone").await, "ws").await;
    // Node 1 drained from node 2's internal API (over the relay): it acts
    // and answers, its client is told to go.
    let order = json!({"draining": true, "node": "node-1"});
    let (st, v) = n2.operator("PUT", "/internal/v1/drain", Some(order)).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["node"], "node-1");
    assert_eq!((&v["draining"], &v["closed"]), (&json!(true), &json!(1)));
    let f = a
        .expect(|f| matches!(f, ServerFrame::Reconnect { .. }))
        .await;
    reconnect_after(&f);
    let states: Vec<(String, bool)> = survey(&n2)
        .await
        .into_iter()
        .map(|(n, draining, metrics)| {
            assert!(metrics, "{n}");
            (n, draining)
        })
        .collect();
    assert_eq!(states, [("node-1".into(), true), ("node-2".into(), false)]);
    for i in 0..12 {
        let t = n2.user(&format!("user{i}"), "phone").await;
        for transport in ["ws", "tcp"] {
            assert_eq!(n1.ticket(&t, transport).await.node, "node-2");
        }
    }
    n1.operator(
        "PUT",
        "/internal/v1/drain",
        Some(json!({"draining": false})),
    )
    .await;
    assert!(!draining_in_registry(&n2, "node-1").await);
    // A node nobody runs never answers: unavailable, after the wait.
    let order = json!({"draining": true, "node": "node-9"});
    let (st, v) = n2.operator("PUT", "/internal/v1/drain", Some(order)).await;
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["error"]["code"], "unavailable");
}
