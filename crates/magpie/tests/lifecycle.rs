//! Connection lifecycle and retention: persistence levels, idle eviction
//! with presence, graceful shutdown.

mod common;
use common::*;
use magpie_core::{ClientMsgId, ConvId, Persistence};
use magpie_proto::{ClientOp, ErrorCode, ServerFrame};
use std::time::Duration;

async fn history_len(s: &TestServer, t: &magpie_proto::http::Tokens, conv: &ConvId) -> usize {
    let (_, page) = s.history(t, conv, "?limit=100").await;
    page["messages"].as_array().unwrap().len()
}

async fn eventually(mut f: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..400 {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn persistence_none_is_delivered_then_gone() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let conv = ConvId::direct(ta.user_id, tb.user_id);
    let mut a = s.conn(&ta, "ws").await;
    let mut b = s.conn(&tb, "tcp").await;
    let op = ClientOp::Send {
        reply_to: None,
        recall: None,
        mentions: Vec::new(),
        mention_all: false,
        edit: None,
        traceparent: None,
        sample: false,
        to: tb.user_id,
        cmid: ClientMsgId::new_v7(),
        body: "ephemeral".into(),
        persistence: Some(Persistence::None),
        group: None,
        chain: None,
    };
    sent_seq(&a.request(op).await);
    a.send_msg(tb.user_id, "kept").await;
    assert_eq!(b.expect_msg().await.body, "ephemeral"); // delivered online, and acknowledged
    assert_eq!(b.expect_msg().await.body, "kept");
    assert!(
        eventually(async || history_len(&s, &ta, &conv).await == 1).await,
        "the none message stays in history"
    );
    // Sync says the sequence is gone rather than leaving a silent gap.
    let convs = b.sync(&[(conv.clone(), 0)], 10).await;
    assert_eq!(convs[0].unavailable, vec![(1, 1)]);
    assert_eq!(convs[0].messages[0].seq, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn persistence_offline_is_gone_once_read_or_expired() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let conv = ConvId::direct(ta.user_id, tb.user_id);
    // Alice's default persistence becomes offline-only.
    s.set_settings(
        &ta,
        "?scope=user",
        serde_json::json!({"persistence": "offline"}),
    )
    .await;
    for i in 0..3 {
        s.http_send(&ta, tb.user_id, ClientMsgId::new_v7(), &format!("o{i}"))
            .await;
    }
    assert_eq!(history_len(&s, &tb, &conv).await, 3);
    let (st, _) = s.read(&tb, &conv, 2).await;
    assert_eq!(st, 200);
    assert!(
        eventually(async || history_len(&s, &tb, &conv).await == 1).await,
        "read offline messages are removed"
    );

    // Expiry: a server whose offline TTL is 0 removes unread ones on its next sweep.
    let s2 = TestServer::start_with(|c| c.retention.offline_ttl_secs = 0).await;
    let [ta, tb] = s2.users(["alice", "bob"]).await;
    let conv = ConvId::direct(ta.user_id, tb.user_id);
    s2.set_settings(&ta, "", serde_json::json!({"persistence": "offline"}))
        .await;
    s2.http_send(&ta, tb.user_id, ClientMsgId::new_v7(), "expires")
        .await;
    let op_forever = serde_json::json!({"to": tb.user_id, "cmid": ClientMsgId::new_v7(), "body": "stays", "persistence": "forever"});
    s2.send_json(&ta, "POST", "/v1/messages", op_forever).await;
    assert!(
        eventually(async || history_len(&s2, &tb, &conv).await == 1).await,
        "expired offline message removed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_connection_is_closed_and_goes_offline() {
    let s = TestServer::start_with(|c| {
        c.session.idle_timeout_ms = 400;
        c.session.heartbeat_ms = 10_000;
    })
    .await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let mut a = s.conn(&ta, "ws").await;
    a.send_msg(tb.user_id, "we are contacts now").await;
    let mut b = s.conn(&tb, "tcp").await;
    // Bob says nothing (alice keeps pinging): the server closes bob with
    // idle_timeout, and alice sees bob go offline because of it.
    let deadline = tokio::time::Instant::now() + WAIT;
    let (mut idle_error, mut closed, mut offline) = (false, false, false);
    while !(idle_error && closed && offline) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "idle={idle_error} closed={closed} offline={offline}"
        );
        assert!(matches!(
            a.request(ClientOp::Ping).await,
            ServerFrame::Pong { .. }
        ));
        offline |= a.backlog.iter().any(|f| {
            matches!(f, ServerFrame::Presence { user, online: false, reason: Some(r), .. } if *user == tb.user_id && r == "idle")
        });
        if !closed {
            match b.try_recv(Duration::from_millis(100)).await {
                Ok(Some(ServerFrame::Error {
                    code: ErrorCode::IdleTimeout,
                    fatal: true,
                    ..
                })) => idle_error = true,
                Ok(None) => closed = true,
                Ok(Some(ServerFrame::Error { code, .. })) => panic!("unexpected error {code}"),
                _ => {}
            }
        }
    }
    assert!(
        s.app()
            .state
            .routes(&[tb.user_id])
            .await
            .unwrap()
            .get(&tb.user_id)
            .is_none_or(|r| r.is_empty())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_tells_clients_to_reconnect_and_loses_nothing() {
    let mut s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let mut a = s.conn(&ta, "tcp").await;
    let mut b = s.conn(&tb, "ws").await;
    let mut acked = Vec::new();
    for i in 0..50 {
        acked.push(sent_seq(&a.send_msg(tb.user_id, &format!("s{i}")).await).1);
    }
    let stop = tokio::spawn(async move {
        s.stop().await;
        s
    });
    for c in [&mut a, &mut b] {
        let f = c
            .expect(|f| matches!(f, ServerFrame::Reconnect { .. }))
            .await;
        assert!(matches!(f, ServerFrame::Reconnect { .. }));
    }
    let mut s = stop.await.unwrap();
    // Restart on the same data directory: every acknowledged message is there.
    let mut cfg = test_config(s.dir.path());
    cfg.node = "node-1".into();
    let running = magpie_server::start(cfg).await.unwrap();
    let base = format!("http://{}", running.http_addr);
    let s2 = TestServer {
        running: Some(running),
        base,
        dir: std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap()),
        http: reqwest::Client::new(),
        ns: s.ns.take(),
    };
    let tb = s2.login("bob", "phone").await;
    let conv = ConvId::direct(ta.user_id, tb.user_id);
    let (_, page) = s2.history(&tb, &conv, "?after=0&limit=100").await;
    let seqs: Vec<i64> = page_seqs(&page);
    assert_eq!(seqs, acked);
}
