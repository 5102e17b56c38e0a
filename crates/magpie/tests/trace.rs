//! One message followed through the server: its hops on every node, in
//! order, with node names, from the trace buffers (`magpie trace` and
//! `GET /internal/v1/trace/{id}`; docs/observability.md). Across two nodes
//! with `MAGPIE_TEST_BACKENDS=cluster`; on one node with the embedded
//! backends.

mod common;
use common::*;
use magpie_core::{ClientMsgId, ConvId, Persistence, TraceContext};
use magpie_proto::http::TraceReport;
use magpie_proto::{ClientOp, ServerFrame};
use std::time::{Duration, Instant};

const CLIENT_TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

async fn report(s: &TestServer, id: i64) -> (u16, serde_json::Value) {
    let r = s
        .http
        .get(format!("{}/internal/v1/trace/{id}", s.internal()))
        .bearer_auth("service-key-for-tests")
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Asks until the report has every hop in `want` (hops arrive as the
/// workers and the receiver get to them).
async fn trace_with(s: &TestServer, id: i64, want: &[&str]) -> TraceReport {
    let give_up = Instant::now() + Duration::from_secs(20);
    loop {
        let (st, v) = report(s, id).await;
        assert_eq!(st, 200, "{v}");
        let r: TraceReport = serde_json::from_value(v).unwrap();
        if want.iter().all(|w| r.hops.iter().any(|h| h.hop == *w)) {
            return r;
        }
        assert!(Instant::now() < give_up, "hops still missing: {r:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn first(r: &TraceReport, hop: &str) -> usize {
    r.hops
        .iter()
        .position(|h| h.hop == hop)
        .unwrap_or_else(|| panic!("no {hop} in {r:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn one_message_is_followed_hop_by_hop_across_nodes() {
    let n1 = TestServer::start().await;
    let cluster = backends::needs_shared_store();
    let n2 = if cluster {
        Some(second_node(&n1, "node-2", 2).await)
    } else {
        None
    };
    let bob_node = n2.as_ref().unwrap_or(&n1);
    let (ta, tb) = (
        n1.user("alice", "phone").await,
        bob_node.user("bob", "laptop").await,
    );
    let mut a = n1.conn_here(&ta, "ws").await;

    // Bob is away: the trace says so.
    let away = a.send_msg(tb.user_id, "while bob is away").await;
    let (away_id, _, _) = sent_seq(&away);
    let r = trace_with(
        &n1,
        away_id.0,
        &["accepted", "durable", "published", "offline"],
    )
    .await;
    let off = &r.hops[first(&r, "offline")];
    assert_eq!(off.user, Some(tb.user_id));

    // Bob on his node over TCP; alice's next send continues her client's
    // trace and asks for it to be sampled.
    let mut b = bob_node.conn_here(&tb, "tcp").await;
    let sent = a
        .request(ClientOp::Send {
            reply_to: None,
            recall: None,
            mentions: Vec::new(),
            mention_all: false,
            edit: None,
            to: tb.user_id,
            cmid: ClientMsgId::new_v7(),
            body: "hello bob".into(),
            persistence: None,
            group: None,
            chain: None,
            traceparent: Some(CLIENT_TRACE.into()),
            sample: true,
        })
        .await;
    let (id, seq, _) = sent_seq(&sent);
    let msg = loop {
        let m = b.expect_msg().await; // acknowledged: the `delivered` hop
        if m.server_id == id {
            break m;
        }
    };
    let pushed = msg.trace.expect("a push carries the message's trace");
    let client = TraceContext::parse(CLIENT_TRACE).unwrap();
    assert_eq!(
        pushed.trace_id, client.trace_id,
        "the client's trace goes on"
    );
    assert!(pushed.sampled, "the client asked for it to be sampled");
    let conv = ConvId::direct(ta.user_id, tb.user_id);
    assert!(matches!(
        b.read(&conv, seq).await,
        ServerFrame::ReadOk { .. }
    ));

    let mut want = vec![
        "accepted",
        "durable",
        "published",
        "pushed",
        "delivered",
        "read",
        "indexed",
        "unread",
    ];
    if cluster {
        want.push("forwarded");
    }
    // Asked of node 1: bob's hops are on node 2 and come back merged.
    let r = trace_with(&n1, id.0, &want).await;
    assert_eq!(r.server_id, id);
    assert_eq!(r.conv.as_ref(), Some(&conv));
    assert_eq!(r.seq, Some(seq));
    assert_eq!(r.trace_id.as_deref(), Some(client.trace_hex().as_str()));
    assert!(r.missing.is_empty(), "every node answered: {r:#?}");
    let order: Vec<usize> = [
        "accepted",
        "durable",
        "published",
        "pushed",
        "delivered",
        "read",
    ]
    .iter()
    .map(|h| first(&r, h))
    .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "hops in order: {r:#?}"
    );
    assert!(r.hops.windows(2).all(|w| w[0].at_us <= w[1].at_us));
    let node_of = |hop: &str| r.hops[first(&r, hop)].node.clone();
    assert_eq!(node_of("accepted"), "node-1");
    assert_eq!(node_of("durable"), "node-1");
    let bob_here = if cluster { "node-2" } else { "node-1" };
    assert_eq!(node_of("pushed"), bob_here);
    assert_eq!(node_of("delivered"), bob_here);
    let push = &r.hops[first(&r, "pushed")];
    assert_eq!(push.user, Some(tb.user_id));
    assert_eq!(push.device.as_deref(), Some("laptop"));
    assert_eq!(push.transport.as_deref(), Some("tcp"));
    let acc = &r.hops[first(&r, "accepted")];
    assert_eq!(
        (acc.user, acc.device.as_deref()),
        (Some(ta.user_id), Some("phone"))
    );
    if cluster {
        let fwd = &r.hops[first(&r, "forwarded")];
        assert_eq!(fwd.detail.as_deref(), Some("node-2"));
        assert_eq!(r.nodes, vec!["node-1".to_string(), "node-2".to_string()]);
    }
    // Every hop that names a trace names the message's one trace.
    assert!(
        r.hops
            .iter()
            .filter_map(|h| h.trace_id.as_deref())
            .all(|t| t == client.trace_hex())
    );
    // Bob's read up to the second message covers the first too.
    let before = trace_with(&n1, away_id.0, &["read"]).await;
    assert_eq!(before.hops[first(&before, "read")].user, Some(tb.user_id));
    let unread = &r.hops[first(&r, "unread")];
    assert_eq!(unread.user, Some(tb.user_id), "counted for the receiver");
    assert!(first(&r, "unread") > first(&r, "durable"));

    // A `none` message is removed from the store once delivered: the trace
    // says so, and why.
    let gone = a
        .request(ClientOp::Send {
            reply_to: None,
            recall: None,
            mentions: Vec::new(),
            mention_all: false,
            edit: None,
            to: tb.user_id,
            cmid: ClientMsgId::new_v7(),
            body: "read once".into(),
            persistence: Some(Persistence::None),
            group: None,
            chain: None,
            traceparent: None,
            sample: false,
        })
        .await;
    let (gone_id, _, _) = sent_seq(&gone);
    while b.expect_msg().await.server_id != gone_id {}
    let r = trace_with(&n1, gone_id.0, &["delivered", "removed"]).await;
    let removed = &r.hops[first(&r, "removed")];
    assert_eq!(removed.detail.as_deref(), Some("delivered"));
    assert!(first(&r, "removed") > first(&r, "delivered"));

    // The same through the command line.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_magpie"))
        .args(["trace", &id.0.to_string(), "--url", &n1.internal()])
        .env("MAGPIE_INTERNAL__SERVICE_KEY", "service-key-for-tests")
        .output()
        .expect("magpie trace");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&client.trace_hex()), "{text}");
    for hop in &want {
        assert!(text.contains(hop), "{hop} missing from:\n{text}");
    }
    assert!(text.contains(&format!("user {} device laptop over tcp", tb.user_id)));

    // Bad and unknown ids.
    assert_eq!(report(&n1, 0).await.0, 400);
    let (st, v) = report(&n1, 12_345).await;
    assert_eq!(st, 200);
    assert!(v["hops"].as_array().unwrap().is_empty(), "{v}");
    // The service key is required.
    let anon = n1
        .http
        .get(format!("{}/internal/v1/trace/{}", n1.internal(), id.0))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status().as_u16(), 401);
}

/// An in-test OTLP/HTTP collector: every JSON export request it received.
async fn collector() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    use axum::routing::post;
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let keep = keep.clone();
            async move {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
                    keep.lock().unwrap().push(v);
                }
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), got)
}

