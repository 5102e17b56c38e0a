//! Measuring a run: one clock for every stamp, counters the progress bar
//! reads, latency histograms kept per task and merged at the end (no shared
//! lock on the hot path), and CPU/memory snapshots of the server and of the
//! tool itself at the edges of the measured window.

use crate::procfs;
use crate::target::Target;
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The run's clock: message bodies carry nanoseconds since its start.
#[derive(Clone, Copy)]
pub struct Clock {
    start: Instant,
    /// Stamps before this are warm-up and not recorded.
    pub measure_from_ns: u64,
    /// Stamps from this on are after the measured window.
    pub measure_until_ns: u64,
}

impl Clock {
    pub fn new(warmup: Duration, duration: Duration) -> Clock {
        Clock {
            start: Instant::now(),
            measure_from_ns: warmup.as_nanos() as u64,
            measure_until_ns: (warmup + duration).as_nanos() as u64,
        }
    }
    pub fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
    pub fn at(&self, ns: u64) -> Instant {
        self.start + Duration::from_nanos(ns)
    }
    /// Whether a message stamped at `ns` belongs to the measured window.
    pub fn measured(&self, ns: u64) -> bool {
        (self.measure_from_ns..self.measure_until_ns).contains(&ns)
    }
}

/// Counters shared by every task of a run (relaxed atomics: they are read
/// for progress and totals, never to order anything).
#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub delivered: AtomicU64,
    pub duplicated: AtomicU64,
    pub errors: AtomicU64,
    pub shed: AtomicU64,
    /// `resync` frames: the server skipped pushes and asks for a sync
    /// (which the tool does not do, so what was skipped counts as lost).
    pub resyncs: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

pub type Shared = Arc<Counters>;

/// Latencies one task saw, in microseconds.
pub struct Recorder {
    pub delivery: Histogram<u64>,
    pub ack: Histogram<u64>,
    /// Deliveries inside the measured window.
    pub delivered: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            delivery: histogram(),
            ack: histogram(),
            delivered: 0,
        }
    }
}

impl Recorder {
    /// A delivery of a message stamped `stamp_ns`, received at `now_ns`.
    pub fn delivery(&mut self, clock: &Clock, stamp_ns: u64, now_ns: u64) {
        if clock.measured(stamp_ns) {
            self.delivered += 1;
            let us = now_ns.saturating_sub(stamp_ns) / 1000;
            let _ = self.delivery.record(us.max(1));
        }
    }
    /// The sender's acknowledgement of a message stamped `stamp_ns`.
    pub fn ack(&mut self, clock: &Clock, stamp_ns: u64, now_ns: u64) {
        if clock.measured(stamp_ns) {
            let _ = self
                .ack
                .record((now_ns.saturating_sub(stamp_ns) / 1000).max(1));
        }
    }
    pub fn merge(&mut self, other: &Recorder) {
        let _ = self.delivery.add(&other.delivery);
        let _ = self.ack.add(&other.ack);
        self.delivered += other.delivered;
    }
}

/// CPU and memory at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    pub at: Instant,
    pub server_cpu: f64,
    pub engines_cpu: f64,
    pub tool_cpu: f64,
    pub server_rss_kib: u64,
}

impl Snapshot {
    pub fn take(target: &Target) -> Snapshot {
        let (server_cpu, engines_cpu) = target.cpu();
        Snapshot {
            at: Instant::now(),
            server_cpu,
            engines_cpu,
            tool_cpu: procfs::cpu_secs(procfs::own_pid()).unwrap_or(0.0),
            server_rss_kib: target.rss_kib(),
        }
    }
}

/// Samples the server's memory every `every` while a run lasts, for the
/// peak and for the series a sustained run reports.
pub struct RssSampler {
    handle: tokio::task::JoinHandle<Vec<(f64, u64)>>,
    stop: CancellationToken,
}

impl RssSampler {
    pub fn start(pids: Vec<u32>, every: Duration) -> RssSampler {
        let stop = CancellationToken::new();
        let s = stop.clone();
        let handle = tokio::spawn(async move {
            let t0 = Instant::now();
            let mut series = Vec::new();
            loop {
                let rss = pids.iter().filter_map(|p| procfs::rss_kib(*p)).sum();
                series.push((t0.elapsed().as_secs_f64(), rss));
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = s.cancelled() => return series,
                }
            }
        });
        RssSampler { handle, stop }
    }

    pub async fn finish(self) -> Vec<(f64, u64)> {
        self.stop.cancel();
        self.handle.await.unwrap_or_default()
    }
}
