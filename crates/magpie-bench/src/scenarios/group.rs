//! `group` and `supergroup`: one group, its online members each on a
//! connection, a few of them sending at a fixed total rate. The rate that
//! matters is deliveries a second (messages × online members but the
//! sender). A super group has many more members than are online: what a
//! message costs must not grow with them (docs/performance.md).

use super::fanout::{self, Channel, Plan};
use super::{Outcome, Run};
use crate::meter::Counters;
use crate::report::Report;
use std::sync::atomic::Ordering;

#[derive(clap::Args, Debug, Clone, serde::Serialize)]
pub struct GroupArgs {
    /// Members online, one connection each.
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// Members who are not connected.
    #[arg(long, default_value_t = 0)]
    pub offline: usize,
    /// Online members who also send.
    #[arg(long, default_value_t = 10)]
    pub senders: usize,
    /// Messages a second, over all senders.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
}

#[derive(clap::Args, Debug, Clone)]
pub struct SuperArgs {
    /// Members online, one connection each.
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// Members who are not connected.
    #[arg(long, default_value_t = 10_000)]
    pub offline: usize,
    /// Online members who also send.
    #[arg(long, default_value_t = 10)]
    pub senders: usize,
    /// Messages a second, over all senders.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
}

impl From<SuperArgs> for GroupArgs {
    fn from(a: SuperArgs) -> GroupArgs {
        GroupArgs {
            members: a.members,
            offline: a.offline,
            senders: a.senders,
            rate: a.rate,
        }
    }
}

pub async fn run(args: &GroupArgs, run: &Run) -> anyhow::Result<Report> {
    let online = args.members.max(2);
    let users = run.setup.users(online + args.offline).await?;
    let group = run.setup.group(&users[0], &users).await?;
    let links = run.setup.connect_all(&users[..online]).await?;
    let senders = args.senders.clamp(1, online);
    let clock = run.clock();
    let fanout = (online - 1) as u64;
    let mut plan = Plan::new(run, Channel::Group { id: group }, clock, senders, args.rate);
    plan.fanout = Some(fanout);
    plan.drain_ns = 5_000_000_000;
    let (taken, counters) = (plan.taken.clone(), plan.counters.clone());
    let tasks = fanout::spawn_members(links, &plan);
    let name = if args.offline > 0 {
        "supergroup"
    } else {
        "group"
    };
    let mut report = run
        .measure(name, args, clock, &plan.counters, async move {
            let mut out = Outcome::merged(tasks).await;
            let expected = taken.load(Ordering::Relaxed) * fanout;
            out.lost = expected.saturating_sub(Counters::get(&counters.delivered));
            out.extra.insert("group".into(), group.into());
            out.extra
                .insert("deliveries_per_message".into(), fanout.into());
            out
        })
        .await?;
    report.unit = "delivery".into();
    Ok(report)
}
