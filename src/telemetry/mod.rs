//! Logging and metrics set-up. Logs are JSON lines when stdout is not a terminal (or with
//! `PHASEFLOW_LOG_FORMAT=json`), human-readable otherwise; `RUST_LOG` sets the level.
//! lapin's own logs are off by default (it logs returned messages whole at `warn`); enable
//! them with `RUST_LOG=info,lapin=warn` when debugging the broker connection.
//! Metrics go to a Prometheus recorder rendered by the `/metrics` endpoints.

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub mod trace;

/// The log filter when `RUST_LOG` is not set.
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,lapin=off";

/// Installs the global tracing subscriber (once; later calls do nothing).
pub fn init_logging() {
    init_logging_with(DEFAULT_LOG_FILTER);
}

/// [`init_logging`], exporting spans as `telemetry` says.
pub fn init_logging_and_tracing(telemetry: Option<&crate::config::TelemetrySettings>) {
    init_logging_to(
        DEFAULT_LOG_FILTER,
        std::io::stdout,
        std::io::stdout().is_terminal(),
        telemetry,
    );
}

/// Installs the global tracing subscriber with `default_filter` unless `RUST_LOG` says
/// otherwise (tests log warnings only by default).
pub fn init_logging_with(default_filter: &str) {
    init_logging_to(
        default_filter,
        std::io::stdout,
        std::io::stdout().is_terminal(),
        None,
    );
}

/// Installs the global tracing subscriber writing to stderr, for a process whose stdout is a
/// protocol channel (`phaseflow mcp`): JSON lines unless stderr is a terminal.
pub fn init_logging_on_stderr() {
    init_logging_to(
        DEFAULT_LOG_FILTER,
        std::io::stderr,
        std::io::stderr().is_terminal(),
        None,
    );
}

fn init_logging_to<W>(
    default_filter: &str,
    writer: W,
    terminal: bool,
    telemetry: Option<&crate::config::TelemetrySettings>,
) where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = match std::env::var("PHASEFLOW_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("pretty") | Ok("text") => false,
        _ => !terminal,
    };
    let format = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(false);
    let format: Box<dyn Layer<_> + Send + Sync> = if json {
        Box::new(
            format
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_filter(filter),
        )
    } else {
        Box::new(format.compact().with_filter(filter))
    };
    // the bridge sees phaseflow's own spans whatever the log filter says, so that trace
    // context travels from requests to events even when nothing is logged
    let spans = Targets::new()
        .with_target("phaseflow", LevelFilter::INFO)
        .with_default(LevelFilter::OFF);
    let bridge = tracing_opentelemetry::layer()
        .with_tracer(trace::install(telemetry))
        .with_filter(spans);
    let result = tracing_subscriber::registry()
        .with(format)
        .with(bridge)
        .try_init();
    drop(result);
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            // every histogram is in seconds (handler and HTTP durations, outbox lag)
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ],
            )
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder may be installed already (e.g. by an embedding program): then this
        // handle renders only what this recorder sees, which is nothing; say so once.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "a metrics recorder was already installed; /metrics shows no phaseflow metrics"
            );
        }
        handle
    })
}
