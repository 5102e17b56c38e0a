//! The relay may lose pushes between nodes, never silently: three nodes
//! whose relay drops a third of everything (per-node delivery events,
//! super-group broadcasts and heartbeats alike), then everything. Every
//! message still reaches every client, once and in order, through the
//! `resync` hints the relay's gap reports turn into and the clients' syncs
//! (ARCHITECTURE.md, "two bus paths"; docs/protocol.md, `resync`).

mod common;
use common::*;
use magpie_core::{ConvId, GroupId, Message, Transport};
use magpie_proto::http::Tokens;
use magpie_sdk::{Client, ClientOptions, Event, HttpClient};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);
const EACH: usize = 40;

/// A node of the first one's cluster whose relay drops `drop` of its frames.
async fn lossy_node(first: Option<&TestServer>, name: &str, num: u16, drop: f64) -> TestServer {
    let tune = move |cfg: &mut magpie_server::Config| {
        cfg.node = name.into();
        cfg.node_num = num;
        // A group of three is a super group: its messages are broadcast.
        cfg.groups.super_threshold = 2;
        cfg.relay = format!("{}&drop={drop}", cfg.relay_url());
    };
    let Some(first) = first else {
        return TestServer::start_with(tune).await;
    };
    let mut n = second_node(first, name, num).await;
    n.stop().await;
    let mut cfg = test_config(n.dir.path());
    first.ns.as_ref().unwrap().apply(&mut cfg);
    cfg.auth.jwt_secret = std::fs::read_to_string(first.dir.path().join("jwt.secret")).unwrap();
    tune(&mut cfg);
    let running = magpie_server::start(cfg).await.unwrap();
    n.base = format!("http://{}", running.http_addr);
    n.running = Some(running);
    n
}

/// An SDK client connected to `node` itself, whatever the placement says,
/// on every reconnect too.
async fn client_on(node: &TestServer, t: &Tokens) -> Client {
    let http = HttpClient::new(&node.base).unwrap();
    http.set_tokens(t.clone());
    let ws = node.app().ws_url.clone();
    let connector = move || {
        let (http, ws) = (http.clone(), ws.clone());
        async move {
            let mut c = http.connect(Some(Transport::Ws)).await?;
            c.address = ws;
            Ok(c)
        }
    };
    Client::connect_with(connector, ClientOptions::default())
        .await
        .expect("sdk connect")
}

/// Collects message events until each conversation of `want` has its count.
async fn receive(c: &Client, want: &BTreeMap<ConvId, usize>) -> BTreeMap<ConvId, Vec<Message>> {
    let mut got: BTreeMap<ConvId, Vec<Message>> = BTreeMap::new();
    let done = |got: &BTreeMap<ConvId, Vec<Message>>| {
        want.iter()
            .all(|(conv, n)| got.get(conv).map_or(0, Vec::len) >= *n)
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done(&got) {
        let ev = tokio::time::timeout_at(deadline, c.next_event())
            .await
            .unwrap_or_else(|_| panic!("timed out; so far {:?}", counts(&got)))
            .expect("event stream ended");
        if let Event::Message(m) = ev {
            got.entry(m.conv.clone()).or_default().push(m);
        }
    }
    got
}

fn counts(got: &BTreeMap<ConvId, Vec<Message>>) -> BTreeMap<&ConvId, usize> {
    got.iter().map(|(c, v)| (c, v.len())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_message_arrives_in_order_when_the_relay_drops_traffic() {
    if !backends::cluster_mode() || std::env::var("MAGPIE_TEST_STORE").is_ok_and(|v| v == "sqlite")
    {
        eprintln!("needs several nodes: set MAGPIE_TEST_BACKENDS=cluster (PostgreSQL or MySQL)");
        return;
    }
    let n1 = lossy_node(None, "node-1", 1, 0.3).await;
    let n2 = lossy_node(Some(&n1), "node-2", 2, 0.3).await;
    let n3 = lossy_node(Some(&n1), "node-3", 3, 0.3).await;
    let (ta, tb, tc) = (
        n1.user("alice", "phone").await,
        n1.user("bob", "phone").await,
        n1.user("carol", "phone").await,
    );
    let (st, body) = n1
        .call(
            "POST",
            "/v1/groups",
            Some(&ta.access_token),
            Some(json!({"name": "three", "members": [tb.user_id, tc.user_id]})),
        )
        .await;
    assert_eq!(st, 201, "{body}");
    let g = GroupId(body["id"].as_i64().unwrap());
    let alice = client_on(&n1, &ta).await;
    let bob = client_on(&n2, &tb).await;
    let carol = client_on(&n3, &tc).await;

    // Direct messages cross the relay as per-node delivery events, group
    // messages as broadcasts; a third of them (and of the heartbeats) lost.
    for i in 0..EACH {
        alice.send(tb.user_id, format!("b{i}")).await.unwrap();
        alice.send(tc.user_id, format!("c{i}")).await.unwrap();
        alice.send_group(g, format!("g{i}")).await.unwrap();
    }
    // Then the last messages are lost for certain: only the relay's gap
    // report (a missing heartbeat) can tell the receivers.
    n1.app().delivery.relay().set_drop(1.0);
    alice.send(tb.user_id, "b-last").await.unwrap();
    alice.send_group(g, "g-last").await.unwrap();

    let (ab, ac) = (
        ConvId::direct(ta.user_id, tb.user_id),
        ConvId::direct(ta.user_id, tc.user_id),
    );
    let group = ConvId::group(g);
    let for_bob = BTreeMap::from([(ab.clone(), EACH + 1), (group.clone(), EACH + 1)]);
    let for_carol = BTreeMap::from([(ac.clone(), EACH), (group.clone(), EACH + 1)]);
    let (got_b, got_c) = tokio::join!(receive(&bob, &for_bob), receive(&carol, &for_carol));
    for (who, got, want) in [("bob", &got_b, &for_bob), ("carol", &got_c, &for_carol)] {
        for (conv, n) in want {
            let seqs: Vec<i64> = got[conv].iter().map(|m| m.seq).collect();
            let expected: Vec<i64> = (1..=*n as i64).collect();
            assert_eq!(seqs, expected, "{who} {conv}: every message once, in order");
        }
    }
    assert_eq!(got_b[&ab].last().unwrap().body, "b-last");
    assert_eq!(got_c[&group].last().unwrap().body, "g-last");
    let stats = n1.app().delivery.relay().stats();
    assert!(stats.dropped > 0, "the relay dropped nothing: {stats:?}");
    let hints = counter(&n2, "magpie_resync_hints_total").await
        + counter(&n3, "magpie_resync_hints_total").await;
    assert!(hints > 0.0, "no resync hint was sent");
}
