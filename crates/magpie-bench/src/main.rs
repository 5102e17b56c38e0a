//! `magpie-bench`: Magpie's load tool.
//!
//! Each scenario sets up users and connections first (not measured), runs
//! traffic for a warm-up and a measured window, and reports the rate, the
//! end-to-end latency (from a stamp in each message body: hdrhistogram
//! percentiles), lost and duplicated messages (must be zero), and the CPU
//! and memory of the server and of the tool itself. Without `--url` it
//! starts a `magpie serve` of its own on a fresh data directory.
//!
//! docs/performance.md lists the figures measured with it and how.

mod link;
mod meter;
mod procfs;
mod report;
mod scenarios;
mod setup;
mod target;
mod wire;

use clap::{Parser, Subcommand};
use scenarios::{Run, RunArgs};
use setup::Setup;
use target::{Target, TargetArgs};

#[derive(Parser)]
#[command(
    name = "magpie-bench",
    version,
    about = "Load tool for the Magpie IM server"
)]
struct Cli {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    run: RunArgs,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// One-to-one chat between pairs: closed loop (--inflight) or open loop (--rate).
    Chat(scenarios::chat::ChatArgs),
    /// Authenticated connections held idle: memory per connection, idle CPU, connect rate.
    Idle(scenarios::idle::IdleArgs),
    /// One group with every member online; senders at a fixed total rate.
    Group(scenarios::group::GroupArgs),
    /// One super group: a few members online, many offline.
    Supergroup(scenarios::group::SuperArgs),
    /// One live room: an audience and senders at a fixed total rate.
    Liveroom(scenarios::room::RoomArgs),
    /// Follow feeds: a post's fan-out to an active audience, and home-feed
    /// reads of a user following many authors.
    Feed(scenarios::feed::FeedArgs),
    /// Search: chat traffic with text bodies while the index keeps up, then
    /// timed queries over what was indexed.
    Search(scenarios::search::SearchArgs),
    /// A burst of concurrent logins with the production password hash: the
    /// server's memory must stay bounded.
    Login(scenarios::login::LoginArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = if cli.run.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.run.threads)
            .enable_all()
            .build()?
    };
    rt.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let real_hash = matches!(cli.scenario, Scenario::Login(_));
    let target = Target::open(&cli.target, real_hash).await?;
    let concurrency = cli.run.setup_concurrency.max(1);
    let setup = Setup::new(&target, cli.run.transport, cli.run.source_ips, concurrency)?;
    wire::pad_with_words(cli.run.body_words || matches!(cli.scenario, Scenario::Search(_)));
    let run = Run {
        target,
        setup,
        args: cli.run,
    };
    let report = match &cli.scenario {
        Scenario::Chat(a) => scenarios::chat::run(a, &run).await,
        Scenario::Idle(a) => scenarios::idle::run(a, &run).await,
        Scenario::Group(a) => scenarios::group::run(a, &run).await,
        Scenario::Supergroup(a) => scenarios::group::run(&a.clone().into(), &run).await,
        Scenario::Liveroom(a) => scenarios::room::run(a, &run).await,
        Scenario::Login(a) => scenarios::login::run(a, &run).await,
        Scenario::Feed(a) => scenarios::feed::run(a, &run).await,
        Scenario::Search(a) => scenarios::search::run(a, &run).await,
    };
    let json = run.args.json;
    run.target.stop().await;
    let report = report?;
    report.print(json);
    if report.lost > 0 || report.duplicated > 0 {
        anyhow::bail!(
            "{} lost and {} duplicated messages",
            report.lost,
            report.duplicated
        );
    }
    Ok(())
}
