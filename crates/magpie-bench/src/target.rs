//! The server under test: one the tool starts itself (embedded defaults, a
//! fresh data directory, a service key and an internal listener so users get
//! tokens without password hashing), or nodes given by URL. Either way the
//! tool finds the local processes behind them, so it can report their CPU
//! and memory.

use crate::procfs;
use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

#[derive(clap::Args, Debug, Clone)]
pub struct TargetArgs {
    /// HTTP base URL of a running node (repeat for several nodes: clients
    /// are spread over them). Without it the tool starts its own server.
    #[arg(long = "url", global = true)]
    pub urls: Vec<String>,
    /// Internal API base URL of a node given by --url (its `internal.listen`;
    /// repeat in the same order as --url). With --service-key, tokens are
    /// issued there; without both, users log in with their password.
    #[arg(long = "internal-url", global = true)]
    pub internal_urls: Vec<String>,
    /// The `magpie` binary to start (default: next to this one).
    #[arg(long, global = true)]
    pub server_bin: Option<PathBuf>,
    /// Extra `KEY=VALUE` environment for the server the tool starts
    /// (configuration keys as `MAGPIE_*`, see docs/config.md).
    #[arg(long = "server-env", global = true)]
    pub server_env: Vec<String>,
    /// Start the server with the production password hash parameters
    /// (otherwise cheap ones, so setting up thousands of users is quick).
    #[arg(long, global = true)]
    pub real_hash: bool,
    /// The internal API's service key of a server given by URL: tokens are
    /// then issued without password hashing.
    #[arg(long, global = true, env = "MAGPIE_BENCH_SERVICE_KEY")]
    pub service_key: Option<String>,
    /// More processes whose CPU is reported beside the server's (e.g. the
    /// PostgreSQL, Redis and NATS of a cluster run).
    #[arg(long = "watch-pid", global = true)]
    pub watch_pids: Vec<u32>,
    /// Nodes to start (without --url). More than one only makes sense on
    /// shared engines: give MAGPIE_STORE, MAGPIE_STATE and MAGPIE_BUS with
    /// --server-env.
    #[arg(long, global = true, default_value_t = 1)]
    pub nodes: usize,
}

/// The server(s) a run talks to.
pub struct Target {
    /// HTTP base URLs, one per node.
    pub urls: Vec<String>,
    /// Internal API base URLs, one per node in the order of `urls`, or none.
    pub internal_urls: Vec<String>,
    /// The local Magpie processes behind them (may be empty for remote ones).
    pub pids: Vec<u32>,
    /// Other processes to account for.
    pub watched: Vec<u32>,
    pub service_key: Option<String>,
    children: Vec<Child>,
    /// The started servers' data directories, removed when the run ends.
    data_dirs: Vec<tempfile::TempDir>,
}

const SERVICE_KEY: &str = "magpie-bench-service-key-0123456789";

