//! The bodies the HTTP API answers with, one type each: what handlers serialize, what a Rust
//! client (the integration tests) reads back, and what `openapi.json` describes (its schemas
//! are generated from these types). A write that answers
//! with its outcome event's `data` uses the event's own type from `protocol::events`; the types
//! here are the read side's views of stored rows and of the discovery answers (the workflow
//! definition, checked moves, listings), the transition's answer and the error body.
//!
//! Field order is the order of the members on the wire. No I/O and no decisions here.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::{
    GateStatus, Guidance, Phase, Priority, TaskId, TaskStatus, TaskTemplate, TicketId,
    TransitionKind, Verdict, WorkflowDefinition,
};
use crate::protocol::events::{self, PhaseTransitioned};
use crate::protocol::RejectionCode;
use crate::store::budgets::TicketUsage;
use crate::store::gate_results::GateResultRecord;
use crate::store::reviews::ReviewRecord;
use crate::store::{tasks::TaskRecord, tickets::HistoryRecord, tickets::TicketRecord};
use crate::workflow::discovery::{
    self, ContextBefore, FromBlocked, MoveRule, TicketOverview, TransitionCheck,
};
use crate::workflow::listings::Page;
use phaseflow_client::budget::TicketBudget;
use phaseflow_client::usage::UsageTotal;

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

/// A ticket's budget and what its work cost, as its agents reported it: in all, and by phase,
/// agent and task.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "TicketUsage")]
pub struct UsageView {
    pub ticket_id: TicketId,
    pub budget: BudgetView,
    pub spent: SpentView,
    /// by phase id
    pub by_phase: BTreeMap<String, SpentView>,
    /// by agent id
    pub by_agent: BTreeMap<String, SpentView>,
    /// by task id, with the task's type and phase
    pub by_task: BTreeMap<String, TaskSpentView>,
}

/// What a ticket may cost, and who set it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "TicketBudgetState")]
pub struct BudgetView {
    /// input and output tokens together (null: no limit)
    pub tokens: Option<u64>,
    /// US dollars (null: no limit)
    pub cost_usd: Option<f64>,
    /// the operator who changed it last (null: it is the one the ticket was created with)
    pub set_by: Option<String>,
    /// when it was changed last
    #[serde(with = "optional_time")]
    #[schemars(with = "Option<DateTime<Utc>>")]
    pub set_at: Option<DateTime<Utc>>,
}

/// What work cost.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Spent")]
pub struct SpentView {
    /// tokens the models read
    pub input_tokens: u64,
    /// tokens the models wrote
    pub output_tokens: u64,
    /// input and output tokens together (what a token budget counts)
    pub tokens: u64,
    /// US dollars
    pub cost_usd: f64,
}

impl From<&UsageTotal> for SpentView {
    fn from(total: &UsageTotal) -> Self {
        SpentView {
            input_tokens: total.input_tokens,
            output_tokens: total.output_tokens,
            tokens: total.input_tokens + total.output_tokens,
            cost_usd: total.cost_usd,
        }
    }
}

/// What one task's work cost.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "TaskSpent")]
pub struct TaskSpentView {
    pub task_type: String,
    pub phase_id: Phase,
    #[serde(flatten)]
    pub spent: SpentView,
}

