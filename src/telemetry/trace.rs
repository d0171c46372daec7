//! W3C trace context (docs/operations.md, "Tracing"): `tracing` spans bridged to OpenTelemetry,
//! so that a request's span continues the trace of its caller (`traceparent` / `tracestate` on
//! the request) and the events it causes carry the context of the span that created them.
//!
//! Every process installs the bridge (its layer sees phaseflow's own spans at `info`, whatever
//! the log filter), so trace ids exist with or without an exporter: spans are not recorded
//! unless exported, and a span that is not recorded costs its ids and nothing more.
//!
//! This module turns contexts into text and back; it decides nothing about the workflow.

use std::collections::HashMap;
use std::sync::OnceLock;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use phaseflow_client::TraceContext;

/// The header and attribute names of W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// The tracer provider of the process: ids for every span, nothing recorded (no exporter).
fn provider() -> &'static SdkTracerProvider {
    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
    PROVIDER.get_or_init(|| {
        SdkTracerProvider::builder()
            .with_sampler(Sampler::AlwaysOff)
            .build()
    })
}

/// The tracer the `tracing` bridge creates spans with.
pub fn tracer() -> SdkTracer {
    provider().tracer("phaseflow")
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
