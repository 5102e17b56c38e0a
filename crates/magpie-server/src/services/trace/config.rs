//! `[trace]`: message traces (docs/observability.md, docs/config.md).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TraceConfig {
    /// Hops this node keeps for `magpie trace` (72 bytes each); the
    /// oldest are forgotten first. 0 keeps none.
    pub buffer: usize,
    /// Share of messages whose trace is sampled (0.0 to 1.0), besides those
    /// a client asked to sample or sent with a sampled `traceparent`.
    pub sample_ratio: f64,
    /// How long a trace query waits for every node's answer, ms.
    pub gather_ms: u64,
    /// Base URL of an OTLP/HTTP collector (e.g. `http://127.0.0.1:4318`)
    /// sampled messages' hops are exported to as spans; empty exports
    /// nothing.
    pub otlp_endpoint: String,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            buffer: 200_000,
            sample_ratio: 0.01,
            gather_ms: 1_000,
            otlp_endpoint: String::new(),
        }
    }
}
