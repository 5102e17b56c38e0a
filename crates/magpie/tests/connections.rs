//! The node-wide cap on open client connections (`limits.max_connections`):
//! beyond it HTTP gets 503 `busy` with `Retry-After`, TCP a fatal `busy`
//! frame; a WebSocket keeps its HTTP connection's place until it closes.

mod common;
use common::*;
use futures_util::StreamExt;
use magpie_proto::{ErrorCode, ServerFrame, TcpCodec};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// One raw `GET /healthz` on a fresh connection: the whole answer as text.
async fn raw_get(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("an answer, then close")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_told_busy_and_places_come_back() {
    let s = TestServer::start_with(|c| c.limits.max_connections = 3).await;
    let http = s.running.as_ref().unwrap().http_addr.to_string();
    let tcp = s.running.as_ref().unwrap().tcp_addr.unwrap().to_string();
    assert!(raw_get(&http).await.starts_with("HTTP/1.1 200"));

    // Three places: the test client's pooled HTTP connection, a WebSocket
    // (upgraded from its own HTTP connection) and one idle socket.
    let alice = s.user("alice", "phone").await;
    let ws = s.conn(&alice, "ws").await;
    let _idle = TcpStream::connect(&http).await.unwrap();
    // The idle socket is accepted asynchronously: wait until it holds its place.
    let mut answer = String::new();
    for _ in 0..100 {
        answer = raw_get(&http).await;
        if answer.starts_with("HTTP/1.1 503") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(answer.starts_with("HTTP/1.1 503"), "got {answer}");
    assert!(answer.contains("retry-after: 1"), "got {answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["error"]["code"], "busy");
    assert_eq!(v["error"]["retryable"], true);

    // The TCP listener shares the cap: one fatal `busy` frame, then close.
    let mut t = Framed::new(
        TcpStream::connect(&tcp).await.unwrap(),
        TcpCodec::new(1 << 20),
    );
    let frame = tokio::time::timeout(WAIT, t.next())
        .await
        .unwrap()
        .expect("a frame")
        .unwrap();
    match ServerFrame::decode(&frame).unwrap() {
        ServerFrame::Error { code, fatal, .. } => {
            assert_eq!(code, ErrorCode::Busy);
            assert!(fatal);
        }
        other => panic!("expected busy, got {other:?}"),
    }
    assert!(
        tokio::time::timeout(WAIT, t.next())
            .await
            .unwrap()
            .is_none()
    );

    // Closing the WebSocket gives its place back.
    drop(ws);
    let mut served = false;
    for _ in 0..250 {
        if raw_get(&http).await.starts_with("HTTP/1.1 200") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "a place came back when the WebSocket closed");
    assert!(
        counter(&s, "magpie_connections_refused_total").await >= 2.0,
        "both refusals are counted"
    );
}
