//! The Kafka backend (`kafka://HOST:PORT[,…]/PREFIX?partitions=P&replicas=R`),
//! on librdkafka (the `rdkafka` crate, built from its bundled source).
//!
//! Layout, after the JetStream backend's one stream per partition: one
//! topic per partition, `{PREFIX}.{i}`, each of one Kafka partition, holding
//! every kind of event of that partition; the kind travels in the record
//! header `magpie-topic`, the de-duplication id in `magpie-id`, the
//! partition key as the record key. So one conversation's events of every
//! kind keep one order (a worker applies a read after the messages it
//! covers), and offsets are `(kafka offset + 1) × P + i` (`names::offset`).
//!
//! A consumer group on partition `i` is the Kafka group `{PREFIX}.{group}.{i}`
//! over topic `{PREFIX}.{i}`: one member holds the partition, the others
//! (the same group's consumers on other nodes) stand by and take it over at
//! a rebalance, from the committed position (`consumer.rs`).
//!
//! Durability: the producer is idempotent with `acks=all`, and a publish
//! returns only once the broker acknowledged every record: an acknowledged
//! send is on the broker's log (fsync is the broker's configuration, as
//! `sync_interval` is NATS's).
//!
//! What differs from the other backends, and why it is acceptable:
//! - `msg_id` de-duplicates within a window (`publish.rs`): what this bus
//!   published in the last two minutes and what the log's tail held when it
//!   opened. Kafka has no server-side de-duplication by id (the idempotent
//!   producer removes only its own retries); the window is not an
//!   idempotency horizon, as on JetStream: the logic keeps its durable key.
//! - Consumers of one group on one partition do not compete: one holds the
//!   partition (Kafka's model), the others take over when it leaves.
//! - `pending` counts the partition's events of every kind the group has
//!   not read (Kafka's consumer lag), not only its own topics'.

mod consumer;
mod names;
mod producer;
mod publish;

use crate::{BusBackend, BusError, Consumer, ConsumerOptions, Outgoing, Result};
use async_trait::async_trait;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// How long a metadata or admin request may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn unavailable(what: &str, e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(format!("{what}: {e}"))
}

/// A bus on P Kafka topics. Wrap it in `crate::Bus` to share it.
pub struct KafkaBus {
    opts: names::Options,
    producers: producer::Producers,
    dedup: publish::Dedup,
}

impl KafkaBus {
    /// Opens a `kafka://` bus URL (see the module comment): creates the
    /// partition topics that are missing, refuses a log made with another
    /// partition count, loads the de-duplication window from the log's tail.
    pub async fn open(url: &str) -> Result<KafkaBus> {
        let opts = names::parse_url(url)?;
        create_topics(&opts).await?;
        let mut config = base_config(&opts.brokers);
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "1")
            // A publish fails (unavailable, retryable) rather than waits
            // without end when the broker is gone.
            .set("message.timeout.ms", "10000");
        let producers = producer::Producers::new(config)?;
        warm_up(&producers.get().1, &opts).await?;
        let dedup = publish::Dedup::load(&opts).await?;
        Ok(KafkaBus {
            opts,
            producers,
            dedup,
        })
    }
}

/// Asks the producer's client for the metadata of every partition topic
/// before the first publish: without it librdkafka learns a topic on its
/// first produce, and a fresh node's first send waited ~1 s for that.
async fn warm_up(producer: &FutureProducer, opts: &names::Options) -> Result<()> {
    let client = producer.clone();
    let topics: Vec<String> = (0..opts.partitions)
        .map(|i| names::partition_topic(&opts.prefix, i))
        .collect();
    tokio::task::spawn_blocking(move || -> Result<()> {
        for t in &topics {
            client
                .client()
                .fetch_metadata(Some(t), ADMIN_TIMEOUT)
                .map_err(|e| unavailable("kafka metadata", e))?;
        }
        Ok(())
    })
    .await
    .map_err(|e| unavailable("kafka metadata", e))?
}

/// What every client of this backend sets.
pub(super) fn base_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("client.id", "magpie")
        .set("socket.keepalive.enable", "true")
        .set("log_level", "4");
    if let Ok(d) = std::env::var("MAGPIE_KAFKA_DEBUG") {
        c.set("debug", d).set("log_level", "7");
    }
    c
}

/// Creates the partition topics (each one Kafka partition); an existing log
/// with another partition count is refused: keys would change partitions.
async fn create_topics(opts: &names::Options) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = base_config(&opts.brokers)
        .create()
        .map_err(|e| BusError::Config(format!("kafka admin client: {e}")))?;
    let existing = {
        let (brokers, prefix) = (opts.brokers.clone(), opts.prefix.clone());
        // librdkafka's metadata call blocks: off the runtime's threads.
        tokio::task::spawn_blocking(move || -> Result<Vec<u32>> {
            let meta: AdminClient<DefaultClientContext> = base_config(&brokers)
                .create()
                .map_err(|e| BusError::Config(format!("kafka admin client: {e}")))?;
            let md = meta
                .inner()
                .fetch_metadata(None, ADMIN_TIMEOUT)
                .map_err(|e| unavailable("kafka metadata", e))?;
            let mut found: Vec<u32> = md
                .topics()
                .iter()
                .filter_map(|t| names::partition_of_topic(&prefix, t.name()))
                .collect();
            found.sort_unstable();
            Ok(found)
        })
        .await
        .map_err(|e| unavailable("kafka metadata", e))??
    };
    if !existing.is_empty() && existing != (0..opts.partitions).collect::<Vec<_>>() {
        return Err(BusError::Config(format!(
            "kafka log {:?} has {} partitions, the url says partitions={}",
            opts.prefix,
            existing.len(),
            opts.partitions
        )));
    }
    let topics: Vec<String> = (0..opts.partitions)
        .filter(|i| !existing.contains(i))
        .map(|i| names::partition_topic(&opts.prefix, i))
        .collect();
    if topics.is_empty() {
        return Ok(());
    }
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(opts.replicas)))
        .collect();
    let results = admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT)),
        )
        .await
        .map_err(|e| unavailable("kafka create topics", e))?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => return Err(unavailable(&format!("kafka create topic {t}"), e)),
        }
    }
    Ok(())
}

#[async_trait]
impl BusBackend for KafkaBus {
    fn partitions(&self) -> u32 {
        self.opts.partitions
    }

    async fn publish(&self, events: Vec<Outgoing>) -> Result<Vec<u64>> {
        publish::publish(self, events).await
    }

    async fn consumer(
        &self,
        group: &str,
        topics: &[&str],
        partition: u32,
        opts: ConsumerOptions,
    ) -> Result<Box<dyn Consumer>> {
        if partition >= self.opts.partitions {
            return Err(BusError::Config(format!(
                "partition {partition} of a bus of {}",
                self.opts.partitions
            )));
        }
        let c = consumer::KafkaConsumer::join(&self.opts, group, topics, partition, opts).await?;
        Ok(Box::new(c))
    }
}
