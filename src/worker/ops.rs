//! The worker's operations endpoints (`PHASEFLOW_OPS_ADDR`): `/healthz` (the process is alive),
//! `/readyz` (Postgres answers, both RabbitMQ sessions are up, not shutting down) and
//! `/metrics` (Prometheus text). No workflow logic and no authentication here: bind it to a
//! private address.

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::store;
use crate::worker::health::Health;

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
    let database =
        tokio::time::timeout(std::time::Duration::from_secs(2), store::ping(&state.pool))
            .await
            .is_ok_and(|result| result.is_ok());
    let consumer = state.health.consumer_connected();
    let relay = state.health.relay_connected();
    let shutting_down = state.health.shutting_down();
    let ready = database && consumer && relay && !shutting_down;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "not ready" },
            "postgres": database,
            "rabbitmq_consumer": consumer,
            "rabbitmq_relay": relay,
            "shutting_down": shutting_down,
        })),
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
