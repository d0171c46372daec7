//! What `/readyz` answers, on the worker's ops port and in the API alike: named checks, each
//! passed or not, and whether the process is shutting down. Ready is 200 when every check passed
//! and shutdown has not begun, else 503, with the JSON body
//! `{"status": "ready" | "not ready", <check>: bool, ..., "shutting_down": bool}`, and
//! `"reasons": {<check>: text}` for the failed checks whose last failure is known (why RabbitMQ
//! cannot be reached, say: a refused login, a vhost that does not exist), which operators and
//! orchestrators read.
//!
//! The checks both processes make alike live here: Postgres answering a ping within
//! [`CHECK_TIMEOUT`], and the shutting-down flag. How RabbitMQ is checked differs per process
//! (the worker reports its sessions, the API opens a short connection through `messaging`) and
//! stays with each. No routes here, no AMQP and no SQL of its own: each process mounts its own
//! `/readyz` and hands its check outcomes to [`answer`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use axum::Json;
use serde_json::{Map, Value};
use sqlx::PgPool;

use crate::store;

/// How long one readiness check may wait for Postgres or RabbitMQ.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether Postgres answers a ping within [`CHECK_TIMEOUT`].
pub async fn postgres_reachable(pool: &PgPool) -> bool {
    tokio::time::timeout(CHECK_TIMEOUT, store::ping(pool))
        .await
        .is_ok_and(|result| result.is_ok())
}

/// Set when shutdown begins; from then on the process is not ready.
#[derive(Debug, Default)]
pub struct ShuttingDown(AtomicBool);

impl ShuttingDown {
    pub fn begin(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn has_begun(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The `/readyz` answer: `checks` are the name and outcome of each check, in the order of the
/// body's keys after `status`.
pub fn answer(checks: &[(&'static str, bool)], shutting_down: bool) -> (StatusCode, Json<Value>) {
    answer_with_reasons(checks, &[], shutting_down)
}

/// [`answer`], with why checks failed: `reasons` names a check and its last failure; those of
/// checks that passed are left out.
pub fn answer_with_reasons(
    checks: &[(&'static str, bool)],
    reasons: &[(&'static str, Option<String>)],
    shutting_down: bool,
) -> (StatusCode, Json<Value>) {
    let ready = !shutting_down && checks.iter().all(|&(_, passed)| passed);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = Map::new();
    body.insert(
        "status".to_owned(),
        Value::from(if ready { "ready" } else { "not ready" }),
    );
    for &(name, passed) in checks {
        body.insert(name.to_owned(), Value::Bool(passed));
    }
    body.insert("shutting_down".to_owned(), Value::Bool(shutting_down));
    let failed = |name: &str| {
        checks
            .iter()
            .any(|&(check, passed)| check == name && !passed)
    };
    let known: Map<String, Value> = reasons
        .iter()
        .filter(|(name, _)| failed(name))
        .filter_map(|(name, reason)| Some(((*name).to_owned(), Value::from(reason.clone()?))))
        .collect();
    if !known.is_empty() {
        body.insert("reasons".to_owned(), Value::Object(known));
    }
    (status, Json(Value::Object(body)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(checks: &[(&'static str, bool)], shutting_down: bool) -> (u16, String) {
        let (status, Json(body)) = answer(checks, shutting_down);
        (status.as_u16(), body.to_string())
    }

    #[test]
    fn the_reasons_of_failed_checks_are_given_and_no_others() {
        let (status, Json(body)) = answer_with_reasons(
            &[("postgres", true), ("rabbitmq", false), ("other", false)],
            &[
                ("postgres", Some("stale".to_owned())),
                ("rabbitmq", Some("vhost not found".to_owned())),
                ("other", None),
            ],
            false,
        );
        assert_eq!(status.as_u16(), 503);
        assert_eq!(body["reasons"], json!({"rabbitmq": "vhost not found"}));
        let (_, Json(body)) = answer_with_reasons(&[("rabbitmq", true)], &[], false);
        assert!(body.get("reasons").is_none(), "{body}");
    }

    #[test]
    fn ready_when_every_check_passed_and_not_shutting_down() {
        let (status, body) = text(&[("postgres", true), ("rabbitmq", true)], false);
        assert_eq!(status, 200);
        let expected = json!({
            "status": "ready",
            "postgres": true,
            "rabbitmq": true,
            "shutting_down": false,
        });
        assert_eq!(body, expected.to_string(), "the API's body, byte for byte");
    }

    #[test]
    fn a_failed_check_or_shutdown_is_not_ready() {
        let worker = [
            ("postgres", true),
            ("rabbitmq_consumer", false),
            ("rabbitmq_relay", true),
        ];
        let (status, body) = text(&worker, false);
        assert_eq!(status, 503);
        let expected = json!({
            "status": "not ready",
            "postgres": true,
            "rabbitmq_consumer": false,
            "rabbitmq_relay": true,
            "shutting_down": false,
        });
        assert_eq!(
            body,
            expected.to_string(),
            "the worker's body, byte for byte"
        );

        let (status, body) = text(&[("postgres", true)], true);
        assert_eq!(status, 503);
        assert_eq!(
            body,
            json!({"status": "not ready", "postgres": true, "shutting_down": true}).to_string()
        );
    }

    #[test]
    fn shutting_down_is_set_once_and_stays() {
        let flag = ShuttingDown::default();
        assert!(!flag.has_begun());
        flag.begin();
        flag.begin();
        assert!(flag.has_begun());
    }
}
