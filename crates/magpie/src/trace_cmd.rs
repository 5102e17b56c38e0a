//! `magpie trace <server_id>`: asks a node's internal API for the hops of
//! one message on every node (docs/observability.md) and prints them, one
//! line per hop, or the report as JSON with `--json`.

use crate::config::{self, ServeArgs};
use anyhow::{Context, bail};
use magpie_proto::http::TraceReport;

#[derive(clap::Args)]
pub struct TraceArgs {
    /// The message's server id (`server_id` in its `sent` answer or push).
    pub server_id: i64,
    /// The internal API to ask (default: `internal.listen` of the
    /// configuration below, on loopback).
    #[arg(long)]
    pub url: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub serve: ServeArgs,
}

pub async fn run(args: TraceArgs) -> anyhow::Result<()> {
    let cfg = config::load(&args.serve)?;
    let base = match args.url {
        Some(u) => u,
        None if cfg.internal.listen.is_empty() => bail!("internal.listen is empty: give --url"),
        None => format!("http://{}", cfg.internal.listen),
    };
    let key = &cfg.internal.service_key;
    if key.is_empty() {
        bail!("internal.service_key is not set (MAGPIE_INTERNAL__SERVICE_KEY)");
    }
    let url = format!(
        "{}/internal/v1/trace/{}",
        base.trim_end_matches('/'),
        args.server_id
    );
    let resp = reqwest::Client::new()
        .get(&url)
        .bearer_auth(key)
        .send()
        .await
        .with_context(|| format!("asking {url}"))?;
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() {
        bail!("{status}: {text}");
    }
    let report: TraceReport = serde_json::from_str(&text)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

/// One line per hop, times relative to the first.
fn render(r: &TraceReport) -> String {
    let mut out = format!(
        "message {}  trace {}  conversation {}  seq {}\n",
        r.server_id,
        r.trace_id.as_deref().unwrap_or("-"),
        r.conv.as_ref().map_or("-".to_string(), |c| c.to_string()),
        r.seq.map_or("-".to_string(), |s| s.to_string()),
    );
    let t0 = r.hops.first().map_or(0, |h| h.at_us);
    for h in &r.hops {
        let mut who = String::new();
        if let Some(u) = h.user {
            who.push_str(&format!(" user {u}"));
        }
        if let Some(d) = &h.device {
            who.push_str(&format!(" device {d}"));
        }
        if let Some(t) = &h.transport {
            who.push_str(&format!(" over {t}"));
        }
        if let Some(d) = &h.detail {
            who.push_str(&format!(" ({d})"));
        }
        let ms = (h.at_us - t0) as f64 / 1000.0;
        out.push_str(&format!(
            "{ms:>10.3} ms  {:<10} {:<12}{who}\n",
            h.hop, h.node
        ));
    }
    if r.hops.is_empty() {
        out.push_str(
            "no node remembers this message (older than every trace buffer, or no such id)\n",
        );
    }
    if !r.missing.is_empty() {
        out.push_str(&format!("not answering: {}\n", r.missing.join(", ")));
    }
    out
}
