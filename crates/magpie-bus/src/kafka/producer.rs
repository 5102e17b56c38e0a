//! The bus's idempotent producer, replaced by a fresh one when a produce
//! fails.
//!
//! Why replace it: when a record times out (the broker gone longer than
//! `message.timeout.ms`) or the producer hits a fatal error, librdkafka's
//! idempotent producer bumps its epoch by itself and goes on with the new
//! epoch. Apache Kafka accepts that (KIP-360); brokers that do not (tansu
//! 0.6 stops serving: docs/deploy.md, "Kafka") never answer again. A new
//! producer asks the broker for a new producer id instead, which every
//! Kafka-protocol broker supports. The old one is purged and destroyed at
//! once, so it sends nothing more; its records still queued fail (purged)
//! and their publishes return `Unavailable`, which callers retry.
//!
//! Invariant: records of one publish go through one producer (its order
//! and idempotence hold within it); a publish that saw any failure
//! returns an error, never a partial success.

use super::unavailable;
use crate::Result;
use parking_lot::Mutex;
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, Producer, PurgeConfig};

pub(super) struct Producers {
    config: ClientConfig,
    current: Mutex<(u64, FutureProducer)>,
}

impl Producers {
    pub(super) fn new(config: ClientConfig) -> Result<Producers> {
        let first = create(&config)?;
        Ok(Producers {
            config,
            current: Mutex::new((0, first)),
        })
    }

    /// The producer to use now and its generation (for `failed`).
    pub(super) fn get(&self) -> (u64, FutureProducer) {
        let c = self.current.lock();
        (c.0, c.1.clone())
    }

    /// A produce through generation `gen` failed with `e`: unless another
    /// publish replaced it already, or the failure is one the producer
    /// recovers from unchanged, swap in a new producer and retire the old.
    pub(super) fn failed(&self, generation: u64, e: &KafkaError) {
        if !needs_new_producer(e) {
            return;
        }
        let old = {
            let mut c = self.current.lock();
            if c.0 != generation {
                return;
            }
            let Ok(fresh) = create(&self.config) else {
                return; // keep the old one; the next failure tries again
            };
            tracing::warn!(error = %e, "kafka produce failed: starting a new producer");
            std::mem::replace(&mut *c, (generation + 1, fresh)).1
        };
        // Purging waits for librdkafka's threads, and dropping destroys the
        // client: both off the runtime's threads.
        tokio::task::spawn_blocking(move || {
            old.purge(PurgeConfig::default().queue().inflight());
            drop(old);
        });
    }
}

fn create(config: &ClientConfig) -> Result<FutureProducer> {
    config
        .create()
        .map_err(|e| unavailable("kafka producer", e))
}

/// Whether the producer may carry on after `e`. Records purged by a
/// replacement are not a reason for another; broker answers about one
/// record (too large, a topic missing) leave the producer as it was.
fn needs_new_producer(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    !matches!(
        e.rdkafka_error_code(),
        Some(
            C::PurgeQueue
                | C::PurgeInflight
                | C::MessageSizeTooLarge
                | C::UnknownTopicOrPartition
                | C::InvalidRecord
        )
    )
}
