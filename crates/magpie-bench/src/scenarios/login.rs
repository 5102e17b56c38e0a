//! `login`: a burst of concurrent logins against the production password
//! hash (argon2id, 19 MiB each). Each hash holds its memory while it runs,
//! so the server must bound how many run at once: its memory has to stay
//! flat whatever the concurrency (the report's peak RSS, sampled every
//! 50 ms).

use super::{Outcome, Run};
use crate::meter::{Counters, Recorder, RssSampler, Shared};
use crate::report::Report;
use std::time::Duration;

#[derive(clap::Args, Debug, Clone, serde::Serialize)]
pub struct LoginArgs {
    /// Logins in flight at once.
    #[arg(long, default_value_t = 150)]
    pub concurrency: usize,
    /// Distinct users logging in (registered first).
    #[arg(long, default_value_t = 10)]
    pub users: usize,
    /// Every fourth login uses a wrong password (it costs the same hash).
    #[arg(long)]
    pub with_failures: bool,
}

pub async fn run(args: &LoginArgs, run: &Run) -> anyhow::Result<Report> {
    let users = run.setup.users(args.users.max(1)).await?;
    let clock = run.clock();
    let counters = Shared::default();
    let sampler = RssSampler::start(run.target.pids.clone(), Duration::from_millis(50));
    let tasks: Vec<_> = (0..args.concurrency.max(1))
        .map(|i| {
            let (setup, acct) = (run.setup.clone(), users[i % users.len()].clone());
            let (counters, fail) = (counters.clone(), args.with_failures);
            tokio::spawn(async move {
                let mut rec = Recorder::default();
                let mut k = 0usize;
                while clock.now_ns() < clock.measure_until_ns {
                    let t = clock.now_ns();
                    Counters::add(&counters.sent, 1);
                    let wrong = fail && k % 4 == 3;
                    k += 1;
                    match setup.login(&acct, wrong).await {
                        Ok(()) => {
                            Counters::add(&counters.acked, 1);
                            Counters::add(&counters.delivered, 1);
                            rec.delivery(&clock, t, clock.now_ns());
                        }
                        Err(_) => Counters::add(&counters.errors, 1),
                    }
                }
                rec
            })
        })
        .collect();
    let mut report = run
        .measure("login", args, clock, &counters, Outcome::merged(tasks))
        .await?;
    let series = sampler.finish().await;
    report.server_rss_kib_max = series
        .iter()
        .map(|(_, r)| *r)
        .max()
        .unwrap_or(0)
        .max(report.server_rss_kib_max);
    report.unit = "login".into();
    report
        .notes
        .push("errors include the deliberate wrong passwords of --with-failures".into());
    Ok(report)
}
