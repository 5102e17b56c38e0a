//! The NATS JetStream backend
//! (`nats://HOST:PORT[,…]/?stream=NAME&partitions=P&replicas=R`).
//!
//! One stream per partition: `NAME` when P = 1, else `NAME-0` … `NAME-{P-1}`,
//! each capturing `{its name}.>`; topic `t` of partition `i` is subject
//! `{stream i}.{t}`. An event goes to the partition of its key
//! (`crate::partition_of`), so appends spread over P Raft leaders while one
//! key's events keep their order. Offsets are `seq × P + i` (`names::offset`).
//! A consumer group is one durable pull consumer per partition, filtered on
//! its topics' subjects; competing consumers of a group are several pullers
//! of one durable consumer. Each stream records P in its metadata, and a
//! bus opened with another P is refused: keys would change partitions.
//!
//! What differs from the embedded backend, and why it is acceptable:
//! - `msg_id` de-duplicates only inside the stream's duplicate window
//!   (2 minutes), not the whole retention. The window is not an
//!   idempotency horizon: the logic keeps its own durable unique key.
//! - The server persists the in-flight state of a group: after a crash, an
//!   unacked event comes back once `ack_wait` expires. A consumer dropped
//!   gracefully hands its unacked events back at once (see `consumer`).
//! - `ack_wait` belongs to the durable consumer, hence to the whole group:
//!   the latest consumer to join sets it.
//!
//! Durability of an acknowledged publish needs the server's
//! `sync_interval: always`; the default (2 minutes) can lose acked data on
//! power loss. That is deployment configuration, not something a client
//! can enforce.

mod consumer;
mod names;

use crate::{BusBackend, BusError, Consumer, ConsumerOptions, Outgoing, Result};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::context::ContextBuilder;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use async_trait::async_trait;
use futures_util::future::join_all;
use std::time::Duration;

/// Retention of a stream this backend creates (operators may change it).
const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// JetStream's de-duplication window for `Nats-Msg-Id`.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Publishes sent before their acks are awaited. Bounding it (rather than
/// sending a whole huge batch) keeps the ack permits one call holds small.
const PUBLISH_WINDOW: usize = 1024;
/// The client's cap on unawaited publish acks per connection. A publisher
/// holds its permits until it awaits its acks, so concurrent publishers
/// could deadlock on a small cap; this one needs over 1,000 concurrent full
/// windows to bind.
const MAX_ACK_INFLIGHT: usize = 1 << 20;

/// The stream metadata key recording the partition count.
const PARTITIONS_KEY: &str = "magpie_partitions";

/// A bus on P JetStream streams. Wrap it in `crate::Bus` to share it.
pub struct JetStreamBus {
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    /// Partition `i`'s stream and its name.
    streams: Vec<(stream::Stream, String)>,
    name: String,
}

pub(crate) fn unavailable(what: &str, e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(format!("{what}: {e}"))
}

impl JetStreamBus {
    /// Opens a `nats://` bus URL (see the module comment).
    pub async fn open(url: &str) -> Result<JetStreamBus> {
        let opts = names::parse_url(url)?;
        JetStreamBus::connect_with(&opts).await
    }

    /// Connects to the server at `url` and creates the stream `stream_name`
    /// (one partition, one replica), or brings an existing one to the
    /// settings correctness depends on.
    pub async fn connect(url: &str, stream_name: &str) -> Result<JetStreamBus> {
        JetStreamBus::connect_with(&names::Options {
            server: url.to_string(),
            stream: stream_name.to_string(),
            partitions: 1,
            replicas: 1,
        })
        .await
    }

    async fn connect_with(opts: &names::Options) -> Result<JetStreamBus> {
        names::check_stream_name(&opts.stream)?;
        // Losses of the connection matter to the relay only (pushes), not
        // to a durable log: nothing published is lost by a reconnect.
        let options = async_nats::ConnectOptions::new();
        let (client, _losses) = crate::nats_conn::connect(&opts.server, options, false).await?;
        let js = ContextBuilder::new()
            .max_ack_inflight(MAX_ACK_INFLIGHT)
            .build(client.clone());
        let mut streams = Vec::with_capacity(opts.partitions as usize);
        for i in 0..opts.partitions {
            let name = names::partition_stream(&opts.stream, opts.partitions, i);
            let stream = ensure_stream(&js, &name, opts).await?;
            streams.push((stream, name));
        }
        Ok(JetStreamBus {
            client,
            js,
            streams,
            name: opts.stream.clone(),
        })
    }

    /// The stream name this bus was configured with (partition streams are
    /// named after it).
    pub fn stream_name(&self) -> &str {
        &self.name
    }

