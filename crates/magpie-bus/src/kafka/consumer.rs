//! A member of the Kafka group of one consumer group on one partition.
//!
//! Kafka keeps a position per group, not a state per event, so this side
//! keeps what the trait promises beyond it:
//! - in-flight events: handed out, not acknowledged; one whose `ack_wait`
//!   expired, or that was nak'd, is handed out again (`attempt + 1`);
//! - the committed position is the lowest event still in flight (or past
//!   the last one read); events acknowledged above it are listed in the
//!   commit's metadata, so after a restart or a rebalance the next holder
//!   skips them and exactly the unacknowledged ones come again;
//! - events of kinds the group does not consume are read and passed over
//!   (they count as acknowledged).
//!
//! Commits are synchronous: `ack` returns once the position is on the
//! broker. When the partition moves to another member (a rebalance), what
//! was in flight here is forgotten (the new holder delivers it again) and
//! acknowledgements of it are ignored: at least once, never lost.

use super::publish::header;
use super::{base_config, names, unavailable};
use crate::{BusError, Consumer, ConsumerOptions, Delivery, Result};
use async_trait::async_trait;
use bytes::Bytes;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// The commit metadata's size limit (the broker default
/// `offset.metadata.max.bytes` is 4096).
const METADATA_MAX: usize = 4000;
/// How often the high watermark (for `pending`) is asked at most.
const WATERMARK_EVERY: Duration = Duration::from_secs(1);
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// Counts assignments and revocations: a change means the partition may
/// have been held by another member meanwhile.
#[derive(Default)]
pub(super) struct Ctx {
    generation: AtomicU64,
    assigned: AtomicU64,
}

impl ClientContext for Ctx {}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if matches!(r, Rebalance::Revoke(_)) {
            self.assigned.store(0, Ordering::SeqCst);
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
    fn post_rebalance(&self, _: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = r {
            self.assigned.store(tpl.count() as u64, Ordering::SeqCst);
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// How long `join` waits for the group's first assignment (Kafka delays a
/// new group's first rebalance by `group.initial.rebalance.delay.ms`, 3 s
/// by default).
const JOIN_WAIT: Duration = Duration::from_secs(15);

struct Held {
    delivery: Delivery,
    at: Instant,
}

pub(super) struct KafkaConsumer {
    inner: Arc<StreamConsumer<Ctx>>,
    /// Records read while joining, handed out first.
    early: VecDeque<OwnedMessage>,
    topic: String,
    kinds: HashSet<String>,
    partitions: u32,
    partition: u32,
    ack_wait: Duration,
    /// The generation the state below belongs to.
    generation: u64,
    /// Handed out and not acknowledged, by Kafka offset.
    held: BTreeMap<i64, Held>,
    /// Nak'd: handed out again first.
    naked: VecDeque<i64>,
    /// Acknowledged above the committed position (the commit's metadata).
    acked: BTreeSet<i64>,
    /// Acknowledged by a member before (from the metadata): passed over.
    skip: BTreeSet<i64>,
    /// The next Kafka offset to read; None until the first record.
    next: Option<i64>,
    /// What was last committed: position and metadata.
    committed: Option<(i64, String)>,
    high: Option<(i64, Instant)>,
    pending: Option<u64>,
}

impl KafkaConsumer {
    /// Joins the group and waits (at most `JOIN_WAIT`) for its first
    /// assignment, so a consumer returned holds its partition or knows it
    /// stands by; a record read meanwhile is kept for the first fetch.
    pub async fn join(
        opts: &names::Options,
        group: &str,
        kinds: &[&str],
        partition: u32,
        co: ConsumerOptions,
    ) -> Result<KafkaConsumer> {
        let topic = names::partition_topic(&opts.prefix, partition);
        let inner: StreamConsumer<Ctx> = base_config(&opts.brokers)
            .set("group.id", names::group_id(&opts.prefix, group, partition))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            .set("fetch.wait.max.ms", "50")
            .create_with_context(Ctx::default())
            .map_err(|e| BusError::Config(format!("kafka consumer: {e}")))?;
        inner
            .subscribe(&[&topic])
            .map_err(|e| unavailable("kafka subscribe", e))?;
        let inner = Arc::new(inner);
        let mut early = VecDeque::new();
        let give_up = Instant::now() + JOIN_WAIT;
        while inner.context().generation.load(Ordering::SeqCst) == 0 && Instant::now() < give_up {
            match tokio::time::timeout(Duration::from_millis(100), inner.recv()).await {
                Ok(Ok(m)) => early.push_back(m.detach()),
                Ok(Err(e)) => return Err(unavailable("kafka join", e)),
                Err(_) => {}
            }
        }
        Ok(KafkaConsumer {
            inner,
            early,
            topic,
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
            partitions: opts.partitions,
            partition,
            ack_wait: co.ack_wait,
            generation: u64::MAX,
            held: BTreeMap::new(),
            naked: VecDeque::new(),
            acked: BTreeSet::new(),
            skip: BTreeSet::new(),
            next: None,
            committed: None,
            high: None,
            pending: None,
        })
    }

    /// After a rebalance: forget what was in flight, learn from the
    /// committed metadata what a member before acknowledged.
    async fn resync(&mut self) -> Result<()> {
        let generation = self.inner.context().generation.load(Ordering::SeqCst);
        if generation == self.generation {
            return Ok(());
        }
        self.held.clear();
        self.naked.clear();
        self.acked.clear();
        self.skip.clear();
        self.next = None;
        self.committed = None;
        self.generation = generation;
        if self.inner.context().assigned.load(Ordering::SeqCst) == 0 {
            return Ok(());
        }
        let (inner, topic) = (self.inner.clone(), self.topic.clone());
        let committed = tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&topic, 0);
            inner.committed_offsets(tpl, BROKER_TIMEOUT)
        })
        .await
        .map_err(|e| unavailable("kafka committed", e))?
        .map_err(|e| unavailable("kafka committed", e))?;
        if let Some(e) = committed.elements().first()
            && let Offset::Offset(at) = e.offset()
        {
            self.skip = decode_metadata(at, e.metadata());
            self.committed = Some((at, e.metadata().to_string()));
        }
        Ok(())
    }

