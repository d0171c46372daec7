//! `--otlp-sink`: an OTLP/HTTP receiver in this process that the worker exports its spans to
//! (`telemetry.otlp_endpoint`), so that a run measures what tracing costs with export on. It
//! answers every export with 200 and counts what it got; it reads no span.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use serde::Serialize;

/// What the sink received.
#[derive(Default)]
pub struct Received {
    exports: AtomicU64,
    bytes: AtomicU64,
}

/// The exports the worker sent, as the report shows them.
#[derive(Serialize, Clone, Copy, Debug)]
pub struct SinkReport {
    /// export requests (`POST /v1/traces`), each a batch of spans
    pub exports: u64,
    /// their bodies' bytes (protobuf)
    pub bytes: u64,
}

impl Received {
    pub fn report(&self) -> SinkReport {
        SinkReport {
            exports: self.exports.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// Starts the sink on a free local port; returns the endpoint to export to and its counts.
pub async fn start() -> anyhow::Result<(String, Arc<Received>)> {
    let received = Arc::new(Received::default());
    let app = Router::new()
        .route("/v1/traces", post(export))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the OTLP sink")?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("the OTLP sink stopped: {error}");
        }
    });
    Ok((endpoint, received))
}

async fn export(State(received): State<Arc<Received>>, body: Bytes) -> &'static str {
    received.exports.fetch_add(1, Ordering::Relaxed);
    received
        .bytes
        .fetch_add(body.len() as u64, Ordering::Relaxed);
    ""
}
