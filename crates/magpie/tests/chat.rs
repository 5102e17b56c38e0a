//! 1:1 chat end to end over both transports.

mod common;
use common::*;
use magpie_core::{ClientMsgId, ConvId};
use magpie_proto::{ClientOp, ServerFrame};

async fn exchange(a_transport: &str, b_transport: &str) {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let mut a = s.conn(&ta, a_transport).await;
    let mut b = s.conn(&tb, b_transport).await;
    let (_, seq, dup) = sent_seq(&a.send_msg(tb.user_id, "hi bob").await);
    assert_eq!((seq, dup), (1, false));
    let got = b.expect_msg().await;
    assert_eq!(
        (got.body.as_str(), got.seq, got.from),
        ("hi bob", 1, ta.user_id)
    );
    let (_, seq, _) = sent_seq(&b.send_msg(ta.user_id, "hi alice").await);
    assert_eq!(seq, 2);
    let got = a.expect_msg().await;
    assert_eq!(
        (got.body.as_str(), got.seq, got.conv),
        ("hi alice", 2, ConvId::direct(ta.user_id, tb.user_id))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_websocket_clients_chat() {
    exchange("ws", "ws").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tcp_clients_chat() {
    exchange("tcp", "tcp").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_and_tcp_clients_chat() {
    exchange("ws", "tcp").await;
    exchange("tcp", "ws").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_device_receives_and_the_sender_sees_its_own_message_elsewhere() {
    let s = TestServer::start().await;
    let (ta1, ta2) = (
        s.user("alice", "phone").await,
        s.login_or_user("alice", "laptop").await,
    );
    let (tb1, tb2) = (
        s.user("bob", "phone").await,
        s.login_or_user("bob", "laptop").await,
    );
    let mut a1 = s.conn(&ta1, "ws").await;
    let mut a2 = s.conn(&ta2, "tcp").await;
    let mut b1 = s.conn(&tb1, "tcp").await;
    let mut b2 = s.conn(&tb2, "ws").await;
    a1.send_msg(tb1.user_id, "to both of bob's devices").await;
    assert_eq!(b1.expect_msg().await.body, "to both of bob's devices");
    assert_eq!(b2.expect_msg().await.body, "to both of bob's devices");
    let echo = a2.expect_msg().await;
    assert_eq!(
        (echo.body.as_str(), echo.from),
        ("to both of bob's devices", ta1.user_id)
    );
    // The sending device itself gets no push of its own message.
    let pong = a1.request(ClientOp::Ping).await;
    assert!(matches!(pong, ServerFrame::Pong { .. }));
    assert!(
        a1.backlog
            .iter()
            .all(|f| !matches!(f, ServerFrame::Msg { .. }))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_send_reaches_socket_and_history() {
    let s = TestServer::start().await;
    let (ta, tb) = (s.user("alice", "web").await, s.user("bob", "phone").await);
    let mut b = s.conn(&tb, "tcp").await;
    let (st, body) = s
        .http_send(&ta, tb.user_id, ClientMsgId::new_v7(), "over http")
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["seq"], 1);
    assert_eq!(b.expect_msg().await.body, "over http");
    let conv = ConvId::direct(ta.user_id, tb.user_id);
    let (st, page) = s.history(&ta, &conv, "").await;
    assert_eq!(st, 200);
    assert_eq!(page["messages"][0]["body"], "over http");
}

impl TestServer {
    pub async fn login_or_user(&self, name: &str, device: &str) -> magpie_proto::http::Tokens {
        self.login(name, device).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_metrics_are_served() {
    let s = TestServer::start().await;
    let (st, body) = s.call("GET", "/healthz", None, None).await;
    assert_eq!((st, body["status"].as_str()), (200, Some("ok")));
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let mut a = s.conn(&ta, "ws").await;
    let mut b = s.conn(&tb, "tcp").await;
    a.send_msg(tb.user_id, "counted").await;
    b.expect_msg().await;
    // The ack is processed asynchronously: the counter and the histogram
    // are updated one after the other, so poll until every series shows.
    let names = [
        "magpie_connections{transport=\"ws\"}",
        "magpie_connections{transport=\"tcp\"}",
        "magpie_messages_accepted_total",
        "magpie_messages_pushed_total",
        "magpie_messages_acked_total",
        "magpie_delivery_latency_seconds_bucket",
    ];
    let mut text = String::new();
    for _ in 0..500 {
        let resp = s
            .http
            .get(format!("{}/metrics", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        text = resp.text().await.unwrap();
        if names.iter().all(|n| text.contains(n)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for name in names {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
}
