//! `liveroom`: one live room, its audience on connections, a few of them
//! sending at a fixed total rate. Rooms shed ordinary messages beyond
//! `rooms.max_rate`, so nothing is "lost" here: the report counts what was
//! delivered and what the server shed.

use super::fanout::{self, Channel, Plan};
use super::{Outcome, Run};
use crate::report::Report;

#[derive(clap::Args, Debug, Clone, serde::Serialize)]
pub struct RoomArgs {
    /// Audience connections (one user each).
    #[arg(long, default_value_t = 1000)]
    pub viewers: usize,
    /// Viewers who also send.
    #[arg(long, default_value_t = 10)]
    pub senders: usize,
    /// Messages a second, over all senders.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
}

pub async fn run(args: &RoomArgs, run: &Run) -> anyhow::Result<Report> {
    let viewers = args.viewers.max(1);
    let users = run.setup.users(viewers).await?;
    let links = run.setup.connect_all(&users).await?;
    let senders = args.senders.clamp(1, viewers);
    let clock = run.clock();
    let channel = Channel::Room {
        name: format!("bench-room-{}", users[0].id),
    };
    let plan = Plan::new(run, channel, clock, senders, args.rate);
    let tasks = fanout::spawn_members(links, &plan);
    let mut report = run
        .measure(
            "liveroom",
            args,
            clock,
            &plan.counters,
            Outcome::merged(tasks),
        )
        .await?;
    report.unit = "delivery".into();
    Ok(report)
}
