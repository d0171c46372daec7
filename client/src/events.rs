//! The `data` of every event phaseflow publishes, one type per event.
//!
//! The worker builds events from these types, the HTTP API answers with them (or with a part of
//! them), and tests and consumers may read events back into them. Field names and order are the
//! wire format: changing a field here changes what every consumer receives. Pure data: no I/O.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    budget::{BudgetAlert, TicketBudget},
    requests::heartbeat_task::Progress,
    usage::UsageTotal,
    ClaimId, GateStatus, Guidance, Phase, Priority, TaskId, TaskStatus, TicketId, Verdict,
};

use super::rejection::Rejection;

/// RFC 3339 times in UTC with microseconds, as every phaseflow event and API answer carries them.
pub mod time {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// The text form of a time.
    pub fn format(time: DateTime<Utc>) -> String {
        time.to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    pub fn serialize<S: Serializer>(
        time: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(*time))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|time| time.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// `ticket.created`: a ticket exists, in PHASE_BACKLOG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TicketCreated {
    pub ticket_id: TicketId,
    pub title: String,
    pub description: String,
    pub priority: Priority,
    pub phase_id: Phase,
    pub auto_advance: bool,
    /// what the ticket may cost (given with the request, else the configured default); null:
    /// no limit
    pub budget: Option<TicketBudget>,
    #[serde(with = "time")]
    #[schemars(with = "DateTime<Utc>")]
    pub created_at: DateTime<Utc>,
}

/// `phase.transitioned`: a ticket moved from one phase to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PhaseTransitioned {
    pub ticket_id: TicketId,
    pub previous_phase: Phase,
    pub current_phase: Phase,
    #[serde(with = "time")]
    #[schemars(with = "DateTime<Utc>")]
    pub transitioned_at: DateTime<Utc>,
    pub transitioned_by: String,
    pub reason: String,
    pub history_id: i64,
    /// an operator forced the move past a gate that refused it
    pub forced: bool,
}

/// `phase.entered`: a visit of a phase began (also on creation, into PHASE_BACKLOG).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PhaseEntered {
    pub ticket_id: TicketId,
    pub phase_id: Phase,
    /// null for a new ticket
    pub previous_phase: Option<Phase>,
    /// the `phase_history` row that started the visit
    pub history_id: i64,
    /// entered by regression (TESTING back to IMPLEMENTATION)
    pub regression: bool,
    #[serde(with = "time")]
    #[schemars(with = "DateTime<Utc>")]
    pub entered_at: DateTime<Utc>,
}

/// `tasks.generated`: the tasks of a phase visit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TasksGenerated {
    pub ticket_id: TicketId,
    pub phase_id: Phase,
    pub generated_tasks: Vec<GeneratedTask>,
}

/// One task of `tasks.generated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GeneratedTask {
    pub id: TaskId,
    pub task_type: String,
    pub description: String,
    pub priority: Priority,
    /// the tasks of the same visit it comes after
    pub dependencies: Vec<TaskId>,
    pub status: TaskStatus,
    /// the role an agent needs to claim it (null: any agent may)
    #[serde(default)]
    pub role: Option<String>,
}

/// `context.updated`: a phase was aggregated into the ticket's context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContextUpdated {
    pub ticket_id: TicketId,
    /// the phase aggregated
    pub phase_id: Phase,
    pub summary: String,
    pub summary_tokens: usize,
}

/// `gate.validated`: a phase's gate was judged (and the result stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GateValidated {
    pub ticket_id: TicketId,
    pub phase_id: Phase,
    pub gate_status: GateStatus,
    pub requirements_met: bool,
    pub missing_artifacts: Vec<String>,
    pub blocking_reasons: Vec<String>,
    pub validation_result: ValidationResult,
}

/// The counts behind a gate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ValidationResult {
    pub artifacts_checked: usize,
    pub artifacts_passed: usize,
    /// the phase has tasks and every one of them is completed
    pub tasks_completed: bool,
    pub tasks_total: usize,
    pub tasks_done: usize,
}

/// `task.completed` and `task.failed`: a task was reported finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskFinished {
    pub ticket_id: TicketId,
    pub task_id: TaskId,
    pub phase_id: Phase,
    pub task_type: String,
    pub status: TaskStatus,
    pub artifacts_collected: Vec<CollectedArtifact>,
    /// what the task's work cost in all, as its agents reported it
    #[serde(default)]
    pub usage: UsageTotal,
}

