//! The worker's operations endpoints (`PHASEFLOW_OPS_ADDR`): `/healthz` (the process is alive),
//! `/readyz` (Postgres answers, both RabbitMQ sessions are up, not shutting down) and
//! `/metrics` (Prometheus text). No workflow logic and no authentication here: bind it to a
//! private address. `/readyz` answers with the checks and body of `crate::readiness`, as the
//! API does.

use std::net::SocketAddr;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::worker::health::Health;
use crate::worker::service::Service;
use crate::{readiness, store};

/// The ops endpoints as a service: they answer from the worker's start to the end of its stop.
pub struct OpsServer {
    pub addr: SocketAddr,
    pub pool: PgPool,
    pub health: Health,
}

impl Service for OpsServer {
    fn name(&self) -> &'static str {
        "ops server"
    }

    async fn start(self, stop: CancellationToken) -> anyhow::Result<()> {
        serve(self.addr, self.pool, self.health, stop).await
    }
}

#[derive(Clone)]
struct OpsState {
    pool: PgPool,
    health: Health,
}

/// The ops routes.
pub fn router(pool: PgPool, health: Health) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(OpsState { pool, health })
}

/// Serves the ops routes until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    pool: PgPool,
    health: Health,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|error| {
        anyhow::anyhow!(
            "cannot listen on {addr} for health and metrics (set PHASEFLOW_OPS_ADDR): {error}"
        )
    })?;
    tracing::info!(%addr, "health and metrics listening");
    axum::serve(listener, router(pool, health))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

async fn readyz(State(state): State<OpsState>) -> impl IntoResponse {
    let postgres = readiness::postgres_reachable(&state.pool).await;
    let health = &state.health;
    readiness::answer_with_reasons(
        &[
            ("postgres", postgres),
            ("rabbitmq_consumer", health.consumer_connected()),
            ("rabbitmq_relay", health.relay_connected()),
        ],
        &[
            ("rabbitmq_consumer", health.problem("consumer")),
            ("rabbitmq_relay", health.problem("relay")),
        ],
        health.shutting_down(),
    )
}

async fn metrics(State(state): State<OpsState>) -> impl IntoResponse {
    if let Ok((pending, oldest)) = store::outbox::backlog(&state.pool).await {
        metrics::gauge!("phaseflow_outbox_backlog").set(pending as f64);
        let age = oldest
            .map(|oldest| (chrono::Utc::now() - oldest).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        metrics::gauge!("phaseflow_outbox_oldest_age_seconds").set(age);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        crate::telemetry::metrics_handle().render(),
    )
}
