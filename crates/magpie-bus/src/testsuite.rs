//! The bus conformance suite, written once for every backend: each promise
//! of `lib.rs` is one `pub async fn` taking a [`BusFactory`], and
//! [`bus_conformance!`](crate::bus_conformance) turns them into tests.
//!
//! A backend's test file provides a factory with a fresh namespace (a temp
//! directory, a unique stream name, ...) and invokes the macro:
//!
//! ```ignore
//! magpie_bus::bus_conformance!(MyFactory::fresh());
//! ```
//!
//! The expression is evaluated once per test, so every case starts empty.
//! The suite panics on failure (it is test code) and the crate using the
//! macro needs `tokio` as a (dev-)dependency.

mod delivery;
mod durability;
pub mod relay;
#[cfg(feature = "kafka")]
pub mod tansu;

pub use delivery::*;
pub use durability::*;

use crate::{Bus, Consumer, ConsumerOptions, Delivery, Outgoing};
use bytes::Bytes;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// A loopback port that is free now and that no outbound connection will
/// take before its user binds it: a port the kernel hands out for bind(:0)
/// lies in the ephemeral range (32768–60999 by default), where every
/// connect() of every parallel test also draws its local port, so a child
/// process started on it a moment later may find it taken. Below that range
/// only another listener can collide, and bind() here checks for one.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    let seed = RandomState::new();
    for i in 0u64.. {
        let port = 20_000 + (seed.hash_one(i) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    unreachable!("some port in 20000-31999 is free")
}

/// Opens buses over one namespace. `open` is called again after every
/// handle of the previous bus was dropped to simulate a restart: it must see
/// the same durable state.
pub trait BusFactory: Send + Sync {
    fn open(&self) -> impl Future<Output = Bus> + Send;
    /// Whether consumers of one group on one partition compete for its
    /// events (embedded, JetStream), or one of them holds the partition
    /// while the others stand by to take it over (Kafka's groups).
    fn competing(&self) -> bool {
        true
    }
    /// Whether `pending` counts the partition's events of every topic the
    /// group has not read (Kafka's consumer lag), not only its own topics'.
    fn pending_counts_other_topics(&self) -> bool {
        false
    }
    /// Whether, after a restart, exactly the unacked events come again
    /// also when the acked ones were not contiguous. `false` only for a
    /// broker known to drop what a Kafka commit carries beside its offset
    /// (tansu 0.6): events acked above an unacked one may then come again
    /// (at least once; consumers are idempotent), never fewer.
    fn exact_redelivery(&self) -> bool {
        true
    }
    /// Events each of the ten concurrent publishers of
    /// `concurrent_publishes_are_delivered_exactly_once` sends: 1,000,
    /// fewer for a test broker that cannot answer a new group's offset
    /// fetch in time over a longer log (tansu 0.6: docs/deploy.md, "Kafka").
    fn concurrent_events(&self) -> usize {
        1000
    }
}

/// Expands to one `#[tokio::test]` per conformance case, each evaluating
/// `$factory` for a fresh namespace.
#[macro_export]
macro_rules! bus_conformance {
    ($factory:expr) => {
        $crate::bus_conformance!(@cases $factory;
            publish_returns_increasing_offsets_and_keeps_order,
            consumer_sees_only_its_topics,
            every_group_sees_every_event,
            consumers_of_one_group_split_events,
            unacked_event_is_redelivered_after_ack_wait,
            nak_redelivers_promptly,
            acked_events_are_not_redelivered,
            unacked_events_are_redelivered_after_reopen,
            published_event_survives_reopen,
            msg_id_deduplicates,
            fetch_wakes_on_publish,
            concurrent_publishes_are_delivered_exactly_once,
            keys_keep_their_order_across_partitions,
            pending_counts_the_groups_backlog,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread")]
            async fn $case() {
                let factory = $factory;
                $crate::testsuite::$case(&factory).await;
            }
        )*
    };
}

/// An event whose payload is its msg_id, so deliveries are easy to check.
pub fn event(topic: &str, msg_id: &str) -> Outgoing {
    Outgoing {
        topic: topic.into(),
        key: String::new(),
        msg_id: msg_id.into(),
        payload: Bytes::from(msg_id.to_string()),
    }
}

pub fn opts(ack_wait: Duration) -> ConsumerOptions {
    ConsumerOptions { ack_wait }
}

pub async fn publish(bus: &Bus, events: Vec<Outgoing>) -> Vec<u64> {
    let n = events.len();
    let offsets = bus.publish(events).await.expect("publish");
    assert_eq!(offsets.len(), n, "one offset per event");
    offsets
}

/// Publishes, in one call, events `names(prefix, n)` on `topic`.
pub async fn publish_names(bus: &Bus, topic: &str, prefix: &str, n: usize) -> Vec<u64> {
    let events = names(prefix, n).iter().map(|id| event(topic, id)).collect();
    publish(bus, events).await
}

pub async fn consumer(
    bus: &Bus,
    group: &str,
    topics: &[&str],
    ack_wait: Duration,
) -> Box<dyn Consumer> {
    // `event` publishes with an empty key: every case's events share its
    // partition, so the cases check one partition's promises.
    let partition = crate::partition_of("", bus.partitions());
    bus.consumer(group, topics, partition, opts(ack_wait))
        .await
        .expect("consumer")
}

/// Fetches until `n` deliveries arrived (acking them when `ack`), failing
/// after 20s; then checks nothing more is ready.
pub async fn take(c: &mut Box<dyn Consumer>, n: usize, ack: bool) -> Vec<Delivery> {
    let give_up = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            Instant::now() < give_up,
            "only {} of {n} events arrived",
            got.len()
        );
        let batch = c
            .fetch(n - got.len(), Duration::from_millis(500))
            .await
            .expect("fetch");
        if ack && !batch.is_empty() {
            let offsets: Vec<u64> = batch.iter().map(|d| d.offset).collect();
            c.ack(&offsets).await.expect("ack");
        }
        got.extend(batch);
    }
    assert_eq!(got.len(), n, "more events than expected");
    got
}

/// Asserts that nothing is delivered within `wait`.
pub async fn assert_idle(c: &mut Box<dyn Consumer>, wait: Duration) {
    let extra = c.fetch(100, wait).await.expect("fetch");
    assert!(extra.is_empty(), "unexpected deliveries: {extra:?}");
}

pub fn ids(ds: &[Delivery]) -> Vec<String> {
    ds.iter()
        .map(|d| String::from_utf8_lossy(&d.payload).into_owned())
        .collect()
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

pub fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:05}")).collect()
}

/// The test NATS server (`MAGPIE_TEST_NATS_URL`, see `scripts/services.sh`);
/// `None`, with a notice, when it is not configured, except under CI (`CI`
/// set), where a missing server must fail rather than pass silently.
pub fn nats_test_url() -> Option<String> {
    let Ok(url) = std::env::var("MAGPIE_TEST_NATS_URL") else {
        if std::env::var_os("CI").is_some() {
            panic!("MAGPIE_TEST_NATS_URL is not set (run scripts/services.sh start)");
        }
        eprintln!("skipping: MAGPIE_TEST_NATS_URL is not set");
        return None;
    };
    Some(url)
}

/// `{prefix}_{16 hex digits}`, unique across parallel cases and across runs
/// sharing one server (RandomState is seeded per process and instance,
/// mixed here with the time).
pub fn unique_name(prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{prefix}_{:016x}", h.finish())
}