/// The spans received: (name, trace id, span id, parent span id, attributes).
fn spans(got: &[serde_json::Value]) -> Vec<(String, String, String, String, serde_json::Value)> {
    let mut out = Vec::new();
    for req in got {
        for rs in req["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for sp in ss["spans"].as_array().into_iter().flatten() {
                    let s = |k: &str| sp[k].as_str().unwrap_or_default().to_lowercase();
                    out.push((
                        s("name"),
                        s("traceId"),
                        s("spanId"),
                        s("parentSpanId"),
                        sp["attributes"].clone(),
                    ));
                }
            }
        }
    }
    out
}

fn attr(attrs: &serde_json::Value, key: &str) -> Option<String> {
    attrs.as_array()?.iter().find(|a| a["key"] == key).map(|a| {
        let v = &a["value"];
        v["stringValue"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| v["intValue"].to_string())
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sampled_message_is_one_otlp_trace_across_nodes() {
    let (endpoint, got) = collector().await;
    let otlp = endpoint.clone();
    let n1 = TestServer::start_with(|c| {
        c.trace.otlp_endpoint = otlp;
        c.trace.sample_ratio = 0.0;
    })
    .await;
    let cluster = backends::needs_shared_store();
    let n2 = if cluster {
        let otlp = endpoint.clone();
        Some(second_node_with(&n1, "node-2", 2, |c| c.trace.otlp_endpoint = otlp).await)
    } else {
        None
    };
    let bob_node = n2.as_ref().unwrap_or(&n1);
    let (ta, tb) = (
        n1.user("alice", "phone").await,
        bob_node.user("bob", "laptop").await,
    );
    let mut a = n1.conn_here(&ta, "ws").await;
    let mut b = bob_node.conn_here(&tb, "tcp").await;
    let send = |sample: bool, body: &str| ClientOp::Send {
        reply_to: None,
        recall: None,
        mentions: Vec::new(),
        mention_all: false,
        edit: None,
        to: tb.user_id,
        cmid: ClientMsgId::new_v7(),
        body: body.into(),
        persistence: None,
        group: None,
        chain: None,
        traceparent: None,
        sample,
    };
    let (quiet, _, _) = sent_seq(&a.request(send(false, "not sampled")).await);
    b.expect_msg().await;
    let (id, seq, _) = sent_seq(&a.request(send(true, "sampled")).await);
    let msg = b.expect_msg().await;
    let t = msg.trace.expect("a sampled push carries its trace");
    let conv = ConvId::direct(ta.user_id, tb.user_id);
    assert!(matches!(
        b.read(&conv, seq).await,
        ServerFrame::ReadOk { .. }
    ));

    // A read names a position, not a message: it is in `magpie trace`
    // (which matches it to the messages it covers), not a span of theirs.
    let want = [
        "magpie.accepted",
        "magpie.durable",
        "magpie.published",
        "magpie.pushed",
        "magpie.delivered",
        "magpie.indexed",
    ];
    let trace_hex = t.trace_hex();
    let give_up = Instant::now() + Duration::from_secs(30);
    let mine = loop {
        let all = spans(&got.lock().unwrap());
        let mine: Vec<_> = all.into_iter().filter(|s| s.1 == trace_hex).collect();
        if want.iter().all(|w| mine.iter().any(|s| s.0 == *w)) {
            break mine;
        }
        assert!(
            Instant::now() < give_up,
            "spans missing: {:?}",
            mine.iter().map(|s| &s.0).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // One connected trace: the acceptance is its root, every other hop its child.
    let root = mine.iter().find(|s| s.0 == "magpie.accepted").unwrap();
    assert!(root.3.is_empty(), "the root has no parent: {root:?}");
    assert_eq!(root.2, format!("{:016x}", t.span_id));
    for s in &mine {
        if s.0 != "magpie.accepted" {
            assert_eq!(s.3, root.2, "{} hangs under the message's span", s.0);
        }
        assert_eq!(
            attr(&s.4, "magpie.server_id").as_deref(),
            Some(id.0.to_string().as_str())
        );
    }
    let node_of = |name: &str| attr(&mine.iter().find(|s| s.0 == name).unwrap().4, "magpie.node");
    assert_eq!(node_of("magpie.accepted").as_deref(), Some("node-1"));
    let bob_here = if cluster { "node-2" } else { "node-1" };
    assert_eq!(node_of("magpie.pushed").as_deref(), Some(bob_here));
    // The unsampled message exported nothing.
    let quiet_id = quiet.0.to_string();
    assert!(
        spans(&got.lock().unwrap())
            .iter()
            .all(|s| attr(&s.4, "magpie.server_id").as_deref() != Some(quiet_id.as_str())),
        "an unsampled message was exported"
    );
}
