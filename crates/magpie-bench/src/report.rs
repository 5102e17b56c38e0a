//! The result of a run: a table for people, JSON (`--json`) for machines.
//! Server CPU per message is always reported beside the rate, so the
//! efficiency figure holds whatever the tool itself costs; the tool's own
//! CPU is reported too, with a warning when the tool was the bottleneck.

use crate::meter::{Recorder, Snapshot};
use hdrhistogram::Histogram;
use serde::Serialize;

#[derive(Debug, Serialize, Default)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Latency {
            count: h.len(),
            p50_ms: ms(0.50),
            p90_ms: ms(0.90),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: h.max() as f64 / 1000.0,
        }
    }
}

#[derive(Debug, Serialize, Default)]
pub struct Usage {
    /// CPU seconds used in the measured window.
    pub cpu_secs: f64,
    /// Average cores busy (CPU seconds / wall seconds).
    pub cores: f64,
    /// CPU microseconds per counted message (or delivery).
    pub us_per_msg: f64,
}

#[derive(Debug, Serialize, Default)]
pub struct Report {
    pub scenario: String,
    pub params: serde_json::Value,
    pub measured_secs: f64,
    /// What `rate` counts: messages delivered, deliveries, connections…
    pub unit: String,
    pub rate: f64,
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub errors: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub shed: u64,
    pub latency: Latency,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_latency: Option<Latency>,
    pub server: Usage,
    pub server_rss_kib_start: u64,
    pub server_rss_kib_end: u64,
    pub server_rss_kib_max: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engines: Option<Usage>,
    pub tool: Usage,
    /// Extra figures of a scenario (connect rate, memory per connection…).
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// (seconds since start, server RSS KiB), sampled during the run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rss_series: Vec<(f64, u64)>,
    pub notes: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Report {
    /// Fills the rate, latencies and CPU figures from the window's edges.
    pub fn measure(&mut self, rec: &Recorder, a: &Snapshot, b: &Snapshot, tool_threads: usize) {
        let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
        let n = rec.delivered.max(1) as f64;
        self.measured_secs = secs;
        self.rate = rec.delivered as f64 / secs;
        self.latency = Latency::of(&rec.delivery);
        if !rec.ack.is_empty() {
            self.ack_latency = Some(Latency::of(&rec.ack));
        }
        let usage = |cpu: f64| Usage {
            cpu_secs: cpu,
            cores: cpu / secs,
            us_per_msg: cpu * 1e6 / n,
        };
        self.server = usage(b.server_cpu - a.server_cpu);
        if b.engines_cpu > 0.0 {
            self.engines = Some(usage(b.engines_cpu - a.engines_cpu));
        }
        self.tool = usage(b.tool_cpu - a.tool_cpu);
        self.server_rss_kib_start = a.server_rss_kib;
        self.server_rss_kib_end = b.server_rss_kib;
        self.server_rss_kib_max = self
            .server_rss_kib_max
            .max(a.server_rss_kib)
            .max(b.server_rss_kib);
        if self.tool.cores > 0.9 * tool_threads as f64 {
            self.notes.push(format!(
                "the load tool used {:.2} of its {tool_threads} thread(s): it may be the bottleneck, the rate is a lower bound",
                self.tool.cores
            ));
        }
    }

    pub fn print(&self, json: bool) {
        if json {
            println!("{}", serde_json::to_string_pretty(self).unwrap_or_default());
            return;
        }
        let l = &self.latency;
        println!("scenario      {} {}", self.scenario, self.params);
        println!("measured      {:.1} s", self.measured_secs);
        println!("rate          {:.0} {}/s", self.rate, self.unit);
        println!(
            "messages      sent {}  acked {}  delivered {}  lost {}  duplicated {}  errors {}{}",
            self.sent,
            self.acked,
            self.delivered,
            self.lost,
            self.duplicated,
            self.errors,
            if self.shed > 0 {
                format!("  shed {}", self.shed)
            } else {
                String::new()
            }
        );
        println!(
            "latency ms    p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  (n={})",
            l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms, l.count
        );
        if let Some(a) = &self.ack_latency {
            println!(
                "ack ms        p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
                a.p50_ms, a.p90_ms, a.p99_ms, a.p999_ms, a.max_ms
            );
        }
        let u = |name: &str, u: &Usage| {
            println!(
                "{name:<14}{:.2} cores  {:.1} µs/{}",
                u.cores, u.us_per_msg, self.unit
            )
        };
        u("server cpu", &self.server);
        if let Some(e) = &self.engines {
            u("engines cpu", e);
        }
        u("tool cpu", &self.tool);
        println!(
            "server rss    start {} MiB  end {} MiB  max {} MiB",
            self.server_rss_kib_start / 1024,
            self.server_rss_kib_end / 1024,
            self.server_rss_kib_max / 1024
        );
        for (k, v) in &self.extra {
            println!("{k:<14}{v}", k = format!("{k} "));
        }
        for n in &self.notes {
            println!("note          {n}");
        }
    }
}
