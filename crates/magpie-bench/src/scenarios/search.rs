//! `search`: message search (docs/search.md). Two parts:
//!
//! - **Indexing while chat flows**: the `chat` scenario's traffic (its
//!   flags, bodies padded with words: `wire::VOCABULARY`), while the
//!   server's `magpie_search_indexed_total` is sampled. Reported: the chat
//!   rate, the indexing rate over the traffic, and how long after the
//!   traffic stopped the index held every acknowledged message (plus the
//!   server's `search.commit_ms` before it is searchable). A long run
//!   (`--duration`) builds the corpus the queries then read.
//! - **Queries**: `--queries` searches by the chat's users (each a party of
//!   one conversation, so its scope is its own messages among all), one or
//!   two words of the vocabulary (frequent, rare, Chinese, English),
//!   newest first and by relevance, `--query-concurrency` at a time;
//!   their latency is the report's.
//!
//! The index's size on disk is reported when the tool started the server
//! (it knows the data directory).

use super::Run;
use super::chat::{self, ChatArgs};
use crate::meter::{Recorder, Snapshot};
use crate::report::{Latency, Report};
use crate::wire::{VOCABULARY, word};
use anyhow::{Context, bail};
use futures_util::{StreamExt, stream};
use hdrhistogram::Histogram;
use magpie_proto::search::{SearchOrder, SearchParams};
use magpie_sdk::HttpClient;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone, serde::Serialize)]
pub struct SearchArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub chat: ChatArgs,
    /// Timed queries after the traffic.
    #[arg(long, default_value_t = 2000)]
    pub queries: usize,
    /// Queries in flight at once.
    #[arg(long, default_value_t = 4)]
    pub query_concurrency: usize,
    /// Hits per page asked for.
    #[arg(long, default_value_t = 20)]
    pub page: usize,
    /// Before the queries, wait up to this long for the server to go
    /// quiet (its index merges done): 0s queries at once, merges and all.
    #[arg(long, default_value = "0s", value_parser = super::parse_duration)]
    #[serde(serialize_with = "secs")]
    pub settle: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Server CPU below this (cores, over a second) counts as quiet.
const QUIET_CORES: f64 = 0.1;

const INDEXED: &str = "magpie_search_indexed_total";
/// How long the index may take to catch up once the traffic stopped.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(600);
/// Users that run queries (each its own HTTP client).
const QUERIERS: usize = 16;

