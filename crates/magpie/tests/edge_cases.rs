//! Requests at the edges of the protocol, answered as docs/protocol.md
//! says: a sync with no body or with a key that is no conversation, a read
//! of a conversation that has no message yet.

mod common;
use common::*;
use magpie_core::ConvId;
use magpie_proto::{ClientOp, ServerFrame};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn sync_takes_an_empty_body_and_ignores_keys_that_are_no_conversation() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let (st, _) = s
        .http_send(&ta, tb.user_id, magpie_core::ClientMsgId::new_v7(), "hi")
        .await;
    assert_eq!(st, 200);
    let conv = ConvId::direct(ta.user_id, tb.user_id).to_string();

    // Every field of a sync is optional, the body too.
    let r = s
        .http
        .post(format!("{}/v1/sync", s.base))
        .bearer_auth(&tb.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["convs"][0]["conv"], conv.as_str());

    // A key that is no conversation id is ignored like a foreign one.
    let (st, v) = s
        .send_json(
            &tb,
            "POST",
            "/v1/sync",
            json!({"convs": {"nonsense": 0, "d:98:99": 0, conv.clone(): 0}}),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["convs"].as_array().unwrap().len(), 1);
    assert_eq!(v["convs"][0]["messages"][0]["body"], "hi");

    // The same on the socket.
    let mut b = s.conn(&tb, "ws").await;
    b.send_text(r#"{"op":"sync","rid":1,"convs":{"nonsense":0}}"#)
        .await;
    let f = b
        .expect(|f| {
            matches!(
                f,
                ServerFrame::SyncResult { .. } | ServerFrame::Error { .. }
            )
        })
        .await;
    assert!(matches!(f, ServerFrame::SyncResult { .. }), "{f:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reading_a_direct_conversation_with_no_message_is_position_zero() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let conv = ConvId::direct(ta.user_id, tb.user_id);
    let (st, v) = s.read(&ta, &conv, 5).await;
    assert_eq!((st, &v["seq"]), (200, &json!(0)), "{v}");
    // Not one of its two users: still not found.
    let (st, _) = s
        .send_json(
            &ta,
            "POST",
            "/v1/conversations/d:98:99/read",
            json!({"seq": 5}),
        )
        .await;
    assert_eq!(st, 404);
    let mut a = s.conn(&ta, "tcp").await;
    match a.request(ClientOp::Read { conv, seq: 1 }).await {
        ServerFrame::ReadOk { seq, .. } => assert_eq!(seq, 0),
        f => panic!("{f:?}"),
    }
}
