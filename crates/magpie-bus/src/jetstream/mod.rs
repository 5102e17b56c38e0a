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
mod publish;
mod streams;

use crate::{BusBackend, BusError, Consumer, ConsumerOptions, Outgoing, Result};
use async_nats::jetstream::context::ContextBuilder;
use async_nats::jetstream::stream;
use async_trait::async_trait;
use futures_util::future::join_all;

/// The client's cap on unawaited publish acks per connection. A publisher
/// holds its permits until it awaits its acks, so concurrent publishers
/// could deadlock on a small cap; this one needs over 1,000 concurrent full
/// windows to bind.
const MAX_ACK_INFLIGHT: usize = 1 << 20;

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
            let mut stream = streams::ensure_stream(&js, &name, opts).await?;
            streams::wait_for_leader(&mut stream, &name).await?;
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
        let pull = streams::join_group(stream, stream_name, group, topics, opts.ack_wait).await?;
        Ok(Box::new(consumer::JetStreamConsumer::new(
            self.client.clone(),
            pull,
            format!("{stream_name}."),
            opts.ack_wait,
            (self.partitions(), partition),
        )))
    }
}