pub async fn run(args: &SearchArgs, run: &Run) -> anyhow::Result<Report> {
    let setup = &run.setup;
    let users = setup.users(args.chat.pairs * 2).await?;
    let before = setup.counter(INDEXED).await?;
    let t0 = Instant::now();
    let samples = std::sync::Mutex::new(Vec::<(f64, f64)>::new());
    let sampler = async {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if let Ok(v) = setup.counter(INDEXED).await {
                let at = t0.elapsed().as_secs_f64();
                samples.lock().expect("samples").push((at, v - before));
            }
        }
    };
    let traffic = tokio::select! {
        r = chat::run_with(&args.chat, run, &users) => r?,
        () = sampler => unreachable!("the sampler never ends"),
    };
    let stopped = t0.elapsed().as_secs_f64();
    let acked = traffic.acked as f64;
    let caught_up = loop {
        let now = setup.counter(INDEXED).await? - before;
        if now >= acked {
            break t0.elapsed().as_secs_f64();
        }
        if t0.elapsed().as_secs_f64() - stopped > CATCH_UP_LIMIT.as_secs_f64() {
            bail!("the index holds {now} of {acked} messages after the traffic");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let indexed_per_s = indexing_rate(&samples.lock().expect("samples"), stopped);

    // The queries, once the last commit made everything searchable (and,
    // with --settle, the merges are over).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let settled = Instant::now();
    while settled.elapsed() < args.settle {
        let before = run.target.cpu().0;
        tokio::time::sleep(Duration::from_secs(1)).await;
        if run.target.cpu().0 - before < QUIET_CORES {
            break;
        }
    }
    let settle_secs = settled.elapsed().as_secs_f64();
    let mut apis = Vec::new();
    for (i, u) in users.iter().take(QUERIERS).enumerate() {
        apis.push(setup.api(u, "search", i).await?);
    }
    let a = Snapshot::take(&run.target);
    let t = Instant::now();
    let (hist, hits) = timed_queries(&apis, args).await?;
    let secs = t.elapsed().as_secs_f64();
    let b = Snapshot::take(&run.target);
    if hits == 0 {
        bail!("no query found anything: was the traffic indexed?");
    }

    let mut rec = Recorder {
        delivered: args.queries as u64,
        ..Recorder::default()
    };
    let _ = rec.delivery.add(&hist);
    let mut report = Report {
        scenario: "search".into(),
        params: serde_json::to_value(args)?,
        unit: "query".into(),
        sent: args.queries as u64,
        acked: args.queries as u64,
        delivered: args.queries as u64,
        ..Report::default()
    };
    report.measure(&rec, &a, &b, run.args.threads);
    report.rate = args.queries as f64 / secs.max(1e-9);
    report.latency = Latency::of(&hist);
    let round = |v: f64| serde_json::json!((v * 10.0).round() / 10.0);
    let extra = &mut report.extra;
    extra.insert("chat_msgs_per_s".into(), round(traffic.rate));
    extra.insert("chat_p99_ms".into(), round(traffic.latency.p99_ms));
    extra.insert("chat_acked".into(), traffic.acked.into());
    extra.insert("chat_lost".into(), traffic.lost.into());
    extra.insert("indexed_per_s".into(), round(indexed_per_s));
    extra.insert("catch_up_ms".into(), round((caught_up - stopped) * 1e3));
    if !args.settle.is_zero() {
        extra.insert("settled_after_s".into(), round(settle_secs));
    }
    extra.insert(
        "hits_per_query".into(),
        round(hits as f64 / args.queries as f64),
    );
    if let Some(bytes) = run.target.data_dir().map(|d| dir_bytes(&d.join("search"))) {
        let docs = setup.counter(INDEXED).await?;
        extra.insert("index_bytes".into(), bytes.into());
        extra.insert("index_documents".into(), docs.into());
        if docs > 0.0 {
            let per_million = bytes as f64 / docs * 1e6 / (1 << 20) as f64;
            extra.insert("index_mib_per_million".into(), round(per_million));
        }
    }
    report.lost = traffic.lost;
    report.duplicated = traffic.duplicated;
    report.notes.push(
        "rate and latency: the queries; chat_*: the traffic indexed meanwhile; indexed_per_s: the index's intake while the traffic ran; catch_up_ms: after the traffic stopped, until the index held every acknowledged message".into(),
    );
    Ok(report)
}

/// Messages a second into the index between its first sample that moved
/// and the last one before the traffic stopped.
fn indexing_rate(samples: &[(f64, f64)], stopped: f64) -> f64 {
    let moving: Vec<&(f64, f64)> = samples
        .iter()
        .filter(|(t, v)| *v > 0.0 && *t <= stopped)
        .collect();
    match (moving.first(), moving.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) / (b.0 - a.0),
        _ => 0.0,
    }
}

/// The query texts: one or two words, the first from anywhere in the
/// vocabulary (frequent and rare alike), every fourth by relevance.
fn query(i: usize, page: usize) -> SearchParams {
    let first = VOCABULARY[i % VOCABULARY.len()];
    let text = if i % 3 == 0 {
        format!("{first} {}", word(i as u64, 7))
    } else {
        first.to_string()
    };
    let order = if i % 4 == 0 {
        SearchOrder::Relevance
    } else {
        SearchOrder::Newest
    };
    SearchParams {
        text,
        order,
        limit: Some(page),
        ..Default::default()
    }
}

/// `--queries` queries spread over the clients: their latencies in µs,
/// and the hits they returned.
async fn timed_queries(
    apis: &[HttpClient],
    args: &SearchArgs,
) -> anyhow::Result<(Histogram<u64>, u64)> {
    let times: Vec<anyhow::Result<(u64, u64)>> = stream::iter(0..args.queries)
        .map(|i| async move {
            let q = query(i, args.page);
            let t = Instant::now();
            let page = apis[i % apis.len()].search(&q).await?;
            Ok((t.elapsed().as_micros() as u64, page.hits.len() as u64))
        })
        .buffer_unordered(args.query_concurrency.max(1))
        .collect()
        .await;
    let mut h = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).context("histogram")?;
    let mut hits = 0;
    for r in times {
        let (us, n) = r?;
        h.record(us.max(1)).context("record")?;
        hits += n;
    }
    Ok((h, hits))
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
