//! `feed`: follow feeds (docs/feeds.md). Two parts, each set up first and
//! not measured:
//!
//! - **Fan-out**: one account with `--followers` followers, all active
//!   (imported on the internal API, each reading its feed once), posts
//!   `--posts` times, one post at a time. Per post: the time from the send
//!   until the last follower's inbox holds it (the server's
//!   `magpie_feed_inbox_writes_total` grew by the follower count, polled),
//!   i.e. until the post is readable by all from their inboxes; the rate
//!   is inbox writes a second over the posts' fan-out windows.
//! - **Read**: one reader follows `--authors` authors with
//!   `--posts-per-author` posts each, `--big-authors` of them big (given
//!   `--big-followers` followers, above the server's
//!   `feeds.big_threshold`); its first read (a pull) is timed, then
//!   `--reads` reads of the first page, `--read-concurrency` at a time.
//!
//! Followers that only need to exist as edges are ids without accounts,
//! far above any real user id.

use super::Run;
use crate::meter::{Recorder, Snapshot};
use crate::report::{Latency, Report};
use anyhow::{Context, bail};
use futures_util::{StreamExt, stream};
use hdrhistogram::Histogram;
use magpie_core::ClientMsgId;
use magpie_sdk::HttpClient;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone, serde::Serialize)]
pub struct FeedArgs {
    /// Followers of the account whose posts are timed, all active.
    #[arg(long, default_value_t = 100_000)]
    pub followers: usize,
    /// Posts of that account, one after another.
    #[arg(long, default_value_t = 5)]
    pub posts: usize,
    /// Authors the reader follows.
    #[arg(long, default_value_t = 1000)]
    pub authors: usize,
    /// Of those, how many are big.
    #[arg(long, default_value_t = 20)]
    pub big_authors: usize,
    /// Followers given to each big author (above `feeds.big_threshold`).
    #[arg(long, default_value_t = 10_001)]
    pub big_followers: usize,
    /// Posts of each followed author before the reads.
    #[arg(long, default_value_t = 3)]
    pub posts_per_author: usize,
    /// Timed reads of the reader's first page.
    #[arg(long, default_value_t = 2000)]
    pub reads: usize,
    /// Reads in flight at once.
    #[arg(long, default_value_t = 4)]
    pub read_concurrency: usize,
    /// Posts per page.
    #[arg(long, default_value_t = 20)]
    pub page: usize,
}

const INBOX_WRITES: &str = "magpie_feed_inbox_writes_total";
/// How long one post's fan-out may take before the run gives up.
const FANOUT_LIMIT: Duration = Duration::from_secs(300);

