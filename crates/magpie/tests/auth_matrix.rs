//! Authentication and authorization, route by route and op by op
//! (docs/protocol.md §3 conventions, §3.14 groups, §5.1 handshake, §7 codes).
//!
//! * `ROUTES` lists every route of `crates/magpie-server/src/edge/mod.rs`
//!   (public and internal routers); `the_route_table_lists_every_route`
//!   reads that file and fails when a route or method is added there and
//!   not here.
//! * Every user route refuses every kind of bad credential with 401 and the
//!   documented code, and takes the valid one; the internal routes refuse
//!   anything but the service key.
//! * Sockets (WebSocket and TCP): ops before `hello`, bad tickets.
//! * The authorization matrix: user A swaps in ids of things A may not see
//!   or manage and gets the documented refusal, never data.

mod common;
use base64::Engine;
use common::*;
use magpie_core::{ClientMsgId, ConvId, DeviceId, UserId};
use magpie_proto::http::Tokens;
use magpie_proto::{ClientOp, ErrorCode, ServerFrame};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

/// The HMAC key of every node these tests start (32+ bytes), so a test can
/// sign tokens the server would accept but for the one thing changed.
const SECRET: &str = "auth-matrix-test-secret-0123456789abcdef";

async fn server() -> TestServer {
    TestServer::start_with(|cfg| cfg.auth.jwt_secret = SECRET.into()).await
}

// ---------------------------------------------------------------------------
// The route table
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Debug)]
enum Auth {
    /// No credential (register, login, health, the WebSocket upgrade…).
    Open,
    /// A user access token.
    User,
    /// The internal service key (internal router).
    Service,
    /// A bouncer's `X-Api-Key` (internal router, the CrowdSec routes).
    Bouncer,
}

/// The values a route's path template and body are filled with.
struct Ids {
    a: i64,
    b: i64,
    c: i64,
    conv: String,
    group: i64,
    seq: i64,
    /// A post of A's.
    post: i64,
}

struct Route {
    method: &'static str,
    /// As written in `edge/mod.rs`; `{conv}`, `{group}`, `{user}`, `{seq}`,
    /// `{post}` are filled from `Ids`.
    path: &'static str,
    auth: Auth,
    /// A valid body for the holder of a valid credential.
    body: fn(&Ids) -> Option<Value>,
    /// The answer to the valid request.
    ok: u16,
}

fn no_body(_: &Ids) -> Option<Value> {
    None
}

fn cmid() -> Value {
    json!(ClientMsgId::new_v7())
}

/// Every route of `crates/magpie-server/src/edge/mod.rs`, in its order:
/// `router` first, then `internal_router`. Keep in step with that file
/// (`the_route_table_lists_every_route` checks it).
fn routes() -> Vec<Route> {
    let r = |method, path, auth, body: fn(&Ids) -> Option<Value>, ok| Route {
        method,
        path,
        auth,
        body,
        ok,
    };
    use Auth::*;
    vec![
        r("GET", "/healthz", Open, no_body, 200),
        r("GET", "/metrics", Open, no_body, 200),
        r("GET", "/v1/ws", Open, no_body, 0),
        r("POST", "/v1/auth/register", Open, no_body, 0),
        r("POST", "/v1/auth/login", Open, no_body, 0),
        r("GET", "/v1/auth/captcha", Open, no_body, 0),
        r("POST", "/v1/auth/refresh", Open, no_body, 0),
        r("GET", "/v1/settings", User, no_body, 200),
        r(
            "PUT",
            "/v1/settings",
            User,
            |_| Some(json!({"resend": "high"})),
            200,
        ),
        r(
            "POST",
            "/v1/connect",
            User,
            |_| Some(json!({"transport": "ws"})),
            200,
        ),
        r(
            "POST",
            "/v1/messages",
            User,
            |i| Some(json!({"to": i.b, "cmid": cmid(), "body": "hello"})),
            200,
        ),
        r("POST", "/v1/sync", User, |_| Some(json!({})), 200),
        r("GET", "/v1/chain", User, no_body, 200),
        r("GET", "/v1/unread", User, no_body, 200),
        r(
            "GET",
            "/v1/conversations/{conv}/messages",
            User,
            no_body,
            200,
        ),
        r(
            "POST",
            "/v1/conversations/{conv}/read",
            User,
            |_| Some(json!({"seq": 0})),
            200,
        ),
        r(
            "PUT",
            "/v1/conversations/{conv}/mute",
            User,
            |_| Some(json!({"muted": true})),
            200,
        ),
        r(
            "POST",
            "/v1/groups",
            User,
            |i| Some(json!({"name": "another", "members": [i.b]})),
            201,
        ),
        r("GET", "/v1/groups", User, no_body, 200),
        r("GET", "/v1/groups/{group}", User, no_body, 200),
        r(
            "PATCH",
            "/v1/groups/{group}",
            User,
            |_| Some(json!({"name": "renamed"})),
            200,
        ),
        r("DELETE", "/v1/groups/{group}", User, no_body, 204),
        r(
            "POST",
            "/v1/groups/{group}/members",
            User,
            |i| Some(json!({"users": [i.c]})),
            200,
        ),
        r("GET", "/v1/groups/{group}/members", User, no_body, 200),
        r(
            "PUT",
            "/v1/groups/{group}/owner",
            User,
            |i| Some(json!({"user": i.c})),
            200,
        ),
        r(
            "PATCH",
            "/v1/groups/{group}/members/{user}",
            User,
            |_| Some(json!({"muted": true})),
            200,
        ),
        r(
            "DELETE",
            "/v1/groups/{group}/members/{user}",
            User,
            no_body,
            204,
        ),
        r(
            "GET",
            "/v1/groups/{group}/messages/{seq}/read_by",
            User,
            no_body,
            200,
        ),
        // Follows and blocks act on B: a follow, then a block (which ends
        // it), each taken back by the DELETEs that run last.
        r("POST", "/v1/follows/{user}", User, no_body, 201),
        r("DELETE", "/v1/follows/{user}", User, no_body, 204),
        r("GET", "/v1/blocks", User, no_body, 200),
        r("POST", "/v1/blocks/{user}", User, no_body, 201),
        r("DELETE", "/v1/blocks/{user}", User, no_body, 204),
        r("GET", "/v1/users/{user}/followers", User, no_body, 200),
        r("GET", "/v1/users/{user}/following", User, no_body, 200),
        r("GET", "/v1/users/{user}/follows", User, no_body, 200),
        r("GET", "/v1/users/{user}/posts", User, no_body, 200),
        r(
            "POST",
            "/v1/posts",
            User,
            |_| Some(json!({"cmid": cmid(), "body": "a post"})),
            201,
        ),
        r("DELETE", "/v1/posts/{post}", User, no_body, 204),
        r("GET", "/v1/feed", User, no_body, 200),
        r("GET", "/v1/search?text=hello", User, no_body, 200),
        r("GET", "/v1/users?name=bob", User, no_body, 200),
        r(
            "POST",
            "/v1/users/lookup",
            User,
            |i| Some(json!({"ids": [i.b]})),
            200,
        ),
        r(
            "PUT",
            "/v1/profile",
            User,
            |_| Some(json!({"display_name": "A"})),
            200,
        ),
        r("GET", "/v1/users/{user}", User, no_body, 200),
        // internal_router
        r(
            "POST",
            "/internal/v1/users",
            Service,
            |_| Some(json!({"username": "servicemade", "password": "password123"})),
            201,
        ),
        r(
            "POST",
            "/internal/v1/users/{user}/tokens",
            Service,
            |_| Some(json!({})),
            200,
        ),
        r(
            "POST",
            "/internal/v1/messages",
            Service,
            |i| Some(json!({"from": i.a, "to": i.b, "cmid": cmid(), "body": "from a service"})),
            200,
        ),
        r(
            "POST",
            "/internal/v1/follows",
            Service,
            |i| Some(json!({"followee": i.a, "followers": [i.b], "read": true})),
            200,
        ),
        r("GET", "/internal/v1/bans", Service, no_body, 200),
        r(
            "POST",
            "/internal/v1/bans",
            Service,
            |_| Some(json!({"scope": "ip", "value": "198.51.100.77", "secs": 60})),
            201,
        ),
        // Without `?id=` (the path here has no query): refused as a bad field.
        r("DELETE", "/internal/v1/bans", Service, no_body, 400),
        r("GET", "/internal/v1/workers", Service, no_body, 200),
        // A group no worker runs: paused for nothing, harmless.
        r(
            "PUT",
            "/internal/v1/workers/{group}",
            Service,
            |_| Some(json!({"paused": false})),
            200,
        ),
        // An id no node remembers: an empty trace.
        r("GET", "/internal/v1/trace/{id}", Service, no_body, 200),
        r("GET", "/internal/v1/nodes", Service, no_body, 200),
        r("GET", "/internal/v1/metrics", Service, no_body, 200),
        r("GET", "/internal/v1/alarms", Service, no_body, 200),
        r("GET", "/internal/v1/cluster", Service, no_body, 200),
        r("GET", "/internal/v1/drain", Service, no_body, 200),
        // Ending a drain that never began: harmless to the other rows.
        r(
            "PUT",
            "/internal/v1/drain",
            Service,
            |_| Some(json!({"draining": false})),
            200,
        ),
        // The test process does not hand its log filter over (the binary
        // does: tests/observability.rs): answered, with the reason.
        r("GET", "/internal/v1/log", Service, no_body, 503),
        r(
            "PUT",
            "/internal/v1/log",
            Service,
            |_| Some(json!({"filter": "info"})),
            503,
        ),
        r("GET", "/v1/decisions", Bouncer, no_body, 200),
        r("GET", "/v1/decisions/stream", Bouncer, no_body, 200),
    ]
}

