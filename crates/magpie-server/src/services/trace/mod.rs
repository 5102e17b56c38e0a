//! Message traces: the hops of each message on this node — accepted,
//! durable, published, forwarded, offline, unread, pushed (per device),
//! delivered, read, indexed, removed — in a bounded buffer (`ring.rs`), and
//! the question "what happened to message N" asked of every node at once
//! over the relay (`gather.rs`). docs/observability.md.
//!
//! Invariants: recording never blocks on I/O and never fails a message
//! (a hop is a few words pushed under a short lock, or nothing when
//! `trace.buffer` is 0); no body is ever recorded; a message's trace
//! context is decided once, at acceptance (`decide`), and travels with it.

mod config;
#[cfg(feature = "otlp")]
mod export;
mod gather;
mod ring;

use crate::config::Config;
use magpie_bus::Relay;
use magpie_core::trace::TraceHop;
use magpie_core::{ConvId, Message, Seq, TraceContext, UserId, stable_hash};
use std::sync::Arc;

pub use config::TraceConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HopKind {
    #[default]
    Accepted,
    Durable,
    Published,
    Forwarded,
    Offline,
    /// Counted in its receiver's unread count and offline queue (the state
    /// worker; direct messages only: groups keep no per-member state).
    Unread,
    Pushed,
    Delivered,
    Read,
    Indexed,
    /// Deleted by its persistence level (`detail`: delivered, read or
    /// expired). Names a conversation and a sequence, like a read.
    Removed,
}

impl HopKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HopKind::Accepted => "accepted",
            HopKind::Durable => "durable",
            HopKind::Published => "published",
            HopKind::Forwarded => "forwarded",
            HopKind::Offline => "offline",
            HopKind::Unread => "unread",
            HopKind::Pushed => "pushed",
            HopKind::Delivered => "delivered",
            HopKind::Read => "read",
            HopKind::Indexed => "indexed",
            HopKind::Removed => "removed",
        }
    }

    /// The name of its exported span.
    pub fn span_name(self) -> &'static str {
        match self {
            HopKind::Accepted => "magpie.accepted",
            HopKind::Durable => "magpie.durable",
            HopKind::Published => "magpie.published",
            HopKind::Forwarded => "magpie.forwarded",
            HopKind::Offline => "magpie.offline",
            HopKind::Unread => "magpie.unread",
            HopKind::Pushed => "magpie.pushed",
            HopKind::Delivered => "magpie.delivered",
            HopKind::Read => "magpie.read",
            HopKind::Indexed => "magpie.indexed",
            HopKind::Removed => "magpie.removed",
        }
    }
}

/// One hop as kept: ids and a time, no body. Its `trace` is always set
/// (the message's, or derived from its server id); a read's is `None`.
#[derive(Debug, Clone, Default)]
pub struct Hop {
    pub kind: HopKind,
    pub at_us: i64,
    /// 0 for a read (it names a conversation and a sequence).
    pub server_id: i64,
    /// The conversation's stable hash (`conv_key`).
    pub conv: u64,
    pub seq: Seq,
    /// The sender (accepted) or the receiver (pushed, delivered, read,
    /// offline); 0 when none.
    pub user: i64,
    pub device: Option<Arc<str>>,
    pub transport: Option<&'static str>,
    pub trace: Option<TraceContext>,
    pub detail: Option<Arc<str>>,
    /// The `accepted` hop of a message whose trace the server started: its
    /// exported span is the trace's root (`export.rs`).
    pub root: bool,
}

impl Hop {
    /// A hop of `msg` now.
    pub fn of(kind: HopKind, msg: &Message) -> Hop {
        Hop {
            kind,
            at_us: now_us(),
            server_id: msg.server_id.0,
            conv: conv_key(&msg.conv),
            seq: msg.seq,
            trace: Some(msg.trace_context()),
            ..Hop::default()
        }
    }

    pub fn user(mut self, user: UserId) -> Hop {
        self.user = user.0;
        self
    }

    pub fn device(mut self, device: Option<&Arc<str>>) -> Hop {
        self.device = device.cloned();
        self
    }

    pub fn detail(mut self, detail: impl Into<Arc<str>>) -> Hop {
        self.detail = Some(detail.into());
        self
    }
}

/// A message's trace id as logs write it (empty when it has none).
pub fn trace_hex(msg: &Message) -> String {
    msg.trace_context().trace_hex()
}

