//! The smaller findings of an outside probe (docs/protocol.md §7), one
//! test each: what a client that pokes at the edges gets, and that it is
//! the documented answer.

mod common;
use common::*;
use futures_util::SinkExt;
use magpie_core::{DeviceId, UserId};
use magpie_proto::{ErrorCode, ServerFrame};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as WsMsg;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

/// A token the server itself signed, for a user id of our choosing.
fn signed_for(s: &TestServer, user: i64) -> String {
    let dev = DeviceId::new("probe").unwrap();
    s.app().auth.issue_access(UserId(user), &dev).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_tokens_of_users_that_do_not_exist_are_refused() {
    let s = TestServer::start().await;
    let real = s.user("alice", "phone").await;
    let (st, _) = s.get(&real, "/v1/unread").await;
    assert_eq!(st, 200);
    for user in [0, -1, 987_654_321] {
        let token = signed_for(&s, user);
        let (st, body) = s.call("GET", "/v1/unread", Some(&token), None).await;
        assert_eq!(
            (st, body["error"]["code"].as_str()),
            (401, Some("unauthorized")),
            "a signed token for user {user}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bearer_scheme_is_case_insensitive() {
    let s = TestServer::start().await;
    let t = s.user("alice", "phone").await;
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let resp = s
            .http
            .get(format!("{}/v1/unread", s.base))
            .header("authorization", format!("{scheme} {}", t.access_token))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "scheme {scheme:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_configured_jwt_secret_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.auth.jwt_secret = "short-secret".into();
    let err = match magpie_server::start(cfg).await {
        Ok(_) => panic!("a node started with a 12-byte JWT secret"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("auth.jwt_secret") && err.contains("32"),
        "{err}"
    );
}

/// A group one is not in answers exactly like a group that does not exist,
/// so sequential group ids cannot be probed.
#[tokio::test(flavor = "multi_thread")]
async fn groups_of_others_look_like_no_group() {
    let s = TestServer::start().await;
    let [o, x] = s.users(["owner", "mallory"]).await;
    let g = s.create_group(&o, &[]).await;
    let missing = g + 1_000_000;
    for p in ["", "/members", "/messages/1/read_by"] {
        let (st_real, real) = s.get(&x, &format!("/v1/groups/{g}{p}")).await;
        let (st_none, none) = s.get(&x, &format!("/v1/groups/{missing}{p}")).await;
        let (real, none) = (&real["error"], &none["error"]);
        assert_eq!(
            (st_real, real["code"].as_str()),
            (404, Some("not_found")),
            "{p}"
        );
        assert_eq!(
            (st_none, none["code"].clone()),
            (st_real, real["code"].clone())
        );
        let same = real["message"]
            .as_str()
            .unwrap()
            .replace(&g.to_string(), "N");
        let other = none["message"]
            .as_str()
            .unwrap()
            .replace(&missing.to_string(), "N");
        assert_eq!(same, other, "{p}: the messages tell them apart");
    }
}

/// Ids a client writes that are not positive integers are `bad_field`
/// (docs/protocol.md §7), not "unknown" or "not found".
#[tokio::test(flavor = "multi_thread")]
async fn negative_ids_are_bad_fields() {
    let s = TestServer::start().await;
    let [o, a] = s.users(["owner", "alice"]).await;
    let g = s.create_group(&o, &[a.user_id]).await;
    let cmid = || magpie_core::ClientMsgId::new_v7();
    let bad = [
        (
            "POST",
            "/v1/messages".to_string(),
            Some(json!({"to": -5, "cmid": cmid(), "body": "x"})),
        ),
        (
            "POST",
            "/v1/messages".to_string(),
            Some(json!({"group": -1, "cmid": cmid(), "body": "x"})),
        ),
        ("GET", "/v1/groups/-1".to_string(), None),
        ("GET", "/v1/groups/abc".to_string(), None),
        ("DELETE", format!("/v1/groups/{g}/members/-4"), None),
        (
            "POST",
            format!("/v1/groups/{g}/members"),
            Some(json!({"users": [-3]})),
        ),
    ];
    for (method, path, body) in bad {
        let (st, resp) = s.call(method, &path, Some(&o.access_token), body).await;
        assert_eq!(
            (st, resp["error"]["code"].as_str()),
            (400, Some("bad_field")),
            "{method} {path}: {resp}"
        );
    }
}

/// A request refused before its body is read says `Connection: close`, so
/// an HTTP/1.1 client does not write its next request into a connection
/// the server is closing.
#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_before_the_body_says_connection_close() {
    let s = TestServer::start().await;
    let resp = s
        .http
        .post(format!("{}/v1/messages", s.base))
        .header("content-type", "application/json")
        .body(json!({"to": 1, "body": "x".repeat(2000)}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let connection = resp
        .headers()
        .get("connection")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(connection.as_deref(), Some("close"));
    // A request without a body keeps its connection.
    let resp = s
        .http
        .get(format!("{}/v1/unread", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(resp.headers().get("connection").is_none());
}

/// What a WebSocket client gets after breaking the transport's own rules:
/// the error frame (fatal), then a close with the standard code.
async fn ws_broken_by(frame: Frame, want: ErrorCode, close_code: u16) {
    let s = TestServer::start().await;
    let t = s.user("alice", "phone").await;
    let mut c = s.conn(&t, "ws").await;
    let Wire::Ws(ws) = &mut c.wire else {
        unreachable!()
    };
    ws.send(WsMsg::Frame(frame)).await.unwrap();
    let close = c.ws_fatal_close(want).await;
    assert_eq!(close, (close_code, want.as_str().to_string()));
    // The server still serves everyone, the offender included.
    let mut again = s.conn(&t, "ws").await;
    assert!(matches!(
        again.request(magpie_proto::ClientOp::Ping).await,
        ServerFrame::Pong { .. }
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ws_text_message_that_is_not_utf8_closes_with_1007() {
    let payload = vec![b'{', 0xff, 0xfe, b'}'];
    let frame = Frame::message(payload, OpCode::Data(Data::Text), true);
    ws_broken_by(frame, ErrorCode::BadUtf8, 1007).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ws_protocol_violation_closes_with_1002() {
    // A continuation with nothing to continue.
    let header = FrameHeader {
        opcode: OpCode::Data(Data::Continue),
        ..FrameHeader::default()
    };
    let frame = Frame::from_payload(header, b"{}".to_vec().into());
    ws_broken_by(frame, ErrorCode::ProtocolError, 1002).await;
}

/// A frame or body that repeats a key says two things: refused, never
/// read as "the last one wins".
#[tokio::test(flavor = "multi_thread")]
async fn repeated_json_keys_are_refused() {
    let s = TestServer::start().await;
    let [ta, tb] = s.users(["alice", "bob"]).await;
    let cmid = magpie_core::ClientMsgId::new_v7();
    let twice = format!(
        r#"{{"to":{},"to":{},"cmid":"{cmid}","body":"which one?"}}"#,
        tb.user_id, ta.user_id
    );
    let resp = s
        .http
        .post(format!("{}/v1/messages", s.base))
        .bearer_auth(&ta.access_token)
        .header("content-type", "application/json")
        .body(twice.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400, "HTTP accepted a repeated key");
    for t in ["ws", "tcp"] {
        let mut c = s.conn(&ta, t).await;
        let frame = format!(r#"{{"op":"send","rid":9,{}"#, &twice[1..]);
        c.send_text(&frame).await;
        match c.next().await {
            ServerFrame::Error { code, fatal, .. } => {
                assert_eq!((code, fatal), (ErrorCode::BadJson, false), "{t}")
            }
            other => panic!("{t}: a frame with a repeated key got {other:?}"),
        }
    }
}

/// A refresh token replayed after its use revokes every token rotated from
/// the same login (reuse detection); other logins keep theirs.
#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_refresh_token_revokes_its_family() {
    let s = TestServer::start().await;
    let phone = s.user("alice", "phone").await;
    let laptop = s.login("alice", "laptop").await;
    let refresh = |token: String| {
        let s = &s;
        async move {
            let body = json!({ "refresh_token": token });
            s.call("POST", "/v1/auth/refresh", None, Some(body)).await
        }
    };
    let (st, second) = refresh(phone.refresh_token.clone()).await;
    assert_eq!(st, 200, "{second}");
    let second = second["refresh_token"].as_str().unwrap().to_string();
    // The first token again: a stolen copy, say.
    let (st, body) = refresh(phone.refresh_token.clone()).await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    // Its family is gone: the legitimate holder of the newer one too.
    let (st, body) = refresh(second).await;
    assert_eq!(st, 401, "the family's newer token still works: {body}");
    // Another login of the same user is another family.
    let (st, body) = refresh(laptop.refresh_token.clone()).await;
    assert_eq!(st, 200, "{body}");
}

/// A burst of logins beyond the hashing permits and their queue is told
/// `busy` (503, `Retry-After: 1`) at once instead of queueing without
/// bound; once it passes, logins work again.
#[tokio::test(flavor = "multi_thread")]
async fn a_login_burst_beyond_the_hashing_queue_is_busy() {
    let s = TestServer::start_with(|c| {
        c.auth.hash_concurrency = 1;
        c.auth.hash_queue = 2;
        // Real hashing cost, so the burst meets a full queue.
        c.auth.argon2_m_kib = 19_456;
        c.auth.argon2_t = 2;
        // The burst's wrong passwords would otherwise ask for a captcha
        // from the fifth failure on (how many are hashed rather than
        // refused busy depends on timing): the guard is not under test.
        c.guard.login.captcha_after = 0;
        c.guard.login.lockout_after = 0;
    })
    .await;
    s.user("alice", "phone").await;
    let login = |password: &'static str| {
        let (http, url) = (s.http.clone(), format!("{}/v1/auth/login", s.base));
        async move {
            let body = json!({"username": "alice", "password": password, "device": "d"});
            let resp = http.post(url).json(&body).send().await.unwrap();
            let retry = resp.headers().get("retry-after").cloned();
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().await.unwrap();
            (
                status,
                body["error"]["code"].as_str().map(String::from),
                retry,
            )
        }
    };
    let burst = futures_util::future::join_all((0..32).map(|_| login("wrong-password"))).await;
    let busy: Vec<_> = burst.iter().filter(|r| r.0 == 503).collect();
    assert!(
        !busy.is_empty(),
        "32 at once with room for 3: none was busy"
    );
    for (status, code, retry) in &burst {
        match status {
            401 => assert_eq!(code.as_deref(), Some("bad_credentials")),
            503 => {
                assert_eq!(code.as_deref(), Some("busy"));
                assert_eq!(retry.as_ref().map(|v| v.to_str().unwrap()), Some("1"));
            }
            other => panic!("a login in the burst got {other}"),
        }
    }
    eprintln!("{} of 32 logins were busy", busy.len());
    let (status, code, _) = login("password123").await;
    assert_eq!(status, 200, "after the burst a login works: {code:?}");
}