impl Route {
    fn path(&self, ids: &Ids) -> String {
        // `{user}`: the member the valid request acts on (B); on the
        // internal API, the user a token is issued for.
        self.path
            .replace("{conv}", &ids.conv)
            .replace("{group}", &ids.group.to_string())
            .replace("{user}", &ids.b.to_string())
            .replace("{seq}", &ids.seq.to_string())
            .replace("{post}", &ids.post.to_string())
            .replace("{id}", "12345")
    }
}

/// `(router, method, path)` of every route in `edge/mod.rs`, read from the
/// source: each `.route("path", …)` call and the method routers in it
/// (`get(`, `post(`, `.put(`, `axum::routing::patch(`…). Axum's `Router`
/// cannot list its routes, so the source is the cheapest enumeration; it
/// relies on that file's style (one `.route(` per path, method routers
/// named after their method).
fn routes_in_source() -> BTreeSet<(&'static str, String, String)> {
    let src = include_str!("../../magpie-server/src/edge/mod.rs");
    let (public, internal) = src
        .split_once("pub fn internal_router")
        .expect("edge/mod.rs has internal_router after router");
    let mut out = BTreeSet::new();
    for (router, text) in [("public", public), ("internal", internal)] {
        for call in text.split(".route(").skip(1) {
            let call = call.split(".fallback(").next().unwrap();
            let path = call
                .trim_start()
                .strip_prefix('"')
                .and_then(|rest| rest.split_once('"'))
                .map(|(p, _)| p.to_string())
                .unwrap_or_else(|| panic!("a .route( without a literal path: {call}"));
            let mut methods = 0;
            for m in ["get", "post", "put", "patch", "delete"] {
                let needle = format!("{m}(");
                for (at, _) in call.match_indices(&needle) {
                    let before = call[..at].chars().last().unwrap_or(' ');
                    if !(before.is_alphanumeric() || before == '_') {
                        out.insert((router, m.to_ascii_uppercase(), path.clone()));
                        methods += 1;
                    }
                }
            }
            assert!(methods > 0, "no method router found for {path}");
        }
    }
    out
}

/// The route table and `edge/mod.rs` list the same routes and methods.
#[test]
fn the_route_table_lists_every_route() {
    let in_source = routes_in_source();
    let in_table: BTreeSet<_> = routes()
        .iter()
        .map(|r| {
            let router = if matches!(r.auth, Auth::Service | Auth::Bouncer) {
                "internal"
            } else {
                "public"
            };
            // A query string is part of the valid request, not of the route.
            let path = r.path.split('?').next().unwrap_or(r.path);
            (router, r.method.to_string(), path.to_string())
        })
        .collect();
    let missing: Vec<_> = in_source.difference(&in_table).collect();
    let stale: Vec<_> = in_table.difference(&in_source).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "edge/mod.rs routes not in the table (add a row to routes()): {missing:?}; \
         rows that are no route: {stale:?}"
    );
    // Enough routes were found that the parser is not silently missing some.
    assert!(in_source.len() >= 28, "{in_source:?}");
}

// ---------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT with these claims, signed with `alg` and `key`.
fn sign(claims: &Value, alg: jsonwebtoken::Algorithm, key: &str) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(key.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), claims, &key).unwrap()
}

