//! The NATS JetStream backend (`nats://HOST:PORT/?stream=NAME`).
//!
//! One stream per namespace, capturing `{stream}.>`; topic `t` is subject
//! `{stream}.{t}`. Offsets are stream sequences. Each consumer group is a
//! durable pull consumer filtered on its topics' subjects, so competing
//! consumers of a group are simply several pullers of one durable consumer.
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

/// A bus on one JetStream stream. Wrap it in `crate::Bus` to share it.
pub struct JetStreamBus {
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    stream: stream::Stream,
    name: String,
}

pub(crate) fn unavailable(what: &str, e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(format!("{what}: {e}"))
}

impl JetStreamBus {
    /// Opens `nats://HOST:PORT/?stream=NAME` (stream defaults to `magpie`).
    pub async fn open(url: &str) -> Result<JetStreamBus> {
        let (server, stream) = names::parse_url(url)?;
        JetStreamBus::connect(&server, &stream).await
    }

    /// Connects to the server at `url` and creates the stream `stream_name`,
    /// or brings an existing one to the settings correctness depends on.
    pub async fn connect(url: &str, stream_name: &str) -> Result<JetStreamBus> {
        names::check_stream_name(stream_name)?;
        // Losses of the connection matter to the relay only (pushes), not
        // to a durable log: nothing published is lost by a reconnect.
        let options = async_nats::ConnectOptions::new();
        let (client, _losses) = crate::nats_conn::connect(url, options, false).await?;
        let js = ContextBuilder::new()
            .max_ack_inflight(MAX_ACK_INFLIGHT)
            .build(client.clone());
        let wanted = stream::Config {
            name: stream_name.to_string(),
            subjects: vec![format!("{stream_name}.>")],
            storage: StorageType::File,
            retention: RetentionPolicy::Limits,
            max_age: MAX_AGE,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        };
        let mut stream = js
            .get_or_create_stream(wanted.clone())
            .await
            .map_err(|e| unavailable("creating the stream", e))?;
        let found = stream.cached_info().config.clone();
        // Work-queue or interest retention would delete an event once one
        // group acked it, and neither can be changed in place: refuse.
        if found.retention != RetentionPolicy::Limits || found.storage != StorageType::File {
            return Err(BusError::Config(format!(
                "stream {stream_name:?} exists without limits retention on file storage"
            )));
        }
        // Update only what correctness needs; max_age and replicas stay as
        // an operator may have tuned them.
        if found.subjects != wanted.subjects || found.duplicate_window != DUPLICATE_WINDOW {
            let update = stream::Config {
                subjects: wanted.subjects,
                duplicate_window: DUPLICATE_WINDOW,
                ..found
            };
            js.update_stream(update)
                .await
                .map_err(|e| unavailable("updating the stream", e))?;
            stream = js
                .get_stream(stream_name)
                .await
                .map_err(|e| unavailable("reading the stream", e))?;
        }
        Ok(JetStreamBus {
            client,
            js,
            stream,
            name: stream_name.to_string(),
        })
    }

    /// The stream this bus publishes to.
    pub fn stream_name(&self) -> &str {
        &self.name
    }
}

#[async_trait]
impl BusBackend for JetStreamBus {
    async fn publish(&self, events: Vec<Outgoing>) -> Result<Vec<u64>> {
        // Check every topic first, so a bad one publishes nothing.
        let subjects = events
            .iter()
            .map(|e| names::subject(&self.name, &e.topic))
            .collect::<Result<Vec<_>>>()?;
        // Disconnected, a publish would only be buffered and then time out
        // waiting for its ack: fail at once, so callers answer "retry" now
        // instead of queueing behind a timeout per batch.
        if self.client.connection_state() == async_nats::connection::State::Disconnected {
            return Err(unavailable("publishing", "not connected to NATS"));
        }
        let mut offsets = Vec::with_capacity(events.len());
        let pairs: Vec<_> = events.into_iter().zip(subjects).collect();
        for window in pairs.chunks(PUBLISH_WINDOW) {
            // Send the whole window, then await its acks: one round trip per
            // window, not per event. Sends are awaited one by one, which
            // keeps the window's events in order in the stream.
            let mut acks = Vec::with_capacity(window.len());
            for (event, subject) in window {
                let mut msg = PublishMessage::build().payload(event.payload.clone());
                if !event.msg_id.is_empty() {
                    msg = msg.message_id(&event.msg_id);
                }
                let ack = self
                    .js
                    .send_publish(subject.clone(), msg)
                    .await
                    .map_err(|e| unavailable("publishing", e))?;
                acks.push(ack);
            }
            for ack in acks {
                // A duplicate's ack carries `duplicate: true` and the first
                // publish's sequence, which is the offset to return.
                let ack = ack.await.map_err(|e| unavailable("publish ack", e))?;
                offsets.push(ack.sequence);
            }
        }
        Ok(offsets)
    }

    async fn consumer(
        &self,
        group: &str,
        topics: &[&str],
        opts: ConsumerOptions,
    ) -> Result<Box<dyn Consumer>> {
        let mut filters = topics
            .iter()
            .map(|t| names::subject(&self.name, t))
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
        let mut pull = self
            .stream
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
            pull = self
                .stream
                .update_consumer(widened)
                .await
                .map_err(|e| unavailable("updating the consumer group", e))?;
        }
        Ok(Box::new(consumer::JetStreamConsumer::new(
            self.client.clone(),
            pull,
            format!("{}.", self.name),
            opts.ack_wait,
        )))
    }
}
