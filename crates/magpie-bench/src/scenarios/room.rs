//! `liveroom`: one live room, its audience on connections, a few of them
//! sending at a fixed total rate. Rooms shed ordinary messages beyond
//! `rooms.max_rate`, so nothing is "lost" here: the report counts what was
//! delivered and what the server shed.

use super::fanout::{self, Channel, Plan};
use super::{Outcome, Run};
use crate::meter::Shared;
use crate::report::Report;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

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
    let who: Vec<_> = users
        .iter()
        .map(|u| (u.clone(), "bench".to_string()))
        .collect();
    let links = run.setup.connect_all(&who).await?;
    let senders = args.senders.clamp(1, viewers);
    let clock = run.clock();
    let counters = Shared::default();
    let plan = Plan {
        channel: Channel::Room {
            name: format!("bench-room-{}", users[0].id),
        },
        clock,
        counters: counters.clone(),
        body: run.args.body_bytes,
        interval_ns: (senders as f64 * 1e9 / args.rate.max(0.001)) as u64,
        senders,
        fanout: None,
        taken: Arc::new(AtomicU64::new(0)),
        answered: Arc::new(AtomicU64::new(0)),
        drain_ns: 1_000_000_000,
    };
    let tasks: Vec<_> = links
        .into_iter()
        .enumerate()
        .map(|(i, link)| {
            let sender = (i < senders).then_some(i as u32);
            tokio::spawn(fanout::member(link, plan.clone(), sender))
        })
        .collect();
    let mut report = run
        .measure(
            "liveroom",
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
                out
            },
        )
        .await?;
    report.unit = "delivery".into();
    Ok(report)
}
