//! `group` and `supergroup`: one group, its online members each on a
//! connection, a few of them sending at a fixed total rate. The rate that
//! matters is deliveries a second (messages × online members but the
//! sender). A super group has many more members than are online: what a
//! message costs must not grow with them (docs/performance.md).

use super::fanout::{self, Channel, Plan};
use super::{Outcome, Run};
use crate::meter::{Counters, Shared};
use crate::report::Report;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
    let who: Vec<_> = users[..online]
        .iter()
        .map(|u| (u.clone(), "bench".to_string()))
        .collect();
    let links = run.setup.connect_all(&who).await?;
    let senders = args.senders.clamp(1, online);
    let clock = run.clock();
    let counters = Shared::default();
    let taken = Arc::new(AtomicU64::new(0));
    let fanout = (online - 1) as u64;
    let plan = Plan {
        channel: Channel::Group { id: group },
        clock,
        counters: counters.clone(),
        body: run.args.body_bytes,
        interval_ns: (senders as f64 * 1e9 / args.rate.max(0.001)) as u64,
        senders,
        fanout: Some(fanout),
        taken: taken.clone(),
        answered: Arc::new(AtomicU64::new(0)),
        drain_ns: 5_000_000_000,
    };
    let tasks: Vec<_> = links
        .into_iter()
        .enumerate()
        .map(|(i, link)| {
            let sender = (i < senders).then_some(i as u32);
            tokio::spawn(fanout::member(link, plan.clone(), sender))
        })
        .collect();
    let name = if args.offline > 0 {
        "supergroup"
    } else {
        "group"
    };
    let c = counters.clone();
    let mut report = run
        .measure(
            name,
            serde_json::to_value(args)?,
            clock,
            &counters,
            async move {
                let mut out = Outcome::default();
                for t in tasks {
                    if let Ok(rec) = t.await {
                        out.rec.merge(&rec);
                    }
                }
                let expected = taken.load(Ordering::Relaxed) * fanout;
                out.lost = expected.saturating_sub(Counters::get(&c.delivered));
                out.extra.insert("group".into(), group.into());
                out.extra
                    .insert("deliveries_per_message".into(), fanout.into());
                out
            },
        )
        .await?;
    report.unit = "delivery".into();
    Ok(report)
}
