//! The bodies the HTTP API answers with, one type each: what handlers serialize and what
//! `openapi.json` describes (its schemas are generated from these types). A write that answers
//! with its outcome event's `data` uses the event's own type from `protocol::events`; the types
//! here are the read side's views of stored rows, the transition's answer and the error body.
//!
//! Field order is the order of the members on the wire. No I/O and no decisions here.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::domain::{Phase, Priority, TaskId, TaskStatus, TicketId};
use crate::protocol::events::{self, PhaseTransitioned};
use crate::store::{tasks::TaskRecord, tickets::HistoryRecord, tickets::TicketRecord};

/// A ticket.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Ticket")]
pub struct TicketView {
    pub id: TicketId,
    pub title: String,
    pub description: String,
    pub priority: Priority,
    /// Whether the ticket moves on by itself when the gate of its phase passes after its last
    /// task.
    pub auto_advance: bool,
    pub phase_id: Phase,
    pub previous_phase_id: Option<Phase>,
    /// The token-bounded summary of the ticket and its context.
    pub context_summary: String,
    #[serde(with = "events::time")]
    #[schemars(with = "DateTime<Utc>")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "events::time")]
    #[schemars(with = "DateTime<Utc>")]
    pub updated_at: DateTime<Utc>,
}

impl From<&TicketRecord> for TicketView {
    fn from(ticket: &TicketRecord) -> Self {
        TicketView {
            id: ticket.id,
            title: ticket.title.clone(),
            description: ticket.description.clone(),
            priority: ticket.priority,
            auto_advance: ticket.auto_advance,
            phase_id: ticket.phase,
            previous_phase_id: ticket.previous_phase,
            context_summary: ticket.context_summary.clone(),
            created_at: ticket.created_at,
            updated_at: ticket.updated_at,
        }
    }
}

/// A ticket's aggregated context.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Context")]
pub struct ContextView {
    pub ticket_id: TicketId,
    /// One key per aggregated phase: `requirements_phase`, `design_phase`, ...
    pub full_context: Map<String, Value>,
    pub summary: String,
    /// When the context last changed (the ticket's last change before any was aggregated).
    #[serde(with = "events::time")]
    #[schemars(with = "DateTime<Utc>")]
    pub last_updated: DateTime<Utc>,
}

impl From<&TicketRecord> for ContextView {
    fn from(ticket: &TicketRecord) -> Self {
        ContextView {
            ticket_id: ticket.id,
            full_context: ticket.context.clone().unwrap_or_default(),
            summary: ticket.context_summary.clone(),
            last_updated: ticket.context_updated_at.unwrap_or(ticket.updated_at),
        }
    }
}

/// One row of a ticket's phase history.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct HistoryEntry {
    pub id: i64,
    /// `null` on the row that created the ticket
    pub from_phase: Option<Phase>,
    pub to_phase: Phase,
    pub transition_reason: String,
    pub transitioned_by: String,
    /// what the transition request carried in `artifacts` (an object)
    pub artifacts: Value,
    #[serde(with = "events::time")]
    #[schemars(with = "DateTime<Utc>")]
    pub created_at: DateTime<Utc>,
}

impl From<&HistoryRecord> for HistoryEntry {
    fn from(row: &HistoryRecord) -> Self {
        HistoryEntry {
            id: row.id,
            from_phase: row.from_phase,
            to_phase: row.to_phase,
            transition_reason: row.transition_reason.clone(),
            transitioned_by: row.transitioned_by.clone(),
            artifacts: row.artifacts.clone(),
            created_at: row.created_at,
        }
    }
}

/// A task, its dependencies as task ids.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Task")]
pub struct TaskView {
    pub id: TaskId,
    pub phase_id: Phase,
    pub task_type: String,
    pub description: String,
    pub priority: Priority,
    pub status: TaskStatus,
    pub dependencies: Vec<TaskId>,
    /// what the task's report carried in `result`
    pub result: Option<Value>,
    #[serde(with = "events::time")]
    #[schemars(with = "DateTime<Utc>")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "optional_time")]
    #[schemars(with = "Option<DateTime<Utc>>")]
    pub completed_at: Option<DateTime<Utc>>,
}

impl From<&TaskRecord> for TaskView {
    fn from(task: &TaskRecord) -> Self {
        TaskView {
            id: task.id,
            phase_id: task.phase,
            task_type: task.task_type.clone(),
            description: task.description.clone(),
            priority: task.priority,
            status: task.status,
            dependencies: task.dependencies.clone(),
            result: task.result.clone(),
            created_at: task.created_at,
            completed_at: task.completed_at,
        }
    }
}

/// What the transition endpoint answers with: the first members of `phase.transitioned`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Transition")]
pub struct TransitionView {
    pub ticket_id: TicketId,
    pub previous_phase: Phase,
    pub current_phase: Phase,
    #[serde(with = "events::time")]
    #[schemars(with = "DateTime<Utc>")]
    pub transitioned_at: DateTime<Utc>,
    /// The agent id of the bearer token.
    pub transitioned_by: String,
}

impl From<PhaseTransitioned> for TransitionView {
    fn from(moved: PhaseTransitioned) -> Self {
        TransitionView {
            ticket_id: moved.ticket_id,
            previous_phase: moved.previous_phase,
            current_phase: moved.current_phase,
            transitioned_at: moved.transitioned_at,
            transitioned_by: moved.transitioned_by,
        }
    }
}

/// Every failure's body.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Error")]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ErrorDetail {
    /// A rejection code of the messaging protocol (`ticket_not_found`, `task_not_found`,
    /// `invalid_transition`, `phase_mismatch`, `task_already_finished`, `already_exists`,
    /// `gate_not_met`, `invalid_request`) or one of the API's own: `unauthorized`,
    /// `payload_too_large`, `duplicate_request`, `not_found`, `method_not_allowed`,
    /// `unavailable`, `internal`.
    pub code: String,
    pub message: String,
    /// Each names the field it is about, e.g. `to_phase: unknown phase ...`.
    pub reasons: Vec<String>,
}

/// `/healthz`: the process answers.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "Health")]
pub struct HealthView {
    pub status: Alive,
}

/// The one status of a live process.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Alive {
    Ok,
}

/// Serde for an optional time, in the form of [`events::time`].
mod optional_time {
    use chrono::{DateTime, Utc};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(
        time: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => super::events::time::serialize(time, serializer),
            None => serializer.serialize_none(),
        }
    }
}

/// `/readyz`: whether this API process can serve requests. The body is written by
/// `crate::readiness::answer`, shared with the worker's ops port; a test checks that it is this.
#[derive(Debug, Clone, Serialize, JsonSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub enum ReadyStatus {
    #[serde(rename = "ready")]
    Ready,
    #[serde(rename = "not ready")]
    NotReady,
}