    /// Publishes one partition's events in order: the whole window is sent,
    /// then its acks awaited (one round trip per window, not per event).
    /// Sends are awaited one by one, which keeps the window in order.
    async fn publish_partition(
        &self,
        i: u32,
        events: Vec<(usize, Outgoing)>,
    ) -> Result<Vec<(usize, u64)>> {
        let stream = &self.streams[i as usize].1;
        let subjects = events
            .iter()
            .map(|(_, e)| names::subject(stream, &e.topic))
            .collect::<Result<Vec<_>>>()?;
        let p = self.partitions();
        let mut offsets = Vec::with_capacity(events.len());
        let pairs: Vec<_> = events.into_iter().zip(subjects).collect();
        for window in pairs.chunks(PUBLISH_WINDOW) {
            let mut acks = Vec::with_capacity(window.len());
            for ((at, event), subject) in window {
                let mut msg = PublishMessage::build().payload(event.payload.clone());
                if !event.msg_id.is_empty() {
                    msg = msg.message_id(&event.msg_id);
                }
                let ack = self
                    .js
                    .send_publish(subject.clone(), msg)
                    .await
                    .map_err(|e| unavailable("publishing", e))?;
                acks.push((*at, ack));
            }
            let mut conflicts = Vec::new();
            for (k, (at, ack)) in acks.into_iter().enumerate() {
                // A duplicate's ack carries `duplicate: true` and the first
                // publish's sequence, which is the offset to return.
                match ack.await {
                    Ok(ack) => offsets.push((at, names::offset(ack.sequence, p, i))),
                    Err(e) if in_process(&e) => conflicts.push(k),
                    Err(e) => return Err(unavailable("publish ack", e)),
                }
            }
            // A replicated stream refuses a `msg_id` whose first publish is
            // still being replicated. That one has been acked by now, so a
            // second try answers as a duplicate, with its offset.
            for k in conflicts {
                let ((at, event), subject) = &window[k];
                let seq = self.publish_again(subject, event).await?;
                offsets.push((*at, names::offset(seq, p, i)));
            }
        }
        Ok(offsets)
    }

    /// Publishes one event alone, retrying while its `msg_id` is "in
    /// process" (a few tries: the first publish is already acknowledged).
    async fn publish_again(&self, subject: &str, event: &Outgoing) -> Result<u64> {
        for _ in 0..50 {
            let msg = PublishMessage::build()
                .payload(event.payload.clone())
                .message_id(&event.msg_id);
            let ack = self
                .js
                .send_publish(subject.to_string(), msg)
                .await
                .map_err(|e| unavailable("publishing", e))?;
            match ack.await {
                Ok(ack) => return Ok(ack.sequence),
                Err(e) if in_process(&e) => tokio::time::sleep(Duration::from_millis(10)).await,
                Err(e) => return Err(unavailable("publish ack", e)),
            }
        }
        Err(unavailable("publishing", "a duplicate stayed in process"))
    }
}

/// Whether a publish failed only because an earlier publish of the same
/// `msg_id` is still being replicated (JetStream error 10158).
fn in_process(e: &async_nats::jetstream::context::PublishError) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<async_nats::jetstream::Error>())
        .is_some_and(|j| {
            j.error_code() == async_nats::jetstream::ErrorCode::STREAM_DUPLICATE_MESSAGE_CONFLICT
        })
}

/// Creates partition stream `name`, or checks an existing one: limits
/// retention on file storage (work-queue or interest retention would delete
/// an event once one group acked it, and neither can be changed in place),
/// the subjects and duplicate window correctness needs, and the same
/// partition count.
async fn ensure_stream(
    js: &async_nats::jetstream::Context,
    name: &str,
    opts: &names::Options,
) -> Result<stream::Stream> {
    let wanted = stream::Config {
        name: name.to_string(),
        subjects: vec![format!("{name}.>")],
        storage: StorageType::File,
        retention: RetentionPolicy::Limits,
        max_age: MAX_AGE,
        duplicate_window: DUPLICATE_WINDOW,
        num_replicas: opts.replicas,
        metadata: [(PARTITIONS_KEY.to_string(), opts.partitions.to_string())].into(),
        ..Default::default()
    };
    let stream = js
        .get_or_create_stream(wanted.clone())
        .await
        .map_err(|e| unavailable("creating the stream", e))?;
    let found = stream.cached_info().config.clone();
    if found.retention != RetentionPolicy::Limits || found.storage != StorageType::File {
        return Err(BusError::Config(format!(
            "stream {name:?} exists without limits retention on file storage"
        )));
    }
    let recorded = found.metadata.get(PARTITIONS_KEY);
    if recorded.is_some_and(|p| *p != opts.partitions.to_string()) {
        return Err(BusError::Config(format!(
            "stream {name:?} belongs to a bus of {} partitions, not {}: keys would change partitions",
            recorded.map_or("?", |p| p.as_str()),
            opts.partitions
        )));
    }
    if found.num_replicas != opts.replicas {
        tracing::warn!(
            stream = name,
            found = found.num_replicas,
            configured = opts.replicas,
            "the stream keeps the replica count it was given"
        );
    }
    // Update only what correctness needs; max_age and replicas stay as an
    // operator may have tuned them.
    if found.subjects == wanted.subjects
        && found.duplicate_window == DUPLICATE_WINDOW
        && recorded.is_some()
    {
        return Ok(stream);
    }
    let mut metadata = found.metadata.clone();
    metadata.insert(PARTITIONS_KEY.to_string(), opts.partitions.to_string());
    let update = stream::Config {
        subjects: wanted.subjects,
        duplicate_window: DUPLICATE_WINDOW,
        metadata,
        ..found
    };
    js.update_stream(update)
        .await
        .map_err(|e| unavailable("updating the stream", e))?;
    js.get_stream(name)
        .await
        .map_err(|e| unavailable("reading the stream", e))
}