pub async fn run(args: &FeedArgs, run: &Run) -> anyhow::Result<Report> {
    let setup = &run.setup;
    let accounts = setup.users(2 + args.authors).await?;
    let (star, reader, authors) = (&accounts[0], &accounts[1], &accounts[2..]);
    // Edge-only followers: ids far above the users this run registered.
    let base = 1_000_000_000_000 + i64::from(fake_base()) * 10_000_000;
    let fake =
        |from: usize, n: usize| -> Vec<i64> { (from..from + n).map(|i| base + i as i64).collect() };

    // Fan-out: the audience, a first post (which flags a big account and
    // is pushed to nobody yet), then every follower reads once.
    let followers = fake(0, args.followers);
    let t = Instant::now();
    setup.import_follows(star.id, &followers, false).await?;
    let import_secs = t.elapsed().as_secs_f64();
    let star_api = setup.api(star, "bench", 0).await?;
    let writes = setup.counter(INBOX_WRITES).await?;
    post(&star_api, "warm-up").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t = Instant::now();
    setup.import_follows(star.id, &followers, true).await?;
    let activate_secs = t.elapsed().as_secs_f64();
    if setup.counter(INBOX_WRITES).await? > writes + 1.0 {
        bail!("the warm-up post was pushed to readers that never read");
    }

    let a = Snapshot::take(&run.target);
    let (mut readable_ms, mut fanout_secs) = (Vec::new(), 0.0);
    for i in 0..args.posts {
        let before = setup.counter(INBOX_WRITES).await?;
        let t0 = Instant::now();
        post(&star_api, &format!("post {i}")).await?;
        let acked = t0.elapsed();
        loop {
            let now = setup.counter(INBOX_WRITES).await?;
            if now >= before + args.followers as f64 {
                break;
            }
            if t0.elapsed() > FANOUT_LIMIT {
                bail!(
                    "post {i}: {} of {} inbox writes",
                    now - before,
                    args.followers
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let done = t0.elapsed();
        readable_ms.push(done.as_secs_f64() * 1e3);
        fanout_secs += (done - acked).as_secs_f64();
    }
    let b = Snapshot::take(&run.target);

    // Read: the reader's authors, their posts, its reads.
    let big = args.big_authors.min(authors.len());
    for (i, author) in authors[..big].iter().enumerate() {
        let audience = fake(args.followers + i * args.big_followers, args.big_followers);
        setup.import_follows(author.id, &audience, false).await?;
    }
    stream::iter(authors)
        .map(|author| setup.import_follows(author.id, std::slice::from_ref(&reader.id), false))
        .buffer_unordered(setup.concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    let posted: Vec<anyhow::Result<()>> = stream::iter(authors.iter().enumerate())
        .map(|(i, author)| async move {
            let api = setup.api(author, "bench", i).await?;
            for p in 0..args.posts_per_author {
                post(&api, &format!("author {i} post {p}")).await?;
            }
            Ok(())
        })
        .buffer_unordered(setup.concurrency)
        .collect()
        .await;
    posted.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    // Let the fan-out of those posts (and the big authors' flags) settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let reader_api = setup.api(reader, "bench", 1).await?;
    let t = Instant::now();
    let first = reader_api.feed(None, Some(args.page)).await?;
    let cold_ms = t.elapsed().as_secs_f64() * 1e3;
    if first.posts.len() != args.page.min(args.authors * args.posts_per_author) {
        bail!("the reader's first page holds {} posts", first.posts.len());
    }
    let reads = timed_reads(&reader_api, args).await?;

    let writes = (args.posts * args.followers) as u64;
    let mut rec = Recorder {
        delivered: writes,
        ..Recorder::default()
    };
    let _ = rec.delivery.add(&reads);
    let mut report = Report {
        scenario: "feed".into(),
        params: serde_json::to_value(args)?,
        unit: "inbox write".into(),
        sent: args.posts as u64,
        acked: args.posts as u64,
        delivered: writes,
        ..Report::default()
    };
    report.measure(&rec, &a, &b, run.args.threads);
    report.rate = writes as f64 / fanout_secs.max(1e-9);
    report.latency = Latency::of(&reads);
    let extra = &mut report.extra;
    let json = |v: f64| serde_json::json!((v * 10.0).round() / 10.0);
    let readable: Vec<_> = readable_ms.iter().map(|v| json(*v)).collect();
    extra.insert("readable_by_all_ms".into(), readable.into());
    extra.insert(
        "import_follows_per_s".into(),
        json(args.followers as f64 / import_secs),
    );
    extra.insert(
        "activate_reads_per_s".into(),
        json(args.followers as f64 / activate_secs),
    );
    extra.insert("reader_cold_read_ms".into(), json(cold_ms));
    report.notes.push(
        "rate: inbox writes a second during the posts' fan-out; latency: the reader's first-page reads; cpu: over the fan-out posts".into(),
    );
    Ok(report)
}

async fn post(api: &HttpClient, body: &str) -> anyhow::Result<()> {
    let out = api.post(ClientMsgId::new_v7(), body).await?;
    if out.duplicate {
        bail!("a new post answered as a duplicate");
    }
    Ok(())
}

/// `--reads` first-page reads, their latencies in µs.
async fn timed_reads(api: &HttpClient, args: &FeedArgs) -> anyhow::Result<Histogram<u64>> {
    let times: Vec<anyhow::Result<u64>> = stream::iter(0..args.reads)
        .map(|_| async move {
            let t = Instant::now();
            let page = api.feed(None, Some(args.page)).await?;
            let us = t.elapsed().as_micros() as u64;
            if page.posts.len() != args.page.min(args.authors * args.posts_per_author) {
                bail!("a read held {} posts", page.posts.len());
            }
            Ok(us)
        })
        .buffer_unordered(args.read_concurrency.max(1))
        .collect()
        .await;
    let mut h = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).context("histogram")?;
    for us in times {
        h.record(us?.max(1)).context("record")?;
    }
    Ok(h)
}

/// A per-run offset for the edge-only ids, so runs against one server do
/// not share followers.
fn fake_base() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos % 10_000
}