    /// Due again: nak'd first, then those whose ack wait expired.
    fn due(&mut self, max: usize, out: &mut Vec<Delivery>) {
        let now = Instant::now();
        while out.len() < max {
            let Some(k) = self.naked.pop_front() else {
                break;
            };
            if let Some(h) = self.held.get_mut(&k) {
                h.delivery.attempt += 1;
                h.at = now;
                out.push(h.delivery.clone());
            }
        }
        for h in self.held.values_mut() {
            if out.len() >= max {
                break;
            }
            if now.duration_since(h.at) >= self.ack_wait {
                h.delivery.attempt += 1;
                h.at = now;
                out.push(h.delivery.clone());
            }
        }
    }

    /// When the next held event's ack wait expires.
    fn next_expiry(&self) -> Option<Instant> {
        self.held.values().map(|h| h.at + self.ack_wait).min()
    }

    /// Takes one record read from the partition: a delivery, or nothing
    /// (another kind, or acknowledged before).
    fn take(&mut self, m: &impl Message) -> Option<Delivery> {
        let k = m.offset();
        self.next = Some(k + 1);
        if self.skip.remove(&k) {
            self.acked.insert(k);
            return None;
        }
        let kind = header(m, names::KIND_HEADER).unwrap_or_default();
        if !self.kinds.contains(&kind) {
            return None;
        }
        let d = Delivery {
            offset: names::offset(k, self.partitions, self.partition),
            topic: kind,
            payload: Bytes::copy_from_slice(m.payload().unwrap_or_default()),
            attempt: 1,
        };
        self.held.insert(
            k,
            Held {
                delivery: d.clone(),
                at: Instant::now(),
            },
        );
        Some(d)
    }

    /// The position to commit and its metadata; None before any record.
    fn position(&self) -> Option<(i64, String)> {
        let next = self.next?;
        let at = self.held.keys().next().copied().unwrap_or(next);
        let above: Vec<i64> = self.acked.range(at..).copied().collect();
        Some((at, encode_metadata(at, &above)))
    }

    async fn commit(&mut self) -> Result<()> {
        let Some((at, meta)) = self.position() else {
            return Ok(());
        };
        if self.committed.as_ref() == Some(&(at, meta.clone())) {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, 0, Offset::Offset(at))
            .map_err(|e| unavailable("kafka commit", e))?;
        if let Some(mut e) = tpl.find_partition(&self.topic, 0) {
            e.set_metadata(meta.clone());
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|e| unavailable("kafka commit", e))?
            .map_err(|e| unavailable("kafka commit", e))?;
        self.acked = self.acked.split_off(&at);
        self.committed = Some((at, meta));
        Ok(())
    }

