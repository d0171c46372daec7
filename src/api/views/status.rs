//! The bodies that say how a request or the process is: every failure's body, `/healthz` and
//! `/readyz`. No I/O and no decisions here.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Every failure's body.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Error")]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDetail {
    /// A rejection code of the messaging protocol (`ticket_not_found`, `task_not_found`,
    /// `invalid_transition`, `phase_mismatch`, `task_already_finished`, `already_exists`,
    /// `gate_not_met`, `invalid_request`) or one of the API's own: `unauthorized`,
    /// `payload_too_large`, `duplicate_request`, `not_found`, `method_not_allowed`,
    /// `unavailable`, `internal`, `dead_letter_not_found`, `agent_not_found`, `agent_exists`;
    /// `forbidden` for what only an operator may do.
    pub code: String,
    pub message: String,
    /// Each names the field it is about, e.g. `to_phase: unknown phase ...`.
    pub reasons: Vec<String>,
}

/// `/healthz`: the process answers.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Health")]
pub struct HealthView {
    pub status: Alive,
}

/// The one status of a live process.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Alive {
    Ok,
}

/// `/readyz`: whether this API process can serve requests. The body is written by
/// `crate::readiness::answer`, shared with the worker's ops port; a test checks that it is this.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Readiness")]
pub struct ReadinessView {
    pub status: ReadyStatus,
    /// Postgres answered within the check's timeout
    pub postgres: bool,
    /// a RabbitMQ connection opened (checked at most every few seconds)
    pub rabbitmq: bool,
    pub shutting_down: bool,
}

/// Ready or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ReadyStatus {
    #[serde(rename = "ready")]
    Ready,
    #[serde(rename = "not ready")]
    NotReady,
}