/// The key hops of one conversation are found by.
pub fn conv_key(conv: &ConvId) -> u64 {
    stable_hash(conv.as_str().as_bytes())
}

pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

pub struct Traces {
    node: Arc<str>,
    ring: ring::Ring,
    sample_ratio: f64,
    relay: Relay,
    wait: std::time::Duration,
    #[cfg(feature = "otlp")]
    exporter: Option<export::Exporter>,
}

/// Refuses an OTLP endpoint this build cannot export to.
pub fn check(cfg: &TraceConfig) -> crate::error::Result<()> {
    if !cfg.otlp_endpoint.is_empty() && !cfg!(feature = "otlp") {
        return Err(crate::error::ServerError::Internal(
            "trace.otlp_endpoint is set but this build has no `otlp` feature".into(),
        ));
    }
    Ok(())
}

impl Traces {
    pub fn new(node: &str, cfg: &TraceConfig, relay: Relay) -> Traces {
        Traces {
            node: node.into(),
            ring: ring::Ring::new(cfg.buffer),
            sample_ratio: cfg.sample_ratio.clamp(0.0, 1.0),
            relay,
            wait: std::time::Duration::from_millis(cfg.gather_ms.max(1)),
            #[cfg(feature = "otlp")]
            exporter: (!cfg.otlp_endpoint.is_empty())
                .then(|| export::Exporter::new(&cfg.otlp_endpoint, node))
                .and_then(|made| {
                    made.map_err(
                        |e| tracing::error!(error = %e, "no OTLP export: exporter not built"),
                    )
                    .ok()
                }),
        }
    }

    /// Sends the spans still batched (at shutdown; blocks on the network).
    pub fn flush(&self) {
        #[cfg(feature = "otlp")]
        if let Some(x) = &self.exporter {
            x.shutdown();
        }
    }

    /// Whether hops go anywhere: the buffer (`trace.buffer` > 0) or an
    /// OTLP collector. Callers skip building hops otherwise.
    pub fn enabled(&self) -> bool {
        #[cfg(feature = "otlp")]
        if self.exporter.is_some() {
            return true;
        }
        self.ring.enabled()
    }

    pub fn record(&self, hop: Hop) {
        #[cfg(feature = "otlp")]
        if let Some(x) = &self.exporter {
            x.export(&hop);
        }
        self.ring.push(hop);
    }

    /// The trace context of a message accepted now: the client's (its
    /// span the parent of every hop), or a new trace whose root span is the
    /// message's acceptance; sampled when the client's context was, when
    /// the client asked (`sample`), or by `trace.sample_ratio`.
    ///
    /// `None`: an unsampled message the server started the trace of carries
    /// nothing; every node derives its trace from its server id
    /// (`Message::trace_context`), which saves ~70 bytes in every event.
    pub fn decide(&self, client: Option<TraceContext>, sample: bool) -> Option<TraceContext> {
        let sampled = sample
            || client.is_some_and(|c| c.sampled)
            || (self.sample_ratio > 0.0 && rand::random::<f64>() < self.sample_ratio);
        match client {
            Some(c) => Some(TraceContext { sampled, ..c }),
            None if sampled => Some(TraceContext::root(true)),
            None => None,
        }
    }

    /// Messages just made durable and published: their hops, and (at debug
    /// level) one log line each, by ids only, never the body.
    pub fn published(&self, msgs: &[Message], cfg: &Config) {
        if self.enabled() {
            for msg in msgs {
                self.record(Hop::of(HopKind::Published, msg).user(msg.from));
            }
        }
        if tracing::enabled!(tracing::Level::DEBUG) {
            let roles = cfg.cluster.roles.join(",");
            for msg in msgs {
                tracing::debug!(
                    trace_id = %trace_hex(msg),
                    server_id = msg.server_id.0,
                    user = msg.from.0,
                    conv = %msg.conv,
                    seq = msg.seq,
                    node = %cfg.node,
                    roles = %roles,
                    "message durable and published"
                );
            }
        }
    }

    fn view(&self, node: &str, h: &Hop) -> TraceHop {
        TraceHop {
            hop: h.kind.as_str().into(),
            node: node.into(),
            at_us: h.at_us,
            user: (h.user != 0).then_some(UserId(h.user)),
            device: h.device.as_deref().map(String::from),
            transport: h.transport.map(String::from),
            seq: (h.seq > 0).then_some(h.seq),
            trace_id: h.trace.map(|t| t.trace_hex()),
            detail: h.detail.as_deref().map(String::from),
        }
    }
}
