//! W3C trace context (docs/operations.md, "Tracing"): `tracing` spans bridged to OpenTelemetry,
//! so that a request's span continues the trace of its caller (`traceparent` / `tracestate` on
//! the request) and the events it causes carry the context of the span that created them.
//!
//! Every process installs the bridge (its layer sees phaseflow's own spans at `info`, whatever
//! the log filter), so trace ids exist with or without an exporter: spans are not recorded
//! unless exported (`telemetry.otlp_endpoint`), and a span that is not recorded costs its ids and
//! nothing more.
//!
//! This module turns contexts into text and back; it decides nothing about the workflow.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use phaseflow_client::TraceContext;

use crate::config::TelemetrySettings;

/// The header and attribute names of W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// The tracer provider of the process, set once by [`install`].
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether spans are exported (an OTLP endpoint is set): work done only for exported spans
/// (links, for one) is skipped otherwise.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether this process exports spans.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Installs the process's tracer provider (the first call wins) and returns the tracer the
/// `tracing` bridge creates spans with. Without an endpoint, spans get their ids and nothing is
/// recorded; with one, sampled spans are exported over OTLP/HTTP in batches, from a thread of
/// their own.
pub fn install(settings: Option<&TelemetrySettings>) -> SdkTracer {
    PROVIDER
        .get_or_init(|| match settings.and_then(exporter) {
            Some(exporter) => {
                EXPORTING.store(true, Ordering::Relaxed);
                let ratio = settings.map_or(1.0, |settings| settings.sampling_ratio);
                SdkTracerProvider::builder()
                    .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                        ratio,
                    ))))
                    .with_resource(
                        Resource::builder()
                            .with_service_name("phaseflow")
                            .with_attribute(KeyValue::new(
                                "service.version",
                                env!("CARGO_PKG_VERSION"),
                            ))
                            .build(),
                    )
                    .with_batch_exporter(exporter)
                    .build()
            }
            None => SdkTracerProvider::builder()
                .with_sampler(Sampler::AlwaysOff)
                .build(),
        })
        .tracer("phaseflow")
}

/// The OTLP exporter `settings` ask for, if any (a setting it cannot use is reported once, and
/// nothing is exported).
fn exporter(settings: &TelemetrySettings) -> Option<SpanExporter> {
    let endpoint = settings
        .otlp_endpoint
        .as_deref()
        .map(str::trim)
        .filter(|endpoint| !endpoint.is_empty())?
        .trim_end_matches('/');
    let protocol = match settings.otlp_protocol.as_str() {
        "http/json" => Protocol::HttpJson,
        _ => Protocol::HttpBinary,
    };
    match SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(format!("{endpoint}/v1/traces"))
        .build()
    {
        Ok(exporter) => Some(exporter),
        Err(error) => {
            eprintln!("error: telemetry.otlp_endpoint {endpoint}: {error}; no spans are exported");
            None
        }
    }
}

/// Exports what is still buffered and stops exporting (at the end of the process).
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.shutdown();
    }
}

/// Makes `span` continue the trace of `parent`; with none (or a malformed one), `span` starts
/// a trace of its own.
pub fn continue_trace(span: &Span, parent: Option<&TraceContext>) {
    let Some(parent) = parent else {
        return;
    };
    let mut carrier = HashMap::with_capacity(2);
    carrier.insert(TRACEPARENT.to_owned(), parent.traceparent.clone());
    if let Some(state) = &parent.tracestate {
        carrier.insert(TRACESTATE.to_owned(), state.clone());
    }
    let context = TraceContextPropagator::new().extract(&carrier);
    if context.span().span_context().is_valid() {
        // a span already closed or not seen by the bridge keeps its own trace
        let _ = span.set_parent(context);
    }
}

/// The context of `span`, as it travels (`None` for a span the bridge does not see).
pub fn context_of(span: &Span) -> Option<TraceContext> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::with_capacity(2);
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    TraceContext::read(
        carrier.get(TRACEPARENT).map(String::as_str),
        carrier.get(TRACESTATE).map(String::as_str),
    )
}

/// The span of one round of the relay, when spans are exported (else none): a producer span,
/// linked by [`link`] to the context each event it publishes was created in.
pub fn publish_span(exchange: &str) -> Span {
    if !exporting() {
        return Span::none();
    }
    tracing::info_span!(
        parent: None,
        "publish",
        otel.name = format!("publish {exchange}"),
        otel.kind = "producer",
        messaging.system = "rabbitmq",
        messaging.operation.type = "publish",
        messaging.destination.name = exchange,
        messaging.batch.message_count = tracing::field::Empty,
    )
}

/// The span of one attempt (1 for the first) at the transaction that applies a batch of
/// requests, when spans are exported (else none): a child of the request's span when the batch
/// holds one, else a span of its own linked to each request's.
pub fn transaction_span<'c>(
    attempt: u32,
    contexts: impl Iterator<Item = &'c TraceContext>,
    requests: usize,
) -> Span {
    if !exporting() {
        return Span::none();
    }
    let span = tracing::info_span!(
        parent: None,
        "transaction",
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = "transaction",
        db.operation.batch.size = requests,
        phaseflow.attempt = attempt,
        phaseflow.transaction.outcome = tracing::field::Empty,
    );
    let contexts: Vec<&TraceContext> = contexts.collect();
    match contexts.as_slice() {
        [one] if requests == 1 => continue_trace(&span, Some(one)),
        many => {
            for context in many {
                link(&span, &context.traceparent);
            }
        }
    }
    span
}

/// Links `span` to the context of `traceparent` (when spans are exported and it is valid).
pub fn link(span: &Span, traceparent: &str) {
    if span.is_none() {
        return;
    }
    let mut carrier = HashMap::with_capacity(1);
    carrier.insert(TRACEPARENT.to_owned(), traceparent.to_owned());
    let context = TraceContextPropagator::new().extract(&carrier);
    let linked = context.span().span_context().clone();
    if linked.is_valid() {
        span.add_link(linked);
    }
}

/// The trace id of `span`, in hex (`None` for a span the bridge does not see).
pub fn trace_id_of(span: &Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// The trace id a `traceparent` names (`00-<trace id>-<span id>-<flags>`).
pub fn trace_id_in(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let _version = parts.next()?;
    let trace_id = parts.next()?;
    (trace_id.len() == 32 && trace_id.bytes().all(|byte| byte.is_ascii_hexdigit()))
        .then_some(trace_id)
}
