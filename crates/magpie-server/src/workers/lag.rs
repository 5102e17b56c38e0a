//! Consumer lag, per group and partition (docs/observability.md): the
//! backlog in events, as the bus counts it at the last fetch, and in
//! seconds since the group last drained what was ready (a fetch that came
//! back with less than a full batch), so it is 0 for a group keeping up and
//! grows for one that falls behind, is stuck or is paused, traffic or not.
//! Sampled at most once a second, off the per-event path.

use crate::metrics::{CONSUMER_LAG, CONSUMER_LAG_SECONDS};
use magpie_bus::Consumer;
use metrics::Gauge;
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_secs(1);

pub struct Lag {
    events: Gauge,
    seconds: Gauge,
    drained_at: Instant,
    next: Instant,
}

impl Lag {
    /// The gauges of `group` in `partition`, at 0 from the start.
    pub fn new(group: &str, partition: u32) -> Lag {
        let labels = [
            ("group", group.to_string()),
            ("partition", partition.to_string()),
        ];
        let events = metrics::gauge!(CONSUMER_LAG, &labels);
        let seconds = metrics::gauge!(CONSUMER_LAG_SECONDS, &labels);
        events.set(0.0);
        seconds.set(0.0);
        let now = Instant::now();
        Lag {
            events,
            seconds,
            drained_at: now,
            next: now,
        }
    }

    /// After a fetch that returned `got` events of at most `max`.
    pub fn fetched(&mut self, consumer: &dyn Consumer, got: usize, max: usize) {
        let now = Instant::now();
        if got < max {
            self.drained_at = now;
        }
        if now < self.next {
            return;
        }
        if let Some(n) = consumer.pending() {
            self.events.set(n as f64);
        }
        self.tick(now);
    }

    /// While the group takes nothing (paused): the seconds go on growing.
    pub fn idle(&mut self) {
        let now = Instant::now();
        if now >= self.next {
            self.tick(now);
        }
    }

    fn tick(&mut self, now: Instant) {
        self.next = now + EVERY;
        let behind = now.duration_since(self.drained_at).as_secs_f64();
        // Under a second is the batch being worked on, not lag.
        self.seconds.set(if behind < 1.0 { 0.0 } else { behind });
    }
}
