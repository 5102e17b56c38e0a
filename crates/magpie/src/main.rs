//! `magpie`: the server binary and composition root.
//!
//! `magpie serve` runs every role in one process with the embedded backends
//! unless configuration names others. Configuration layers: defaults < TOML
//! file (`--config`) < `MAGPIE_*` environment (`__` separates sections) < flags.

mod allocator;
mod config;
mod trace_cmd;

use clap::{Parser, Subcommand};
use std::time::Duration;

#[derive(Parser)]
#[command(name = "magpie", version, about = "Magpie instant-messaging server")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a node with every role (HTTP API, WebSocket and TCP listeners, logic, workers).
    #[command(after_long_help = config::keys_help())]
    Serve(config::ServeArgs),
    /// Print the effective configuration (after file, environment and flags) as JSON.
    Config(config::ServeArgs),
    /// Create or upgrade the durable store's schema (also done at start), then exit.
    Migrate(config::ServeArgs),
    /// Print the hops of one message on every node (accepted, durable,
    /// published, pushed, delivered, read, indexed), from the nodes' trace buffers.
    Trace(trace_cmd::TraceArgs),
}

/// Logs to stderr, filtered by `MAGPIE_LOG` (default `info`); the filter
/// can be replaced at run time (`PUT /internal/v1/log`, `magpie_server::logs`).
fn init_logging(json: bool) {
    use tracing_subscriber::{
        EnvFilter, fmt, layer::SubscriberExt, reload, util::SubscriberInitExt,
    };
    let initial = std::env::var("MAGPIE_LOG").unwrap_or_else(|_| "info".into());
    let filter = EnvFilter::try_new(&initial).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .init();
    } else {
        registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .init();
    }
    magpie_server::logs::install(&initial, move |directives| {
        let f = EnvFilter::try_new(directives).map_err(|e| e.to_string())?;
        handle.reload(f).map_err(|e| e.to_string())
    });
}

async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// A URL (or the space-separated URLs of a shard map) without passwords,
/// for printing.
fn redact(urls: &str) -> String {
    let one = |url: &str| match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    };
    urls.split_whitespace()
        .map(one)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> anyhow::Result<()> {
    // Before the runtime's threads: allocator options are not thread-safe.
    // On Linux this ran before `main` already (see `allocator::tune`).
    #[cfg(not(target_os = "linux"))]
    allocator::tune();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Config(args) => {
            let mut cfg = config::load(&args)?;
            // Secrets are shown as set or not, never printed.
            for secret in [&mut cfg.auth.jwt_secret, &mut cfg.internal.service_key] {
                if !secret.is_empty() {
                    *secret = "(set)".into();
                }
            }
            println!("{}", serde_json::to_string_pretty(&cfg)?);
        }
        Cmd::Migrate(args) => {
            init_logging(args.log_json);
            let cfg = config::load(&args)?;
            std::fs::create_dir_all(&cfg.data_dir)?;
            // Opening a store applies its migrations.
            magpie_store::Store::open_with(&cfg.store_url(), &cfg.store_options()).await?;
            println!(
                "{}",
                serde_json::json!({"event": "migrated", "store": redact(&cfg.store_url())})
            );
        }
        Cmd::Trace(args) => trace_cmd::run(args).await?,
        Cmd::Serve(args) => {
            init_logging(args.log_json);
            let cfg = config::load(&args)?;
            let grace = Duration::from_millis(args.shutdown_grace_ms);
            let running = magpie_server::start(cfg).await?;
            // Machine-readable start line: tests and scripts read the ports from it.
            println!(
                "{}",
                serde_json::json!({
                    "event": "listening",
                    "http": running.http_addr.to_string(),
                    "tcp": running.tcp_addr.map(|a| a.to_string()),
                    "internal": running.internal_addr.map(|a| a.to_string()),
                })
            );
            terminated().await;
            tracing::info!("shutting down");
            running.shutdown(grace).await;
        }
    }
    Ok(())
}
