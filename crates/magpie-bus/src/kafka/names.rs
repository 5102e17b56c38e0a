//! Pure naming rules of the Kafka backend: the `kafka://` URL, a
//! partition's topic, a group's Kafka group id and the offsets handed to
//! consumers. No I/O here, so the rules are unit-tested without a broker.

use crate::{BusError, Result};

/// The prefix used when the URL names none.
pub(super) const DEFAULT_PREFIX: &str = "magpie";

/// Upper bound on `partitions`: each is a topic, and each consumer group
/// is one Kafka consumer per partition on every worker node.
pub(super) const MAX_PARTITIONS: u32 = 256;

/// Record headers: the event's topic (its kind) and its de-duplication id.
pub(super) const KIND_HEADER: &str = "magpie-topic";
pub(super) const ID_HEADER: &str = "magpie-id";

/// What a `kafka://` bus URL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Options {
    /// `host:port[,host:port…]`, librdkafka's `bootstrap.servers`.
    pub brokers: String,
    pub prefix: String,
    pub partitions: u32,
    /// Replication factor of the topics this backend creates.
    pub replicas: i32,
}

/// Parses `kafka://HOST:PORT[,HOST:PORT…]/PREFIX?partitions=P&replicas=R`.
pub(super) fn parse_url(url: &str) -> Result<Options> {
    let rest = url
        .strip_prefix("kafka://")
        .ok_or_else(|| BusError::Config(format!("not a kafka url: {url:?}")))?;
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (brokers, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if brokers.is_empty() {
        return Err(BusError::Config(format!(
            "kafka url {url:?} names no broker"
        )));
    }
    let mut opts = Options {
        brokers: brokers.to_string(),
        prefix: if prefix.is_empty() {
            DEFAULT_PREFIX
        } else {
            prefix
        }
        .to_string(),
        partitions: 1,
        replicas: 1,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let number = |v: &str, max: u32| crate::url_number("kafka", pair, v, max);
        match pair.split_once('=') {
            Some(("partitions", n)) => opts.partitions = number(n, MAX_PARTITIONS)?,
            Some(("replicas", n)) => opts.replicas = number(n, 16)? as i32,
            _ => {
                return Err(BusError::Config(format!(
                    "unknown kafka bus option {pair:?}: expected partitions=P or replicas=R"
                )));
            }
        }
    }
    check_prefix(&opts.prefix)?;
    Ok(opts)
}

/// Kafka topic names allow `[a-zA-Z0-9._-]`, at most 249 characters; the
/// prefix leaves room for `.{partition}`.
pub(super) fn check_prefix(prefix: &str) -> Result<()> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 200
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(BusError::Config(format!(
            "kafka topic prefix {prefix:?}: expected 1-200 of [a-zA-Z0-9._-]"
        )))
    }
}

/// Partition `i`'s topic: one Kafka partition, every kind of event.
pub(super) fn partition_topic(prefix: &str, i: u32) -> String {
    format!("{prefix}.{i}")
}

/// The partition a topic of this bus is, if it is one.
pub(super) fn partition_of_topic(prefix: &str, topic: &str) -> Option<u32> {
    topic.strip_prefix(prefix)?.strip_prefix('.')?.parse().ok()
}

/// The Kafka group of consumer group `group` on partition `i`: its members
/// are this group's consumers of that partition on every node, one of
/// which holds it at a time.
pub(super) fn group_id(prefix: &str, group: &str, i: u32) -> String {
    format!("{prefix}.{group}.{i}")
}

/// The offset handed out for Kafka offset `k` of partition `i`: unique
/// across partitions, increasing with `k` within one, never 0.
pub(super) fn offset(k: i64, partitions: u32, i: u32) -> u64 {
    (k.max(0) as u64 + 1) * u64::from(partitions) + u64::from(i)
}

/// The partition and Kafka offset of a handed-out offset.
pub(super) fn split(offset: u64, partitions: u32) -> (u32, i64) {
    let p = u64::from(partitions);
    ((offset % p) as u32, (offset / p) as i64 - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_defaults_and_options() {
        let o = parse_url("kafka://127.0.0.1:9092").unwrap();
        assert_eq!(
            (
                o.brokers.as_str(),
                o.prefix.as_str(),
                o.partitions,
                o.replicas
            ),
            ("127.0.0.1:9092", "magpie", 1, 1)
        );
        let o = parse_url("kafka://a:1,b:2/chat_1?partitions=4&replicas=3").unwrap();
        assert_eq!(
            (
                o.brokers.as_str(),
                o.prefix.as_str(),
                o.partitions,
                o.replicas
            ),
            ("a:1,b:2", "chat_1", 4, 3)
        );
        for bad in [
            "nats://a:1",
            "kafka:///x",
            "kafka://a:1/x?partitions=0",
            "kafka://a:1/x?stream=y",
            "kafka://a:1/bad name",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn offsets_are_unique_across_partitions_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..3 {
            for k in 0..100 {
                let o = offset(k, 3, i);
                assert!(o > 0 && seen.insert(o));
                assert_eq!(split(o, 3), (i, k));
            }
        }
        assert!(offset(5, 3, 1) < offset(6, 3, 1));
    }

    #[test]
    fn topics_name_their_partition() {
        assert_eq!(partition_topic("m", 2), "m.2");
        assert_eq!(partition_of_topic("m", "m.2"), Some(2));
        assert_eq!(partition_of_topic("m", "m.x"), None);
        assert_eq!(partition_of_topic("m", "mm.2"), None);
        assert_eq!(group_id("m", "state", 3), "m.state.3");
    }
}
