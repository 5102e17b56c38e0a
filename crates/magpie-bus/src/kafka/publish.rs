//! Publishing: every event produced to its partition's topic, the producer
//! idempotent with `acks=all`; a publish returns once the broker
//! acknowledged every record of it, in order within a partition (one
//! producer, `enable.idempotence` keeps order across its retries).
//!
//! De-duplication by `msg_id` is this side's (Kafka has none by id): a
//! window of the ids published by this bus in the last `WINDOW`, loaded at
//! open from the tail of each partition's topic (its last `TAIL` records).

use super::{KafkaBus, base_config, names, unavailable};
use crate::{BusError, Outgoing, Result, partition_of};
use parking_lot::Mutex;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How long a published id is remembered (JetStream's default window).
const WINDOW: Duration = Duration::from_secs(120);
/// Records of each partition's tail read at open into the window.
const TAIL: i64 = 10_000;
/// Ids remembered at most (the oldest forgotten first).
const CAP: usize = 200_000;

/// The de-duplication window: id → the offset its first publish got.
pub(super) struct Dedup(Mutex<Window>);

#[derive(Default)]
struct Window {
    offsets: HashMap<String, u64>,
    order: VecDeque<(Instant, String)>,
}

impl Window {
    fn insert(&mut self, id: String, offset: u64, at: Instant) {
        if self.offsets.insert(id.clone(), offset).is_none() {
            self.order.push_back((at, id));
        }
        while self.order.len() > CAP
            || self
                .order
                .front()
                .is_some_and(|(t, _)| t.elapsed() > WINDOW)
        {
            if let Some((_, old)) = self.order.pop_front() {
                self.offsets.remove(&old);
            }
        }
    }
}

impl Dedup {
    /// The window as the log's tail leaves it (the records of the last
    /// `WINDOW` among each partition's last `TAIL`).
    pub(super) async fn load(opts: &names::Options) -> Result<Dedup> {
        let opts = opts.clone();
        let found = tokio::task::spawn_blocking(move || read_tail(&opts))
            .await
            .map_err(|e| unavailable("kafka tail", e))??;
        let mut w = Window::default();
        let now = Instant::now();
        for (id, offset, age) in found {
            w.insert(id, offset, now.checked_sub(age).unwrap_or(now));
        }
        Ok(Dedup(Mutex::new(w)))
    }
}

/// (id, offset, age) of the recent records of every partition (blocking).
fn read_tail(opts: &names::Options) -> Result<Vec<(String, u64, Duration)>> {
    let c: BaseConsumer = base_config(&opts.brokers)
        .set("group.id", format!("{}.tail", opts.prefix))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .map_err(|e| BusError::Config(format!("kafka consumer: {e}")))?;
    let now_ms = magpie_core::now_ms();
    let mut out = Vec::new();
    for i in 0..opts.partitions {
        let topic = names::partition_topic(&opts.prefix, i);
        let (low, high) = c
            .fetch_watermarks(&topic, 0, super::ADMIN_TIMEOUT)
            .map_err(|e| unavailable("kafka watermarks", e))?;
        let from = low.max(high - TAIL);
        if from >= high {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(from))
            .map_err(|e| unavailable("kafka assign", e))?;
        c.assign(&tpl).map_err(|e| unavailable("kafka assign", e))?;
        let give_up = Instant::now() + super::ADMIN_TIMEOUT;
        let mut next = from;
        while next < high {
            if Instant::now() > give_up {
                return Err(BusError::Unavailable(format!(
                    "kafka: reading the tail of {topic}"
                )));
            }
            let Some(m) = c.poll(Duration::from_millis(200)) else {
                continue;
            };
            let m = match m {
                Ok(m) => m,
                Err(rdkafka::error::KafkaError::PartitionEOF(_)) => break,
                Err(e) => return Err(unavailable("kafka tail", e)),
            };
            next = m.offset() + 1;
            let age = m.timestamp().to_millis().map_or(Duration::ZERO, |t| {
                Duration::from_millis((now_ms - t).max(0) as u64)
            });
            if age > WINDOW {
                continue;
            }
            if let Some(id) = header(&m, names::ID_HEADER) {
                out.push((id, names::offset(m.offset(), opts.partitions, i), age));
            }
        }
    }
    Ok(out)
}

/// A record header's value as text.
pub(super) fn header(m: &impl Message, name: &str) -> Option<String> {
    let h = m.headers()?;
    h.iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

pub(super) async fn publish(bus: &KafkaBus, events: Vec<Outgoing>) -> Result<Vec<u64>> {
    let parts = bus.opts.partitions;
    let mut out: Vec<Option<u64>> = vec![None; events.len()];
    // Each distinct new id once, in order; repeats point at their first.
    let mut first_of: HashMap<&str, usize> = HashMap::new();
    let mut sends = Vec::new();
    {
        let w = bus.dedup.0.lock();
        for (n, ev) in events.iter().enumerate() {
            if let Some(&o) = w.offsets.get(&ev.msg_id) {
                out[n] = Some(o);
            } else if !first_of.contains_key(ev.msg_id.as_str()) {
                first_of.insert(&ev.msg_id, n);
                sends.push(n);
            }
        }
    }
    let (generation, producer) = bus.producers.get();
    let futures: Vec<_> = sends
        .iter()
        .map(|&n| {
            let ev = &events[n];
            let i = partition_of(&ev.key, parts);
            let topic = names::partition_topic(&bus.opts.prefix, i);
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: names::KIND_HEADER,
                    value: Some(ev.topic.as_bytes()),
                })
                .insert(Header {
                    key: names::ID_HEADER,
                    value: Some(ev.msg_id.as_bytes()),
                });
            let record = FutureRecord::to(&topic)
                .partition(0)
                .key(ev.key.as_bytes())
                .payload(ev.payload.as_ref())
                .headers(headers);
            let sent = producer.send_result(record).map_err(|(e, _)| e);
            async move {
                let delivered = match sent {
                    Ok(delivery) => delivery
                        .await
                        .map_err(|_| BusError::Unavailable("kafka producer gone".into()))?
                        .map_err(|(e, _)| e),
                    Err(e) => Err(e),
                };
                match delivered {
                    Ok(d) => Ok(names::offset(d.offset, parts, i)),
                    Err(e) => {
                        bus.producers.failed(generation, &e);
                        Err(unavailable("kafka produce", e))
                    }
                }
            }
        })
        .collect();
    let offsets = futures_util::future::join_all(futures).await;
    let now = Instant::now();
    let mut w = bus.dedup.0.lock();
    for (&n, got) in sends.iter().zip(offsets) {
        let o = got?;
        w.insert(events[n].msg_id.clone(), o, now);
        out[n] = Some(o);
    }
    drop(w);
    // A repeat inside the batch gets its first occurrence's offset.
    let mut done = Vec::with_capacity(events.len());
    for (n, ev) in events.iter().enumerate() {
        let o = match out[n] {
            Some(o) => o,
            None => out[first_of[ev.msg_id.as_str()]]
                .ok_or_else(|| BusError::Unavailable("kafka: a publish lost its offset".into()))?,
        };
        done.push(o);
    }
    Ok(done)
}
