//! A link of a client's ordering chain (docs/protocol.md, "Ordering
//! chain"): the id a device gives a message and the id it will give its
//! next one. The server keeps, per user and device, the id it expects next
//! and processes a device's chained sends in chain order.

use serde::{Deserialize, Serialize};

/// Bytes a chain id may have at most.
pub const CHAIN_ID_MAX: usize = 64;

/// One link: this message's chain id and its successor's. Both are
/// non-empty, at most [`CHAIN_ID_MAX`] bytes, and differ (a link to itself
/// would hold the chain in place forever); deserializing checks it, so a
/// `ChainLink` in hand is always valid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawLink")]
pub struct ChainLink {
    pub id: String,
    pub next: String,
}

#[derive(Deserialize)]
struct RawLink {
    id: String,
    next: String,
}

impl TryFrom<RawLink> for ChainLink {
    type Error = String;
    fn try_from(r: RawLink) -> Result<Self, String> {
        ChainLink::new(r.id, r.next)
    }
}

impl ChainLink {
    /// A valid link, or why it is not one.
    pub fn new(id: impl Into<String>, next: impl Into<String>) -> Result<ChainLink, String> {
        let (id, next) = (id.into(), next.into());
        for (name, v) in [("chain.id", &id), ("chain.next", &next)] {
            if v.is_empty() || v.len() > CHAIN_ID_MAX {
                return Err(format!("{name}: 1 to {CHAIN_ID_MAX} bytes"));
            }
        }
        if id == next {
            return Err("chain: id and next must differ".into());
        }
        Ok(ChainLink { id, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_checked_when_read() {
        let ok: ChainLink = serde_json::from_str(r#"{"id":"a","next":"b"}"#).unwrap();
        assert_eq!(ok, ChainLink::new("a", "b").unwrap());
        for bad in [
            r#"{"id":"","next":"b"}"#.to_string(),
            r#"{"id":"a","next":"a"}"#.to_string(),
            format!(r#"{{"id":"a","next":"{}"}}"#, "x".repeat(65)),
            r#"{"id":"a"}"#.to_string(),
        ] {
            assert!(serde_json::from_str::<ChainLink>(&bad).is_err(), "{bad}");
        }
        assert!(ChainLink::new("a", "x".repeat(64)).is_ok());
    }
}
