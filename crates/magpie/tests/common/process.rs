//! The real `magpie` binary as a child process (kill -9, SIGTERM, a
//! restart on the same data directory), speaking to it over HTTP through a
//! `TestServer` whose `running` is None.

use super::{TestServer, backends};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub struct Node {
    pub child: Child,
    pub server: TestServer,
}

/// A node left running by a failed test would hold the test's output pipe
/// open (and CI with it): always kill it.
impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `magpie serve` on `dir`; the returned TestServer only talks HTTP
/// (its `running` is None).
pub fn spawn_node(dir: &tempfile::TempDir, env: &[(&str, &str)]) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_magpie"));
    cmd.envs(env.iter().copied());
    cmd.arg("serve");
    if let Some(ns) = backends::namespace(dir.path()) {
        cmd.args(ns.args());
    }
    spawn_cmd(cmd, dir)
}

pub fn spawn_cmd(cmd: Command, dir: &tempfile::TempDir) -> (Child, String) {
    let (child, line) = spawn_cmd_line(cmd, dir);
    (child, format!("http://{}", line["http"].as_str().unwrap()))
}

/// `spawn_cmd`, answering the node's whole start line (its addresses).
/// `MAGPIE_LOG` is `warn` unless the command sets it.
pub fn spawn_cmd_line(mut cmd: Command, dir: &tempfile::TempDir) -> (Child, serde_json::Value) {
    if !cmd.get_envs().any(|(k, _)| k == "MAGPIE_LOG") {
        cmd.env("MAGPIE_LOG", "warn");
    }
    let mut child = cmd
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--tcp-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("MAGPIE_AUTH__ARGON2_M_KIB", "64")
        .env("MAGPIE_AUTH__ARGON2_T", "1")
        // Bursts far beyond a person's rate from one user (docs/edge.md).
        .env("MAGPIE_GUARD__RATES__SENDS_USER__RATE", "1000000")
        .env("MAGPIE_GUARD__RATES__SENDS_USER__BURST", "1000000")
        .env("MAGPIE_GUARD__RATES__FRAMES_USER__RATE", "1000000")
        .env("MAGPIE_GUARD__RATES__FRAMES_USER__BURST", "1000000")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.path().join("magpie.log")).unwrap())
        .spawn()
        .expect("start magpie");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
        let log = std::fs::read_to_string(dir.path().join("magpie.log")).unwrap_or_default();
        panic!("no listening line ({e}); the node said:\n{log}")
    });
    (child, v)
}

pub fn node(dir: tempfile::TempDir) -> Node {
    node_with(dir, &[])
}

/// `node` with more environment (configuration keys as `MAGPIE_*`).
pub fn node_with(dir: tempfile::TempDir, env: &[(&str, &str)]) -> Node {
    let ns = backends::namespace(dir.path());
    let (child, base) = spawn_node(&dir, env);
    Node {
        child,
        server: TestServer {
            running: None,
            base,
            dir,
            http: reqwest::Client::new(),
            ns,
        },
    }
}
