//! Pure naming rules of the JetStream backend: the `nats://` URL, the stream
//! name, topic → subject and group → durable consumer name. No I/O here, so
//! the rules are unit-tested without a server.

use crate::{BusError, Result};

/// The stream used when the URL names none.
pub(super) const DEFAULT_STREAM: &str = "magpie";

/// Upper bound on `partitions`: each partition is a stream with its own
/// Raft group, and each consumer group pulls from every one.
pub(super) const MAX_PARTITIONS: u32 = 256;

/// What a `nats://` bus URL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Options {
    /// The servers to dial, `nats://h:p[,h:p…]` (query and trailing slash
    /// stripped: the client takes neither).
    pub server: String,
    pub stream: String,
    /// Streams the log is split into by partition key (1: one stream).
    pub partitions: u32,
    /// Replicas of a stream this backend creates (a stream that exists
    /// keeps what an operator set).
    pub replicas: usize,
}

/// Parses `nats://HOST:PORT[,HOST:PORT…]/?stream=NAME&partitions=P&replicas=R`.
pub(super) fn parse_url(url: &str) -> Result<Options> {
    let (server, query) = url.split_once('?').unwrap_or((url, ""));
    let server = server.strip_suffix('/').unwrap_or(server).to_string();
    let mut opts = Options {
        server,
        stream: DEFAULT_STREAM.to_string(),
        partitions: 1,
        replicas: 1,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let number = |v: &str, max: u32| crate::url_number("nats", pair, v, max);
        match pair.split_once('=') {
            Some(("stream", name)) => opts.stream = name.to_string(),
            Some(("partitions", n)) => opts.partitions = number(n, MAX_PARTITIONS)?,
            // JetStream allows at most 5 replicas.
            Some(("replicas", n)) => opts.replicas = number(n, 5)? as usize,
            // Strict: a misspelt option silently ignored would put every
            // event in the default stream.
            _ => {
                return Err(BusError::Config(format!(
                    "unknown nats bus option {pair:?}: expected stream=NAME, partitions=P or replicas=R"
                )));
            }
        }
    }
    check_stream_name(&opts.stream)?;
    Ok(opts)
}

/// The stream of partition `i`: the configured name itself when there is
/// one partition (so an unpartitioned deployment keeps its stream), else
/// `{name}-{i}`.
pub(super) fn partition_stream(name: &str, partitions: u32, i: u32) -> String {
    if partitions == 1 {
        name.to_string()
    } else {
        format!("{name}-{i}")
    }
}

/// A partition's offsets: its stream sequence times the partition count,
/// plus the partition, so offsets of different partitions never collide
/// and one partition's offsets still increase with its sequence.
pub(super) fn offset(seq: u64, partitions: u32, i: u32) -> u64 {
    seq * u64::from(partitions) + u64::from(i)
}

/// JetStream stream names become subject tokens and file names: no dots,
/// wildcards, whitespace or path separators.
pub(super) fn check_stream_name(name: &str) -> Result<()> {
    if name.is_empty() || !name.chars().all(is_name_char) {
        return Err(BusError::Config(format!(
            "invalid stream name {name:?}: use letters, digits, '_' and '-'"
        )));
    }
    Ok(())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// The subject a topic is published on: `{stream}.{topic}`. Topics may hold
/// dots (`dead.offline`), which simply add subject tokens; wildcards, empty
/// tokens and whitespace are refused since they would change what matches.
pub(super) fn subject(stream: &str, topic: &str) -> Result<String> {
    let valid = !topic.is_empty()
        && topic.split('.').all(|token| {
            !token.is_empty()
                && token != "*"
                && token != ">"
                && !token.chars().any(|c| c.is_whitespace())
        });
    if !valid {
        return Err(BusError::Config(format!("invalid bus topic {topic:?}")));
    }
    Ok(format!("{stream}.{topic}"))
}

/// The durable consumer name of a group. Characters outside `[A-Za-z0-9_-]`
/// become `_`; when that changed anything, a hash of the original name is
/// appended so that `a.b` and `a_b` stay two different groups.
pub(super) fn durable_name(group: &str) -> String {
    let clean: String = group
        .chars()
        .map(|c| if is_name_char(c) { c } else { '_' })
        .collect();
    if clean == group && !group.is_empty() {
        clean
    } else {
        // FNV-1a is stable across releases, so the name survives restarts.
        format!(
            "{clean}_{:016x}",
            magpie_core::stable_hash(group.as_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_takes_an_optional_stream() {
        let o = parse_url("nats://h:4222/?stream=s1").unwrap();
        assert_eq!(
            (o.server.as_str(), o.stream.as_str()),
            ("nats://h:4222", "s1")
        );
        let o = parse_url("nats://h:4222").unwrap();
        assert_eq!(
            (o.stream.as_str(), o.partitions, o.replicas),
            ("magpie", 1, 1)
        );
        assert!(parse_url("nats://h/?strem=x").is_err());
        assert!(parse_url("nats://h/?stream=a.b").is_err());
    }

    #[test]
    fn url_takes_partitions_replicas_and_several_servers() {
        let o = parse_url("nats://a:1,b:2,c:3/?stream=s&partitions=4&replicas=3").unwrap();
        assert_eq!(o.server, "nats://a:1,b:2,c:3");
        assert_eq!((o.partitions, o.replicas), (4, 3));
        for bad in ["partitions=0", "partitions=257", "replicas=6", "replicas=x"] {
            assert!(parse_url(&format!("nats://h/?{bad}")).is_err(), "{bad}");
        }
    }

    #[test]
    fn partition_offsets_never_collide() {
        assert_eq!(partition_stream("m", 1, 0), "m");
        assert_eq!(partition_stream("m", 3, 2), "m-2");
        assert_eq!(offset(7, 1, 0), 7);
        let mut seen = std::collections::HashSet::new();
        for seq in 1..50 {
            for i in 0..3 {
                assert!(seen.insert(offset(seq, 3, i)));
            }
        }
        assert!(
            offset(2, 3, 0) > offset(1, 3, 2),
            "a partition's offsets increase"
        );
    }

    #[test]
    fn topics_map_to_subjects() {
        assert_eq!(subject("m", "dead.offline").unwrap(), "m.dead.offline");
        for bad in ["", "a..b", "a.*", ">", "a b", ".a"] {
            assert!(subject("m", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn group_names_are_sanitized_without_collisions() {
        assert_eq!(durable_name("storage-writer_1"), "storage-writer_1");
        let dotted = durable_name("a.b");
        assert!(dotted.starts_with("a_b_") && dotted.chars().all(is_name_char));
        assert_ne!(dotted, durable_name("a_b"));
        assert_eq!(dotted, durable_name("a.b"), "stable");
    }
}
