//! Bad input, black box: every malformed frame or request gets its documented
//! error code, only unrecoverable errors close the offending connection, and
//! other clients keep working throughout. Socket cases run over both transports.

mod common;
use common::*;
use futures_util::{SinkExt, StreamExt};
use magpie_core::{ClientMsgId, UserId};
use magpie_proto::http::{ConnectResponse, Tokens};
use magpie_proto::{ClientOp, ErrorCode, ServerFrame};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::Message as WsMsg;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

// ---------------------------------------------------------------- helpers

/// A server with two users: `a` is the connection that misbehaves, `b` a
/// healthy bystander on the same transport.
struct Pair {
    s: TestServer,
    ta: Tokens,
    tb: Tokens,
    a: Conn,
    b: Conn,
}

async fn pair_with(transport: &str, f: impl FnOnce(&mut magpie_server::Config)) -> Pair {
    let s = TestServer::start_with(f).await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let a = s.conn(&ta, transport).await;
    let b = s.conn(&tb, transport).await;
    Pair { s, ta, tb, a, b }
}

/// A server (configured by `f`) with alice, and bob connected on
/// `transport` as a healthy bystander.
async fn with_bystander(
    transport: &str,
    f: impl FnOnce(&mut magpie_server::Config),
) -> (TestServer, Tokens, Tokens, Conn) {
    let s = TestServer::start_with(f).await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let b = s.conn(&tb, transport).await;
    (s, ta, tb, b)
}

async fn pair(transport: &str) -> Pair {
    pair_with(transport, |_| {}).await
}

/// The next error frame: (rid, code, fatal).
async fn error_frame(c: &mut Conn) -> (Option<u64>, ErrorCode, bool) {
    match c.expect(|f| matches!(f, ServerFrame::Error { .. })).await {
        ServerFrame::Error {
            rid,
            code,
            fatal,
            message,
            ..
        } => {
            assert!(!message.is_empty(), "error frames carry a message");
            (rid, code, fatal)
        }
        _ => unreachable!(),
    }
}

/// The connection ends (close / EOF) without further error frames.
async fn assert_closed(c: &mut Conn) {
    assert!(c.backlog.is_empty() || c.backlog.iter().all(|f| !is_error(f)));
    loop {
        match c.recv(WAIT).await {
            None => return,
            Some(f) if is_error(&f) => panic!("unexpected frame before close: {f:?}"),
            Some(_) => continue,
        }
    }
}

fn is_error(f: &ServerFrame) -> bool {
    matches!(f, ServerFrame::Error { .. })
}

/// The connection still answers requests.
async fn assert_usable(c: &mut Conn) {
    match c.request(ClientOp::Ping).await {
        ServerFrame::Pong { rid } => assert!(rid.is_some(), "pong echoes the rid"),
        other => panic!("expected pong, got {other:?}"),
    }
}

/// A message from `from` (socket) reaches `to`.
async fn flows_over_socket(from: &mut Conn, to: &mut Conn, to_user: UserId, body: &str) {
    match from.send_msg(to_user, body).await {
        ServerFrame::Sent { duplicate, .. } => assert!(!duplicate),
        other => panic!("expected sent, got {other:?}"),
    }
    assert_eq!(to.expect_msg().await.body, body);
}

/// A message sent over HTTP by `from` reaches `to`.
async fn flows_over_http(
    s: &TestServer,
    from: &Tokens,
    to: &mut Conn,
    to_user: UserId,
    body: &str,
) {
    let (st, resp) = s
        .http_send(from, to_user, ClientMsgId::new_v7(), body)
        .await;
    assert_eq!(st, 200, "{resp}");
    assert_eq!(to.expect_msg().await.body, body);
}

/// Asserts an HTTP error: status, code, and the exact body shape
/// `{"error":{"code","message","retryable"}}`.
fn assert_http_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "status; body {body}");
    let top = body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {body}"));
    assert_eq!(top.len(), 1, "only `error` at top level: {body}");
    let err = top["error"]
        .as_object()
        .unwrap_or_else(|| panic!("error is not an object: {body}"));
    let mut keys: Vec<&str> = err.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["code", "message", "retryable"], "{body}");
    assert_eq!(err["code"], want_code, "{body}");
    assert!(err["message"].is_string(), "{body}");
    assert!(err["retryable"].is_boolean(), "{body}");
}

