//! The bodies the HTTP API answers with, one type each: what handlers serialize, what a Rust
//! client (the integration tests) reads back, and what `openapi.json` describes (its schemas
//! are generated from these types). A write that answers
//! with its outcome event's `data` uses the event's own type from `protocol::events`; the types
//! here are the read side's views of stored rows and of the discovery answers (the workflow
//! definition, checked moves, listings), the transition's answer and the error body.
//!
//! This module holds the views of tickets, tasks, gates, context and history; `workflow` the
//! workflow definition, `usage` budgets and spend, `status` the error body and the probes'.
//!
//! Field order is the order of the members on the wire. No I/O and no decisions here.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::{GateStatus, Phase, Priority, TaskId, TaskStatus, TicketId, Verdict};
use crate::protocol::events::{self, PhaseTransitioned};
use crate::protocol::RejectionCode;
use crate::store::gate_results::GateResultRecord;
use crate::store::reviews::ReviewRecord;
use crate::store::{tasks::TaskRecord, tickets::HistoryRecord, tickets::TicketRecord};
use crate::workflow::discovery::{ContextBefore, TicketOverview, TransitionCheck};
use crate::workflow::listings::Page;
use phaseflow_client::budget::TicketBudget;

mod status;
mod usage;
mod workflow;

pub use status::{Alive, ErrorBody, ErrorDetail, HealthView, ReadinessView, ReadyStatus};
pub use usage::{BudgetView, SpentView, TaskSpentView, UsageView};
pub use workflow::{
    FromBlockedView, GateView, MoveKind, MoveView, PhaseView, RuleView, TemplateView, WorkflowView,
};

/// A ticket, with the moves it may make now.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
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
    /// What the ticket may cost (a null limit is no limit); the spend by phase, agent and task
    /// is at `GET /api/v1/tickets/{ticket_id}/usage`.
    pub budget: TicketBudget,
    /// What its work cost so far, as its agents reported it.
    pub spent: SpentView,
    #[serde(with = "events::time")]
    #[schemars(with = "DateTime<Utc>")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "events::time")]
    #[schemars(with = "DateTime<Utc>")]
    pub updated_at: DateTime<Utc>,
    /// Every phase the transition table allows from `phase_id` (none from PHASE_DONE), with
    /// what a transition there would do now.
    pub valid_transitions: Vec<ValidTransition>,
}

impl From<&TicketOverview> for TicketView {
    fn from(overview: &TicketOverview) -> Self {
        let ticket: &TicketRecord = &overview.ticket;
        TicketView {
            id: ticket.id,
            title: ticket.title.clone(),
            description: ticket.description.clone(),
            priority: ticket.priority,
            auto_advance: ticket.auto_advance,
            phase_id: ticket.phase,
            previous_phase_id: ticket.previous_phase,
            context_summary: ticket.context_summary.clone(),
            budget: ticket.budget,
            spent: SpentView::from(&ticket.spent),
            created_at: ticket.created_at,
            updated_at: ticket.updated_at,
            valid_transitions: overview
                .transitions
                .iter()
                .map(ValidTransition::from)
                .collect(),
        }
    }
}

/// A move the transition table allows a ticket, and what asking for it would do now.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ValidTransition {
    pub to_phase: Phase,
    /// Whether the move checks a gate (that of the phase being left, or for a move out of
    /// PHASE_BLOCKED that of the phase the ticket was blocked from).
    pub gated: bool,
    /// Whether `phase.transition.requested` to `to_phase` would move the ticket now (its gate
    /// judged on the ticket's tasks and artifacts as they are).
    pub allowed_now: bool,
    /// Why not: the reasons the transition would be rejected with (empty when allowed).
    pub reasons: Vec<String>,
}

impl From<&TransitionCheck> for ValidTransition {
    fn from(check: &TransitionCheck) -> Self {
        ValidTransition {
            to_phase: check.to_phase,
            gated: check.gated(),
            allowed_now: check.allowed(),
            reasons: reasons_of(check),
        }
    }
}

