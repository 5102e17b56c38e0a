//! The shipped alert rules and Grafana dashboard (`ops/`), tested for real
//! (docs/observability.md, "Dashboard and alerts"):
//!
//! - `promtool check rules` and `promtool test rules` on the shipped files;
//! - the dashboard against Grafana's published schema (the TypeScript types
//!   of npm's `@grafana/schema`, checked by `tsc`) and what it promises
//!   (panel ids, grid, targets on the `datasource` variable);
//! - with `MAGPIE_TEST_BACKENDS=cluster`: Debian's Prometheus scraping three
//!   `magpie` processes on the shared store and state and a NATS server of
//!   the test's own, with the shipped rules, their windows shortened from
//!   minutes to seconds; each alert fires under its fault and resolves
//!   after recovery (NATS killed → `MagpieBusUnavailable`; a node killed →
//!   `MagpieNodeDown`; a worker group paused → `MagpieConsumerLagGrowing`),
//!   and every dashboard query returns data.

mod common;
#[allow(dead_code)]
#[path = "fleet/services.rs"]
mod services;

use common::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "alerts-service-key";

fn ops(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../ops")
        .join(file)
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_rules_pass_promtool() {
    let Some(promtool) = tool("MAGPIE_TEST_PROMTOOL_BIN") else {
        return;
    };
    run_ok(
        Command::new(&promtool)
            .args(["check", "rules"])
            .arg(ops("prometheus/magpie-alerts.yml")),
    );
    run_ok(
        Command::new(&promtool)
            .current_dir(ops("prometheus"))
            .args(["test", "rules", "magpie-alerts.test.yml"]),
    );
}

/// What Grafana requires of a dashboard model, and what this one promises:
/// unique panel ids, a grid position each, Prometheus targets with an
/// expression and a ref id, on the `datasource` variable.
#[test]
fn the_dashboard_is_a_well_formed_grafana_model() {
    let d: Value = serde_json::from_str(
        &std::fs::read_to_string(ops("grafana/magpie-dashboard.json")).unwrap(),
    )
    .unwrap();
    assert!(d["title"].is_string() && d["uid"].is_string());
    assert!(d["schemaVersion"].as_u64().unwrap() >= 30);
    let vars = d["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter()
            .any(|v| v["name"] == "datasource" && v["type"] == "datasource")
    );
    let panels = d["panels"].as_array().unwrap();
    assert!(panels.len() >= 12);
    let mut ids = std::collections::BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate id: {p}");
        assert!(p["title"].is_string() && p["type"] == "timeseries", "{p}");
        let g = &p["gridPos"];
        for k in ["h", "w", "x", "y"] {
            assert!(g[k].is_u64(), "gridPos.{k}: {p}");
        }
        assert!(g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24);
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty());
        for t in targets {
            assert!(
                t["refId"].is_string()
                    && t["expr"]
                        .as_str()
                        .is_some_and(|e| e.contains("magpie_") || e.contains("up{")),
                "{t}"
            );
            assert_eq!(t["datasource"]["uid"], "${datasource}");
        }
    }
}

/// Type-checks `json` as a Grafana dashboard model with `tsc`: the JSON as
/// an object literal that `satisfies` the `Dashboard` type of
/// `@grafana/schema` (generated from Grafana's CUE dashboard kind), so every
/// field's type and enum value is checked and an unknown property refused.
fn tsc_dashboard(schema: &str, json: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        Path::new(schema).join("node_modules"),
        dir.path().join("node_modules"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("check.ts"),
        format!(
            "import type {{ Dashboard }} from \
             '@grafana/schema/dist/types/raw/dashboard/x/types.gen';\n\
             export const dashboard = {} satisfies Dashboard;\n",
            json.trim_end()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tsconfig.json"),
        r#"{"compilerOptions": {"strict": true, "noEmit": true, "module": "commonjs",
            "moduleResolution": "node", "skipLibCheck": true}, "files": ["check.ts"]}"#,
    )
    .unwrap();
    Command::new("node")
        .arg(Path::new(schema).join("node_modules/typescript/bin/tsc"))
        .arg("-p")
        .arg(dir.path())
        .output()
        .expect("node runs tsc")
}