impl Target {
    pub async fn open(args: &TargetArgs, real_hash: bool) -> anyhow::Result<Target> {
        if args.urls.is_empty() {
            return Self::spawn(args, real_hash || args.real_hash).await;
        }
        if !args.internal_urls.is_empty() && args.internal_urls.len() != args.urls.len() {
            bail!(
                "{} --internal-url for {} --url: give one per node, in the same order",
                args.internal_urls.len(),
                args.urls.len()
            );
        }
        match (&args.service_key, args.internal_urls.is_empty()) {
            (Some(_), true) => eprintln!(
                "note: --service-key without --internal-url: tokens come from password logins"
            ),
            (None, false) => eprintln!(
                "note: --internal-url without --service-key: tokens come from password logins"
            ),
            _ => {}
        }
        let mut pids = Vec::new();
        for url in &args.urls {
            let port = url
                .rsplit(':')
                .next()
                .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok());
            if let Some(pid) = port.and_then(procfs::pid_listening_on)
                && !pids.contains(&pid)
            {
                pids.push(pid);
            }
        }
        if pids.is_empty() {
            eprintln!(
                "note: no local process found behind --url: server CPU and memory are not reported"
            );
        }
        Ok(Target {
            urls: args.urls.clone(),
            internal_urls: args.internal_urls.clone(),
            pids,
            watched: args.watch_pids.clone(),
            service_key: args.service_key.clone(),
            children: Vec::new(),
            data_dirs: Vec::new(),
        })
    }

    async fn spawn(args: &TargetArgs, real_hash: bool) -> anyhow::Result<Target> {
        let bin = match &args.server_bin {
            Some(b) => b.clone(),
            None => std::env::current_exe()?.with_file_name("magpie"),
        };
        if !bin.exists() {
            bail!(
                "{} not found: build it (cargo build --release -p magpie) or pass --server-bin",
                bin.display()
            );
        }
        let mut target = Target {
            urls: Vec::new(),
            internal_urls: Vec::new(),
            pids: Vec::new(),
            watched: args.watch_pids.clone(),
            service_key: Some(SERVICE_KEY.into()),
            children: Vec::new(),
            data_dirs: Vec::new(),
        };
        for n in 1..=args.nodes.max(1) {
            let data = tempfile::Builder::new().prefix("magpie-bench-").tempdir()?;
            let mut cmd = Command::new(&bin);
            cmd.args(["serve", "--node", &format!("bench-{n}"), "--node-num"])
                .arg(n.to_string())
                .arg("--data-dir")
                .arg(data.path())
                .args([
                    "--http-listen",
                    "127.0.0.1:0",
                    "--tcp-listen",
                    "127.0.0.1:0",
                    "--internal-listen",
                    "127.0.0.1:0",
                ])
                .env("MAGPIE_INTERNAL__SERVICE_KEY", SERVICE_KEY)
                .env(
                    "MAGPIE_AUTH__JWT_SECRET",
                    "magpie-bench-jwt-secret-0123456789abcdef",
                )
                .env("MAGPIE_LOG", "warn")
                // A load driver sends far beyond a person's rate per user:
                // the per-user buckets stay on (their cost is measured) but
                // never refuse (docs/edge.md).
                .env("MAGPIE_GUARD__RATES__SENDS_USER__RATE", "1000000")
                .env("MAGPIE_GUARD__RATES__SENDS_USER__BURST", "1000000")
                .env("MAGPIE_GUARD__RATES__FRAMES_USER__RATE", "1000000")
                .env("MAGPIE_GUARD__RATES__FRAMES_USER__BURST", "1000000")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true);
            if !real_hash {
                cmd.env("MAGPIE_AUTH__ARGON2_M_KIB", "64")
                    .env("MAGPIE_AUTH__ARGON2_T", "1");
            }
            for kv in &args.server_env {
                let (k, v) = kv
                    .split_once('=')
                    .with_context(|| format!("--server-env {kv:?}: expected KEY=VALUE"))?;
                cmd.env(k, v);
            }
            let mut child = cmd
                .spawn()
                .with_context(|| format!("start {}", bin.display()))?;
            let stdout = child.stdout.take().context("server stdout")?;
            let mut lines = BufReader::new(stdout).lines();
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .context("the server did not start within 30 s")??
                .context("the server exited at start")?;
            let started: serde_json::Value = serde_json::from_str(&line)?;
            let http = started["http"]
                .as_str()
                .context("no http address in the server's start line")?;
            target.urls.push(format!("http://{http}"));
            let internal = started["internal"]
                .as_str()
                .context("no internal address in the server's start line")?;
            target.internal_urls.push(format!("http://{internal}"));
            target.pids.push(child.id().context("server pid")?);
            // Keep draining stdout so the server never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            target.children.push(child);
            target.data_dirs.push(data);
        }
        Ok(target)
    }

    /// CPU seconds of the Magpie processes and of the watched ones.
    pub fn cpu(&self) -> (f64, f64) {
        let sum = |pids: &[u32]| pids.iter().filter_map(|p| procfs::cpu_secs(*p)).sum();
        (sum(&self.pids), sum(&self.watched))
    }

    /// The first node's data directory, when the tool started the nodes.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.data_dirs.first().map(|d| d.path())
    }

    /// Resident memory of the Magpie processes, KiB.
    pub fn rss_kib(&self) -> u64 {
        self.pids.iter().filter_map(|p| procfs::rss_kib(*p)).sum()
    }

    /// Stops the servers the tool started (SIGTERM, then waits).
    pub async fn stop(mut self) {
        for child in &mut self.children {
            if let Some(pid) = child.id() {
                // A graceful stop through kill(1); SIGKILL on drop is the fallback.
                let _ = Command::new("kill").arg(pid.to_string()).status().await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }
}