fn claims(user: i64, iat: u64, exp: u64) -> Value {
    json!({"sub": user.to_string(), "dev": "phone", "iat": iat, "exp": exp})
}

/// `token` with one byte of its payload changed: the `sub` claim's last
/// digit, so the payload names another user; the signature is kept.
fn tampered(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut payload = engine.decode(parts[1]).unwrap();
    let text = String::from_utf8(payload.clone()).unwrap();
    let sub = text.find("\"sub\":\"").expect("a sub claim") + 7;
    let end = sub + text[sub..].find('"').unwrap() - 1;
    payload[end] = if payload[end] == b'9' {
        b'8'
    } else {
        payload[end] + 1
    };
    format!("{}.{}.{}", parts[0], b64(&payload), parts[2])
}

/// A bad credential: its name, the `Authorization` header (None: no
/// header), the documented code.
struct BadCred {
    name: &'static str,
    header: Option<String>,
    code: &'static str,
}

/// Every kind of bad credential for a user route; `t` is a valid login of
/// user `user`.
fn bad_credentials(t: &Tokens) -> Vec<BadCred> {
    use jsonwebtoken::Algorithm::{HS256, HS384};
    let user = t.user_id.0;
    let n = now();
    let bearer = |tok: String| Some(format!("Bearer {tok}"));
    let none_header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64(claims(user, n, n + 600).to_string().as_bytes());
    let c = |name, header, code| BadCred { name, header, code };
    vec![
        c("no Authorization header", None, "unauthorized"),
        c("Bearer and nothing", Some("Bearer".into()), "unauthorized"),
        c(
            "Bearer and blanks",
            Some("Bearer   ".into()),
            "unauthorized",
        ),
        c(
            "Basic credentials",
            Some("Basic YWxpY2U6cGFzc3dvcmQxMjM=".into()),
            "unauthorized",
        ),
        c(
            "the token without a scheme",
            Some(t.access_token.clone()),
            "unauthorized",
        ),
        c(
            "expired token",
            bearer(sign(&claims(user, n - 7200, n - 3600), HS256, SECRET)),
            "token_expired",
        ),
        c(
            "tampered payload, signature kept",
            bearer(tampered(&t.access_token)),
            "unauthorized",
        ),
        c(
            "signed with a wrong key",
            bearer(sign(
                &claims(user, n, n + 600),
                HS256,
                "another-key-another-key-another-key!",
            )),
            "unauthorized",
        ),
        c(
            "alg none, empty signature",
            bearer(format!("{none_header}.{payload}.")),
            "unauthorized",
        ),
        c(
            "HS384 with the right key (the algorithm is pinned)",
            bearer(sign(&claims(user, n, n + 600), HS384, SECRET)),
            "unauthorized",
        ),
        c(
            "no exp claim",
            bearer(sign(
                &json!({"sub": user.to_string(), "dev": "phone", "iat": n}),
                HS256,
                SECRET,
            )),
            "unauthorized",
        ),
        c(
            "a user that does not exist",
            bearer(sign(&claims(999_999, n, n + 600), HS256, SECRET)),
            "unauthorized",
        ),
        c(
            "the system user 0",
            bearer(sign(&claims(0, n, n + 600), HS256, SECRET)),
            "unauthorized",
        ),
        c(
            "a refresh token as access token",
            bearer(t.refresh_token.clone()),
            "unauthorized",
        ),
        c("garbage", bearer("a.b.c".into()), "unauthorized"),
    ]
}

