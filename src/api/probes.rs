//! The API's unauthenticated endpoints: `/healthz` (the process answers), `/readyz` (Postgres
//! and RabbitMQ are reachable and the server is not shutting down), `/metrics` (Prometheus
//! text) and `/api/v1/openapi.json` (the API's description).
//!
//! The API publishes nothing itself (its events go through the outbox, relayed by the worker),
//! so RabbitMQ readiness is a short connection opened at most every few seconds, not a session
//! kept open. The Postgres check, the shutting-down flag and the `/readyz` body are the ones
//! the worker's ops port answers with (`crate::readiness`). Nothing here needs a worker to be
//! running.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use sqlx::PgPool;
use tokio::sync::Mutex;

use crate::config::AmqpSettings;
use crate::readiness::{self, ShuttingDown, CHECK_TIMEOUT};
use crate::retry::OutageLog;
use crate::{messaging, telemetry};

use super::views::{Alive, HealthView};
use super::ApiState;

/// The API's description, kept true by a test that compares it with [`super::endpoints`].
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// How long a RabbitMQ check result is reused: probes do not open a connection each.
const BROKER_CHECK_TTL: Duration = Duration::from_secs(5);

/// What `/readyz` checks.
pub struct Readiness {
    pool: PgPool,
    amqp: AmqpSettings,
    shutting_down: ShuttingDown,
    /// the last RabbitMQ check: when, and why it did not connect (`None`: it did)
    broker: Mutex<Option<(Instant, Option<String>)>>,
    /// a broker the checks cannot reach is logged once, when they first fail
    rabbitmq: OutageLog,
}

impl Readiness {
    pub fn new(pool: PgPool, amqp: AmqpSettings) -> Self {
        Readiness {
            pool,
            amqp,
            shutting_down: ShuttingDown::default(),
            broker: Mutex::new(None),
            rabbitmq: OutageLog::new("RabbitMQ"),
        }
    }

    /// From now on `/readyz` answers 503.
    pub fn begin_shutdown(&self) {
        self.shutting_down.begin();
    }

    pub fn shutting_down(&self) -> bool {
        self.shutting_down.has_begun()
    }

    /// Opens (and closes) a connection, or reuses a result younger than [`BROKER_CHECK_TTL`]:
    /// `None` when it connected, else why not. Concurrent probes wait for one check instead of
    /// each opening a connection.
    async fn rabbitmq_problem(&self) -> Option<String> {
        let mut last = self.broker.lock().await;
        if let Some((checked_at, problem)) = &*last {
            if checked_at.elapsed() < BROKER_CHECK_TTL {
                return problem.clone();
            }
        }
        let started = Instant::now();
        let checked =
            messaging::broker_reachable(&self.amqp, "phaseflow api readiness", CHECK_TIMEOUT).await;
        let problem = match checked {
            Ok(()) => {
                self.rabbitmq.succeeded("readiness");
                None
            }
            Err(error) => {
                self.rabbitmq.failed(
                    "readiness",
                    started,
                    &format_args!("{error:#}"),
                    BROKER_CHECK_TTL,
                );
                Some(format!("{error:#}"))
            }
        };
        *last = Some((Instant::now(), problem.clone()));
        problem
    }
}

pub(super) async fn healthz() -> impl IntoResponse {
    Json(HealthView { status: Alive::Ok })
}

pub(super) async fn readyz(State(state): State<ApiState>) -> impl IntoResponse {
    let probe = &state.readiness;
    let (postgres, rabbitmq) = tokio::join!(
        readiness::postgres_reachable(&probe.pool),
        probe.rabbitmq_problem()
    );
    readiness::answer_with_reasons(
        &[("postgres", postgres), ("rabbitmq", rabbitmq.is_none())],
        &[("rabbitmq", rabbitmq)],
        probe.shutting_down.has_begun(),
    )
}

pub(super) async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        telemetry::metrics_handle().render(),
    )
}

pub(super) async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

#[cfg(test)]
mod tests {
    use crate::api::views::{ReadinessView, ReadyStatus};
    use crate::readiness;

    #[test]
    fn the_readiness_body_is_the_documented_one() {
        for (postgres, rabbitmq, shutting_down) in [(true, true, false), (true, false, true)] {
            let (_, axum::Json(body)) = readiness::answer(
                &[("postgres", postgres), ("rabbitmq", rabbitmq)],
                shutting_down,
            );
            let ready = postgres && rabbitmq && !shutting_down;
            let documented = ReadinessView {
                status: if ready {
                    ReadyStatus::Ready
                } else {
                    ReadyStatus::NotReady
                },
                postgres,
                rabbitmq,
                shutting_down,
            };
            assert_eq!(body, serde_json::to_value(documented).unwrap());
        }
    }
}