/// What a transition of a ticket to a phase would do now, found without doing it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "TransitionCheck")]
pub struct TransitionCheckView {
    pub ticket_id: TicketId,
    /// The ticket's phase.
    pub from_phase: Phase,
    pub to_phase: Phase,
    /// Whether the transition would move the ticket.
    pub allowed: bool,
    /// The rejection code the transition would get (`invalid_transition`, `gate_not_met`), or
    /// null when it would be allowed.
    pub code: Option<RejectionCode>,
    /// The reasons it would be rejected with (empty when allowed).
    pub reasons: Vec<String>,
    /// Whether the move checks a gate.
    pub gated: bool,
    /// The phase whose gate the move checks; null when it checks none.
    pub gate_phase: Option<Phase>,
    /// That gate's status on the ticket's tasks and artifacts as they are; null when no gate
    /// is checked.
    pub gate_status: Option<GateStatus>,
    /// Required artifact types of that gate not collected yet.
    pub missing_artifacts: Vec<String>,
}

impl TransitionCheckView {
    pub fn new(ticket_id: TicketId, check: &TransitionCheck) -> Self {
        TransitionCheckView {
            ticket_id,
            from_phase: check.from_phase,
            to_phase: check.to_phase,
            allowed: check.allowed(),
            code: check.rejection.as_ref().map(|rejection| rejection.code),
            reasons: reasons_of(check),
            gated: check.gated(),
            gate_phase: check.gate_phase,
            gate_status: check.evaluation.as_ref().map(|gate| gate.status),
            missing_artifacts: check
                .evaluation
                .as_ref()
                .map(|gate| gate.missing_artifacts.clone())
                .unwrap_or_default(),
        }
    }
}

/// The reasons of a check's rejection as the API answers a rejection (no empty ones).
fn reasons_of(check: &TransitionCheck) -> Vec<String> {
    check
        .rejection
        .iter()
        .flat_map(|rejection| rejection.reasons.iter())
        .filter(|reason| !reason.is_empty())
        .cloned()
        .collect()
}

/// A page of tickets.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "TicketPage")]
pub struct TicketPageView {
    /// Most recently updated first.
    pub tickets: Vec<TicketView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl From<&Page<TicketOverview>> for TicketPageView {
    fn from(page: &Page<TicketOverview>) -> Self {
        TicketPageView {
            tickets: page.items.iter().map(TicketView::from).collect(),
            next_cursor: page.next_cursor.clone(),
        }
    }
}

/// A ticket's aggregated context.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Context")]
pub struct ContextView {
    pub ticket_id: TicketId,
    /// With `?for_phase=`: the phase whose earlier phases (in the normal sequence) alone are
    /// shown and summarized.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub for_phase: Option<Phase>,
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
            for_phase: None,
            full_context: ticket.context.clone().unwrap_or_default(),
            summary: ticket.context_summary.clone(),
            last_updated: ticket.context_updated_at.unwrap_or(ticket.updated_at),
        }
    }
}

impl From<&ContextBefore> for ContextView {
    fn from(context: &ContextBefore) -> Self {
        ContextView {
            ticket_id: context.ticket_id,
            for_phase: Some(context.for_phase),
            full_context: context.full_context.clone(),
            summary: context.summary.clone(),
            last_updated: context.last_updated,
        }
    }
}

/// One row of a ticket's phase history.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
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

/// A ticket's gate validations and the reviews of its gates, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Gates")]
pub struct GatesView {
    pub ticket_id: TicketId,
    pub results: Vec<GateResultView>,
    pub reviews: Vec<ReviewView>,
}