/// `method base+path` with exactly this `Authorization` header (or none).
async fn call_raw(
    s: &TestServer,
    base: &str,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{base}{path}");
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = s.http.request(method, url);
    if let Some(h) = auth {
        req = req.header("authorization", h);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// The answer is the documented error: this status, this code, and the
/// error body alone (no data beside it).
fn assert_error(case: &str, got: &(u16, Value), status: u16, code: &str) {
    let (st, body) = got;
    assert_eq!(
        (*st, body["error"]["code"].as_str()),
        (status, Some(code)),
        "{case}: {st} {body}"
    );
    assert!(body["error"]["message"].is_string(), "{case}: {body}");
    assert!(body["error"]["retryable"].is_boolean(), "{case}: {body}");
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(1),
        "{case}: the error body alone: {body}"
    );
}

/// Order of the valid requests: destructive ones last (removing a member,
/// then dissolving the group).
fn rank(r: &Route) -> u8 {
    match (r.method, r.path.ends_with("{group}")) {
        ("DELETE", true) => 2,
        ("DELETE", false) => 1,
        _ => 0,
    }
}

/// Every user route refuses every bad credential with 401 and the
/// documented code, and answers the valid token with its success status.
#[tokio::test(flavor = "multi_thread")]
async fn every_user_route_refuses_every_bad_credential() {
    let s = server().await;
    let [a, b, c] = s.users(["alice", "bob", "carol"]).await;
    let g = s.create_group(&a, &[b.user_id]).await;
    let (st, sent) = s
        .send_json(
            &a,
            "POST",
            "/v1/messages",
            json!({"group": g, "cmid": cmid(), "body": "first"}),
        )
        .await;
    assert_eq!(st, 200, "{sent}");
    let (st, _) = s
        .http_send(&a, b.user_id, ClientMsgId::new_v7(), "hi")
        .await;
    assert_eq!(st, 200);
    let (st, posted) = s
        .send_json(
            &a,
            "POST",
            "/v1/posts",
            json!({"cmid": cmid(), "body": "mine"}),
        )
        .await;
    assert_eq!(st, 201, "{posted}");
    let ids = Ids {
        a: a.user_id.0,
        b: b.user_id.0,
        c: c.user_id.0,
        conv: magpie_core::ConvId::direct(a.user_id, b.user_id).to_string(),
        group: g,
        seq: sent["seq"].as_i64().unwrap(),
        post: posted["post"]["id"].as_str().unwrap().parse().unwrap(),
    };
    let table = routes();
    let user_routes: Vec<&Route> = table.iter().filter(|r| r.auth == Auth::User).collect();
    let creds = bad_credentials(&a);
    for r in &user_routes {
        let path = r.path(&ids);
        for cred in &creds {
            let got = call_raw(
                &s,
                &s.base,
                r.method,
                &path,
                cred.header.as_deref(),
                (r.body)(&ids),
            )
            .await;
            let case = format!("{} {path} with {}", r.method, cred.name);
            assert_error(&case, &got, 401, cred.code);
        }
    }
    // The same requests with the valid token are well-formed: each gets
    // its success status (which also proves nothing above was refused for
    // another reason than the credential).
    let mut valid = user_routes;
    valid.sort_by_key(|r| rank(r));
    let header = format!("Bearer {}", a.access_token);
    for r in valid {
        let path = r.path(&ids);
        let (st, body) =
            call_raw(&s, &s.base, r.method, &path, Some(&header), (r.body)(&ids)).await;
        assert_eq!(st, r.ok, "{} {path} with a valid token: {body}", r.method);
        if r.path.ends_with("/owner") {
            // Carol hands the group back: A's later requests are an owner's.
            let back = json!({"user": ids.a});
            let (st, body) = s.send_json(&c, "PUT", &path, back).await;
            assert_eq!(st, 200, "ownership back to A: {body}");
        }
    }
}

/// The internal API takes the service key only: no key, a wrong one, a
/// user's credentials are refused (a valid user access token 403
/// `forbidden`, anything else 401 `unauthorized`); the public router does
/// not serve it at all.
#[tokio::test(flavor = "multi_thread")]
async fn the_internal_api_takes_the_service_key_only() {
    let s = server().await;
    let [a, b] = s.users(["alice", "bob"]).await;
    let ids = Ids {
        a: a.user_id.0,
        b: b.user_id.0,
        c: 0,
        conv: String::new(),
        group: 0,
        seq: 0,
        post: 0,
    };
    let n = now();
    let expired = sign(
        &claims(a.user_id.0, n - 7200, n - 3600),
        jsonwebtoken::Algorithm::HS256,
        SECRET,
    );
    let key = s.app().cfg.internal.service_key.clone();
    let cases: Vec<(&str, Option<String>, u16, &str)> = vec![
        ("no key", None, 401, "unauthorized"),
        (
            "Bearer and nothing",
            Some("Bearer".into()),
            401,
            "unauthorized",
        ),
        (
            "a wrong key",
            Some("Bearer not-the-service-key".into()),
            401,
            "unauthorized",
        ),
        (
            "the key one byte short",
            Some(format!("Bearer {}", &key[..key.len() - 1])),
            401,
            "unauthorized",
        ),
        (
            "the key as Basic",
            Some(format!("Basic {key}")),
            401,
            "unauthorized",
        ),
        (
            "a user's access token",
            Some(format!("Bearer {}", a.access_token)),
            403,
            "forbidden",
        ),
        (
            "a user's expired access token",
            Some(format!("Bearer {expired}")),
            401,
            "unauthorized",
        ),
        (
            "a user's refresh token",
            Some(format!("Bearer {}", a.refresh_token)),
            401,
            "unauthorized",
        ),
    ];
    let internal = s.internal();
    let table = routes();
    let service_routes: Vec<&Route> = table.iter().filter(|r| r.auth == Auth::Service).collect();
    assert_eq!(service_routes.len(), 18);
    for r in &service_routes {
        let path = r.path(&ids);
        for (name, header, status, code) in &cases {
            let got = call_raw(
                &s,
                &internal,
                r.method,
                &path,
                header.as_deref(),
                (r.body)(&ids),
            )
            .await;
            assert_error(
                &format!("{} {path} with {name}", r.method),
                &got,
                *status,
                code,
            );
        }
        // Not on the public listener, whatever the credential.
        for header in [None, Some(format!("Bearer {key}"))] {
            let got = call_raw(
                &s,
                &s.base,
                r.method,
                &path,
                header.as_deref(),
                (r.body)(&ids),
            )
            .await;
            assert_error(
                &format!("public {} {path}", r.method),
                &got,
                404,
                "not_found",
            );
        }
        let header = format!("Bearer {key}");
        let (st, body) = call_raw(
            &s,
            &internal,
            r.method,
            &path,
            Some(&header),
            (r.body)(&ids),
        )
        .await;
        assert_eq!(st, r.ok, "{} {path} with the service key: {body}", r.method);
    }
}

// ---------------------------------------------------------------------------
// Sockets
// ---------------------------------------------------------------------------

/// One sample of every client op; the `match` fails to compile when
/// `ClientOp` gains a variant, so a new op cannot be forgotten here.
fn every_op() -> Vec<ClientOp> {
    let conv = magpie_core::ConvId::direct(UserId(1), UserId(2));
    let ops = vec![
        ClientOp::Hello { ticket: "t".into() },
        ClientOp::Send {
            reply_to: None,
            recall: None,
            mentions: Vec::new(),
            mention_all: false,
            edit: None,
            traceparent: None,
            sample: false,
            to: UserId(2),
            cmid: ClientMsgId::new_v7(),
            body: "x".into(),
            persistence: None,
            group: None,
            chain: None,
        },
        ClientOp::Ack {
            conv: conv.clone(),
            seqs: vec![1],
        },
        ClientOp::Read {
            conv: conv.clone(),
            seq: 1,
        },
        ClientOp::Sync {
            convs: Default::default(),
            limit: None,
        },
        ClientOp::History {
            conv,
            before: None,
            limit: None,
        },
        ClientOp::Unread,
        ClientOp::Ping,
        ClientOp::Pong,
        ClientOp::Logout,
        ClientOp::RoomJoin { room: "r".into() },
        ClientOp::RoomLeave { room: "r".into() },
        ClientOp::RoomSend {
            room: "r".into(),
            body: "x".into(),
            to: None,
        },
        ClientOp::Chain,
        ClientOp::PresenceWatch {
            users: vec![UserId(2)],
        },
        ClientOp::Follow { user: UserId(2) },
        ClientOp::Unfollow { user: UserId(2) },
        ClientOp::Post {
            cmid: ClientMsgId::new_v7(),
            body: "x".into(),
        },
        ClientOp::PostDelete {
            post: magpie_core::PostId(1),
        },
        ClientOp::Feed {
            before: None,
            limit: None,
        },
        ClientOp::Search {
            query: magpie_proto::search::SearchParams {
                text: "hello".into(),
                ..Default::default()
            },
        },
        ClientOp::Typing {
            conv: ConvId::direct(UserId(1), UserId(2)),
            active: true,
        },
    ];
    for op in &ops {
        match op {
            ClientOp::Hello { .. }
            | ClientOp::Send { .. }
            | ClientOp::Ack { .. }
            | ClientOp::Read { .. }
            | ClientOp::Sync { .. }
            | ClientOp::History { .. }
            | ClientOp::Unread
            | ClientOp::Ping
            | ClientOp::Pong
            | ClientOp::Logout
            | ClientOp::RoomJoin { .. }
            | ClientOp::RoomLeave { .. }
            | ClientOp::RoomSend { .. }
            | ClientOp::Chain
            | ClientOp::PresenceWatch { .. }
            | ClientOp::Follow { .. }
            | ClientOp::Unfollow { .. }
            | ClientOp::Post { .. }
            | ClientOp::PostDelete { .. }
            | ClientOp::Feed { .. }
            | ClientOp::Search { .. }
            | ClientOp::Typing { .. } => {}
        }
    }
    let names: BTreeSet<_> = ops.iter().map(|o| o.name()).collect();
    assert_eq!(names.len(), ops.len(), "one sample per op");
    ops
}

/// The next frame, which must be an error with this code and fatality
/// (and rid, if one was sent).
async fn expect_error(conn: &mut Conn, case: &str, rid: Option<u64>, code: ErrorCode, fatal: bool) {
    match conn.recv(WAIT).await {
        Some(ServerFrame::Error {
            rid: got_rid,
            code: got,
            fatal: got_fatal,
            ..
        }) => assert_eq!((got, got_fatal, got_rid), (code, fatal, rid), "{case}"),
        other => panic!("{case}: expected an error {code:?}, got {other:?}"),
    }
}

/// After a fatal error: the connection ends.
async fn expect_closed(conn: &mut Conn, case: &str) {
    match conn.try_recv(WAIT).await {
        Ok(None) => {}
        other => panic!("{case}: the connection should be closed: {other:?}"),
    }
}

/// On both transports: every op but `hello` before `hello` is answered
/// with a non-fatal `not_authenticated` (the connection stays open and a
/// valid `hello` still works); `hello` with an unknown, used or expired
/// ticket gets a fatal `bad_ticket` and the connection ends.
#[tokio::test(flavor = "multi_thread")]
async fn sockets_authenticate_with_hello_and_a_good_ticket_only() {
    let s = server().await;
    let a = s.user("alice", "phone").await;
    for transport in ["ws", "tcp"] {
        // Every op before hello; then hello on the same connection works.
        let c = s.ticket(&a, transport).await;
        let mut conn = Conn::open(&c).await;
        for (i, op) in every_op().into_iter().enumerate() {
            if matches!(op, ClientOp::Hello { .. }) {
                continue;
            }
            let name = op.name();
            let rid = 100 + i as u64;
            conn.send_op(Some(rid), op).await;
            let case = format!("{transport}: {name} before hello");
            expect_error(
                &mut conn,
                &case,
                Some(rid),
                ErrorCode::NotAuthenticated,
                false,
            )
            .await;
        }
        conn.send_op(
            None,
            ClientOp::Hello {
                ticket: c.ticket.clone(),
            },
        )
        .await;
        match conn.recv(WAIT).await {
            Some(ServerFrame::Welcome { user, .. }) => assert_eq!(user, a.user_id),
            other => panic!("{transport}: hello after refused ops: {other:?}"),
        }

        // A used ticket (the one just redeemed), an unknown one, an
        // empty one, an expired one.
        let expired = magpie_proto::http::ConnectResponse {
            ticket: "expired-ticket-for-auth-matrix".into(),
            ..c.clone()
        };
        let claims = magpie_store::TicketClaims {
            user: a.user_id,
            device: DeviceId::new("phone").unwrap(),
        };
        s.app()
            .state
            .ticket_put(&expired.ticket, &claims, 1)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        for (name, ticket) in [
            ("a used ticket", c.ticket.clone()),
            ("an unknown ticket", "no-such-ticket".to_string()),
            ("an empty ticket", String::new()),
            ("an expired ticket", expired.ticket.clone()),
            ("an access token as ticket", a.access_token.clone()),
        ] {
            let case = format!("{transport}: hello with {name}");
            let mut conn = Conn::open(&c).await;
            conn.send_op(Some(7), ClientOp::Hello { ticket }).await;
            expect_error(&mut conn, &case, Some(7), ErrorCode::BadTicket, true).await;
            expect_closed(&mut conn, &case).await;
        }
    }
}

// ---------------------------------------------------------------------------
// The authorization matrix
// ---------------------------------------------------------------------------

/// The world of the matrix: A, B, C; A–B and B–C talk; G1 is B's group
/// with A a plain member; G2 is C's group alone. Every message A must
/// never see says "secret".
struct World {
    a: Tokens,
    b: Tokens,
    c: Tokens,
    g1: i64,
    g2: i64,
    bc: String,
}

const NO_GROUP: i64 = 999_999;
const NO_USER: i64 = 999_998;

async fn world(s: &TestServer) -> World {
    let [a, b, c] = s.users(["alice", "bob", "carol"]).await;
    let (st, _) = s
        .http_send(&a, b.user_id, ClientMsgId::new_v7(), "a to b")
        .await;
    assert_eq!(st, 200);
    let (st, _) = s
        .http_send(&b, c.user_id, ClientMsgId::new_v7(), "secret b to c")
        .await;
    assert_eq!(st, 200);
    let g1 = s.create_group(&b, &[a.user_id]).await;
    let g2 = s.create_group(&c, &[]).await;
    for (t, g, body) in [(&b, g1, "b in g1"), (&c, g2, "secret c in g2")] {
        let (st, r) = s
            .send_json(
                t,
                "POST",
                "/v1/messages",
                json!({"group": g, "cmid": cmid(), "body": body}),
            )
            .await;
        assert_eq!(st, 200, "{r}");
    }
    let bc = magpie_core::ConvId::direct(b.user_id, c.user_id).to_string();
    World {
        a,
        b,
        c,
        g1,
        g2,
        bc,
    }
}

/// One HTTP case of the matrix: A's request and the documented refusal.
struct Case {
    name: String,
    method: &'static str,
    path: String,
    body: Option<Value>,
    status: u16,
    code: &'static str,
}

fn http_cases(w: &World) -> Vec<Case> {
    let (a, b, c) = (w.a.user_id.0, w.b.user_id.0, w.c.user_id.0);
    let mut cases = Vec::new();
    let mut case = |name: String, method, path: String, body, status, code| {
        cases.push(Case {
            name,
            method,
            path,
            body,
            status,
            code,
        })
    };
    // Groups A may not see: C's G2 and one that does not exist answer the
    // same (docs/protocol.md §3.14: ids cannot be probed); a send to either
    // is `forbidden` (§7: "a send by a non-member or to a group that does
    // not exist — the same answer").
    for (what, g) in [
        ("G2 (C's)", w.g2),
        ("a group that does not exist", NO_GROUP),
    ] {
        let nf = |name: &str| format!("{name} of {what}");
        case(
            nf("get"),
            "GET",
            format!("/v1/groups/{g}"),
            None,
            404,
            "not_found",
        );
        case(
            nf("rename"),
            "PATCH",
            format!("/v1/groups/{g}"),
            Some(json!({"name": "pwned"})),
            404,
            "not_found",
        );
        case(
            nf("dissolve"),
            "DELETE",
            format!("/v1/groups/{g}"),
            None,
            404,
            "not_found",
        );
        case(
            nf("add oneself as member"),
            "POST",
            format!("/v1/groups/{g}/members"),
            Some(json!({"users": [a]})),
            404,
            "not_found",
        );
        case(
            nf("add B as member"),
            "POST",
            format!("/v1/groups/{g}/members"),
            Some(json!({"users": [b]})),
            404,
            "not_found",
        );
        case(
            nf("members"),
            "GET",
            format!("/v1/groups/{g}/members"),
            None,
            404,
            "not_found",
        );
        case(
            nf("mute C"),
            "PATCH",
            format!("/v1/groups/{g}/members/{c}"),
            Some(json!({"muted": true})),
            404,
            "not_found",
        );
        case(
            nf("make oneself admin"),
            "PATCH",
            format!("/v1/groups/{g}/members/{a}"),
            Some(json!({"role": "admin"})),
            404,
            "not_found",
        );
        case(
            nf("remove C"),
            "DELETE",
            format!("/v1/groups/{g}/members/{c}"),
            None,
            404,
            "not_found",
        );
        case(
            nf("leave"),
            "DELETE",
            format!("/v1/groups/{g}/members/{a}"),
            None,
            404,
            "not_found",
        );
        case(
            nf("read_by of message 1"),
            "GET",
            format!("/v1/groups/{g}/messages/1/read_by"),
            None,
            404,
            "not_found",
        );
        case(
            nf("history"),
            "GET",
            format!("/v1/conversations/g:{g}/messages"),
            None,
            404,
            "not_found",
        );
        case(
            nf("history after 0"),
            "GET",
            format!("/v1/conversations/g:{g}/messages?after=0"),
            None,
            404,
            "not_found",
        );
        case(
            nf("mark read"),
            "POST",
            format!("/v1/conversations/g:{g}/read"),
            Some(json!({"seq": 1})),
            404,
            "not_found",
        );
        case(
            nf("send"),
            "POST",
            "/v1/messages".into(),
            Some(json!({"group": g, "cmid": cmid(), "body": "intrusion"})),
            403,
            "forbidden",
        );
    }
    // Non-positive group ids: `bad_field` in a path (§3 conventions); as a
    // conversation id they are malformed, which answers `not_found` (§3.8).
    for g in ["0", "-1", "abc"] {
        let bf = |name: &str| format!("{name} of group {g}");
        case(
            bf("get"),
            "GET",
            format!("/v1/groups/{g}"),
            None,
            400,
            "bad_field",
        );
        case(
            bf("rename"),
            "PATCH",
            format!("/v1/groups/{g}"),
            Some(json!({"name": "x"})),
            400,
            "bad_field",
        );
        case(
            bf("dissolve"),
            "DELETE",
            format!("/v1/groups/{g}"),
            None,
            400,
            "bad_field",
        );
        case(
            bf("add members"),
            "POST",
            format!("/v1/groups/{g}/members"),
            Some(json!({"users": [a]})),
            400,
            "bad_field",
        );
        case(
            bf("members"),
            "GET",
            format!("/v1/groups/{g}/members"),
            None,
            400,
            "bad_field",
        );
        case(
            bf("remove C"),
            "DELETE",
            format!("/v1/groups/{g}/members/{c}"),
            None,
            400,
            "bad_field",
        );
        case(
            bf("read_by"),
            "GET",
            format!("/v1/groups/{g}/messages/1/read_by"),
            None,
            400,
            "bad_field",
        );
        case(
            bf("history"),
            "GET",
            format!("/v1/conversations/g:{g}/messages"),
            None,
            404,
            "not_found",
        );
        case(
            bf("mark read"),
            "POST",
            format!("/v1/conversations/g:{g}/read"),
            Some(json!({"seq": 0})),
            404,
            "not_found",
        );
    }
    for g in [0, -1] {
        case(
            format!("send to group {g}"),
            "POST",
            "/v1/messages".into(),
            Some(json!({"group": g, "cmid": cmid(), "body": "x"})),
            400,
            "bad_field",
        );
    }
    // Direct conversations A has no part in: B–C, either spelling, and
    // ones naming users that do not exist or the system user.
    let cb = format!("d:{c}:{b}");
    for conv in [
        w.bc.clone(),
        cb,
        format!("d:{b}:{NO_USER}"),
        format!("d:0:{b}"),
        format!("d:-1:{a}"),
        "d:1".into(),
        "x:1:2".into(),
    ] {
        case(
            format!("history of {conv}"),
            "GET",
            format!("/v1/conversations/{conv}/messages"),
            None,
            404,
            "not_found",
        );
        case(
            format!("mark {conv} read"),
            "POST",
            format!("/v1/conversations/{conv}/read"),
            Some(json!({"seq": 1})),
            404,
            "not_found",
        );
    }
    // Users in a body.
    case(
        "send to a user that does not exist".into(),
        "POST",
        "/v1/messages".into(),
        Some(json!({"to": NO_USER, "cmid": cmid(), "body": "x"})),
        404,
        "unknown_recipient",
    );
    case(
        "send to user -1".into(),
        "POST",
        "/v1/messages".into(),
        Some(json!({"to": -1, "cmid": cmid(), "body": "x"})),
        400,
        "bad_field",
    );
    case(
        "send to user 0 (absent)".into(),
        "POST",
        "/v1/messages".into(),
        Some(json!({"to": 0, "cmid": cmid(), "body": "x"})),
        400,
        "bad_field",
    );
    // G1: B owns it, A is a plain member (§3.14: owners and admins rename
    // and add; the owner dissolves and changes roles; a plain member
    // removes or mutes nobody) → 403 `forbidden`.
    let g1 = w.g1;
    for (name, method, path, body) in [
        (
            "rename G1",
            "PATCH",
            format!("/v1/groups/{g1}"),
            Some(json!({"name": "mine"})),
        ),
        ("dissolve G1", "DELETE", format!("/v1/groups/{g1}"), None),
        (
            "add C to G1",
            "POST",
            format!("/v1/groups/{g1}/members"),
            Some(json!({"users": [c]})),
        ),
        (
            "remove B (the owner) from G1",
            "DELETE",
            format!("/v1/groups/{g1}/members/{b}"),
            None,
        ),
        (
            "mute B in G1",
            "PATCH",
            format!("/v1/groups/{g1}/members/{b}"),
            Some(json!({"muted": true})),
        ),
        (
            "make oneself admin of G1",
            "PATCH",
            format!("/v1/groups/{g1}/members/{a}"),
            Some(json!({"role": "admin"})),
        ),
        (
            "make B a plain member of G1",
            "PATCH",
            format!("/v1/groups/{g1}/members/{b}"),
            Some(json!({"role": "member"})),
        ),
        (
            "make oneself owner of G1",
            "PATCH",
            format!("/v1/groups/{g1}/members/{a}"),
            Some(json!({"role": "owner"})),
        ),
    ] {
        // Managing is checked before the request is: a plain member asking
        // for role `owner` is refused, not told the role is invalid.
        case(name.into(), method, path, body, 403, "forbidden");
    }
    // Ids inside G1 that name nothing or are not ids.
    for u in ["0", "-1"] {
        case(
            format!("remove user {u} from G1"),
            "DELETE",
            format!("/v1/groups/{g1}/members/{u}"),
            None,
            400,
            "bad_field",
        );
        case(
            format!("patch user {u} of G1"),
            "PATCH",
            format!("/v1/groups/{g1}/members/{u}"),
            Some(json!({"muted": true})),
            400,
            "bad_field",
        );
    }
    case(
        "read_by of a message G1 does not have".into(),
        "GET",
        format!("/v1/groups/{g1}/messages/999/read_by"),
        None,
        404,
        "not_found",
    );
    case(
        "remove a user that does not exist from G1".into(),
        "DELETE",
        format!("/v1/groups/{g1}/members/{NO_USER}"),
        None,
        403,
        "forbidden",
    );
    for seq in ["0", "-1"] {
        case(
            format!("read_by of seq {seq} in G1"),
            "GET",
            format!("/v1/groups/{g1}/messages/{seq}/read_by"),
            None,
            404,
            "not_found",
        );
    }
    case(
        "read_by of seq abc".into(),
        "GET",
        format!("/v1/groups/{g1}/messages/abc/read_by"),
        None,
        404,
        "not_found",
    );
    cases
}

/// Nothing of what A must not see is in `v`.
fn assert_no_secret(case: &str, v: &impl std::fmt::Debug) {
    let text = format!("{v:?}");
    assert!(!text.contains("secret"), "{case} leaked: {text}");
}

/// The state A must not have changed: G2 is C's alone, named as created;
/// G1 is B's with A a plain member; B–C has its message, unread.
async fn assert_untouched(s: &TestServer, w: &World) {
    let (st, g2) = s.get(&w.c, &format!("/v1/groups/{}", w.g2)).await;
    assert_eq!(st, 200, "{g2}");
    assert_eq!(
        (g2["name"].as_str(), g2["members"].as_i64()),
        (Some("group"), Some(1))
    );
    assert_eq!(g2["dissolved"], false);
    let (_, m2) = s.get(&w.c, &format!("/v1/groups/{}/members", w.g2)).await;
    assert_eq!(m2["members"][0]["role"], "owner", "{m2}");
    assert_eq!(m2["members"][0]["muted"], false, "{m2}");
    let (st, g1) = s.get(&w.b, &format!("/v1/groups/{}", w.g1)).await;
    assert_eq!(st, 200, "{g1}");
    assert_eq!(
        (g1["name"].as_str(), g1["members"].as_i64()),
        (Some("group"), Some(2))
    );
    assert_eq!(g1["dissolved"], false);
    let (_, m1) = s.get(&w.b, &format!("/v1/groups/{}/members", w.g1)).await;
    let roles: Vec<_> = m1["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["user"].as_i64().unwrap(),
                m["role"].as_str().unwrap(),
                m["muted"].as_bool().unwrap(),
            )
        })
        .collect();
    let mut want = vec![
        (w.a.user_id.0, "member", false),
        (w.b.user_id.0, "owner", false),
    ];
    want.sort();
    assert_eq!(roles, want);
    let (st, h) = s
        .get(&w.c, &format!("/v1/conversations/{}/messages", w.bc))
        .await;
    assert_eq!((st, page_seqs(&h)), (200, vec![1]), "{h}");
    let (_, u) = s.get(&w.c, "/v1/unread").await;
    assert_eq!(u["total"], 1, "C has not read B's message: {u}");
}