/// An artifact a task report handed in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CollectedArtifact {
    pub artifact_id: Uuid,
    pub artifact_type: String,
}

/// `artifact.collected`: an artifact was stored for a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArtifactCollected {
    pub ticket_id: TicketId,
    pub phase_id: Phase,
    pub artifact_id: Uuid,
    pub artifact_type: String,
}

/// `task.claimed`: an agent holds a task for a lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskClaimed {
    pub ticket_id: TicketId,
    pub task_id: TaskId,
    pub phase_id: Phase,
    pub task_type: String,
    pub description: String,
    pub priority: Priority,
    /// the tasks of the same visit it comes after (all completed)
    pub dependencies: Vec<TaskId>,
    pub claimed_by: String,
    /// the role the task needs (null: any agent may claim it)
    #[serde(default)]
    pub role: Option<String>,
    /// this claim's own id: a heartbeat, release or report that quotes it is refused once it
    /// is no longer the task's live claim
    pub claim_id: ClaimId,
    #[serde(with = "time")]
    #[schemars(with = "DateTime<Utc>")]
    pub lease_expires_at: DateTime<Utc>,
    /// claims of the task so far, this one included (1 for the first)
    pub attempt: i32,
    /// what an agent in the task's phase is for, what "done" means and what it should hand in,
    /// from the workflow definition (null when the phase has none)
    pub guidance: Option<Guidance>,
}

/// `task.lease.extended`: the holder of a lease renewed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskLeaseExtended {
    pub ticket_id: TicketId,
    pub task_id: TaskId,
    pub claimed_by: String,
    #[serde(with = "time")]
    #[schemars(with = "DateTime<Utc>")]
    pub lease_expires_at: DateTime<Utc>,
}

/// `task.released`: the holder of a lease gave the task back; it is pending again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskReleased {
    pub ticket_id: TicketId,
    pub task_id: TaskId,
    /// the holder, an operator, or `system` (a stalled task released by phaseflow)
    pub released_by: String,
    /// why, when the holder said; `stalled` for a release by `system`
    pub reason: Option<String>,
}

/// `task.stalled`: a claimed task's holder heartbeats but reports no progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskStalled {
    pub ticket_id: TicketId,
    pub task_id: TaskId,
    pub claimed_by: String,
    /// the claim that stalled
    pub claim_id: ClaimId,
    /// the last progress the task got (its claim, when no heartbeat reported any)
    #[serde(with = "time")]
    #[schemars(with = "DateTime<Utc>")]
    pub last_progress_at: DateTime<Utc>,
    /// that progress as reported (null: the claim itself)
    pub last_progress: Option<Progress>,
}

/// `task.lease.expired`: a lease ran out without a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskLeaseExpired {
    pub ticket_id: TicketId,
    pub task_id: TaskId,
    /// the agent whose lease ran out
    pub claimed_by: String,
    /// the claim whose lease ran out (1 for the first)
    pub attempt: i32,
}

/// `gate.review.requested`: every condition of a gate that requires a review holds; an
/// independent agent is asked to judge the phase as it is now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GateReviewRequested {
    pub ticket_id: TicketId,
    pub phase_id: Phase,
    /// the ticket and what the phase produced, for the reviewer to act on
    pub summary: String,
    /// the newest artifact of each type collected for the phase
    pub artifacts: Vec<ReviewArtifact>,
    /// the newest artifact of each type from the ticket's earlier phases
    pub earlier_artifacts: Vec<ReviewArtifact>,
    /// the agents that completed the phase's tasks: none of them may review it
    pub authors: Vec<String>,
}

/// An artifact shown to a reviewer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReviewArtifact {
    pub phase_id: Phase,
    pub artifact_type: String,
    pub artifact_path: Option<String>,
    pub artifact_content: Option<Value>,
}

/// `gate.reviewed`: a reviewer judged a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GateReviewed {
    pub ticket_id: TicketId,
    pub phase_id: Phase,
    pub verdict: Verdict,
    pub reviewer: String,
    pub reasons: Vec<String>,
}

/// An event type as the generated documents describe it.
pub struct EventDoc {
    pub event_type: &'static str,
    pub title: &'static str,
    /// when more than the title needs saying
    pub description: Option<&'static str>,
    /// the schema of its `data` (a reference into the generator's definitions)
    pub data: schemars::Schema,
}

