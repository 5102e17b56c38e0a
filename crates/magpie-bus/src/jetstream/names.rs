//! Pure naming rules of the JetStream backend: the `nats://` URL, the stream
//! name, topic → subject and group → durable consumer name. No I/O here, so
//! the rules are unit-tested without a server.

use crate::{BusError, Result};

/// The stream used when the URL names none.
pub(super) const DEFAULT_STREAM: &str = "magpie";

/// Splits `nats://HOST:PORT/?stream=NAME` into the server address to dial
/// (query and trailing slash stripped: the client takes neither) and the
/// stream name.
pub(super) fn parse_url(url: &str) -> Result<(String, String)> {
    let (server, query) = url.split_once('?').unwrap_or((url, ""));
    let server = server.strip_suffix('/').unwrap_or(server).to_string();
    let mut stream = DEFAULT_STREAM.to_string();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("stream", name)) => stream = name.to_string(),
            // Strict: a misspelt option silently ignored would put every
            // event in the default stream.
            _ => {
                return Err(BusError::Config(format!(
                    "unknown nats bus option {pair:?}: expected stream=NAME"
                )));
            }
        }
    }
    check_stream_name(&stream)?;
    Ok((server, stream))
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
        format!("{clean}_{:016x}", fnv1a(group.as_bytes()))
    }
}

/// FNV-1a: tiny and stable across Rust releases and processes, unlike the
/// std hasher, which matters because the name must survive restarts.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_takes_an_optional_stream() {
        assert_eq!(
            parse_url("nats://h:4222/?stream=s1").unwrap(),
            ("nats://h:4222".into(), "s1".into())
        );
        assert_eq!(
            parse_url("nats://h:4222").unwrap(),
            ("nats://h:4222".into(), "magpie".into())
        );
        assert!(parse_url("nats://h/?strem=x").is_err());
        assert!(parse_url("nats://h/?stream=a.b").is_err());
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