/// A swaps in every id of a thing A may not see or manage, over HTTP: the
/// documented refusal each time, never data, nothing changed.
#[tokio::test(flavor = "multi_thread")]
async fn http_ids_of_others_are_refused_like_nothing() {
    let s = server().await;
    let w = world(&s).await;
    let header = format!("Bearer {}", w.a.access_token);
    let cases = http_cases(&w);
    for c in &cases {
        let got = call_raw(
            &s,
            &s.base,
            c.method,
            &c.path,
            Some(&header),
            c.body.clone(),
        )
        .await;
        let case = format!("{} ({} {})", c.name, c.method, c.path);
        assert_error(&case, &got, c.status, c.code);
    }
    // Sync names conversations in a body: the ones not A's are ignored,
    // with or without positions.
    for body in [
        json!({}),
        json!({"convs": {w.bc.clone(): 0, format!("g:{}", w.g2): 0, format!("g:{NO_GROUP}"): 0}}),
        json!({"convs": {w.bc.clone(): -5, format!("g:{}", w.g2): 0}, "limit": 1000}),
    ] {
        let (st, got) = s.send_json(&w.a, "POST", "/v1/sync", body.clone()).await;
        assert_eq!(st, 200, "sync {body}: {got}");
        let convs: Vec<_> = got["convs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["conv"].as_str().unwrap().to_string())
            .collect();
        assert!(!convs.contains(&w.bc), "sync {body}: {got}");
        assert!(
            !convs.contains(&format!("g:{}", w.g2)),
            "sync {body}: {got}"
        );
        assert_no_secret(&format!("sync {body}"), &got);
    }
    // A's own lists name nothing of C's.
    for path in ["/v1/unread", "/v1/groups"] {
        let (st, got) = s.get(&w.a, path).await;
        assert_eq!(st, 200);
        assert_no_secret(path, &got);
        assert!(!got.to_string().contains(&w.bc), "{path}: {got}");
    }
    let (_, groups) = s.get(&w.a, "/v1/groups").await;
    let ids: Vec<_> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![w.g1]);
    assert_untouched(&s, &w).await;
}

