//! A webhook receiver for the offline push tests: an HTTP server on
//! 127.0.0.1:0 that records every call (headers and body) and answers 500
//! to the first `fail_first` of them, 200 after; and a node configured to
//! call it.
#![allow(dead_code)]

use super::common::TestServer;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use magpie_core::ClientMsgId;
use magpie_proto::http::Tokens;
use serde_json::Value;
use sha2::Sha256;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub const SECRET: &str = "push-secret-for-tests";

/// Long enough for a call that was going to come (a coalescing window and
/// the worker's fetch), not a performance bound.
pub const QUIET: Duration = Duration::from_millis(1_500);

/// A node calling `hook`, with short retry delays.
pub async fn server(hook: &Hook, coalesce_ms: u64, max_attempts: u32) -> TestServer {
    server_with(hook, coalesce_ms, max_attempts, |_| {}).await
}

/// `server`, its configuration further adjusted by `f`.
pub async fn server_with(
    hook: &Hook,
    coalesce_ms: u64,
    max_attempts: u32,
    f: impl FnOnce(&mut magpie_server::Config),
) -> TestServer {
    let url = hook.url.clone();
    TestServer::start_with(move |cfg| {
        cfg.push.webhook_url = url;
        cfg.push.secret = SECRET.into();
        cfg.push.coalesce_ms = coalesce_ms;
        cfg.push.max_attempts = max_attempts;
        cfg.push.backoff_ms = 20;
        cfg.push.max_backoff_ms = 50;
        cfg.push.timeout_ms = 2_000;
        f(cfg);
    })
    .await
}

/// A direct message over HTTP, which must be accepted; its sequence.
pub async fn send(s: &TestServer, from: &Tokens, to: &Tokens, body: &str) -> i64 {
    let (st, resp) = s
        .http_send(from, to.user_id, ClientMsgId::new_v7(), body)
        .await;
    assert_eq!(st, 200, "send: {resp}");
    resp["seq"].as_i64().expect("seq")
}

/// Whether one of `calls` is for `user`.
pub fn has_call_for(calls: &[Recorded], user: i64) -> bool {
    calls.iter().any(|r| r.body["user"] == user)
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub timestamp: String,
    pub signature: String,
    pub raw: Vec<u8>,
    pub body: Value,
    /// The status it was answered with.
    pub status: u16,
}

impl Recorded {
    /// Checks the signature as a receiver would (docs/protocol.md,
    /// "Offline push webhook"): HMAC-SHA256 of "<timestamp>.<body>".
    pub fn signed_with(&self, secret: &str) -> bool {
        let Some(hex_sig) = self.signature.strip_prefix("sha256=") else {
            return false;
        };
        let Ok(sig) = hex::decode(hex_sig) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(self.timestamp.as_bytes());
        mac.update(b".");
        mac.update(&self.raw);
        mac.verify_slice(&sig).is_ok()
    }
}

#[derive(Default)]
struct Inner {
    calls: std::sync::Mutex<Vec<Recorded>>,
    fail_first: AtomicUsize,
}

pub struct Hook {
    pub url: String,
    inner: Arc<Inner>,
}

impl Hook {
    /// A receiver answering 500 to its first `fail_first` requests.
    pub async fn start(fail_first: usize) -> Hook {
        let inner = Arc::new(Inner::default());
        inner.fail_first.store(fail_first, Ordering::SeqCst);
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Hook { url, inner }
    }

    /// Every request so far.
    pub fn calls(&self) -> Vec<Recorded> {
        self.inner.calls.lock().unwrap().clone()
    }

    /// The requests answered 2xx whose `user` is `user`.
    pub fn delivered_to(&self, user: i64) -> Vec<Recorded> {
        self.calls()
            .into_iter()
            .filter(|c| c.status == 200 && c.body["user"] == user)
            .collect()
    }

    /// Waits (up to `wait`) until `pred` holds of the requests so far.
    pub async fn until(&self, wait: Duration, pred: impl Fn(&[Recorded]) -> bool) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let calls = self.calls();
            if pred(&calls) || tokio::time::Instant::now() >= deadline {
                return calls;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(State(inner): State<Arc<Inner>>, headers: HeaderMap, raw: Bytes) -> StatusCode {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let fail = inner
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    inner.calls.lock().unwrap().push(Recorded {
        timestamp: header("x-magpie-timestamp"),
        signature: header("x-magpie-signature"),
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
        raw: raw.to_vec(),
        status: status.as_u16(),
    });
    status
}