#[async_trait]
impl BusBackend for JetStreamBus {
    fn partitions(&self) -> u32 {
        self.streams.len() as u32
    }

    async fn publish(&self, events: Vec<Outgoing>) -> Result<Vec<u64>> {
        // Check every topic first, so a bad one publishes nothing.
        for e in &events {
            names::subject(&self.name, &e.topic)?;
        }
        // Disconnected, a publish would only be buffered and then time out
        // waiting for its ack: fail at once, so callers answer "retry" now
        // instead of queueing behind a timeout per batch.
        if self.client.connection_state() == async_nats::connection::State::Disconnected {
            return Err(unavailable("publishing", "not connected to NATS"));
        }
        let n = events.len();
        let p = self.partitions();
        let mut parts: Vec<Vec<(usize, Outgoing)>> = (0..p).map(|_| Vec::new()).collect();
        for (at, e) in events.into_iter().enumerate() {
            parts[crate::partition_of(&e.key, p) as usize].push((at, e));
        }
        // Partitions are independent logs: publish to all of them at once.
        let sent = join_all(
            parts
                .into_iter()
                .enumerate()
                .filter(|(_, evs)| !evs.is_empty())
                .map(|(i, evs)| self.publish_partition(i as u32, evs)),
        )
        .await;
        let mut offsets = vec![0; n];
        for part in sent {
            for (at, offset) in part? {
                offsets[at] = offset;
            }
        }
        Ok(offsets)
    }

    async fn consumer(
        &self,
        group: &str,
        topics: &[&str],
        partition: u32,
        opts: ConsumerOptions,
    ) -> Result<Box<dyn Consumer>> {
        let Some((stream, stream_name)) = self.streams.get(partition as usize) else {
            return Err(BusError::Config(format!(
                "partition {partition} of a bus of {} partitions",
                self.partitions()
            )));
        };
        let mut filters = topics
            .iter()
            .map(|t| names::subject(stream_name, t))
            .collect::<Result<Vec<_>>>()?;
        filters.sort();
        filters.dedup();
        // Without a filter a JetStream consumer sees the whole stream.
        if filters.is_empty() {
            return Err(BusError::Config(format!("group {group:?} has no topics")));
        }
        let durable = names::durable_name(group);
        let config = pull::Config {
            durable_name: Some(durable.clone()),
            filter_subjects: filters.clone(),
            ack_policy: AckPolicy::Explicit,
            ack_wait: opts.ack_wait,
            deliver_policy: DeliverPolicy::All,
            // The worker runner dead-letters by `attempt` itself.
            max_deliver: -1,
            // In flight is bounded by what callers fetch; a server cap would
            // make fetch come back empty while events are ready.
            max_ack_pending: -1,
            ..Default::default()
        };
        let mut pull = stream
            .get_or_create_consumer(&durable, config.clone())
            .await
            .map_err(|e| unavailable("joining the consumer group", e))?;
        let found = &pull.cached_info().config;
        let mut have = found.filter_subjects.clone();
        if !found.filter_subject.is_empty() {
            have.push(found.filter_subject.clone());
        }
        let missing = filters.iter().any(|f| !have.contains(f));
        // A joiner with more topics widens the group, like the embedded
        // backend; ack_wait follows the latest joiner.
        if missing || found.ack_wait != opts.ack_wait {
            have.extend(filters);
            have.sort();
            have.dedup();
            let widened = pull::Config {
                filter_subjects: have,
                ..config
            };
            pull = stream
                .update_consumer(widened)
                .await
                .map_err(|e| unavailable("updating the consumer group", e))?;
        }
        Ok(Box::new(consumer::JetStreamConsumer::new(
            self.client.clone(),
            pull,
            format!("{stream_name}."),
            opts.ack_wait,
            (self.partitions(), partition),
        )))
    }
}