/// A socket request written as JSON (ids the typed `ClientOp` could not
/// even hold); the answer to its rid.
async fn sock(conn: &mut Conn, rid: u64, mut op: Value) -> ServerFrame {
    op["rid"] = json!(rid);
    conn.send_text(&op.to_string()).await;
    loop {
        let f = match conn.recv(WAIT).await.expect("connection closed") {
            ServerFrame::Ping => {
                conn.send_op(None, ClientOp::Pong).await;
                continue;
            }
            f => f,
        };
        if frame_rid(&f) == Some(rid) {
            return f;
        }
        conn.backlog.push_back(f);
    }
}

/// The same swaps over the socket ops that take an id (`history`, `read`,
/// `send` to a group, `sync`), on both transports.
#[tokio::test(flavor = "multi_thread")]
async fn socket_ids_of_others_are_refused_like_nothing() {
    let s = server().await;
    let w = world(&s).await;
    let (g2, bc) = (format!("g:{}", w.g2), w.bc.clone());
    let nog = format!("g:{NO_GROUP}");
    use ErrorCode::*;
    let cases: Vec<(String, Value, ErrorCode)> = vec![
        (
            "history of G2".into(),
            json!({"op": "history", "conv": g2}),
            NotFound,
        ),
        (
            "history of B–C".into(),
            json!({"op": "history", "conv": bc}),
            NotFound,
        ),
        (
            "history of a group that does not exist".into(),
            json!({"op": "history", "conv": nog}),
            NotFound,
        ),
        (
            "read G2".into(),
            json!({"op": "read", "conv": g2, "seq": 1}),
            NotFound,
        ),
        (
            "read B–C".into(),
            json!({"op": "read", "conv": bc, "seq": 1}),
            NotFound,
        ),
        (
            "read a group that does not exist".into(),
            json!({"op": "read", "conv": nog, "seq": 1}),
            NotFound,
        ),
        (
            "send to G2".into(),
            json!({"op": "send", "group": w.g2, "cmid": cmid(), "body": "intrusion"}),
            Forbidden,
        ),
        (
            "send to a group that does not exist".into(),
            json!({"op": "send", "group": NO_GROUP, "cmid": cmid(), "body": "x"}),
            Forbidden,
        ),
        (
            "send to group -1".into(),
            json!({"op": "send", "group": -1, "cmid": cmid(), "body": "x"}),
            BadField,
        ),
        (
            "history of g:0".into(),
            json!({"op": "history", "conv": "g:0"}),
            BadField,
        ),
        (
            "history of g:-1".into(),
            json!({"op": "history", "conv": "g:-1"}),
            BadField,
        ),
        (
            "read g:0".into(),
            json!({"op": "read", "conv": "g:0", "seq": 1}),
            BadField,
        ),
        (
            "send to a user that does not exist".into(),
            json!({"op": "send", "to": NO_USER, "cmid": cmid(), "body": "x"}),
            UnknownRecipient,
        ),
    ];
    for transport in ["ws", "tcp"] {
        let mut conn = s.conn(&w.a, transport).await;
        for (i, (name, op, code)) in cases.iter().enumerate() {
            let rid = 1000 + i as u64;
            let case = format!("{transport}: {name}");
            match sock(&mut conn, rid, op.clone()).await {
                ServerFrame::Error {
                    code: got, fatal, ..
                } => {
                    assert_eq!((got, fatal), (*code, false), "{case}")
                }
                other => panic!("{case}: expected {code:?}, got {other:?}"),
            }
        }
        for (i, convs) in [
            json!({}),
            json!({bc.clone(): 0, g2.clone(): 0, nog.clone(): 0}),
        ]
        .into_iter()
        .enumerate()
        {
            let case = format!("{transport}: sync {convs}");
            match sock(
                &mut conn,
                2000 + i as u64,
                json!({"op": "sync", "convs": convs}),
            )
            .await
            {
                ServerFrame::SyncResult { convs, .. } => {
                    assert!(
                        convs
                            .iter()
                            .all(|c| c.conv.to_string() != bc && c.conv.to_string() != g2),
                        "{case}: {convs:?}"
                    );
                    assert_no_secret(&case, &convs);
                }
                other => panic!("{case}: {other:?}"),
            }
        }
        match sock(&mut conn, 3000, json!({"op": "unread"})).await {
            ServerFrame::UnreadResult { convs, .. } => {
                assert!(
                    convs
                        .iter()
                        .all(|c| c.conv.to_string() != bc && c.conv.to_string() != g2)
                );
            }
            other => panic!("{transport}: unread: {other:?}"),
        }
        // Nothing of C's was pushed to A meanwhile.
        assert_no_secret(&format!("{transport}: pushes"), &conn.backlog);
    }
    assert_untouched(&s, &w).await;
}

