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
mod hop;
mod ring;

use crate::config::Config;
use magpie_bus::Relay;
use magpie_core::trace::TraceHop;
use magpie_core::{ConvId, Message, TraceContext, UserId, stable_hash};
use std::sync::Arc;

pub use config::TraceConfig;
pub use hop::{Hop, HopKind};

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

    /// Records the hops of a batch (cheaper than one by one: `Ring::push_all`).
    pub fn record_all(&self, hops: Vec<Hop>) {
        #[cfg(feature = "otlp")]
        if let Some(x) = &self.exporter {
            hops.iter().for_each(|h| x.export(h));
        }
        self.ring.push_all(hops);
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
            self.record_all(
                msgs.iter()
                    .map(|m| Hop::of(HopKind::Published, m).user(m.from))
                    .collect(),
            );
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
            device: h.device_name().map(String::from),
            transport: h.transport_name().map(String::from),
            seq: (h.seq > 0).then_some(h.seq),
            trace_id: h.trace().map(|t| t.trace_hex()),
            detail: h.detail_text().map(String::from),
        }
    }
}
