//! A message's trace context, in the W3C Trace Context form
//! (`traceparent: 00-{trace id}-{parent span id}-{flags}`).
//!
//! A client may send one with a message (continuing its own trace) and may
//! ask that the message be sampled; otherwise the server starts a trace at
//! acceptance. The context travels with the message on the bus and in the
//! relay's pushes (`Message::trace`), so every node that handles the
//! message records its hops under the same trace id (docs/observability.md).
//!
//! Invariant: a trace id is never all zeros, nor a span id (the
//! specification's invalid values); a context that says otherwise is
//! refused by `parse`, never propagated.

use crate::ids::{ConvId, Seq, ServerMsgId, UserId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    pub trace_id: u128,
    /// The span that handed the message on (the client's, or the last hop's).
    pub span_id: u64,
    /// Whether the trace is recorded for export (flag bit 0).
    pub sampled: bool,
}

impl TraceContext {
    /// A new trace (a new trace id and span id).
    pub fn root(sampled: bool) -> TraceContext {
        TraceContext {
            trace_id: nonzero(rand::random::<u128>),
            span_id: nonzero(rand::random::<u64>),
            sampled,
        }
    }

    /// The trace of a message that carries none (not sampled, no client
    /// context): derived from its server id, so every node names the same
    /// trace without it travelling in each event (ids unique as server ids
    /// are, spread by a mixing function).
    pub fn derived(server_id: i64) -> TraceContext {
        let id = server_id as u64;
        let hi = mix(id ^ 0x6d61_6770_6965_0001);
        let lo = mix(id);
        TraceContext {
            trace_id: (u128::from(hi) << 64 | u128::from(lo)).max(1),
            span_id: mix(id ^ 0x7370_616e).max(1),
            sampled: false,
        }
    }

    /// Reads a `traceparent` value; `None` for anything that is not a valid
    /// version-00 context (a future version's first four fields are read
    /// as the specification asks).
    pub fn parse(s: &str) -> Option<TraceContext> {
        let s = s.trim();
        let mut parts = s.split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let span = parts.next()?;
        let flags = parts.next()?;
        let rest = parts.next();
        if version.len() != 2 || version == "ff" || (version == "00" && rest.is_some()) {
            return None;
        }
        let hex = |t: &str, n: usize| {
            t.len() == n && t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        if !hex(version, 2) || !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        if trace_id == 0 || span_id == 0 {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The trace id as 32 lowercase hex digits (how logs and exporters
    /// name it).
    pub fn trace_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

/// splitmix64's finaliser: a bijection, so distinct ids stay distinct.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn nonzero<T: PartialEq + Default>(mut f: impl FnMut() -> T) -> T {
    loop {
        let v = f();
        if v != T::default() {
            return v;
        }
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

impl Serialize for TraceContext {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TraceContext {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        TraceContext::parse(&s).ok_or_else(|| serde::de::Error::custom("invalid traceparent"))
    }
}

/// `GET /internal/v1/trace/{server_id}` (and `magpie trace`): the hops of
/// one message from every node's trace buffer, oldest first
/// (docs/observability.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TraceReport {
    pub server_id: ServerMsgId,
    /// The message's trace id (32 hex digits), once a hop named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conv: Option<ConvId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<Seq>,
    /// The nodes that answered; `missing` were asked (live in the registry)
    /// and did not answer in time.
    pub nodes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    pub hops: Vec<TraceHop>,
}

/// One hop: what happened to the message, where and when.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TraceHop {
    /// `accepted`, `durable`, `published`, `forwarded`, `offline`,
    /// `unread`, `pushed`, `delivered`, `read`, `indexed` or `removed`.
    pub hop: String,
    pub node: String,
    /// Wall-clock time on that node, microseconds since the Unix epoch.
    pub at_us: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<Seq>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// What else the hop says: the conversation (durable), the node a push
    /// was forwarded to (forwarded), why it was deleted (removed:
    /// delivered, read or expired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_reads_back_as_written() {
        let t = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let c = TraceContext::parse(t).expect("valid");
        assert!(c.sampled);
        assert_eq!(c.to_string(), t);
        assert_eq!(c.trace_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let other = TraceContext::root(true);
        assert_ne!(other.trace_id, c.trace_id);
        let json = serde_json::to_string(&c).expect("json");
        assert_eq!(json, format!("\"{t}\""));
        let back: TraceContext = serde_json::from_str(&json).expect("back");
        assert_eq!(back, c);
    }

    #[test]
    fn invalid_contexts_are_refused() {
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more";
        assert!(
            TraceContext::parse(future).is_some(),
            "a later version's fields"
        );
        assert!(!TraceContext::root(false).sampled);
        let d = TraceContext::derived(386778940028489728);
        assert_eq!(
            d,
            TraceContext::derived(386778940028489728),
            "every node derives the same"
        );
        assert_ne!(
            d.trace_id,
            TraceContext::derived(386778940028489729).trace_id
        );
        assert!(!d.sampled && d.span_id != 0);
    }
}