/// `ticket.budget.set`: an operator changed a ticket's budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TicketBudgetSet {
    pub ticket_id: TicketId,
    /// the ticket's budget now; a limit that is null is no limit
    pub budget: TicketBudget,
    /// the operator
    pub set_by: String,
}

/// The ticket an event's data names: every event's but an alert about an agent's daily budget.
trait TicketOf {
    fn ticket(&self) -> Option<TicketId>;
}

impl TicketOf for TicketId {
    fn ticket(&self) -> Option<TicketId> {
        Some(*self)
    }
}

impl TicketOf for Option<TicketId> {
    fn ticket(&self) -> Option<TicketId> {
        *self
    }
}

macro_rules! events {
    (@description) => { None };
    (@description $description:literal) => { Some($description) };
    ($(
        $(#[$attr:meta])*
        $variant:ident($data:ty) => $constant:ident = $name:literal, $title:literal $(, $description:literal)?;
    )+) => {
        /// The event types phaseflow publishes on the events exchange (routing key = type).
        pub mod event_type {
            $(pub const $constant: &str = $name;)+
        }

        /// Any event phaseflow publishes, with its data.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Event {
            $($(#[$attr])* $variant($data),)+
            /// The rejection of a request, as its `….rejected` event.
            Rejected {
                event_type: &'static str,
                rejection: Rejection,
            },
        }

        impl Event {
            /// The event's `type`, which is also its routing key.
            pub fn event_type(&self) -> &'static str {
                match self {
                    $(Event::$variant(_) => event_type::$constant,)+
                    Event::Rejected { event_type, .. } => event_type,
                }
            }

            /// The ticket the event is about (its `subject`); `None` for a rejection naming none.
            pub fn ticket_id(&self) -> Option<TicketId> {
                match self {
                    $(Event::$variant(data) => TicketOf::ticket(&data.ticket_id),)+
                    Event::Rejected { rejection, .. } => rejection.ticket_id,
                }
            }

            /// The event's `data` as JSON.
            pub fn data(&self) -> Result<Value, serde_json::Error> {
                match self {
                    $(Event::$variant(data) => serde_json::to_value(data),)+
                    Event::Rejected { rejection, .. } => Ok(rejection.to_data()),
                }
            }
        }

        /// The schema of the `data` of events of `event_type` (a reference into the
        /// generator's definitions); `None` for a type phaseflow does not publish.
        pub fn data_schema(
            event_type: &str,
            generator: &mut schemars::SchemaGenerator,
        ) -> Option<schemars::Schema> {
            match event_type {
                $(event_type::$constant => Some(generator.subschema_for::<$data>()),)+
                _ => None,
            }
        }

        /// Every event phaseflow publishes (rejections aside), for the generated documents, in
        /// the table's order.
        pub fn event_docs(generator: &mut schemars::SchemaGenerator) -> Vec<EventDoc> {
            vec![$(EventDoc {
                event_type: event_type::$constant,
                title: $title,
                description: events!(@description $($description)?),
                data: generator.subschema_for::<$data>(),
            },)+]
        }
    };
}

// The one table of events: a new event is its data type above and one line here.
events! {
    TicketCreated(TicketCreated) => TICKET_CREATED = "ticket.created", "A ticket was created";
    PhaseTransitioned(PhaseTransitioned) => PHASE_TRANSITIONED = "phase.transitioned",
        "A ticket moved to another phase";
    PhaseEntered(PhaseEntered) => PHASE_ENTERED = "phase.entered", "A ticket entered a phase",
        "A ticket entered a phase (also on creation, into PHASE_BACKLOG). What entering sets off \
         is done in the same transaction, and its events follow this one (next `ticketseq` \
         values, `causationid` = this event's `id`, actor `system`): the visit's tasks \
         (`tasks.generated`, for phases with task templates) and the context of the phase just \
         left (`context.updated`).";
    TasksGenerated(TasksGenerated) => TASKS_GENERATED = "tasks.generated",
        "The tasks of a phase visit",
        "The tasks of a phase visit. Emitted on entry to a phase that has task templates (empty \
         `generated_tasks` when unfinished tasks of the phase carry over) and as the outcome of \
         `tasks.generate.requested`.";
    ContextUpdated(ContextUpdated) => CONTEXT_UPDATED = "context.updated",
        "A phase was aggregated into the ticket's context",
        "The context of the phase just left was aggregated into the ticket.";
    GateValidated(GateValidated) => GATE_VALIDATED = "gate.validated", "A phase's gate was judged";
    TaskCompleted(TaskFinished) => TASK_COMPLETED = "task.completed",
        "A task was reported completed";
    TaskFailed(TaskFinished) => TASK_FAILED = "task.failed", "A task was reported failed";
    ArtifactCollected(ArtifactCollected) => ARTIFACT_COLLECTED = "artifact.collected",
        "An artifact was collected for a phase",
        "The outcome of `artifact.submit.requested`. Artifacts that come with a task report are \
         listed in `task.completed`/`task.failed` `artifacts_collected` instead.";
    /// boxed: the largest event data, carrying the phase's guidance
    TaskClaimed(Box<TaskClaimed>) => TASK_CLAIMED = "task.claimed", "An agent claimed a task",
        "The outcome of `task.claim.requested`: the agent holds the task until \
         `lease_expires_at` unless it heartbeats (`task.heartbeat.requested`).";
    TaskLeaseExtended(TaskLeaseExtended) => TASK_LEASE_EXTENDED = "task.lease.extended",
        "The holder of a lease renewed it";
    TaskReleased(TaskReleased) => TASK_RELEASED = "task.released",
        "The holder of a lease gave the task back";
    TaskStalled(Box<TaskStalled>) => TASK_STALLED = "task.stalled",
        "A claimed task made no progress",
        "A claimed task got no progress (a heartbeat whose `progress` differs from the last \
         one; the claim counts as progress) for `tasks.stall_after_seconds` (actor `system`), \
         published once per claim. When `tasks.stall_release_after_seconds` passes after that \
         with still no progress, the task is released (`task.released` by `system`, reason \
         `stalled`), which counts towards `tasks.max_attempts` like an expired lease.";
    TaskLeaseExpired(TaskLeaseExpired) => TASK_LEASE_EXPIRED = "task.lease.expired",
        "A lease ran out",
        "A lease ran out without a heartbeat (actor `system`): the task is pending again, or, \
         when its leases ran out `tasks.max_attempts` times, failed: `task.failed` follows \
         (error `lease expired N times`), then what a failure sets off (the gate, when it was \
         the phase's last open task).";
    GateReviewRequested(GateReviewRequested) => GATE_REVIEW_REQUESTED = "gate.review.requested",
        "A gate waits for an independent review",
        "Every condition of a gate that requires a review holds (actor `system`): an agent that \
         completed none of the phase's tasks is asked to judge the phase as it is now, and \
         answers with `gate.review.submit.requested`. Published once per state of the phase: a \
         later artifact or task asks again.";
    GateReviewed(GateReviewed) => GATE_REVIEWED = "gate.reviewed", "A reviewer judged a phase",
        "The outcome of `gate.review.submit.requested`, followed by what it sets off: with \
         `approved`, the gate is validated again (and with `auto_advance` the ticket moves on); \
         with `changes_requested`, the gate fails with the reviewer's reasons and the phase's \
         rework task is generated.";
    TicketBudgetSet(TicketBudgetSet) => TICKET_BUDGET_SET = "ticket.budget.set",
        "An operator changed a ticket's budget",
        "The ticket's budget as it is now, and the operator who changed it; also the answer of \
         `PUT /api/v1/tickets/{ticket_id}/budget`.";
    BudgetWarning(BudgetAlert) => BUDGET_WARNING = "budget.warning",
        "A ticket's or agent's spend reached 80 % of a limit",
        "Published once per limit value (actor `system`), by the report (or budget change) \
         whose spend reached 80 % of the limit: about a ticket (`ticket_id`), or about an agent's \
         spend on one UTC day (`agent_id`, `day`).";
    BudgetExceeded(BudgetAlert) => BUDGET_EXCEEDED = "budget.exceeded",
        "A ticket's or agent's spend reached a limit",
        "Published once per limit value (actor `system`) when the spend reached 100 % of the \
         limit. From then on claims of the ticket's tasks (or by the agent, until the next UTC \
         day) are rejected `budget_exhausted`; work already claimed may still be reported. A \
         ticket's is followed, with `budgets.block_when_exceeded`, by its move to PHASE_BLOCKED \
         (actor `system`, reason `budget exceeded: <limit>`).";
}