    /// Refreshes `pending` from the partition's high watermark (asked at
    /// most once a second, or when reading passed the known one).
    async fn refresh_pending(&mut self) {
        let next = self.next.unwrap_or(0);
        let stale = match self.high {
            None => true,
            Some((h, at)) => next > h || at.elapsed() > WATERMARK_EVERY,
        };
        if stale {
            let (inner, topic) = (self.inner.clone(), self.topic.clone());
            let got = tokio::task::spawn_blocking(move || {
                inner.fetch_watermarks(&topic, 0, BROKER_TIMEOUT)
            })
            .await;
            if let Ok(Ok((_, high))) = got {
                self.high = Some((high, Instant::now()));
            }
        }
        if let Some((high, _)) = self.high {
            let from = self
                .next
                .or_else(|| self.committed.as_ref().map(|c| c.0))
                .unwrap_or(0);
            self.pending = Some((high - from).max(0) as u64);
        }
    }
}

/// Offsets acknowledged above position `at`, as deltas: "3,1,7".
fn encode_metadata(at: i64, above: &[i64]) -> String {
    let mut s = String::new();
    let mut last = at;
    for &k in above {
        let part = format!("{}", k - last);
        if s.len() + part.len() + 1 > METADATA_MAX {
            // What does not fit is delivered again: at least once.
            break;
        }
        if !s.is_empty() {
            s.push(',');
        }
        s.push_str(&part);
        last = k;
    }
    s
}

fn decode_metadata(at: i64, meta: &str) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    let mut last = at;
    for part in meta.split(',').filter(|p| !p.is_empty()) {
        match part.parse::<i64>() {
            Ok(d) if d > 0 => {
                last += d;
                out.insert(last);
            }
            _ => return BTreeSet::new(),
        }
    }
    out
}

#[async_trait]
impl Consumer for KafkaConsumer {
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        let inner = self.inner.clone();
        self.resync().await?;
        while out.len() < max {
            let Some(m) = self.early.pop_front() else {
                break;
            };
            if let Some(d) = self.take(&m) {
                out.push(d);
            }
        }
        loop {
            self.due(max, &mut out);
            // What is ready now, without waiting, then (if nothing was)
            // until the deadline or the next ack wait's expiry.
            let mut waited = false;
            while out.len() < max {
                let now = Instant::now();
                let until = if out.is_empty() && !waited {
                    waited = true;
                    self.next_expiry().map_or(deadline, |e| e.min(deadline))
                } else {
                    now
                };
                match tokio::time::timeout(until.saturating_duration_since(now), inner.recv()).await
                {
                    Ok(Ok(m)) => {
                        // A rebalance is served inside `recv`: catch up
                        // before taking what the new holder reads.
                        self.resync().await?;
                        if let Some(d) = self.take(&m) {
                            out.push(d);
                        }
                    }
                    Ok(Err(e)) => return Err(unavailable("kafka fetch", e)),
                    Err(_) => break,
                }
            }
            self.resync().await?;
            if !out.is_empty() || Instant::now() >= deadline {
                break;
            }
        }
        // Records passed over move the position too.
        if self.held.is_empty() {
            self.commit().await?;
        }
        self.refresh_pending().await;
        Ok(out)
    }

    async fn ack(&mut self, offsets: &[u64]) -> Result<()> {
        self.resync().await?;
        let mut any = false;
        for &o in offsets {
            let (p, k) = names::split(o, self.partitions);
            if p == self.partition && self.held.remove(&k).is_some() {
                self.acked.insert(k);
                any = true;
            }
        }
        if any {
            self.commit().await?;
        }
        Ok(())
    }

    async fn nak(&mut self, offset: u64) -> Result<()> {
        let (p, k) = names::split(offset, self.partitions);
        if p == self.partition && self.held.contains_key(&k) && !self.naked.contains(&k) {
            self.naked.push_back(k);
        }
        Ok(())
    }

    fn pending(&self) -> Option<u64> {
        self.pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledged_offsets_round_trip_through_the_metadata() {
        let above = [13, 14, 20, 1_000];
        let m = encode_metadata(10, &above);
        assert_eq!(m, "3,1,6,980");
        assert_eq!(
            decode_metadata(10, &m).into_iter().collect::<Vec<_>>(),
            above
        );
        assert!(decode_metadata(10, "").is_empty());
        assert!(
            decode_metadata(10, "x,1").is_empty(),
            "foreign metadata is ignored"
        );
        let many: Vec<i64> = (1..5_000).map(|i| 10 + 2 * i).collect();
        assert!(encode_metadata(10, &many).len() <= METADATA_MAX);
    }
}
