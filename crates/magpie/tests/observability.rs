//! What operators see (docs/observability.md), on the real binary (a
//! process of its own: the metrics recorder is per process): every series
//! at zero on a fresh node, a series count that does not grow with users,
//! logs that hold no secret and no message body, and the log filter
//! changed at run time.

mod common;
use common::process::spawn_cmd_line;
use common::*;
use magpie_core::ConvId;
use magpie_proto::http::Tokens;
use magpie_server::metrics::catalog::{CATALOG, Kind};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::process::{Child, Command};

const KEY: &str = "observability-service-key";

struct Proc {
    child: Child,
    server: TestServer,
    internal: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(env: &[(&str, &str)], args: &[&str]) -> Proc {
    let dir = tempfile::tempdir().unwrap();
    let ns = backends::namespace(dir.path());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_magpie"));
    cmd.envs(env.iter().copied())
        .env("MAGPIE_INTERNAL__SERVICE_KEY", KEY)
        .arg("serve")
        .args(["--internal-listen", "127.0.0.1:0"])
        .args(args);
    if let Some(ns) = &ns {
        cmd.args(ns.args());
    }
    let (child, line) = spawn_cmd_line(cmd, &dir);
    let base = format!("http://{}", line["http"].as_str().unwrap());
    let internal = format!("http://{}", line["internal"].as_str().unwrap());
    Proc {
        child,
        internal,
        server: TestServer {
            running: None,
            base,
            dir,
            http: reqwest::Client::new(),
            ns,
        },
    }
}

async fn metrics(s: &TestServer) -> String {
    reqwest::get(format!("{}/metrics", s.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The series of a rendering: each sample line's name and labels.
fn series(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| l.starts_with("magpie_"))
        .filter_map(|l| l.rsplit_once(' ').map(|(s, _)| s.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_node_shows_every_series_at_zero() {
    let p = spawn(&[], &[]);
    // The workers register their groups' series once they joined the bus.
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let text = metrics(&p.server).await;
        if text.contains("magpie_consumer_lag_events{group=\"state\"") {
            break text;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "no worker series:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    for e in CATALOG {
        let sample = match e.kind {
            Kind::Histogram => format!("{}_count", e.name),
            _ => e.name.to_string(),
        };
        let labels: Vec<String> = if e.values.is_empty() {
            vec![String::new()]
        } else {
            e.values
                .iter()
                .map(|v| format!("{{{}=\"{v}\"}}", e.label))
                .collect()
        };
        for l in labels {
            let line = format!("{sample}{l} ");
            let value = text
                .lines()
                .find_map(|x| x.strip_prefix(&line))
                .unwrap_or_else(|| panic!("{sample}{l} missing from:\n{text}"));
            let v: f64 = value.parse().unwrap();
            // Nothing happened yet, but the start itself (its store round
            // trips, its own bus appends) may have been counted; gauges
            // are states (the disk, the registry), not events.
            if e.kind != Kind::Gauge
                && !e.name.contains("round_trips")
                && !e.name.starts_with("magpie_bus_")
            {
                assert_eq!(v, 0.0, "{sample}{l}");
            }
        }
    }
    // The workers' groups are there too, before any event.
    assert!(
        text.contains("magpie_worker_events_total{group=\"state\"} 0"),
        "{text}"
    );
    // Every partition's lag is there, and a node with no traffic has none
    // (a first fetch may still count what the start itself appended).
    let lag0 = "magpie_consumer_lag_events{group=\"state\",partition=\"0\"} ";
    assert!(text.contains(lag0), "{text}");
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = metrics(&p.server).await;
        if text.lines().any(|l| l.strip_prefix(lag0) == Some("0")) {
            break;
        }
        assert!(std::time::Instant::now() < give_up, "lag not 0:\n{text}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Users exchange messages over both transports and HTTP, read, search:
/// the series after 3 of them and after 33 are the same set.
#[tokio::test(flavor = "multi_thread")]
async fn the_series_count_does_not_grow_with_users() {
    let p = spawn(&[], &[]);
    let s = &p.server;
    let mut round = 0;
    let mut chat = |n: usize| {
        round += 1;
        let tag = round;
        async move {
            for i in 0..n {
                let a = s.user(&format!("a{tag}x{i}"), "phone").await;
                let b = s.user(&format!("b{tag}x{i}"), "desk").await;
                let mut ca = s.conn(&a, "ws").await;
                let mut cb = s.conn(&b, "tcp").await;
                let (_, seq, _) = sent_seq(&ca.send_msg(b.user_id, "hello there").await);
                cb.expect_msg().await;
                cb.read(&ConvId::direct(a.user_id, b.user_id), seq).await;
                let cmid = magpie_core::ClientMsgId::new_v7();
                let (st, _) = s.http_send(&b, a.user_id, cmid, "and back").await;
                assert_eq!(st, 200);
                ca.expect_msg().await;
                assert_eq!(s.get(&a, "/v1/unread").await.0, 200);
                assert_eq!(s.get(&a, "/v1/search?text=hello").await.0, 200);
            }
        }
    };
    chat(3).await;
    // Let the workers and a search commit run once.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let before = series(&metrics(s).await);
    chat(30).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let after = series(&metrics(s).await);
    let new: Vec<&String> = after.difference(&before).collect();
    assert!(new.is_empty(), "series appeared with more users: {new:#?}");
    assert!(after.len() > 100, "{}", after.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_hold_no_secret_and_no_body_and_levels_change_at_run_time() {
    let filter = "debug,magpie=trace,magpie_server=trace,magpie_store=trace,magpie_bus=trace";
    let p = spawn(&[("MAGPIE_LOG", filter)], &["--log-json"]);
    let s = &p.server;
    let password = "Pw-Canary-7f3a9c";
    let body = "BodyCanary-5d2e81 你好";
    let (st, _) = s
        .call(
            "POST",
            "/v1/auth/register",
            None,
            Some(json!({"username": "carol", "password": password})),
        )
        .await;
    assert_eq!(st, 201);
    let (st, tokens) = s
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"username": "carol", "password": password, "device": "phone"})),
        )
        .await;
    assert_eq!(st, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    let carol: Tokens = serde_json::from_value(tokens.clone()).unwrap();
    let dave = s.user("dave", "phone").await;
    let mut cd = s.conn(&dave, "tcp").await;
    let mut cc = s.conn(&carol, "ws").await;
    cc.send_msg(dave.user_id, body).await;
    assert_eq!(cd.expect_msg().await.body, body);
    let (st, _) = s
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(st, 200);
    // A wrong password and a bad token are logged as events, not values.
    let (st, _) = s
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"username": "carol", "password": "Wrong-Canary-11"})),
        )
        .await;
    assert_eq!(st, 401);
    let bad = reqwest::Client::new()
        .get(format!("{}/v1/unread", s.base))
        .bearer_auth("Bad-Token-Canary-22")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 401);

    // The log filter, read and changed through the internal API.
    let http = reqwest::Client::new();
    let url = format!("{}/internal/v1/log", p.internal);
    let got: Value = http
        .get(&url)
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["filter"], filter);
    let put = |f: &str| {
        http.put(&url)
            .bearer_auth(KEY)
            .json(&json!({ "filter": f }))
            .send()
    };
    assert_eq!(put("nonsense=[").await.unwrap().status().as_u16(), 400);
    assert_eq!(put("warn").await.unwrap().status().as_u16(), 200);
    let got: Value = http
        .get(&url)
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["filter"], "warn");
    let before = std::fs::read_to_string(s.dir.path().join("magpie.log")).unwrap();
    // At warn, a send logs nothing more.
    cc.send_msg(dave.user_id, "quiet now").await;
    cd.expect_msg().await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let log = std::fs::read_to_string(s.dir.path().join("magpie.log")).unwrap();
    let debug_lines = log[before.len()..]
        .lines()
        .filter(|l| l.contains("\"level\":\"DEBUG\"") || l.contains("\"level\":\"TRACE\""))
        .count();
    assert_eq!(debug_lines, 0, "debug after the filter went to warn");
    // The lines about a message name it by ids: trace, server id, user,
    // node and roles.
    let about: Vec<Value> = before
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "message durable and published")
        .collect();
    assert!(!about.is_empty(), "no line about the message:\n{before}");
    for v in &about {
        let f = &v["fields"];
        assert_eq!(f["trace_id"].as_str().map(str::len), Some(32), "{v}");
        assert!(f["server_id"].as_i64().is_some(), "{v}");
        assert!(f["user"].as_i64().is_some(), "{v}");
        assert_eq!(f["node"], "node-1", "{v}");
        assert!(f["roles"].as_str().unwrap().contains("conn"), "{v}");
    }
    assert!(before.contains("message pushed"), "{before}");
    for l in log.lines() {
        assert!(
            serde_json::from_str::<Value>(l).is_ok(),
            "not a JSON line: {l}"
        );
    }
    for secret in [
        password,
        "Wrong-Canary-11",
        "Bad-Token-Canary-22",
        &access,
        &refresh,
        &carol.access_token,
        "BodyCanary-5d2e81",
        "你好",
        KEY,
    ] {
        assert!(!log.contains(secret), "the log holds {secret:?}");
    }
    let jwt = std::fs::read_to_string(s.dir.path().join("jwt.secret")).unwrap();
    assert!(!log.contains(jwt.trim()));
}
