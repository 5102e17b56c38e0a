//! Consumer lag, per group and partition (docs/observability.md): the
//! backlog in events, as the bus counts it at the last fetch, and in
//! seconds, the age of the oldest message of the batch just taken (0 when
//! a fetch finds nothing new: caught up). Sampled at most once a second,
//! so its cost (one envelope read, one backlog count) stays off the
//! per-event path.

use crate::metrics::{CONSUMER_LAG, CONSUMER_LAG_SECONDS};
use magpie_bus::{Consumer, Delivery};
use magpie_core::{BusEvent, Envelope, now_ms};
use metrics::Gauge;
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_secs(1);

pub struct Lag {
    events: Gauge,
    seconds: Gauge,
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
        Lag {
            events,
            seconds,
            next: Instant::now(),
        }
    }

    /// After a fetch that returned `batch`.
    pub fn sample(&mut self, consumer: &dyn Consumer, batch: &[Delivery]) {
        let now = Instant::now();
        if now < self.next {
            return;
        }
        self.next = now + EVERY;
        if let Some(n) = consumer.pending() {
            self.events.set(n as f64);
        }
        let oldest = batch
            .first()
            .and_then(|d| match Envelope::open(&d.payload) {
                Ok(BusEvent::Messages { msgs }) => msgs.first().map(|m| m.sent_at),
                Ok(BusEvent::Message { msg }) => Some(msg.sent_at),
                _ => None,
            });
        match oldest {
            Some(at) => self.seconds.set((now_ms() - at).max(0) as f64 / 1000.0),
            None if batch.is_empty() => self.seconds.set(0.0),
            // A batch of other events: no message time to tell; unchanged.
            None => {}
        }
    }
}
