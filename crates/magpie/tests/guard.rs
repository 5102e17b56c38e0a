//! The edge guard from outside (docs/edge.md): bans made by the detector
//! and refused at every listener (and on another node in cluster mode),
//! each rule firing on synthetic traffic while a normal session fires
//! none, gateway logs followed into bans that a CrowdSec bouncer reads,
//! the login guard's captcha and lockout, and the limits' answers.
//!
//! Other addresses: any 127.x.y.z is local on Linux, so an "attacker"
//! binds 127.0.0.2 (the allow-list is narrowed to 127.0.0.1 in these
//! tests), or talks through 127.0.0.1 as a trusted proxy that forwards
//! `X-Forwarded-For` addresses.

mod common;
use common::*;
use magpie_core::{ClientMsgId, ConvId};
use magpie_proto::ServerFrame;
use magpie_server::Config;
use magpie_server::guard::config::{Rate, RuleConfig, default_rules};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ATTACKER: &str = "127.0.0.2";

/// The default rules with small capacities and short bans, so a test
/// fills a bucket in a few requests and sees the ban end.
fn quick_rules(capacity: u32, ban_secs: u64) -> Vec<RuleConfig> {
    default_rules()
        .into_iter()
        .map(|mut r| {
            r.capacity = capacity;
            r.leak_per_sec = 0.01;
            r.ban_secs = ban_secs;
            r
        })
        .collect()
}

fn guarded(cfg: &mut Config) {
    cfg.guard.allow = vec!["127.0.0.1/32".parse().unwrap()];
    cfg.guard.rules = quick_rules(5, 3);
    cfg.guard.ban_refresh_ms = 100;
}

