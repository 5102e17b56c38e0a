//! Delivery guarantees: idempotent sends, offline sync without gaps,
//! paging, unread counts and read receipts.

mod common;
use common::*;
use magpie_core::{ClientMsgId, ConvId, UserId};
use magpie_proto::{ClientOp, ServerFrame};
use std::collections::BTreeSet;

fn send_op(to: UserId, cmid: ClientMsgId, body: &str) -> ClientOp {
    ClientOp::Send {
        reply_to: None,
        recall: None,
        mentions: Vec::new(),
        mention_all: false,
        edit: None,
        traceparent: None,
        sample: false,
        to,
        cmid,
        body: body.into(),
        persistence: None,
        group: None,
        chain: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_returns_the_original_ids_over_socket_and_http() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let mut a = s.conn(&ta, "tcp").await;
    let cmid = ClientMsgId::new_v7();
    let (id1, seq1, dup1) = sent_seq(&a.request(send_op(tb.user_id, cmid, "first")).await);
    // Same id, different body: the original result, nothing new stored.
    let (id2, seq2, dup2) = sent_seq(&a.request(send_op(tb.user_id, cmid, "changed")).await);
    assert_eq!((id1, seq1, dup1), (id2, seq2, false));
    assert!(dup2);
    let (st, body) = s.http_send(&ta, tb.user_id, cmid, "over http").await;
    assert_eq!(st, 200);
    assert_eq!(
        (
            body["server_id"].as_str().unwrap(),
            body["seq"].as_i64().unwrap()
        ),
        (id1.to_string().as_str(), seq1)
    );
    assert_eq!(body["duplicate"], true);
    let conv = ConvId::direct(ta.user_id, tb.user_id);
    let (_, page) = s.history(&tb, &conv, "").await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    assert_eq!(page["messages"][0]["body"], "first");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_retries_get_one_result() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let cmid = ClientMsgId::new_v7();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (http, base, token, to) = (
            s.http.clone(),
            s.base.clone(),
            ta.access_token.clone(),
            tb.user_id,
        );
        tasks.push(tokio::spawn(async move {
            let body = serde_json::json!({"to": to, "cmid": cmid, "body": format!("try {i}")});
            let r = http
                .post(format!("{base}/v1/messages"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            r.json::<serde_json::Value>().await.unwrap()
        }));
    }
    // And over two sockets at once.
    let mut c1 = s.conn(&ta, "ws").await;
    let mut c2 = s.conn(&s.login("alice", "laptop").await, "tcp").await;
    let (r1, r2) = tokio::join!(
        c1.request(send_op(tb.user_id, cmid, "ws")),
        c2.request(send_op(tb.user_id, cmid, "tcp"))
    );
    let mut results = BTreeSet::new();
    for t in tasks {
        let v = t.await.unwrap();
        results.insert((
            v["server_id"].as_str().unwrap().to_string(),
            v["seq"].as_i64().unwrap(),
        ));
    }
    for r in [r1, r2] {
        let (id, seq, _) = sent_seq(&r);
        results.insert((id.to_string(), seq));
    }
    assert_eq!(results.len(), 1, "{results:?}");
    let conv = ConvId::direct(ta.user_id, tb.user_id);
    let (_, page) = s.history(&tb, &conv, "?limit=50").await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_durable_key_answers_after_the_fast_path_expired() {
    let s = TestServer::start_with(|c| c.limits.idempotency_ttl_secs = 0).await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let cmid = ClientMsgId::new_v7();
    let (_, first) = s.http_send(&ta, tb.user_id, cmid, "once").await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        s.app()
            .state
            .idem_get(ta.user_id, cmid)
            .await
            .unwrap()
            .is_none(),
        "fast path should have expired"
    );
    let (_, again) = s.http_send(&ta, tb.user_id, cmid, "twice").await;
    assert_eq!(
        (first["server_id"].clone(), first["seq"].clone()),
        (again["server_id"].clone(), again["seq"].clone())
    );
    assert_eq!(again["duplicate"], true);
    let mut a = s.conn(&ta, "ws").await;
    let (id, seq, dup) = sent_seq(&a.request(send_op(tb.user_id, cmid, "thrice")).await);
    assert_eq!(
        (id.to_string(), seq, dup),
        (first["server_id"].as_str().unwrap().to_string(), 1, true)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_offline_receiver_gets_all_1000_messages_in_order() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let mut a = s.conn(&ta, "tcp").await;
    // Pipelined: all requests first, then the replies (batched by the server).
    for i in 1..=1000u64 {
        a.send_op(
            Some(i),
            send_op(tb.user_id, ClientMsgId::new_v7(), &format!("m{i}")),
        )
        .await;
    }
    let mut acked = 0;
    while acked < 1000 {
        if let ServerFrame::Sent { seq, rid, .. } = a.next().await {
            assert_eq!(
                Some(seq as u64),
                rid,
                "a connection's sends keep their order"
            );
            acked += 1;
        }
    }
    let conv = ConvId::direct(ta.user_id, tb.user_id);
    let mut b = s.conn(&tb, "ws").await;
    let mut last = 0;
    let mut pages = 0;
    loop {
        let convs = b.sync(&[(conv.clone(), last)], 150).await;
        let Some(c) = convs.into_iter().find(|c| c.conv == conv) else {
            break;
        };
        assert!(c.unavailable.is_empty());
        for m in &c.messages {
            assert_eq!(m.seq, last + 1, "no gap");
            assert_eq!(m.body, format!("m{}", m.seq));
            last = m.seq;
        }
        pages += 1;
        if !c.more {
            break;
        }
    }
    assert_eq!((last, pages), (1000, 7));
    // Newest ten first, then pull up for more, to the end.
    let mut before = None;
    let mut seen = Vec::new();
    loop {
        let f = b
            .request(ClientOp::History {
                conv: conv.clone(),
                before,
                limit: Some(10),
            })
            .await;
        let ServerFrame::HistoryResult { messages, more, .. } = f else {
            panic!("{f:?}")
        };
        assert!(messages.len() == 10 || !more);
        seen.extend(messages.iter().map(|m| m.seq));
        before = messages.last().map(|m| m.seq);
        if !more {
            break;
        }
    }
    assert_eq!(seen, (1..=1000).rev().collect::<Vec<_>>());
}

async fn unread(b: &mut Conn) -> (i64, Vec<(ConvId, i64)>) {
    match b.request(ClientOp::Unread).await {
        ServerFrame::UnreadResult { total, convs, .. } => (
            total,
            convs.into_iter().map(|c| (c.conv, c.unread)).collect(),
        ),
        f => panic!("{f:?}"),
    }
}

/// Polls `b`'s unread total until it is `want` (the count follows a read
/// asynchronously), for at most 10 s; returns the last answer.
async fn unread_until(b: &mut Conn, want: i64) -> (i64, Vec<(ConvId, i64)>) {
    let mut counts = unread(b).await;
    for _ in 0..500 {
        if counts.0 == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        counts = unread(b).await;
    }
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn unread_counts_and_read_receipts_are_exact() {
    let s = TestServer::start().await;
    let [ta, tb, tc] = s.users(["alice", "bob", "carol"]).await;
    let mut a = s.conn(&ta, "ws").await;
    let mut b = s.conn(&tb, "tcp").await;
    let ab = ConvId::direct(ta.user_id, tb.user_id);
    let cb = ConvId::direct(tc.user_id, tb.user_id);
    assert_eq!(unread(&mut b).await.0, 0);
    for i in 0..3 {
        a.send_msg(tb.user_id, &format!("a{i}")).await;
    }
    let (_, body) = s
        .http_send(&tc, tb.user_id, ClientMsgId::new_v7(), "from carol")
        .await;
    assert_eq!(body["seq"], 1);
    b.send_msg(ta.user_id, "b's own message does not count")
        .await; // seq 4 in ab
    for _ in 0..3 {
        b.expect_msg().await;
    }
    // The counters are maintained by a worker: poll until they settle.
    let mut counts = (0, vec![]);
    for _ in 0..500 {
        counts = unread(&mut b).await;
        if counts.0 == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut per = counts.1.clone();
    per.sort();
    let mut want = vec![(ab.clone(), 3), (cb.clone(), 1)];
    want.sort();
    assert_eq!((counts.0, per), (4, want));
    // Read up to seq 2 in ab: one of alice's messages stays unread.
    let r = b.read(&ab, 2).await;
    assert!(matches!(r, ServerFrame::ReadOk { seq: 2, .. }), "{r:?}");
    let receipt = a.expect(|f| matches!(f, ServerFrame::Receipt { .. })).await;
    assert_eq!(
        receipt,
        ServerFrame::Receipt {
            conv: ab.clone(),
            reader: tb.user_id,
            seq: 2
        }
    );
    counts = unread_until(&mut b, 2).await;
    assert_eq!(counts.0, 2);
    // Reading beyond the end is capped; everything read.
    let r = b.read(&ab, 99).await;
    assert!(matches!(r, ServerFrame::ReadOk { seq: 4, .. }), "{r:?}");
    let (st, body) = s.read(&tb, &cb, 1).await;
    assert_eq!((st, body["seq"].as_i64()), (200, Some(1)));
    counts = unread_until(&mut b, 0).await;
    assert_eq!(counts.0, 0);
    // The cache equals the truth rebuilt from the store.
    let truth: i64 = unread_truth(&s.app().store, tb.user_id).await;
    assert_eq!(truth, 0);
    // A new message counts again; HTTP agrees with the socket.
    a.send_msg(tb.user_id, "one more").await;
    for _ in 0..500 {
        let (_, body) = s.get(&tb, "/v1/unread").await;
        if body["total"] == 1 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("unread total never reached 1");
}

/// A read sets the cached count of the conversation read, from the store,
/// and touches no other conversation of the reader (before, every read
/// rebuilt all of them: two scans of every conversation the user has). The
/// marker: a count planted in carol's conversation survives bob's reading
/// alice's.
#[tokio::test(flavor = "multi_thread")]
async fn a_read_recounts_only_the_conversation_read() {
    let s = TestServer::start().await;
    let [ta, tb, tc] = s.users(["alice", "bob", "carol"]).await;
    let mut a = s.conn(&ta, "ws").await;
    let mut b = s.conn(&tb, "tcp").await;
    let ab = ConvId::direct(ta.user_id, tb.user_id);
    let cb = ConvId::direct(tc.user_id, tb.user_id);
    for i in 0..2 {
        a.send_msg(tb.user_id, &format!("a{i}")).await;
    }
    let (_, body) = s
        .http_send(&tc, tb.user_id, ClientMsgId::new_v7(), "from carol")
        .await;
    assert_eq!(body["seq"], 1);
    assert_eq!(unread_until(&mut b, 3).await.0, 3, "the cache is built");
    let state = &s.app().state;
    state
        .unread_reset(tb.user_id, &cb, 40, 1)
        .await
        .expect("plant a count");
    assert_eq!(unread(&mut b).await.0, 42);
    let r = b.read(&ab, 2).await;
    assert!(matches!(r, ServerFrame::ReadOk { seq: 2, .. }), "{r:?}");
    let (total, mut per) = unread_until(&mut b, 40).await;
    per.sort();
    let mut want = vec![(ab, 0), (cb, 40)];
    want.sort();
    assert_eq!((total, per), (40, want));
}

#[tokio::test(flavor = "multi_thread")]
async fn unacknowledged_pushes_are_resent_and_a_full_window_closes_the_connection() {
    let s = TestServer::start_with(|c| c.session.window = 5).await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    s.set_settings(&tb, "", serde_json::json!({"resend": "high"}))
        .await;
    let mut a = s.conn(&ta, "ws").await;
    let mut b = s.conn(&tb, "tcp").await;
    a.send_msg(tb.user_id, "resend me").await;
    // Not acknowledged: the same message comes again with attempt 2.
    let first = b.expect(|f| matches!(f, ServerFrame::Msg { .. })).await;
    let again = b.expect(|f| matches!(f, ServerFrame::Msg { .. })).await;
    match (first, again) {
        (
            ServerFrame::Msg {
                msg: m1,
                attempt: 1,
            },
            ServerFrame::Msg {
                msg: m2,
                attempt: 2,
            },
        ) => assert_eq!(m1.server_id, m2.server_id),
        other => panic!("{other:?}"),
    }
    for i in 0..5 {
        a.send_msg(tb.user_id, &format!("fill {i}")).await;
    }
    let f = b.expect(|f| matches!(f, ServerFrame::Error { .. })).await;
    assert!(
        matches!(
            f,
            ServerFrame::Error {
                code: magpie_proto::ErrorCode::SlowConsumer,
                fatal: true,
                ..
            }
        ),
        "{f:?}"
    );
    // Everything stays pullable.
    let mut b2 = s.conn(&tb, "ws").await;
    let convs = b2.sync(&[], 100).await;
    assert_eq!(convs[0].messages.len(), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_unread_mode_shapes_the_answer() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    s.http_send(&ta, tb.user_id, ClientMsgId::new_v7(), "one")
        .await;
    let get = async |mode: &str| {
        s.set_settings(&tb, "", serde_json::json!({"unread_mode": mode}))
            .await;
        s.get(&tb, "/v1/unread").await.1
    };
    let per = get("per_conversation").await;
    assert_eq!(
        (
            per["total"].as_i64(),
            per["convs"].as_array().unwrap().len()
        ),
        (Some(1), 1)
    );
    let total = get("total_only").await;
    assert_eq!(
        (
            total["total"].as_i64(),
            total["convs"].as_array().unwrap().len()
        ),
        (Some(1), 0)
    );
    let off = get("off").await;
    assert_eq!(
        (
            off["total"].as_i64(),
            off["convs"].as_array().unwrap().len()
        ),
        (Some(0), 0)
    );
    // The setting is per device: another device of bob still sees counts.
    let other = s.login("bob", "laptop").await;
    let (_, body) = s.get(&other, "/v1/unread").await;
    assert_eq!(body["total"].as_i64(), Some(1));
}

/// A route naming a connection this node does not have (it died without
/// clean-up) is found by the next push to it and removed; live routes stay.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_push_removes_the_stale_route() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let mut a = s.conn(&ta, "ws").await;
    let mut b = s.conn(&tb, "tcp").await;
    let app = s.app();
    let ghost = magpie_store::Route {
        user: tb.user_id,
        device: magpie_core::DeviceId::new("ghost").unwrap(),
        node: app.node().to_string(),
        conn: 987_654_321,
        since: magpie_core::now_ms(),
    };
    app.state.add_route(&ghost).await.unwrap();
    let devices = |routes: &std::collections::HashMap<UserId, Vec<magpie_store::Route>>| {
        let mut d: Vec<String> = routes[&tb.user_id]
            .iter()
            .map(|r| r.device.as_str().to_string())
            .collect();
        d.sort();
        d
    };
    let before = app.state.routes(&[tb.user_id]).await.unwrap();
    assert_eq!(devices(&before), ["ghost", "phone"]);
    a.send_msg(tb.user_id, "hello").await;
    assert_eq!(b.expect_msg().await.body, "hello");
    // The clean-up follows the local deliveries of the same push, so it may
    // land just after bob has the message.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let after = loop {
        let after = devices(&app.state.routes(&[tb.user_id]).await.unwrap());
        if after.len() < 2 || tokio::time::Instant::now() > deadline {
            break after;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(after, ["phone"], "the ghost route is gone, bob's stays");
}
