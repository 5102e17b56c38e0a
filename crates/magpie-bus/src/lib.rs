//! The message bus: a durable, at-least-once log with consumer groups and
//! explicit acknowledgements, shaped after NATS JetStream / Kafka.
//!
//! - `publish` returns only once the event is durable (the embedded log has
//!   committed it to the data directory); that is what lets the logic
//!   acknowledge a sender.
//! - Each consumer group sees every event of its topics; consumers of one
//!   group compete. An event fetched but not acknowledged within `ack_wait`
//!   is delivered again with `attempt + 1`.
//! - `msg_id` de-duplicates publishes inside the retention of the log.
//!
//! The embedded backend is `embedded://PATH` (a SQLite file written by one
//! thread with group commit).
//!
//! What may be lost (pushes to other nodes, broadcasts, presence) goes
//! through the [`Relay`] instead: best effort, but every loss is reported
//! to the subscriber as a gap (`relay/mod.rs`).

mod embedded;
mod error;
#[cfg(feature = "jetstream")]
mod jetstream;
#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "nats")]
mod nats_conn;
pub mod relay;
pub mod testsuite;

use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

pub use embedded::{EmbeddedBus, EmbeddedOptions};
pub use error::BusError;
#[cfg(feature = "jetstream")]
pub use jetstream::JetStreamBus;
#[cfg(feature = "kafka")]
pub use kafka::KafkaBus;
pub use relay::{Relay, RelayEvent, RelayOptions, RelayStats, RelaySubscription};

pub type Result<T> = std::result::Result<T, BusError>;

/// One event as delivered to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Position in the log; what `ack` takes.
    pub offset: u64,
    pub topic: String,
    pub payload: Bytes,
    /// 1 on first delivery, incremented on each redelivery.
    pub attempt: u32,
}

/// An event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub topic: String,
    /// Partition key (`magpie_core::BusEvent::partition_key`): the event
    /// goes to partition [`partition_of`]`(key, partitions)`, and a
    /// partition keeps its events in publish order, so one key's events
    /// stay in order. A bus of one partition keeps one order per topic.
    pub key: String,
    /// De-duplication key: a second publish with the same id returns the
    /// first one's offset and appends nothing.
    pub msg_id: String,
    pub payload: Bytes,
}

#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Redeliver an event not acknowledged within this time.
    pub ack_wait: Duration,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            ack_wait: Duration::from_secs(30),
        }
    }
}

#[async_trait]
pub trait BusBackend: Send + Sync + 'static {
    /// How many partitions the log is split into (fixed for the life of a
    /// deployment: changing it would move keys between partitions).
    fn partitions(&self) -> u32 {
        1
    }
    /// Appends the events durably, each to its key's partition, in order
    /// within a partition; returns their offsets (for a duplicate `msg_id`,
    /// the original offset). Offsets are unique across partitions.
    async fn publish(&self, events: Vec<Outgoing>) -> Result<Vec<u64>>;
    /// Joins (creating if needed) the durable consumer group `group` over
    /// `topics` in one partition (`0..partitions()`): a group that wants
    /// every event joins every partition. A new group starts at the
    /// beginning of the retained log.
    async fn consumer(
        &self,
        group: &str,
        topics: &[&str],
        partition: u32,
        opts: ConsumerOptions,
    ) -> Result<Box<dyn Consumer>>;
}

/// The partition of `key` among `partitions` (`magpie_core::bucket_of`:
/// stable across processes and releases, as every node must agree).
pub fn partition_of(key: &str, partitions: u32) -> u32 {
    magpie_core::bucket_of(key, partitions)
}

#[async_trait]
pub trait Consumer: Send + 'static {
    /// Up to `max` events: first those whose ack wait expired (redeliveries),
    /// then new ones in log order. Waits up to `wait` when none is ready.
    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>>;
    /// Acknowledges events (durably): they are never delivered to this group again.
    async fn ack(&mut self, offsets: &[u64]) -> Result<()>;
    /// Asks for a redelivery as soon as possible.
    async fn nak(&mut self, offset: u64) -> Result<()>;
    /// The group's backlog in this partition: events of its topics not yet
    /// delivered to it, as of the last `fetch` (None before the first).
    /// Consumer lag for the operators (docs/observability.md); cheap enough
    /// to ask once a second, not per event.
    fn pending(&self) -> Option<u64>;
}

/// Cheap, cloneable handle to the configured bus.
#[derive(Clone)]
pub struct Bus(Arc<dyn BusBackend>);

impl Bus {
    pub fn new(backend: impl BusBackend) -> Self {
        Bus(Arc::new(backend))
    }

    /// Opens the backend a URL names: `embedded://PATH`,
    /// `nats://HOST:PORT[,HOST:PORT…]/?stream=NAME&partitions=P&replicas=R`
    /// or `kafka://HOST:PORT[,HOST:PORT…]/PREFIX?partitions=P&replicas=R`
    /// (docs/config.md).
    pub async fn open(url: &str) -> Result<Bus> {
        if let Some(path) = url.strip_prefix("embedded://") {
            return Ok(Bus::new(EmbeddedBus::open(path).await?));
        }
        #[cfg(feature = "jetstream")]
        if url.starts_with("nats://") {
            return Ok(Bus::new(JetStreamBus::open(url).await?));
        }
        #[cfg(feature = "kafka")]
        if url.starts_with("kafka://") {
            return Ok(Bus::new(KafkaBus::open(url).await?));
        }
        Err(BusError::Config(format!(
            "unknown bus url {url:?}: expected embedded://PATH"
        )))
    }
}

impl std::ops::Deref for Bus {
    type Target = dyn BusBackend;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

/// A bus URL option's number `v`, from 1 to `max` (`pair` is the option as
/// written, `bus` the backend's name, both for the error).
#[cfg(any(feature = "jetstream", feature = "kafka"))]
pub(crate) fn url_number(bus: &str, pair: &str, v: &str, max: u32) -> Result<u32> {
    match v.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(BusError::Config(format!(
            "{bus} bus option {pair:?}: expected a number from 1 to {max}"
        ))),
    }
}
