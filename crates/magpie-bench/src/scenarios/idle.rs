//! `idle`: authenticated connections held open with nothing to say. What
//! an idle connection costs the server (memory per connection, CPU while
//! nothing happens) and how fast it takes new ones (connects a second,
//! ticket to `welcome`).
//!
//! Tokens are fetched before the clock starts; the connect rate counts the
//! ticket (`POST /v1/connect`), the socket and the handshake.

use super::Run;
use crate::link::Link;
use crate::meter::{Recorder, Snapshot};
use crate::report::Report;
use crate::setup::Setup;
use crate::wire;
use futures_util::{StreamExt, stream};
use magpie_sdk::HttpClient;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone, serde::Serialize)]
pub struct IdleArgs {
    /// Connections to open and hold (the measured window is how long).
    #[arg(long, default_value_t = 1000)]
    pub conns: usize,
    /// Connections per user (as many devices).
    #[arg(long, default_value_t = 1)]
    pub devices: usize,
    /// Connections opened at once.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
}

/// What the connect phase left: the held links, the failures, the
/// connect-time histogram and the snapshots at its start and halfway.
struct Opened {
    links: Vec<Link>,
    failed: u64,
    rec: Recorder,
    before: Snapshot,
    mid: Snapshot,
    /// How many were attempted in the first half.
    half: usize,
    connect_secs: f64,
}

pub async fn run(args: &IdleArgs, run: &Run) -> anyhow::Result<Report> {
    let mut setup = run.setup.clone();
    // Tens of thousands of sockets: keep the tool's own buffers small too.
    setup.read_buf = 1024;
    let apis = tokens(args, &setup).await?;
    let mut opened = open_in_halves(args, run, &setup, &apis).await;
    let held = opened.links.len();
    let tasks = hold(std::mem::take(&mut opened.links));
    // Let the connect burst settle before the idle window.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let a = Snapshot::take(&run.target);
    tokio::time::sleep(run.args.duration).await;
    let b = Snapshot::take(&run.target);
    for t in &tasks {
        t.abort();
    }
    report(args, run, opened, held, (&a, &b))
}

/// One API client (with its tokens) per connection, before the clock.
async fn tokens(args: &IdleArgs, setup: &Setup) -> anyhow::Result<Vec<HttpClient>> {
    let devices = args.devices.max(1);
    let users = setup.users(args.conns.div_ceil(devices)).await?;
    stream::iter(0..args.conns)
        .map(|i| {
            let acct = &users[i / devices];
            async move { setup.api(acct, &format!("d{}", i % devices), i).await }
        })
        .buffered(setup.concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Opens every connection, in two halves: the second half's growth is what
/// a connection costs once the server's caches (pages, buffers) have warmed
/// up with the first.
async fn open_in_halves(args: &IdleArgs, run: &Run, setup: &Setup, apis: &[HttpClient]) -> Opened {
    let before = Snapshot::take(&run.target);
    let mut out = Opened {
        links: Vec::with_capacity(apis.len()),
        failed: 0,
        rec: Recorder::default(),
        before,
        mid: before,
        half: apis.len() / 2,
        connect_secs: 0.0,
    };
    let t0 = Instant::now();
    let half = out.half;
    for (start, part) in [(0, &apis[..half]), (half, &apis[half..])] {
        let opened: Vec<(anyhow::Result<Link>, Duration)> = stream::iter(part.iter().enumerate())
            .map(|(i, api)| async move {
                let t = Instant::now();
                (setup.open(api, start + i).await, t.elapsed())
            })
            .buffer_unordered(args.connect_concurrency.max(1))
            .collect()
            .await;
        for (link, took) in opened {
            match link {
                Ok(l) => {
                    let _ = out.rec.delivery.record((took.as_micros() as u64).max(1));
                    out.links.push(l);
                }
                Err(_) => out.failed += 1,
            }
        }
        if start == 0 {
            out.mid = Snapshot::take(&run.target);
        }
    }
    out.connect_secs = t0.elapsed().as_secs_f64();
    out
}

/// Each connection answers the server's pings, nothing else.
fn hold(links: Vec<Link>) -> Vec<tokio::task::JoinHandle<()>> {
    links
        .into_iter()
        .map(|mut l| {
            tokio::spawn(async move {
                while let Some(f) = l.next().await {
                    if wire::decode(&f).is_some_and(|f| f.op == "ping") {
                        l.push(wire::pong);
                        if l.flush().await.is_err() {
                            break;
                        }
                    }
                }
            })
        })
        .collect()
}

/// The report: CPU over the idle window `a..b`, memory per connection from
/// the connect phase's snapshots.
fn report(
    args: &IdleArgs,
    run: &Run,
    mut opened: Opened,
    held: usize,
    (a, b): (&Snapshot, &Snapshot),
) -> anyhow::Result<Report> {
    let mut report = Report {
        scenario: "idle".into(),
        params: serde_json::to_value(args)?,
        unit: "conn".into(),
        errors: opened.failed,
        server_rss_kib_max: b.server_rss_kib.max(a.server_rss_kib),
        ..Report::default()
    };
    opened.rec.delivered = held as u64;
    report.measure(&opened.rec, a, b, run.args.threads);
    // The rate of an idle run is how fast connections were taken.
    report.rate = held as f64 / opened.connect_secs.max(1e-9);
    let kib_per = |from: u64, n: usize| {
        let kib = a.server_rss_kib.saturating_sub(from) as f64 / n.max(1) as f64;
        serde_json::Value::from((kib * 100.0).round() / 100.0)
    };
    report.server_rss_kib_start = opened.before.server_rss_kib;
    let extra = &mut report.extra;
    extra.insert("held".into(), held.into());
    extra.insert("connect_secs".into(), opened.connect_secs.into());
    extra.insert(
        "server_kib_per_conn".into(),
        kib_per(opened.before.server_rss_kib, held),
    );
    extra.insert(
        "server_kib_per_conn_marginal".into(),
        kib_per(opened.mid.server_rss_kib, held.saturating_sub(opened.half)),
    );
    extra.insert("idle_server_cores".into(), report.server.cores.into());
    report
        .notes
        .push("latency = connect time (ticket to welcome); cpu = the idle window".into());
    Ok(report)
}