impl UsageView {
    pub fn new(ticket_id: TicketId, usage: &TicketUsage) -> Self {
        UsageView {
            ticket_id,
            budget: BudgetView {
                tokens: usage.budget.tokens,
                cost_usd: usage.budget.cost_usd,
                set_by: usage.budget_set.as_ref().map(|(by, _)| by.clone()),
                set_at: usage.budget_set.as_ref().map(|(_, at)| *at),
            },
            spent: SpentView::from(&usage.spent),
            by_phase: usage
                .by_phase
                .iter()
                .map(|(phase, spent)| (phase.as_str().to_owned(), SpentView::from(spent)))
                .collect(),
            by_agent: usage
                .by_agent
                .iter()
                .map(|(agent, spent)| (agent.clone(), SpentView::from(spent)))
                .collect(),
            by_task: usage
                .by_task
                .iter()
                .map(|task| {
                    (
                        task.task_id.to_string(),
                        TaskSpentView {
                            task_type: task.task_type.clone(),
                            phase_id: task.phase,
                            spent: SpentView::from(&task.spent),
                        },
                    )
                })
                .collect(),
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

/// The workflow definition the API and the workers run: every phase in order, and every
/// priority a ticket may have. The board takes both from here rather than repeating them.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Workflow")]
pub struct WorkflowView {
    /// The normal sequence (PHASE_BACKLOG to PHASE_DONE), then PHASE_BLOCKED.
    pub phases: Vec<PhaseView>,
    /// Every priority, lowest first.
    pub priorities: Vec<Priority>,
}

impl From<&WorkflowDefinition> for WorkflowView {
    fn from(definition: &WorkflowDefinition) -> Self {
        let order = Phase::SEQUENCE.into_iter().chain(
            Phase::ALL
                .into_iter()
                .filter(|p| !Phase::SEQUENCE.contains(p)),
        );
        WorkflowView {
            phases: order
                .map(|phase| PhaseView::new(definition, phase))
                .collect(),
            priorities: Priority::ALL.to_vec(),
        }
    }
}

/// One phase of the definition.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "WorkflowPhase")]
pub struct PhaseView {
    pub phase_id: Phase,
    /// The lowercase name used in context keys and summaries.
    pub name: String,
    /// The moves the transition table allows out of this phase.
    pub transitions: Vec<MoveView>,
    /// The tasks a visit creates.
    pub templates: Vec<TemplateView>,
    /// The tasks a visit entered by regression creates instead (when there are any).
    pub reentry_templates: Vec<TemplateView>,
    /// The phase's role: the first its templates name, which its re-entry and review rework
    /// tasks take when they name none (null: its tasks need no role).
    pub role: Option<String>,
    /// What the forward move out of this phase demands; null when it has no gate (it passes).
    pub gate: Option<GateView>,
    /// What agents working in this phase are told; null when the definition says nothing.
    pub guidance: Option<Guidance>,
}

impl PhaseView {
    fn new(definition: &WorkflowDefinition, phase: Phase) -> Self {
        let templates = |list: &[TaskTemplate]| list.iter().map(TemplateView::from).collect();
        PhaseView {
            phase_id: phase,
            name: phase.short_name().to_owned(),
            transitions: discovery::moves_from(definition, phase)
                .iter()
                .map(MoveView::from)
                .collect(),
            templates: templates(definition.templates.normal(phase)),
            reentry_templates: templates(definition.templates.reentry(phase)),
            role: definition.templates.phase_role(phase).map(str::to_owned),
            gate: definition.gates.for_phase(phase).map(|gate| GateView {
                required_artifacts: gate.required_artifacts.clone(),
                rules: gate
                    .rules
                    .iter()
                    .map(|rule| RuleView {
                        artifact: rule.artifact.clone(),
                        field: rule.field.clone(),
                        rule: rule.to_string(),
                        regression: rule.regression,
                    })
                    .collect(),
            }),
            guidance: definition.guidance(phase).cloned(),
        }
    }
}

/// A move of the transition table.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "PhaseMove")]
pub struct MoveView {
    pub to_phase: Phase,
    pub kind: MoveKind,
    /// Whether the move checks a gate; for a move out of PHASE_BLOCKED, whether it does for
    /// some phase the ticket may have been blocked from (see `from_blocked`).
    pub gated: bool,
    /// The phase whose gate the move checks.
    pub gate_phase: Option<Phase>,
    /// Moves out of PHASE_BLOCKED only: what the move is, by the phase the ticket was blocked
    /// from (its `previous_phase_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_blocked: Option<FromBlockedView>,
}

impl From<&MoveRule> for MoveView {
    fn from(rule: &MoveRule) -> Self {
        MoveView {
            to_phase: rule.to_phase,
            kind: MoveKind::from(rule.kind),
            gated: rule.gate_phase.is_some(),
            gate_phase: rule.gate_phase,
            from_blocked: rule.from_blocked.as_ref().map(FromBlockedView::from),
        }
    }
}

/// What kind of move it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MoveKind {
    /// to the next phase of the normal sequence
    Forward,
    /// PHASE_TESTING back to PHASE_IMPLEMENTATION
    Regression,
    /// to PHASE_BLOCKED
    Block,
    /// out of PHASE_BLOCKED
    Unblock,
}

impl From<TransitionKind> for MoveKind {
    fn from(kind: TransitionKind) -> Self {
        match kind {
            TransitionKind::Forward => MoveKind::Forward,
            TransitionKind::Regression => MoveKind::Regression,
            TransitionKind::Block => MoveKind::Block,
            TransitionKind::Unblock | TransitionKind::UnblockForward => MoveKind::Unblock,
        }
    }
}

/// What leaving PHASE_BLOCKED for a phase is, by the phase the ticket was blocked from.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "FromBlocked")]
pub struct FromBlockedView {
    /// Blocked from these, the move checks no gate.
    pub ungated: Vec<Phase>,
    /// Blocked from these, the move checks their gate (`gate_not_met` when it fails).
    pub gated: Vec<Phase>,
    /// Blocked from these, the move is refused (`invalid_transition`): it would skip a gate.
    pub refused: Vec<Phase>,
}

impl From<&FromBlocked> for FromBlockedView {
    fn from(rule: &FromBlocked) -> Self {
        FromBlockedView {
            ungated: rule.ungated.clone(),
            gated: rule.gated.clone(),
            refused: rule.refused.clone(),
        }
    }
}

/// A task template.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "TaskTemplate")]
pub struct TemplateView {
    pub task_type: String,
    /// Before its placeholders (`{ticket_title}`, `{ticket_priority}`, `{ticket_id}`, `{phase}`)
    /// are filled in.
    pub description: String,
    pub priority: Priority,
    /// The task types of the same visit that must be completed first.
    pub after: Vec<String>,
    /// The role an agent needs to claim its tasks (null: any agent may).
    pub role: Option<String>,
}

impl From<&TaskTemplate> for TemplateView {
    fn from(template: &TaskTemplate) -> Self {
        TemplateView {
            task_type: template.task_type.clone(),
            description: template.description.clone(),
            priority: template.priority,
            after: template.after.clone(),
            role: template.role.clone(),
        }
    }
}

/// A phase's gate: besides every task of the phase completed (and at least one), these.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Gate")]
pub struct GateView {
    /// Artifact types that must have been collected for the phase.
    pub required_artifacts: Vec<String>,
    /// Conditions on the newest artifact of each type.
    pub rules: Vec<RuleView>,
}

/// A gate's rule.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "GateRule")]
pub struct RuleView {
    /// The artifact type whose newest artifact is judged.
    pub artifact: String,
    /// The field of its `artifact_content` (or a dotted path into it).
    pub field: String,
    /// The rule in words, e.g. `test_coverage.percentage ≥ 80`.
    pub rule: String,
    /// Whether failing it sends the ticket back (PHASE_TESTING to PHASE_IMPLEMENTATION).
    pub regression: bool,
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
