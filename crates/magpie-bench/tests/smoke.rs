//! A short run of every scenario against a server the tool starts itself,
//! so the load tool keeps working as the server changes. Sizes and
//! durations are tiny: this checks that the tool runs and that nothing is
//! lost, duplicated or refused, never how fast anything is (figures come
//! from full runs, docs/performance.md).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const TOOL: &str = env!("CARGO_BIN_EXE_magpie-bench");

/// The `magpie` binary of this build, built first when only this package
/// was (`cargo test -p magpie-bench`).
fn server_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(TOOL).parent().expect("the tool has a directory");
        let bin = dir.join(format!("magpie{}", std::env::consts::EXE_SUFFIX));
        if !bin.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "magpie", "--bin", "magpie"])
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building the server failed");
        }
        assert!(bin.exists(), "no server binary at {}", bin.display());
        bin
    })
}

/// Runs one scenario and returns its JSON report.
fn run(args: &[&str]) -> Value {
    let out = Command::new(TOOL)
        .arg("--server-bin")
        .arg(server_bin())
        .args(["--json", "--quiet", "--warmup", "0s", "--duration", "1s"])
        .args(["--setup-concurrency", "8", "--source-ips", "2"])
        .args(args)
        .output()
        .expect("the tool runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: no JSON report ({e}): {stderr}"));
    for key in ["lost", "duplicated", "errors"] {
        assert_eq!(report[key], 0, "{args:?}: {key} in {report}");
    }
    report
}

fn count(report: &Value, key: &str) -> u64 {
    report[key].as_u64().unwrap_or_default()
}

#[test]
fn chat_closed_loop_over_websocket() {
    let r = run(&["chat", "--pairs", "4", "--inflight", "2"]);
    assert!(count(&r, "delivered") > 0, "{r}");
    assert!(r["server"]["us_per_msg"].as_f64().unwrap_or_default() > 0.0);
}

#[test]
fn chat_open_loop_over_tcp() {
    let r = run(&[
        "--transport",
        "tcp",
        "chat",
        "--pairs",
        "4",
        "--rate",
        "200",
    ]);
    assert!(count(&r, "delivered") > 0, "{r}");
    assert_eq!(
        r["sent"], r["acked"],
        "every scheduled send acknowledged: {r}"
    );
}

#[test]
fn idle_connections_are_held_and_measured() {
    let r = run(&["idle", "--conns", "20"]);
    assert_eq!(r["extra"]["held"], 20, "{r}");
    assert!(count(&r, "server_rss_kib_end") > 0, "{r}");
}

#[test]
fn group_with_offline_members() {
    let r = run(&["group", "--members", "12", "--offline", "4", "--rate", "50"]);
    assert!(count(&r, "delivered") > 0, "{r}");
}

#[test]
fn supergroup() {
    let r = run(&[
        "supergroup",
        "--members",
        "30",
        "--offline",
        "25",
        "--rate",
        "50",
    ]);
    assert!(count(&r, "delivered") > 0, "{r}");
}

#[test]
fn liveroom() {
    let r = run(&["liveroom", "--viewers", "10", "--rate", "50"]);
    assert!(count(&r, "delivered") > 0, "{r}");
}

#[test]
fn login_burst() {
    let r = run(&["login", "--concurrency", "4", "--users", "2"]);
    assert!(count(&r, "server_rss_kib_max") > 0, "{r}");
}

#[test]
fn feed_fan_out_and_reads() {
    let r = run(&[
        "--server-env",
        "MAGPIE_FEEDS__BIG_THRESHOLD=30",
        "feed",
        "--followers",
        "50",
        "--posts",
        "2",
        "--authors",
        "6",
        "--big-authors",
        "2",
        "--big-followers",
        "31",
        "--reads",
        "20",
    ]);
    assert_eq!(count(&r, "delivered"), 100, "{r}");
    assert_eq!(r["latency"]["count"], 20, "{r}");
    let readable = r["extra"]["readable_by_all_ms"].as_array().expect("list");
    assert_eq!(readable.len(), 2, "{r}");
}

#[test]
fn search_indexes_the_traffic_and_answers_queries() {
    let r = run(&[
        "--server-env",
        "MAGPIE_SEARCH__COMMIT_MS=200",
        "search",
        "--pairs",
        "4",
        "--inflight",
        "2",
        "--queries",
        "40",
    ]);
    assert_eq!(r["latency"]["count"], 40, "{r}");
    let extra = &r["extra"];
    assert!(extra["chat_acked"].as_u64().unwrap_or_default() > 0, "{r}");
    assert!(
        extra["hits_per_query"].as_f64().unwrap_or_default() > 0.0,
        "{r}"
    );
    assert!(extra["index_bytes"].as_u64().unwrap_or_default() > 0, "{r}");
}