#[test]
fn the_dashboard_satisfies_grafanas_published_schema() {
    let Some(schema) = tool("MAGPIE_TEST_GRAFANA_SCHEMA_DIR") else {
        return;
    };
    let json = std::fs::read_to_string(ops("grafana/magpie-dashboard.json")).unwrap();
    let out = tsc_dashboard(&schema, &json);
    assert!(
        out.status.success(),
        "the dashboard does not satisfy Grafana's schema:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The check has teeth: a property Grafana does not know, and a grid
    // width that is not a number, are each refused.
    let good: Value = serde_json::from_str(&json).unwrap();
    let mut unknown = good.clone();
    unknown["refreshEvery"] = json!("10s");
    let mut mistyped = good;
    mistyped["panels"][0]["gridPos"]["w"] = json!("wide");
    for (bad, why) in [
        (
            unknown,
            "refreshEvery\"' does not exist in type 'Dashboard'",
        ),
        (mistyped, "not assignable to type 'number'"),
    ] {
        let out = tsc_dashboard(&schema, &serde_json::to_string(&bad).unwrap());
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success() && said.contains(why), "{said}");
    }
}

/// The shipped rules with minutes made seconds; each change must apply.
fn shortened_rules() -> String {
    let mut rules = std::fs::read_to_string(ops("prometheus/magpie-alerts.yml")).unwrap();
    for (from, to) in [
        ("[5m]", "[30s]"),
        ("[1m]", "[15s]"),
        ("for: 5m", "for: 2s"),
        ("for: 2m", "for: 2s"),
        ("for: 1m", "for: 2s"),
        (
            "magpie_consumer_lag_seconds) > 60",
            "magpie_consumer_lag_seconds) > 3",
        ),
    ] {
        assert!(rules.contains(from), "the rules changed: {from} is gone");
        rules = rules.replace(from, to);
    }
    rules
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Node {
    child: Child,
    http: u16,
    internal: String,
    args: Vec<String>,
    dir: PathBuf,
}

impl Node {
    fn start(dir: &Path, args: Vec<String>, http: u16) -> Node {
        let dir = dir.to_path_buf();
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_magpie"))
            .arg("serve")
            .args(&args)
            .args(["--http-listen", &format!("127.0.0.1:{http}")])
            .args([
                "--tcp-listen",
                "127.0.0.1:0",
                "--internal-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(&dir)
            .env("MAGPIE_INTERNAL__SERVICE_KEY", KEY)
            .env(
                "MAGPIE_AUTH__JWT_SECRET",
                "alerts-test-secret-0123456789abcdef-xyz",
            )
            .env("MAGPIE_AUTH__ARGON2_M_KIB", "64")
            .env("MAGPIE_AUTH__ARGON2_T", "1")
            .env("MAGPIE_CLUSTER__HEARTBEAT_MS", "200")
            .env("MAGPIE_CLUSTER__NODE_TTL_MS", "1500")
            .env("MAGPIE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("magpie.log")).unwrap())
            .spawn()
            .expect("start magpie");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "no start line ({e}): {}",
                std::fs::read_to_string(dir.join("magpie.log")).unwrap_or_default()
            )
        });
        let internal = format!("http://{}", v["internal"].as_str().unwrap());
        Node {
            child,
            http,
            internal,
            args,
            dir,
        }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.kill9();
        *self = Node::start(&self.dir.clone(), self.args.clone(), self.http);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

struct Prometheus {
    child: Child,
    base: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    async fn start(bin: &str, dir: &Path, targets: &[u16]) -> Prometheus {
        std::fs::write(dir.join("rules.yml"), shortened_rules()).unwrap();
        let targets: Vec<String> = targets.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{}']\nscrape_configs:\n  - job_name: magpie\n    static_configs:\n      - targets: [{}]\n",
            dir.join("rules.yml").display(),
            targets.join(", ")
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let child = Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let give_up = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/-/ready", p.base)).await
                && r.status().is_success()
            {
                return p;
            }
            assert!(
                Instant::now() < give_up,
                "prometheus did not start: {}",
                std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn api(&self, path: &str) -> Value {
        let v: Value = reqwest::get(format!("{}{path}", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["status"], "success", "{v}");
        v["data"].clone()
    }

    /// The firing alerts named `name`.
    async fn firing(&self, name: &str) -> Vec<Value> {
        let data = self.api("/api/v1/alerts").await;
        data["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["labels"]["alertname"] == name && a["state"] == "firing")
            .cloned()
            .collect()
    }

    async fn until(&self, name: &str, firing: bool, within: Duration) -> Vec<Value> {
        let give_up = Instant::now() + within;
        loop {
            let now = self.firing(name).await;
            if now.is_empty() != firing {
                return now;
            }
            assert!(
                Instant::now() < give_up,
                "{name} did not {} within {within:?}",
                if firing { "fire" } else { "resolve" }
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn query(&self, expr: &str) -> Vec<Value> {
        let url = format!("{}/api/v1/query?query={}", self.base, urlencode(expr));
        let v: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        assert_eq!(v["status"], "success", "{expr}: {v}");
        v["data"]["result"].as_array().unwrap().clone()
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_alert_fires_under_its_fault_and_resolves_on_a_real_prometheus() {
    if !backends::needs_shared_store() {
        return;
    }
    let Some(prometheus) = tool("MAGPIE_TEST_PROMETHEUS_BIN") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ns = backends::namespace(dir.path()).expect("cluster namespace");
    let mut nats = services::Nats::start(dir.path());
    let bus = format!("{}/?stream=alerts{:08x}", nats.url(), rand::random::<u32>());
    let base_args = |name: &str, num: u16, roles: &str| -> Vec<String> {
        [
            "--node",
            name,
            "--node-num",
            &num.to_string(),
            "--roles",
            roles,
            "--store",
            &ns.store,
            "--state",
            &ns.state,
            "--bus",
            &bus,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let ports = [free_port(), free_port(), free_port()];
    let n1 = Node::start(
        &dir.path().join("n1"),
        base_args("node-1", 1, "edge,conn,workers,search"),
        ports[0],
    );
    let _n2 = Node::start(
        &dir.path().join("n2"),
        base_args("node-2", 2, "edge,conn"),
        ports[1],
    );
    let mut n3 = Node::start(
        &dir.path().join("n3"),
        base_args("node-3", 3, "edge,conn"),
        ports[2],
    );
    let prom = Prometheus::start(&prometheus, dir.path(), &ports).await;

    // Some traffic, so rates and latencies have samples.
    let s1 = TestServer {
        running: None,
        base: format!("http://127.0.0.1:{}", ports[0]),
        dir: tempfile::tempdir().unwrap(),
        http: reqwest::Client::new(),
        ns: None,
    };
    let [alice, bob] = s1.users(["alice", "bob"]).await;
    let mut b = s1.conn(&bob, "ws").await;
    for i in 0..5 {
        let cmid = magpie_core::ClientMsgId::new_v7();
        assert_eq!(
            s1.http_send(&alice, bob.user_id, cmid, &format!("m{i}"))
                .await
                .0,
            200
        );
        b.expect_msg().await;
    }
    // Every target up and nothing firing before the faults.
    let give_up = Instant::now() + Duration::from_secs(30);
    while prom.query("up{job=\"magpie\"} == 1").await.len() < 3 {
        assert!(Instant::now() < give_up, "targets not all up");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for name in [
        "MagpieBusUnavailable",
        "MagpieNodeDown",
        "MagpieConsumerLagGrowing",
    ] {
        assert!(
            prom.firing(name).await.is_empty(),
            "{name} fires before any fault"
        );
    }

    // Every dashboard query returns data from this Prometheus.
    let d: Value = serde_json::from_str(
        &std::fs::read_to_string(ops("grafana/magpie-dashboard.json")).unwrap(),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            assert!(
                !prom.query(expr).await.is_empty(),
                "panel {:?}: {expr} returned nothing",
                p["title"]
            );
        }
    }

    // The bus: NATS killed, then back.
    nats.kill9();
    let fired = prom
        .until("MagpieBusUnavailable", true, Duration::from_secs(60))
        .await;
    eprintln!("bus alert: {fired:?}");
    nats.restart();
    prom.until("MagpieBusUnavailable", false, Duration::from_secs(90))
        .await;

    // A node: killed, then back on its port.
    n3.kill9();
    let fired = prom
        .until("MagpieNodeDown", true, Duration::from_secs(60))
        .await;
    assert_eq!(
        fired[0]["labels"]["instance"],
        format!("127.0.0.1:{}", ports[2])
    );
    n3.restart();
    prom.until("MagpieNodeDown", false, Duration::from_secs(60))
        .await;

    // A consumer: the `state` group paused on the one workers node.
    let http = reqwest::Client::new();
    let pause = |paused: bool| {
        http.put(format!("{}/internal/v1/workers/state", n1.internal))
            .bearer_auth(KEY)
            .json(&json!({ "paused": paused }))
            .send()
    };
    assert_eq!(pause(true).await.unwrap().status().as_u16(), 200);
    let fired = prom
        .until("MagpieConsumerLagGrowing", true, Duration::from_secs(60))
        .await;
    assert!(
        fired.iter().any(|a| a["labels"]["group"] == "state"),
        "{fired:?}"
    );
    assert_eq!(pause(false).await.unwrap().status().as_u16(), 200);
    prom.until("MagpieConsumerLagGrowing", false, Duration::from_secs(60))
        .await;
}