/// A client whose connections come from `ip`.
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn get_from(c: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    let r = c.get(url).bearer_auth(token).send().await.unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

/// Polls until `f` holds or `within` passes; returns the time it took.
async fn until<F: Future<Output = bool>>(within: Duration, mut f: impl FnMut() -> F) -> Duration {
    let t = Instant::now();
    while t.elapsed() < within {
        if f().await {
            return t.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not within {within:?}");
}

/// The first frame a TCP connection from `ip` receives (its refusal).
async fn tcp_answer_from(ip: &str, addr: &str) -> Option<ServerFrame> {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    let mut s = sock.connect(addr.parse().unwrap()).await.ok()?;
    let mut len = [0u8; 4];
    tokio::time::timeout(WAIT, s.read_exact(&mut len))
        .await
        .ok()?
        .ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.ok()?;
    serde_json::from_slice(&body).ok()
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_tokens_ban_an_address_on_every_listener_until_the_ban_ends() {
    let s = TestServer::start_with(guarded).await;
    let other = match s.ns {
        Some(_) => Some(second_node_with(&s, "node-2", 2, guarded).await),
        None => None,
    };
    let alice = s.user("alice", "phone").await;
    let bad = client_from(ATTACKER);
    let url = format!("{}/v1/unread", s.base);
    for _ in 0..8 {
        let (st, body) = get_from(&bad, &url, "not-a-token").await;
        assert!(st == 401 || code(&body) == "banned", "{st} {body}");
    }
    let took = until(Duration::from_secs(3), || async {
        get_from(&bad, &url, "x").await.0 == 403
    })
    .await;
    eprintln!("banned on the HTTP listener {took:?} after the last invalid token");
    let (st, body) = get_from(&bad, &format!("{}/healthz", s.base), "").await;
    assert_eq!((st, code(&body)), (403, "banned"), "{body}");
    // TCP: refused at accept with a fatal `banned` frame.
    let tcp = s.app().tcp_addr.clone().unwrap();
    match tcp_answer_from(ATTACKER, &tcp).await {
        Some(ServerFrame::Error { code, fatal, .. }) => {
            assert_eq!(code.as_str(), "banned");
            assert!(fatal);
        }
        other => panic!("expected a banned frame, got {other:?}"),
    }
    // The WebSocket upgrade is an HTTP request: 403 before any upgrade.
    let ws = format!("{}/v1/ws", s.base);
    assert_eq!(get_from(&bad, &ws, "").await.0, 403);
    // Another node refuses it within a second too.
    if let Some(n2) = &other {
        let took = until(Duration::from_secs(1), || async {
            get_from(&bad, &format!("{}/healthz", n2.base), "").await.0 == 403
        })
        .await;
        eprintln!("banned on the second node within {took:?}");
    }
    // Everyone else is untouched.
    assert_eq!(s.get(&alice, "/v1/unread").await.0, 200);
    // Released when the ban ends (3 s).
    until(Duration::from_secs(6), || async {
        get_from(&bad, &format!("{}/healthz", s.base), "").await.0 == 200
    })
    .await;
}

/// Through 127.0.0.1 as a trusted proxy, each request says which client
/// it is for.
fn proxied(cfg: &mut Config) {
    guarded(cfg);
    cfg.guard.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    cfg.guard.allow = Vec::new();
}

async fn as_client(
    s: &TestServer,
    ip: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{}{path}", s.base);
    let mut req = match method {
        "GET" => s.http.get(url),
        _ => s.http.post(url),
    }
    .header("x-forwarded-for", ip);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

async fn bans(s: &TestServer) -> Vec<Value> {
    let r = s
        .http
        .get(format!("{}/internal/v1/bans", s.internal()))
        .bearer_auth("service-key-for-tests")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

async fn banned_for(s: &TestServer, value: &str) -> Option<String> {
    bans(s)
        .await
        .into_iter()
        .find(|d| d["value"] == value)
        .map(|d| d["reason"].as_str().unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn each_rule_fires_on_its_traffic_and_a_normal_session_fires_none() {
    let s = TestServer::start_with(|cfg| {
        proxied(cfg);
        cfg.guard.rates.sends_user = Rate::new(2.0, 3);
    })
    .await;
    // A normal session, through the same proxy.
    let normal = "198.51.100.50";
    let (st, _) = as_client(
        &s,
        normal,
        "POST",
        "/v1/auth/register",
        None,
        Some(json!({"username": "norm", "password": "password123"})),
    )
    .await;
    assert_eq!(st, 201);
    let (st, t) = as_client(
        &s,
        normal,
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({"username": "norm", "password": "password123"})),
    )
    .await;
    assert_eq!(st, 200);
    let token = t["access_token"].as_str().unwrap().to_string();
    let bob = s.user("bob", "phone").await;
    for i in 0..3 {
        let body =
            json!({"to": bob.user_id, "cmid": ClientMsgId::new_v7(), "body": format!("hi {i}")});
        let (st, _) = as_client(&s, normal, "POST", "/v1/messages", Some(&token), Some(body)).await;
        assert_eq!(st, 200);
    }
    for path in ["/v1/unread", "/v1/groups"] {
        assert_eq!(
            as_client(&s, normal, "GET", path, Some(&token), None)
                .await
                .0,
            200
        );
    }
    // A wrong password once is normal too.
    let (st, _) = as_client(
        &s,
        normal,
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({"username": "norm", "password": "typo"})),
    )
    .await;
    assert_eq!(st, 401);

    // captcha: the captcha endpoint, over and over.
    for _ in 0..7 {
        as_client(&s, "198.51.100.1", "GET", "/v1/auth/captcha", None, None).await;
    }
    // lookups: groups that do not exist.
    for g in 0..7 {
        let path = format!("/v1/groups/{}", 900_000 + g);
        as_client(
            &s,
            "198.51.100.2",
            "GET",
            &path,
            Some(&bob.access_token),
            None,
        )
        .await;
    }
    // brute_force: wrong passwords over many accounts.
    for i in 0..7 {
        let body = json!({"username": format!("nobody{i}"), "password": "guess"});
        as_client(
            &s,
            "198.51.100.3",
            "POST",
            "/v1/auth/login",
            None,
            Some(body),
        )
        .await;
    }
    // flood: sends beyond the user's rate (3, then 2 a second).
    let flooder = s.user("flooder", "phone").await;
    for i in 0..14 {
        let body =
            json!({"to": bob.user_id, "cmid": ClientMsgId::new_v7(), "body": format!("f{i}")});
        as_client(
            &s,
            "198.51.100.4",
            "POST",
            "/v1/messages",
            Some(&flooder.access_token),
            Some(body),
        )
        .await;
    }
    for (ip, rule) in [
        ("198.51.100.1", "captcha"),
        ("198.51.100.2", "lookups"),
        ("198.51.100.3", "brute_force"),
        ("198.51.100.4", "flood_ip"),
    ] {
        until(Duration::from_secs(3), || async {
            banned_for(&s, ip).await.is_some()
        })
        .await;
        assert_eq!(banned_for(&s, ip).await.as_deref(), Some(rule), "{ip}");
        let (st, body) = as_client(&s, ip, "GET", "/healthz", None, None).await;
        assert_eq!((st, code(&body)), (403, "banned"));
    }
    // The detector makes its decisions one after another (the address's
    // first), so the user's ban may land a moment after the address's.
    let flooder_id = flooder.user_id.0.to_string();
    until(Duration::from_secs(3), || async {
        banned_for(&s, &flooder_id).await.is_some()
    })
    .await;
    let by_user = banned_for(&s, &flooder_id).await;
    assert_eq!(
        by_user.as_deref(),
        Some("flood_user"),
        "the flooding user too"
    );
    assert_eq!(
        s.get(&flooder, "/v1/unread").await.0,
        403,
        "a user ban holds from any address"
    );
    assert_eq!(banned_for(&s, normal).await, None, "the normal session");
    assert_eq!(
        as_client(&s, normal, "GET", "/v1/unread", Some(&token), None)
            .await
            .0,
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_logs_lead_to_bans_that_a_bouncer_reads() {
    let dir = tempfile::tempdir().unwrap();
    let nginx = dir.path().join("access.log");
    let apisix = dir.path().join("apisix.log");
    std::fs::write(&nginx, "").unwrap();
    std::fs::write(&apisix, "").unwrap();
    let (n, a) = (nginx.clone(), apisix.clone());
    let s = TestServer::start_with(move |cfg| {
        guarded(cfg);
        cfg.guard.bouncer_keys = vec!["bouncer-key".into()];
        cfg.guard.follow = vec![
            magpie_server::guard::config::FollowConfig {
                path: n.display().to_string(),
                format: "combined".into(),
            },
            magpie_server::guard::config::FollowConfig {
                path: a.display().to_string(),
                format: "apisix".into(),
            },
        ];
    })
    .await;
    let pull = |startup: bool| {
        let url = format!(
            "{}/v1/decisions/stream{}",
            s.internal(),
            if startup { "?startup=true" } else { "" }
        );
        let http = s.http.clone();
        async move {
            let r = http
                .get(url)
                .header("x-api-key", "bouncer-key")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(pull(true).await, json!({"new": null, "deleted": null}));
    // The follower starts at the end: write after it looked once.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut lines = String::new();
    for i in 0..8 {
        lines.push_str(&format!(
            "203.0.113.7 - - [02/Dec/2026:06:00:0{i} +0000] \"GET /v1/unread HTTP/1.1\" 401 61 \"-\" \"curl/8.5\"\n"
        ));
    }
    append(&nginx, &lines).await;
    let mut lines = String::new();
    for _ in 0..8 {
        lines.push_str(&json!({
            "client_ip": "203.0.113.8", "start_time": 1_796_000_000_000_i64, "latency": 2.5,
            "request": {"method": "GET", "uri": "/v1/unread?x=1", "headers": {"user-agent": "probe"}},
            "response": {"status": 401, "size": 61}
        }).to_string());
        lines.push('\n');
    }
    append(&apisix, &lines).await;
    for ip in ["203.0.113.7", "203.0.113.8"] {
        until(Duration::from_secs(5), || async {
            banned_for(&s, ip).await.is_some()
        })
        .await;
        assert_eq!(banned_for(&s, ip).await.as_deref(), Some("invalid_tokens"));
    }
    // A bouncer's first pull has both; the next, nothing new.
    let first = pull(false).await;
    let mut values: Vec<&str> = first["new"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["value"].as_str().unwrap())
        .collect();
    values.sort();
    assert_eq!(values, ["203.0.113.7", "203.0.113.8"], "{first}");
    let d = &first["new"][0];
    assert_eq!(
        (d["type"].as_str(), d["scope"].as_str()),
        (Some("ban"), Some("Ip"))
    );
    assert!(d["duration"].as_str().unwrap().ends_with('s'));
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(pull(false).await, json!({"new": null, "deleted": null}));
    // One lifted by an operator shows as deleted in the next pull.
    let r = s
        .http
        .delete(format!(
            "{}/internal/v1/bans?id=ip:203.0.113.7",
            s.internal()
        ))
        .bearer_auth("service-key-for-tests")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let next = pull(false).await;
    assert_eq!(next["deleted"][0]["value"], "203.0.113.7", "{next}");
    // The one-shot query, and the key check.
    let r = s
        .http
        .get(format!("{}/v1/decisions?ip=203.0.113.8", s.internal()))
        .header("x-api-key", "bouncer-key")
        .send()
        .await
        .unwrap();
    let one: Value = r.json().await.unwrap();
    assert_eq!(one[0]["value"], "203.0.113.8");
    let r = s
        .http
        .get(format!("{}/v1/decisions", s.internal()))
        .header("x-api-key", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
}

async fn append(path: &std::path::Path, text: &str) {
    let mut f = tokio::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .await
        .unwrap();
    f.write_all(text.as_bytes()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_need_a_captcha_then_lock_out() {
    let s = TestServer::start_with(|cfg| {
        cfg.guard.login.captcha_after = 2;
        cfg.guard.login.lockout_after = 4;
    })
    .await;
    s.user("carol", "phone").await;
    let login = |password: &str, captcha: Option<Value>| {
        let mut body = json!({"username": "carol", "password": password});
        if let Some(c) = captcha {
            body["captcha"] = c;
        }
        s.call("POST", "/v1/auth/login", None, Some(body))
    };
    for _ in 0..2 {
        assert_eq!(code(&login("wrong", None).await.1), "bad_credentials");
    }
    // Now even the right password needs a captcha.
    let (st, body) = login("password123", None).await;
    assert_eq!((st, code(&body)), (401, "captcha_required"));
    let (st, ch) = s.call("GET", "/v1/auth/captcha", None, None).await;
    assert_eq!(st, 200);
    assert!(
        ch["image"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );
    let id = ch["id"].as_str().unwrap().to_string();
    let answer = peek_captcha(&s, &id).await;
    let (st, body) = login("password123", Some(json!({"id": id, "answer": "WRONG"}))).await;
    assert_eq!(
        (st, code(&body)),
        (401, "captcha_required"),
        "a wrong answer"
    );
    // A captcha is good for one try: the same id is gone now.
    let (st, _) = login("password123", Some(json!({"id": id, "answer": answer}))).await;
    assert_eq!(st, 401, "the captcha was used up by the wrong answer");
    // Two more wrong passwords with fresh captchas reach the lockout.
    for _ in 0..2 {
        let (_, ch) = s.call("GET", "/v1/auth/captcha", None, None).await;
        let id = ch["id"].as_str().unwrap().to_string();
        let answer = peek_captcha(&s, &id).await;
        let (st, body) = login("wrong", Some(json!({"id": id, "answer": answer}))).await;
        assert_eq!((st, code(&body)), (401, "bad_credentials"));
    }
    let (st, body) = login("password123", None).await;
    assert_eq!((st, code(&body)), (429, "locked_out"), "{body}");
    assert!(body["error"]["retry_after_ms"].as_u64().unwrap() > 0);
}

/// Reads a captcha's answer from the fast state and puts it back (what
/// a person reads from the image).
async fn peek_captcha(s: &TestServer, id: &str) -> String {
    let key = format!("captcha:{id}");
    let state = &s.app().state;
    let answer = state
        .guard_take(&key)
        .await
        .unwrap()
        .expect("a live captcha");
    state.guard_swap(&key, &answer, 60_000).await.unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_answer_with_the_wait_and_do_nothing() {
    let s = TestServer::start_with(|cfg| {
        guarded(cfg);
        cfg.guard.rules = Vec::new();
        cfg.guard.rates.http_ip = Rate::new(1.0, 3);
        cfg.guard.rates.sends_user = Rate::new(1.0, 2);
        cfg.guard.conns_per_ip = 2;
    })
    .await;
    // Per address over HTTP: 429 with Retry-After.
    let c = client_from(ATTACKER);
    let url = format!("{}/healthz", s.base);
    // Each answer read to its end, so the one kept-alive connection is
    // used again: a response dropped unread closes its connection, and a
    // loaded node that has not yet seen those closes counts them against
    // `conns_per_ip` (503 `busy` instead of the 429 under test).
    for _ in 0..4 {
        let _ = c.get(&url).send().await.unwrap().bytes().await;
    }
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().get("retry-after").is_some());
    // Its kept-alive connections would count toward the address's cap below.
    drop(r);
    drop(c);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Per user over a socket: `rate_limited` with the wait, not stored.
    let [a, b] = s.users(["ann", "ben"]).await;
    let mut conn = s.conn(&a, "ws").await;
    let mut refused = 0;
    for i in 0..4 {
        match conn.send_msg(b.user_id, &format!("m{i}")).await {
            ServerFrame::Sent { .. } => {}
            ServerFrame::Error {
                code,
                retry_after_ms,
                fatal,
                ..
            } => {
                assert_eq!(code.as_str(), "rate_limited");
                assert!(retry_after_ms.unwrap() > 0 && !fatal);
                refused += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(refused, 2);
    let conv = ConvId::direct(a.user_id, b.user_id);
    let (_, page) = s.history(&b, &conv, "").await;
    let mut seqs = page_seqs(&page);
    seqs.sort();
    assert_eq!(seqs, vec![1, 2], "refused sends were not stored");
    // Connections per address: the third from 127.0.0.2 is refused busy.
    let tcp = s.app().tcp_addr.clone().unwrap();
    let mut held = Vec::new();
    for _ in 0..2 {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{ATTACKER}:0").parse().unwrap()).unwrap();
        held.push(sock.connect(tcp.parse().unwrap()).await.unwrap());
    }
    match tcp_answer_from(ATTACKER, &tcp).await {
        Some(ServerFrame::Error { code, .. }) => assert_eq!(code.as_str(), "busy"),
        other => panic!("expected busy, got {other:?}"),
    }
    drop(held);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_access_log_is_written_in_the_configured_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("magpie-access.log");
    let p = path.clone();
    let s = TestServer::start_with(move |cfg| {
        cfg.guard.access_log = p.display().to_string();
    })
    .await;
    let t = s.user("dora", "phone").await;
    assert_eq!(s.get(&t, "/v1/groups/424242").await.0, 404);
    let t0 = Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.contains("/v1/groups/424242") {
            break text;
        }
        assert!(t0.elapsed() < Duration::from_secs(3), "not logged: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let line = text
        .lines()
        .find(|l| l.contains("/v1/groups/424242"))
        .unwrap();
    let e = magpie_core::access::LogFormat::Combined
        .parse(line)
        .unwrap();
    assert_eq!(
        (e.status, e.path.as_str(), e.user),
        (404, "/v1/groups/424242", Some(t.user_id))
    );
    assert!(e.ip.is_loopback());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_device_that_keeps_breaking_its_chain_is_slowed_then_banned() {
    let s = TestServer::start_with(|cfg| {
        cfg.chain.wait_ms = 50;
        cfg.chain.gap_limit = 1;
        cfg.chain.penalty_ms = 60_000;
        cfg.guard.ban_refresh_ms = 100;
        cfg.guard.rules = default_rules()
            .into_iter()
            .map(|mut r| {
                if r.name == "chain_abuse" {
                    r.capacity = 3;
                }
                r
            })
            .collect();
    })
    .await;
    let [a, b] = s.users(["erin", "finn"]).await;
    let mut codes = Vec::new();
    // Every link names an id the server does not expect: a gap each time.
    for i in 0..12 {
        let body = json!({"to": b.user_id, "cmid": ClientMsgId::new_v7(), "body": format!("x{i}"),
            "chain": {"id": format!("bogus-{i}"), "next": format!("bogus-{}", i + 100)}});
        let (st, body) = s
            .call("POST", "/v1/messages", Some(&a.access_token), Some(body))
            .await;
        codes.push((st, code(&body).to_string()));
        if code(&body) == "banned" {
            break;
        }
        if code(&body) == "chain_slow_down" {
            assert!(body["error"]["retry_after_ms"].as_u64().unwrap() > 0);
        }
    }
    assert!(
        codes.iter().any(|(_, c)| c == "chain_slow_down"),
        "slowed first: {codes:?}"
    );
    until(Duration::from_secs(3), || async {
        s.get(&a, "/v1/unread").await.0 == 403
    })
    .await;
    assert_eq!(
        banned_for(&s, &a.user_id.0.to_string()).await.as_deref(),
        Some("chain_abuse")
    );
    assert_eq!(s.get(&b, "/v1/unread").await.0, 200, "others are untouched");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tickets_on_a_socket_count_as_invalid_tokens() {
    let s = TestServer::start_with(guarded).await;
    let tcp = s.app().tcp_addr.clone().unwrap();
    for _ in 0..8 {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{ATTACKER}:0").parse().unwrap()).unwrap();
        let Ok(mut c) = sock.connect(tcp.parse().unwrap()).await else {
            continue;
        };
        let hello = br#"{"op":"hello","ticket":"forged"}"#;
        let mut frame = (hello.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(hello);
        let _ = c.write_all(&frame).await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(WAIT, c.read_to_end(&mut sink)).await;
    }
    until(Duration::from_secs(3), || async {
        banned_for(&s, ATTACKER).await.as_deref() == Some("invalid_tokens")
    })
    .await;
    match tcp_answer_from(ATTACKER, &tcp).await {
        Some(ServerFrame::Error { code, .. }) => assert_eq!(code.as_str(), "banned"),
        other => panic!("expected banned, got {other:?}"),
    }
}