/// One refused call: method, path, credential (token or key) and body;
/// then the status and error code it must get.
type Refusal<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<Value>,
    u16,
    &'a str,
);

/// Makes each call of `cases` on `base` (the public or the internal
/// listener) and asserts its documented error.
async fn assert_refused(s: &TestServer, base: &str, cases: Vec<Refusal<'_>>) {
    for (method, path, cred, body, status, code) in cases {
        let (st, resp) = s.call_at(base, method, path, cred, body).await;
        assert_http_error(st, &resp, status, code);
    }
}

/// `POST path` on the internal listener with the service key.
async fn internal_post(s: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let key = Some("service-key-for-tests");
    s.call_at(&s.internal(), "POST", path, key, Some(body))
        .await
}

/// A raw request with an arbitrary body (for bodies `call` cannot express).
async fn raw_post(
    s: &TestServer,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut req = s.http.post(format!("{}{}", s.base, path)).body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.send().await.unwrap();
    let st = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        st,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn cmid_json() -> Value {
    serde_json::to_value(ClientMsgId::new_v7()).unwrap()
}

const TRANSPORTS: [&str; 2] = ["ws", "tcp"];

// ---------------------------------------------------------- socket: decoding

/// What a misbehaving client puts on the wire.
#[derive(Debug)]
enum Bad {
    Text(String),
    Raw(Vec<u8>),
}

/// Sends each bad frame of `cases(bob)` from alice, on both transports:
/// each is answered with its error frame `(rid, code)`, not fatal; then
/// alice's connection still answers, and her next message reaches bob
/// first (none of the refused frames was delivered).
async fn refused_and_not_fatal(cases: impl Fn(UserId) -> Vec<(Bad, Option<u64>, ErrorCode)>) {
    for t in TRANSPORTS {
        let mut p = pair(t).await;
        for (bad, rid, code) in cases(p.tb.user_id) {
            let what = format!("{bad:?} over {t}");
            match bad {
                Bad::Text(text) => p.a.send_text(&text).await,
                Bad::Raw(bytes) => p.a.send_raw(bytes).await,
            }
            assert_eq!(error_frame(&mut p.a).await, (rid, code, false), "{what}");
        }
        assert_usable(&mut p.a).await;
        flows_over_socket(&mut p.a, &mut p.b, p.tb.user_id, "after refused frames").await;
    }
}

fn text(s: impl ToString) -> Bad {
    Bad::Text(s.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_is_bad_json_and_not_fatal() {
    refused_and_not_fatal(|_| vec![(text("{nope"), None, ErrorCode::BadJson)]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn json_non_object_is_bad_json() {
    refused_and_not_fatal(|_| {
        ["[1]", "42", "\"op\"", "null"]
            .map(|s| (text(s), None, ErrorCode::BadJson))
            .into()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_op_echoes_rid() {
    refused_and_not_fatal(|_| {
        vec![(
            text(r#"{"op":"fly","rid":41}"#),
            Some(41),
            ErrorCode::UnknownOp,
        )]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_or_mistyped_field_is_bad_field_with_rid() {
    refused_and_not_fatal(|bob| {
        let mut cases: Vec<_> = [
            // missing `to`
            json!({"op": "send", "rid": 7, "cmid": cmid_json(), "body": "x"}),
            // wrongly typed `to`
            json!({"op": "send", "rid": 8, "to": "x", "cmid": cmid_json(), "body": "x"}),
            // invalid client message id
            json!({"op": "send", "rid": 9, "to": bob, "cmid": "not-a-uuid", "body": "x"}),
            // missing op
            json!({"rid": 10}),
            // op of the wrong type
            json!({"op": 5, "rid": 11}),
        ]
        .into_iter()
        .map(|frame| (text(&frame), frame["rid"].as_u64(), ErrorCode::BadField))
        .collect();
        // `hello` again on an authenticated connection is a bad field, not fatal.
        let hello = r#"{"op":"hello","rid":12,"ticket":"whatever"}"#;
        cases.push((text(hello), Some(12), ErrorCode::BadField));
        cases
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_is_bad_utf8_and_not_fatal() {
    let bytes = || Bad::Raw(vec![0xff, 0xfe, b'{', b'}', 0xc3]);
    refused_and_not_fatal(|_| vec![(bytes(), None, ErrorCode::BadUtf8)]).await;
}

// ------------------------------------------------------ socket: frame limits

async fn too_large_case(transport: &str) {
    let mut p = pair_with(transport, |c| c.limits.max_frame_bytes = 4096).await;
    let big = big_send_frame(p.tb.user_id, 8 * 1024);
    p.a.send_text(&big).await;
    match &mut p.a.wire {
        Wire::Tcp(_) => {
            assert_eq!(
                error_frame(&mut p.a).await,
                (None, ErrorCode::FrameTooLarge, true)
            );
            assert_closed(&mut p.a).await;
        }
        Wire::Ws(ws) => {
            // The server answers an error frame (frame_too_large, fatal) and
            // means to send a close frame with code 1009; accept either or
            // both, but nothing else, and the connection must end (the exact
            // close code is held by ws_frame_over_the_limit_ends_with_close_1009).
            let mut saw_something = false;
            loop {
                let next = tokio::time::timeout(WAIT, ws.next())
                    .await
                    .expect("timed out waiting for the connection to end");
                match next {
                    Some(Ok(WsMsg::Text(t))) => match ServerFrame::decode(t.as_bytes()).unwrap() {
                        ServerFrame::Error { code, fatal, .. } => {
                            assert_eq!((code, fatal), (ErrorCode::FrameTooLarge, true));
                            saw_something = true;
                        }
                        ServerFrame::Ping | ServerFrame::Presence { .. } => {}
                        other => panic!("unexpected frame: {other:?}"),
                    },
                    Some(Ok(WsMsg::Close(cf))) => {
                        if let Some(cf) = cf {
                            assert_eq!(u16::from(cf.code), 1009, "close code");
                        }
                        saw_something = true;
                        break;
                    }
                    Some(Ok(_)) => {}
                    None | Some(Err(_)) => break,
                }
            }
            assert!(saw_something, "no error frame and no close frame");
        }
    }
    // Bob is unaffected, and alice can come back on a new connection.
    flows_over_http(&p.s, &p.ta, &mut p.b, p.tb.user_id, "after too large").await;
    let mut a2 = p.s.conn(&p.ta, transport).await;
    assert_usable(&mut a2).await;
    flows_over_socket(&mut a2, &mut p.b, p.tb.user_id, "alice is back").await;
}

/// An over-the-limit frame that is otherwise a valid `send`.
fn big_send_frame(to: UserId, body_len: usize) -> String {
    json!({"op": "send", "rid": 1, "to": to, "cmid": cmid_json(), "body": "x".repeat(body_len)})
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn frame_over_the_limit_is_fatal() {
    for t in TRANSPORTS {
        too_large_case(t).await;
    }
}

/// Writes one length-prefixed frame.
async fn tcp_write_frame(s: &mut TcpStream, payload: &[u8]) {
    let mut buf = (payload.len() as u32).to_be_bytes().to_vec();
    buf.extend_from_slice(payload);
    s.write_all(&buf).await.unwrap();
}

/// Reads one length-prefixed frame; `None` at EOF (or reset).
async fn tcp_read_frame(s: &mut TcpStream) -> Option<ServerFrame> {
    let fut = async {
        let mut len = [0u8; 4];
        if s.read_exact(&mut len).await.is_err() {
            return None;
        }
        let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut payload).await.ok()?;
        Some(ServerFrame::decode(&payload).unwrap())
    };
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("timed out reading a tcp frame")
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_length_prefix_over_the_limit_is_fatal() {
    let Handshake {
        s,
        ta,
        tb,
        mut b,
        c,
    } = handshake("tcp").await;
    let mut raw = TcpStream::connect(c.address.as_str()).await.unwrap();
    let hello = json!({"op": "hello", "ticket": c.ticket}).to_string();
    tcp_write_frame(&mut raw, hello.as_bytes()).await;
    match tcp_read_frame(&mut raw).await {
        Some(ServerFrame::Welcome { user, .. }) => assert_eq!(user, ta.user_id),
        other => panic!("expected welcome, got {other:?}"),
    }
    raw.write_all(&0x7fff_ffffu32.to_be_bytes()).await.unwrap();
    loop {
        match tcp_read_frame(&mut raw).await {
            Some(ServerFrame::Error { code, fatal, .. }) => {
                assert_eq!((code, fatal), (ErrorCode::FrameTooLarge, true));
                break;
            }
            Some(ServerFrame::Ping | ServerFrame::Presence { .. }) => continue,
            other => panic!("expected frame_too_large, got {other:?}"),
        }
    }
    // Then EOF.
    let mut rest = Vec::new();
    let n = tokio::time::timeout(WAIT, raw.read_to_end(&mut rest))
        .await
        .expect("connection not closed");
    assert!(
        n.is_err() || rest.is_empty(),
        "nothing after the fatal error, got {} bytes",
        rest.len()
    );
    flows_over_http(&s, &ta, &mut b, tb.user_id, "after huge prefix").await;
}

// ------------------------------------------------------ socket: recipients

#[tokio::test(flavor = "multi_thread")]
async fn unknown_recipient_on_socket_is_not_fatal() {
    refused_and_not_fatal(|_| {
        let send =
            json!({"op": "send", "rid": 3, "to": 999_999, "cmid": cmid_json(), "body": "anyone?"});
        vec![(text(send), Some(3), ErrorCode::UnknownRecipient)]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_recipient_over_http_is_404() {
    let (s, ta, tb, mut b) = with_bystander("ws", |_| {}).await;
    let (st, body) = s
        .http_send(&ta, UserId(999_999), ClientMsgId::new_v7(), "anyone?")
        .await;
    assert_http_error(st, &body, 404, "unknown_recipient");
    assert_eq!(body["error"]["retryable"], false);
    flows_over_http(&s, &ta, &mut b, tb.user_id, "after unknown recipient").await;
}

// ------------------------------------------------------ socket: handshake

/// A server where bob is connected (a healthy bystander) and alice holds
/// a ticket `c` but no connection yet.
struct Handshake {
    s: TestServer,
    ta: Tokens,
    tb: Tokens,
    b: Conn,
    c: ConnectResponse,
}

async fn handshake(transport: &str) -> Handshake {
    let (s, ta, tb, b) = with_bystander(transport, |_| {}).await;
    let c = s.ticket(&ta, transport).await;
    Handshake { s, ta, tb, b, c }
}

/// The next error frame is `(rid, code)` and fatal, and the connection ends.
async fn assert_fatal(c: &mut Conn, rid: Option<u64>, code: ErrorCode) {
    assert_eq!(error_frame(c).await, (rid, code, true));
    assert_closed(c).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn random_ticket_is_bad_ticket_and_fatal() {
    for t in TRANSPORTS {
        let mut h = handshake(t).await;
        let mut a = Conn::open(&h.c).await;
        let ticket = "not-a-ticket-0123456789abcdef".into();
        a.send_op(Some(3), ClientOp::Hello { ticket }).await;
        assert_fatal(&mut a, Some(3), ErrorCode::BadTicket).await;
        flows_over_http(&h.s, &h.ta, &mut h.b, h.tb.user_id, "after bad ticket").await;
        // The unused real ticket still works.
        let mut a = Conn::hello(h.c.clone()).await;
        flows_over_socket(&mut a, &mut h.b, h.tb.user_id, "alice connected").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reused_ticket_is_bad_ticket() {
    for t in TRANSPORTS {
        let mut h = handshake(t).await;
        let mut first = Conn::hello(h.c.clone()).await;
        let mut second = Conn::open(&h.c).await;
        let ticket = h.c.ticket.clone();
        second.send_op(None, ClientOp::Hello { ticket }).await;
        assert_fatal(&mut second, None, ErrorCode::BadTicket).await;
        // The first connection is untouched by the failed reuse.
        assert_usable(&mut first).await;
        flows_over_socket(&mut first, &mut h.b, h.tb.user_id, "after reused ticket").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_ticket_is_bad_ticket() {
    for transport in TRANSPORTS {
        let s = TestServer::start_with(|c| c.auth.ticket_ttl_secs = 0).await;
        let [ta, tb] = s.users(["alice", "bob"]).await;
        let c = s.ticket(&ta, transport).await;
        assert_eq!(c.expires_in, 0);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut a = Conn::open(&c).await;
        a.send_op(Some(1), ClientOp::Hello { ticket: c.ticket })
            .await;
        assert_fatal(&mut a, Some(1), ErrorCode::BadTicket).await;
        // No socket can be opened on this server (every ticket expires at
        // once), but HTTP keeps working for everyone.
        let (st, body) = s
            .http_send(&ta, tb.user_id, ClientMsgId::new_v7(), "still works")
            .await;
        assert_eq!(st, 200, "{body}");
        let (st, body) = s.send_json(&tb, "POST", "/v1/sync", json!({})).await;
        assert_eq!(st, 200, "{body}");
        assert!(body.to_string().contains("still works"), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn op_before_hello_is_not_authenticated_and_not_fatal() {
    for t in TRANSPORTS {
        let mut h = handshake(t).await;
        let mut a = Conn::open(&h.c).await;
        a.send_op(Some(5), ClientOp::Ping).await;
        assert_eq!(
            error_frame(&mut a).await,
            (Some(5), ErrorCode::NotAuthenticated, false)
        );
        let sneaky = ClientOp::Send {
            reply_to: None,
            recall: None,
            mentions: Vec::new(),
            mention_all: false,
            edit: None,
            traceparent: None,
            sample: false,
            to: h.tb.user_id,
            cmid: ClientMsgId::new_v7(),
            body: "sneaky".into(),
            persistence: None,
            group: None,
            chain: None,
        };
        a.send_op(Some(6), sneaky).await;
        assert_eq!(
            error_frame(&mut a).await,
            (Some(6), ErrorCode::NotAuthenticated, false)
        );
        // Malformed frames before hello are not fatal either.
        a.send_text("{nope").await;
        assert_eq!(error_frame(&mut a).await, (None, ErrorCode::BadJson, false));
        // A proper hello still works on the same connection.
        a.send_op(None, ClientOp::Hello { ticket: h.c.ticket })
            .await;
        match a.next().await {
            ServerFrame::Welcome { user, .. } => assert_eq!(user, h.ta.user_id),
            other => panic!("expected welcome, got {other:?}"),
        }
        assert_usable(&mut a).await;
        // The rejected send was never accepted: the first message bob gets is this one.
        flows_over_socket(&mut a, &mut h.b, h.tb.user_id, "after hello").await;
    }
}

// ------------------------------------------------------------------- HTTP

#[tokio::test(flavor = "multi_thread")]
async fn http_bad_or_missing_token_is_unauthorized() {
    let (s, ta, tb, mut b) = with_bystander("tcp", |_| {}).await;

    let send = json!({"to": tb.user_id, "cmid": cmid_json(), "body": "x"});
    // A token with a tampered signature is just as invalid.
    let mut forged = ta.access_token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let unauthorized = |method, path, token, body| (method, path, token, body, 401, "unauthorized");
    #[rustfmt::skip]
    let cases = vec![
        unauthorized("GET", "/v1/unread", Some("garbage"), None),
        unauthorized("GET", "/v1/unread", None, None),
        unauthorized("POST", "/v1/messages", Some("garbage"), Some(send.clone())),
        unauthorized("POST", "/v1/messages", None, Some(send)),
        unauthorized("GET", "/v1/unread", Some(&forged), None),
    ];
    assert_refused(&s, &s.base, cases).await;
    // A non-Bearer scheme.
    let resp = s
        .http
        .get(format!("{}/v1/unread", s.base))
        .header("authorization", format!("Basic {}", ta.access_token))
        .send()
        .await
        .unwrap();
    let st = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_http_error(st, &body, 401, "unauthorized");
    // Nothing was delivered by the refused sends; the next message is this one.
    flows_over_http(&s, &ta, &mut b, tb.user_id, "after bad tokens").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http_expired_token_is_token_expired() {
    let s = TestServer::start_with(|c| c.auth.access_ttl_secs = 0).await;
    let ta = s.user("alice", "phone").await;
    assert_eq!(ta.expires_in, 0);
    // The server allows 5 s of clock leeway, in whole seconds.
    tokio::time::sleep(std::time::Duration::from_millis(7_000)).await;
    let tok = Some(ta.access_token.as_str());
    #[rustfmt::skip]
    let cases = vec![
        ("GET", "/v1/unread", tok, None, 401, "token_expired"),
        ("POST", "/v1/connect", tok, Some(json!({"transport": "ws"})), 401, "token_expired"),
    ];
    assert_refused(&s, &s.base, cases).await;
    // The refresh token still works and gives a fresh pair.
    let (st, body) = s
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": ta.refresh_token})),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert!(body["access_token"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn http_bad_bodies_get_their_codes() {
    let limit = |c: &mut magpie_server::Config| c.limits.max_frame_bytes = 4096;
    let (s, ta, tb, mut b) = with_bystander("ws", limit).await;
    let tok = Some(ta.access_token.as_str());
    let json_ct = Some("application/json");

    // Malformed JSON.
    let (st, body) = raw_post(&s, "/v1/messages", tok, json_ct, "{nope").await;
    assert_http_error(st, &body, 400, "bad_json");
    // Not an object.
    let (st, body) = raw_post(&s, "/v1/messages", tok, json_ct, "[1]").await;
    assert!(st == 400, "{st} {body}");
    let code = body["error"]["code"].as_str().unwrap_or_default();
    assert!(code == "bad_json" || code == "bad_field", "{body}");
    assert_http_error(st, &body, 400, code);
    // Wrongly typed and missing fields.
    for bad in [
        json!({"to": "x", "cmid": cmid_json(), "body": "x"}),
        json!({"to": tb.user_id, "cmid": "not-a-uuid", "body": "x"}),
        json!({"cmid": cmid_json(), "body": "x"}),
        json!({"to": tb.user_id, "cmid": cmid_json(), "body": 5}),
    ] {
        let (st, body) = s.call("POST", "/v1/messages", tok, Some(bad.clone())).await;
        assert_http_error(st, &body, 400, "bad_field");
        assert!(
            !body["error"]["message"].as_str().unwrap().is_empty(),
            "{bad}"
        );
    }
    let big = json!({"to": tb.user_id, "cmid": cmid_json(), "body": "x".repeat(8 * 1024)});
    let wrong_password = json!({"username": "alice", "password": "wrong-password"});
    let taken = json!({"username": "alice", "password": "password123"});
    #[rustfmt::skip]
    let cases = vec![
        // Over the body limit.
        ("POST", "/v1/messages", tok, Some(big), 413, "frame_too_large"),
        // Unknown routes.
        ("GET", "/v1/nope", tok, None, 404, "not_found"),
        ("POST", "/nowhere/at/all", None, Some(json!({})), 404, "not_found"),
        // Bad credentials and bad registration are errors of the same shape.
        ("POST", "/v1/auth/login", None, Some(wrong_password), 401, "bad_credentials"),
        ("POST", "/v1/auth/register", None, Some(taken), 409, "conflict"),
    ];
    assert_refused(&s, &s.base, cases).await;
    // None of the refused sends reached bob; the next message is this one.
    flows_over_http(&s, &ta, &mut b, tb.user_id, "after bad bodies").await;
}

// -------------------------------------------------------------- internal API

#[tokio::test(flavor = "multi_thread")]
async fn internal_api_requires_the_service_key() {
    let (s, ta, tb, mut b) = with_bystander("tcp", |_| {}).await;
    let send = json!({"to": tb.user_id, "cmid": cmid_json(), "body": "from the system"});
    let key = Some("service-key-for-tests");

    let (public, internal) = (s.base.as_str(), s.internal());
    // Only the internal listener serves the internal API: on the public
    // address its paths are unknown routes, even with the right key.
    let not_found = |path| ("POST", path, key, Some(send.clone()), 404, "not_found");
    let public_cases = vec![
        not_found("/internal/v1/messages"),
        not_found("/internal/v1/users"),
    ];
    assert_refused(&s, public, public_cases).await;
    let user = Some(ta.access_token.as_str());
    let mallory = json!({"username": "mallory", "password": "password123"});
    let (msgs, users) = ("/internal/v1/messages", "/internal/v1/users");
    let wrong = Some("wrong-service-key");
    #[rustfmt::skip]
    let cases = vec![
        // And the internal listener serves nothing else.
        ("GET", "/healthz", None, None, 404, "not_found"),
        // A user's token is authenticated but not allowed.
        ("POST", msgs, user, Some(send.clone()), 403, "forbidden"),
        // A wrong key, or none.
        ("POST", msgs, wrong, Some(send.clone()), 401, "unauthorized"),
        ("POST", msgs, None, Some(send.clone()), 401, "unauthorized"),
        ("POST", users, user, Some(mallory), 403, "forbidden"),
    ];
    assert_refused(&s, &internal, cases).await;

    // The right key creates a user, issues a token and sends as the system.
    let (st, body) = internal_post(
        &s,
        "/internal/v1/users",
        json!({"username": "carol", "password": "password123"}),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["username"], "carol");
    let carol = UserId(body["user_id"].as_i64().expect("user_id"));
    let (st, body) = internal_post(
        &s,
        &format!("/internal/v1/users/{}/tokens", carol.0),
        json!({}),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let tc: Tokens = serde_json::from_value(body).unwrap();
    assert_eq!(tc.user_id, carol);
    // Tokens for a user that does not exist: not found.
    let (st, body) = internal_post(&s, "/internal/v1/users/999999/tokens", json!({})).await;
    assert_http_error(st, &body, 404, "not_found");
    // The issued token works on the public API and for a socket.
    let mut c = s.conn(&tc, "ws").await;
    let cmid = ClientMsgId::new_v7();
    let (st, body) = internal_post(
        &s,
        "/internal/v1/messages",
        json!({"to": carol, "cmid": cmid, "body": "welcome, carol"}),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let got = c.expect_msg().await;
    assert_eq!(
        (got.body.as_str(), got.from, got.cmid),
        ("welcome, carol", UserId::SYSTEM, cmid)
    );
    // Internal send to an unknown recipient keeps the documented code.
    let (st, body) = internal_post(
        &s,
        "/internal/v1/messages",
        json!({"to": 999_999, "cmid": cmid_json(), "body": "x"}),
    )
    .await;
    assert_http_error(st, &body, 404, "unknown_recipient");
    // The refused attempts delivered nothing to bob; the system message is the first.
    let (st, body) = internal_post(&s, "/internal/v1/messages", send).await;
    assert_eq!(st, 200, "{body}");
    let got = b.expect_msg().await;
    assert_eq!(
        (got.body.as_str(), got.from),
        ("from the system", UserId::SYSTEM)
    );
    flows_over_http(&s, &ta, &mut b, tb.user_id, "after internal").await;

    // Without a service key the internal API is disabled: no listener is
    // bound, and the public address still answers its paths `not_found`.
    let off = TestServer::start_with(|c| c.internal.service_key.clear()).await;
    assert!(off.running.as_ref().unwrap().internal_addr.is_none());
    let (st, body) = off
        .call("POST", "/internal/v1/messages", key, Some(json!({})))
        .await;
    assert_http_error(st, &body, 404, "not_found");
}

// -------------------------------------------------------- WebSocket Origin

#[tokio::test(flavor = "multi_thread")]
async fn websocket_origin_allow_list() {
    let allow = |c: &mut magpie_server::Config| {
        c.http.allowed_origins = vec!["https://good.example".into()];
    };
    // Bob has no Origin: not a browser, allowed.
    let (s, ta, tb, mut b) = with_bystander("ws", allow).await;
    let c = s.ticket(&ta, "ws").await;
    let mut req = c.address.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 403);
            if let Some(body) = resp.body() {
                let v: Value = serde_json::from_slice(body).unwrap();
                assert_http_error(403, &v, 403, "forbidden");
            }
        }
        Err(e) => panic!("expected an HTTP 403 refusal, got {e}"),
        Ok(_) => panic!("a disallowed origin was upgraded"),
    }

    let mut req = c.address.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("origin", "https://good.example".parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("allowed origin refused");
    assert_eq!(resp.status().as_u16(), 101);
    let hello = json!({"op": "hello", "ticket": c.ticket}).to_string();
    ws.send(WsMsg::Text(hello.into())).await.unwrap();
    let welcome = loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no welcome")
            .expect("closed")
            .unwrap();
        if let WsMsg::Text(t) = m {
            break ServerFrame::decode(t.as_bytes()).unwrap();
        }
    };
    assert!(
        matches!(welcome, ServerFrame::Welcome { user, .. } if user == ta.user_id),
        "{welcome:?}"
    );
    flows_over_http(&s, &ta, &mut b, tb.user_id, "after origin checks").await;
}

/// The documented close code for frame_too_large is 1009. The server drops
/// the socket with the rest of the oversized message unread, which makes the
/// kernel send a reset; this test holds the server to lingering (and to
/// TCP_NODELAY) so the close frame arrives first.
#[tokio::test(flavor = "multi_thread")]
async fn ws_frame_over_the_limit_ends_with_close_1009() {
    let mut p = pair_with("ws", |c| c.limits.max_frame_bytes = 4096).await;
    let big = big_send_frame(p.tb.user_id, 8 * 1024);
    p.a.send_text(&big).await;
    let close = p.a.ws_fatal_close(ErrorCode::FrameTooLarge).await;
    assert_eq!(close, (1009, "frame_too_large".to_string()));
}
