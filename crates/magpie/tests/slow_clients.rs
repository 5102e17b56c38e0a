//! Clients that start a request and never finish it (slowloris): a node
//! closes their connections at its deadlines, and everyone else is served
//! meanwhile (docs/config.md, `http.header_timeout_ms`,
//! `http.request_timeout_ms`).

mod common;
use common::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(s: &TestServer) -> String {
    s.base.trim_start_matches("http://").to_string()
}

/// Reads until the server closes; what it said meanwhile.
async fn until_closed(c: &mut TcpStream, within: Duration) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(within, c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "still open after {within:?}; read so far: {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn half_sent_headers_are_cut_off_and_others_are_served() {
    let s = TestServer::start_with(|c| c.http.header_timeout_ms = 500).await;
    let t = s.user("alice", "phone").await;
    // A well-behaved client on fresh connections: a pooled one idle for the
    // half second would be closed by this very deadline (as any server's
    // keep-alive timeout closes idle connections).
    let fresh = || async {
        let c = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let url = format!("{}/v1/unread", s.base);
        c.get(url)
            .bearer_auth(&t.access_token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    const SLOW: usize = 200;
    let mut slow = Vec::with_capacity(SLOW);
    for i in 0..SLOW {
        let mut c = TcpStream::connect(addr(&s)).await.unwrap();
        // Half a request line and headers, an upgrade for every other one.
        let head = if i % 2 == 0 {
            "GET /healthz HTTP/1.1\r\nHost: x\r\n".to_string()
        } else {
            "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n".to_string()
        };
        c.write_all(head.as_bytes()).await.unwrap();
        slow.push(c);
    }
    // A kept-alive connection that goes quiet after one request.
    let mut idle = TcpStream::connect(addr(&s)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // Meanwhile everyone else is served.
    assert_eq!(fresh().await, 200);
    for c in slow.iter_mut() {
        let said = until_closed(c, Duration::from_secs(5)).await;
        assert!(
            said.is_empty() || said.starts_with("HTTP/1.1 408"),
            "a half-sent request got {said:?}"
        );
    }
    let said = until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(said.starts_with("HTTP/1.1 200"), "{said:?}");
    eprintln!(
        "{SLOW} half-sent requests and an idle keep-alive closed after {:?}",
        started.elapsed()
    );
    assert_eq!(fresh().await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_never_comes_is_answered_408() {
    let s = TestServer::start_with(|c| c.http.request_timeout_ms = 500).await;
    let mut c = TcpStream::connect(addr(&s)).await.unwrap();
    let head = "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\n\
                Content-Type: application/json\r\nContent-Length: 100\r\n\r\n";
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(br#"{"username":"#).await.unwrap();
    let started = Instant::now();
    let said = until_closed(&mut c, Duration::from_secs(5)).await;
    assert!(said.starts_with("HTTP/1.1 408"), "{said:?}");
    assert!(said.contains("request_timeout"), "{said:?}");
    assert!(
        said.to_ascii_lowercase().contains("connection: close"),
        "{said:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}