/// The CrowdSec routes take a bouncer key (`X-Api-Key`) and nothing else:
/// no key, a wrong one, the service key or a user token are 403.
#[tokio::test(flavor = "multi_thread")]
async fn bouncer_routes_take_a_bouncer_key_only() {
    let s = TestServer::start_with(|c| c.guard.bouncer_keys = vec!["a-bouncer-key".into()]).await;
    let a = s.user("alice", "phone").await;
    let table = routes();
    let bouncer: Vec<&Route> = table.iter().filter(|r| r.auth == Auth::Bouncer).collect();
    assert_eq!(bouncer.len(), 2);
    let internal = s.internal();
    for r in bouncer {
        let url = format!("{internal}{}", r.path);
        let service = format!("Bearer {}", "service-key-for-tests");
        let user = format!("Bearer {}", a.access_token);
        let cases: [(&str, Option<(&str, &str)>); 4] = [
            ("no key", None),
            ("a wrong key", Some(("x-api-key", "not-the-key"))),
            ("the service key", Some(("authorization", service.as_str()))),
            ("a user token", Some(("authorization", user.as_str()))),
        ];
        for (name, header) in cases {
            let mut req = s.http.get(&url);
            if let Some((k, v)) = header {
                req = req.header(k, v);
            }
            let resp = req.send().await.unwrap();
            let st = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            assert_eq!(
                (st, body["error"]["code"].as_str()),
                (403, Some("forbidden")),
                "{} with {name}: {body}",
                r.path
            );
        }
        let resp = s
            .http
            .get(&url)
            .header("x-api-key", "a-bouncer-key")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), r.ok, "{} with the key", r.path);
    }
}
