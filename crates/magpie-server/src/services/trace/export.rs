//! OTLP export of sampled messages' hops (docs/observability.md), with the
//! OpenTelemetry SDK: one span per hop, named `magpie.<hop>`, in the
//! message's trace. A message the server started the trace of has its
//! `accepted` hop exported as the trace's root span (the message's own
//! span id), and every other hop, on any node, as its child; a message
//! that came with the client's `traceparent` hangs its hops under the
//! client's span. Spans are batched and sent by the SDK's own thread over
//! OTLP/HTTP (JSON) to `trace.otlp_endpoint`; nothing is exported without
//! one, and an unreachable collector costs dropped spans, never a message.

use super::Hop;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider,
};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// How long a span may wait in the batch before it is sent.
const DELAY: Duration = Duration::from_millis(500);

pub struct Exporter {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    node: Arc<str>,
}

impl Exporter {
    /// An exporter to the OTLP/HTTP collector at `endpoint` (its base URL:
    /// spans go to `{endpoint}/v1/traces`).
    pub fn new(endpoint: &str, node: &str) -> Result<Exporter, String> {
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let exporter = SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(url)
            .build()
            .map_err(|e| e.to_string())?;
        let batch = BatchConfigBuilder::default()
            .with_scheduled_delay(DELAY)
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        let resource = Resource::builder()
            .with_service_name("magpie")
            .with_attribute(KeyValue::new("service.instance.id", node.to_string()))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("magpie");
        Ok(Exporter {
            provider,
            tracer,
            node: node.into(),
        })
    }

    /// One span for `hop`, if its message's trace is sampled.
    pub fn export(&self, hop: &Hop) {
        let Some(t) = hop.trace().filter(|t| t.sampled) else {
            return;
        };
        let at = UNIX_EPOCH + Duration::from_micros(hop.at_us.max(0) as u64);
        let trace_id = TraceId::from_bytes(t.trace_id.to_be_bytes());
        let span_id = SpanId::from_bytes(t.span_id.to_be_bytes());
        let mut attrs = vec![
            KeyValue::new("magpie.node", self.node.to_string()),
            KeyValue::new("magpie.server_id", hop.server_id.to_string()),
        ];
        if hop.seq > 0 {
            attrs.push(KeyValue::new("magpie.seq", hop.seq));
        }
        if hop.user != 0 {
            attrs.push(KeyValue::new("magpie.user", hop.user));
        }
        if let Some(d) = hop.device_name() {
            attrs.push(KeyValue::new("magpie.device", d.to_string()));
        }
        if let Some(tr) = hop.transport_name() {
            attrs.push(KeyValue::new("magpie.transport", tr));
        }
        if let Some(d) = hop.detail_text() {
            attrs.push(KeyValue::new("magpie.detail", d.to_string()));
        }
        let builder = self
            .tracer
            .span_builder(hop.kind.span_name())
            .with_kind(SpanKind::Internal)
            .with_start_time(at)
            .with_attributes(attrs);
        let mut span = if hop.root {
            // The message's own span: the trace's root.
            builder
                .with_trace_id(trace_id)
                .with_span_id(span_id)
                .start_with_context(&self.tracer, &Context::new())
        } else {
            let parent = SpanContext::new(
                trace_id,
                span_id,
                TraceFlags::SAMPLED,
                true,
                TraceState::default(),
            );
            let cx = Context::new().with_remote_span_context(parent);
            builder.start_with_context(&self.tracer, &cx)
        };
        span.end_with_timestamp(at);
    }

    /// Sends what is batched and stops the exporter's thread (blocking).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::debug!(error = %e, "trace exporter shut down with an error");
        }
    }
}
