//! The scenarios, and what every one of them shares: the run's flags, the
//! set-up handle, and `Run::measure`, which takes the CPU and memory
//! snapshots at the edges of the measured window while the scenario's
//! tasks run, then assembles the report.

pub mod chat;
mod fanout;
pub mod feed;
pub mod group;
pub mod idle;
pub mod login;
pub mod room;
pub mod search;

use crate::meter::{Clock, Counters, Recorder, RssSampler, Shared, Snapshot};
use crate::report::Report;
use crate::setup::Setup;
use crate::target::Target;
use indicatif::{ProgressBar, ProgressStyle};
use std::future::Future;
use std::time::Duration;

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// How long the measured window lasts (e.g. 30s, 2m).
    #[arg(long, global = true, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Traffic before the measured window, not counted.
    #[arg(long, global = true, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Socket transport: ws or tcp.
    #[arg(long, global = true, default_value = "ws", value_parser = parse_transport)]
    pub transport: magpie_core::Transport,
    /// Message body size in bytes (at least the stamp, ~25 bytes).
    #[arg(long, global = true, default_value_t = 64)]
    pub body_bytes: usize,
    /// Pad bodies with words (English and Chinese, skewed like text)
    /// rather than `x`: text a search index has to work on.
    #[arg(long, global = true)]
    pub body_words: bool,
    /// Loopback source addresses (127.0.0.2..) the sockets are spread over.
    #[arg(long, global = true, default_value_t = 16)]
    pub source_ips: usize,
    /// Users, tokens and connections set up at once.
    #[arg(long, global = true, default_value_t = 64)]
    pub setup_concurrency: usize,
    /// Worker threads of the tool (1 = one thread for everything).
    #[arg(long, global = true, default_value_t = 1)]
    pub threads: usize,
    /// How often the server's memory is sampled.
    #[arg(long, global = true, default_value = "1s", value_parser = parse_duration)]
    pub rss_every: Duration,
    /// Print each second's delivery count to stderr while running (to see
    /// stalls).
    #[arg(long, global = true)]
    pub timeline: bool,
    /// Print the report as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, global = true)]
    pub quiet: bool,
}

fn parse_transport(s: &str) -> Result<magpie_core::Transport, String> {
    match s {
        "ws" => Ok(magpie_core::Transport::Ws),
        "tcp" => Ok(magpie_core::Transport::Tcp),
        _ => Err(format!("unknown transport {s:?}: ws or tcp")),
    }
}

/// `500ms`, `10s`, `2m`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("bad duration unit in {s:?}: use ms, s or m")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// What a scenario's tasks hand back when they are done.
#[derive(Default)]
pub struct Outcome {
    pub rec: Recorder,
    /// Acknowledged by the server and never delivered.
    pub lost: u64,
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Outcome {
    /// The recorders of finished member tasks, merged (a task that
    /// panicked adds nothing).
    pub async fn merged(tasks: Vec<tokio::task::JoinHandle<Recorder>>) -> Outcome {
        let mut out = Outcome::default();
        for t in tasks {
            if let Ok(rec) = t.await {
                out.rec.merge(&rec);
            }
        }
        out
    }
}

/// Time between two sends of one of `senders` sharing `rate` messages a
/// second, ns.
pub fn interval_ns(senders: usize, rate: f64) -> u64 {
    (senders as f64 * 1e9 / rate.max(0.001)) as u64
}

/// A run in progress: the target, the set-up handle and the flags.
pub struct Run {
    pub target: Target,
    pub setup: Setup,
    pub args: RunArgs,
}

impl Run {
    /// The clock of the traffic phase, starting now.
    pub fn clock(&self) -> Clock {
        Clock::new(self.args.warmup, self.args.duration)
    }

    /// Measures the window of `clock` while `work` (the scenario's tasks)
    /// runs, then builds the report from its outcome.
    pub async fn measure(
        &self,
        scenario: &str,
        params: &impl serde::Serialize,
        clock: Clock,
        counters: &Shared,
        work: impl Future<Output = Outcome>,
    ) -> anyhow::Result<Report> {
        let sampler = RssSampler::start(self.target.pids.clone(), self.args.rss_every);
        let bar = self.progress(scenario, counters);
        let window = async {
            tokio::time::sleep_until(clock.at(clock.measure_from_ns).into()).await;
            let a = Snapshot::take(&self.target);
            tokio::time::sleep_until(clock.at(clock.measure_until_ns).into()).await;
            (a, Snapshot::take(&self.target))
        };
        let ((a, b), out) = tokio::join!(window, work);
        bar.finish_and_clear();
        let series = sampler.finish().await;
        let c = counters.as_ref();
        let mut report = Report {
            scenario: scenario.into(),
            params: serde_json::to_value(params)?,
            sent: Counters::get(&c.sent),
            acked: Counters::get(&c.acked),
            delivered: Counters::get(&c.delivered),
            duplicated: Counters::get(&c.duplicated),
            errors: Counters::get(&c.errors),
            shed: Counters::get(&c.shed),
            lost: out.lost,
            extra: out.extra,
            server_rss_kib_max: series.iter().map(|(_, r)| *r).max().unwrap_or(0),
            ..Report::default()
        };
        report.measure(&out.rec, &a, &b, self.args.threads);
        let resyncs = Counters::get(&c.resyncs);
        if resyncs > 0 {
            report.extra.insert("resyncs".into(), resyncs.into());
            report.notes.push(format!(
                "the server asked {resyncs} times for a resync (pushes skipped); the tool does not sync, so those messages count as lost"
            ));
        }
        if self.args.duration >= Duration::from_secs(60) {
            report.rss_series = series;
        }
        Ok(report)
    }

    fn progress(&self, scenario: &str, counters: &Shared) -> ProgressBar {
        if self.args.timeline {
            let c = counters.clone();
            tokio::spawn(async move {
                let mut last = 0;
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let now = Counters::get(&c.delivered);
                    eprintln!("+1s delivered {}", now - last);
                    last = now;
                }
            });
        }
        if self.args.quiet || self.args.json {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("template"));
        bar.enable_steady_tick(Duration::from_millis(500));
        let (b, c, name) = (bar.clone(), counters.clone(), scenario.to_string());
        tokio::spawn(async move {
            while !b.is_finished() {
                b.set_message(format!(
                    "{name}: sent {} acked {} delivered {} errors {}",
                    Counters::get(&c.sent),
                    Counters::get(&c.acked),
                    Counters::get(&c.delivered),
                    Counters::get(&c.errors)
                ));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        bar
    }
}