/// One stored gate validation.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "GateResult")]
pub struct GateResultView {
    pub phase_id: Phase,
    /// `overridden`: an operator forced the ticket past the gate
    pub gate_status: GateStatus,
    pub requirements_met: bool,
    pub missing_artifacts: Vec<String>,
    pub blocking_reasons: Vec<String>,
    /// the agent whose request validated it, or `system`
    pub validated_by: String,
    #[serde(with = "events::time")]
    #[schemars(with = "DateTime<Utc>")]
    pub validated_at: DateTime<Utc>,
}

/// One review of a gate.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Review")]
pub struct ReviewView {
    pub phase_id: Phase,
    pub verdict: Verdict,
    pub reviewer: String,
    pub reasons: Vec<String>,
    #[serde(with = "events::time")]
    #[schemars(with = "DateTime<Utc>")]
    pub reviewed_at: DateTime<Utc>,
}

impl GatesView {
    pub fn new(
        ticket_id: TicketId,
        results: &[GateResultRecord],
        reviews: &[ReviewRecord],
    ) -> Self {
        GatesView {
            ticket_id,
            results: results
                .iter()
                .map(|result| GateResultView {
                    phase_id: result.phase,
                    gate_status: result.status,
                    requirements_met: result.requirements_met,
                    missing_artifacts: result.missing_artifacts.clone(),
                    blocking_reasons: result.blocking_reasons.clone(),
                    validated_by: result.validated_by.clone(),
                    validated_at: result.validated_at,
                })
                .collect(),
            reviews: reviews
                .iter()
                .map(|review| ReviewView {
                    phase_id: review.phase,
                    verdict: review.verdict,
                    reviewer: review.reviewer.clone(),
                    reasons: review.reasons.clone(),
                    reviewed_at: review.created_at,
                })
                .collect(),
        }
    }
}

/// A task, its dependencies as task ids.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Task")]
pub struct TaskView {
    pub id: TaskId,
    pub phase_id: Phase,
    pub task_type: String,
    pub description: String,
    pub priority: Priority,
    pub status: TaskStatus,
    pub dependencies: Vec<TaskId>,
    /// the role an agent needs to claim it (null: any agent may)
    pub role: Option<String>,
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
            role: task.role.clone(),
            result: task.result.clone(),
            created_at: task.created_at,
            completed_at: task.completed_at,
        }
    }
}

/// A task of any ticket, with its claim.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "ListedTask")]
pub struct ListedTaskView {
    #[serde(flatten)]
    pub task: TaskView,
    pub ticket_id: TicketId,
    /// The agent holding the task while it is `claimed`; afterwards the last one that held it.
    pub claimed_by: Option<String>,
    /// When the current claim's lease runs out (only while `claimed`).
    #[serde(with = "optional_time")]
    #[schemars(with = "Option<DateTime<Utc>>")]
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Claims so far (0 before the first).
    pub attempt: i32,
}

impl From<&TaskRecord> for ListedTaskView {
    fn from(task: &TaskRecord) -> Self {
        ListedTaskView {
            task: TaskView::from(task),
            ticket_id: task.ticket_id,
            claimed_by: task.claimed_by.clone(),
            lease_expires_at: task.lease_expires_at,
            attempt: task.attempt,
        }
    }
}

/// A page of tasks.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "TaskPage")]
pub struct TaskPageView {
    /// In the order they were created.
    pub tasks: Vec<ListedTaskView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl From<&Page<TaskRecord>> for TaskPageView {
    fn from(page: &Page<TaskRecord>) -> Self {
        TaskPageView {
            tasks: page.items.iter().map(ListedTaskView::from).collect(),
            next_cursor: page.next_cursor.clone(),
        }
    }
}

/// What the transition endpoint answers with: the first members of `phase.transitioned`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
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

/// Serde for an optional time, in the form of [`events::time`].
pub(super) mod optional_time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        time: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => super::events::time::serialize(time, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        #[derive(Deserialize)]
        struct Time(#[serde(with = "super::events::time")] DateTime<Utc>);
        Ok(Option::<Time>::deserialize(deserializer)?.map(|Time(time)| time))
    }
}
