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

use crate::domain::{GateStatus, Guidance, Phase, Priority, TaskId, TaskStatus, TicketId, Verdict};

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
    pub released_by: String,
    /// why, when the holder said
    pub reason: Option<String>,
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

/// Any event phaseflow publishes, with its data.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    TicketCreated(TicketCreated),
    PhaseTransitioned(PhaseTransitioned),
    PhaseEntered(PhaseEntered),
    TasksGenerated(TasksGenerated),
    ContextUpdated(ContextUpdated),
    GateValidated(GateValidated),
    TaskCompleted(TaskFinished),
    TaskFailed(TaskFinished),
    ArtifactCollected(ArtifactCollected),
    /// boxed: the largest event data, carrying the phase's guidance
    TaskClaimed(Box<TaskClaimed>),
    TaskLeaseExtended(TaskLeaseExtended),
    TaskReleased(TaskReleased),
    TaskLeaseExpired(TaskLeaseExpired),
    GateReviewRequested(GateReviewRequested),
    GateReviewed(GateReviewed),
    /// The rejection of a request, as its `….rejected` event.
    Rejected {
        event_type: &'static str,
        rejection: Rejection,
    },
}

impl Event {
    /// The event's `type`, which is also its routing key.
    pub fn event_type(&self) -> &'static str {
        use super::event_type::*;
        match self {
            Event::TicketCreated(_) => TICKET_CREATED,
            Event::PhaseTransitioned(_) => PHASE_TRANSITIONED,
            Event::PhaseEntered(_) => PHASE_ENTERED,
            Event::TasksGenerated(_) => TASKS_GENERATED,
            Event::ContextUpdated(_) => CONTEXT_UPDATED,
            Event::GateValidated(_) => GATE_VALIDATED,
            Event::TaskCompleted(_) => TASK_COMPLETED,
            Event::TaskFailed(_) => TASK_FAILED,
            Event::ArtifactCollected(_) => ARTIFACT_COLLECTED,
            Event::TaskClaimed(_) => TASK_CLAIMED,
            Event::TaskLeaseExtended(_) => TASK_LEASE_EXTENDED,
            Event::TaskReleased(_) => TASK_RELEASED,
            Event::TaskLeaseExpired(_) => TASK_LEASE_EXPIRED,
            Event::GateReviewRequested(_) => GATE_REVIEW_REQUESTED,
            Event::GateReviewed(_) => GATE_REVIEWED,
            Event::Rejected { event_type, .. } => event_type,
        }
    }

    /// The ticket the event is about (its `subject`); `None` for a rejection naming none.
    pub fn ticket_id(&self) -> Option<TicketId> {
        Some(match self {
            Event::TicketCreated(data) => data.ticket_id,
            Event::PhaseTransitioned(data) => data.ticket_id,
            Event::PhaseEntered(data) => data.ticket_id,
            Event::TasksGenerated(data) => data.ticket_id,
            Event::ContextUpdated(data) => data.ticket_id,
            Event::GateValidated(data) => data.ticket_id,
            Event::TaskCompleted(data) | Event::TaskFailed(data) => data.ticket_id,
            Event::ArtifactCollected(data) => data.ticket_id,
            Event::TaskClaimed(data) => data.ticket_id,
            Event::TaskLeaseExtended(data) => data.ticket_id,
            Event::TaskReleased(data) => data.ticket_id,
            Event::TaskLeaseExpired(data) => data.ticket_id,
            Event::GateReviewRequested(data) => data.ticket_id,
            Event::GateReviewed(data) => data.ticket_id,
            Event::Rejected { rejection, .. } => return rejection.ticket_id,
        })
    }

    /// The event's `data` as JSON.
    pub fn data(&self) -> Result<Value, serde_json::Error> {
        match self {
            Event::TicketCreated(data) => serde_json::to_value(data),
            Event::PhaseTransitioned(data) => serde_json::to_value(data),
            Event::PhaseEntered(data) => serde_json::to_value(data),
            Event::TasksGenerated(data) => serde_json::to_value(data),
            Event::ContextUpdated(data) => serde_json::to_value(data),
            Event::GateValidated(data) => serde_json::to_value(data),
            Event::TaskCompleted(data) | Event::TaskFailed(data) => serde_json::to_value(data),
            Event::ArtifactCollected(data) => serde_json::to_value(data),
            Event::TaskClaimed(data) => serde_json::to_value(data),
            Event::TaskLeaseExtended(data) => serde_json::to_value(data),
            Event::TaskReleased(data) => serde_json::to_value(data),
            Event::TaskLeaseExpired(data) => serde_json::to_value(data),
            Event::GateReviewRequested(data) => serde_json::to_value(data),
            Event::GateReviewed(data) => serde_json::to_value(data),
            Event::Rejected { rejection, .. } => Ok(rejection.to_data()),
        }
    }
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

/// Every event phaseflow publishes (rejections aside), for the generated documents.
pub fn event_docs(generator: &mut schemars::SchemaGenerator) -> Vec<EventDoc> {
    use super::event_type::*;
    let doc = |event_type, title, description, data| EventDoc {
        event_type,
        title,
        description,
        data,
    };
    vec![
        doc(
            TICKET_CREATED,
            "A ticket was created",
            None,
            generator.subschema_for::<TicketCreated>(),
        ),
        doc(
            PHASE_TRANSITIONED,
            "A ticket moved to another phase",
            None,
            generator.subschema_for::<PhaseTransitioned>(),
        ),
        doc(
            PHASE_ENTERED,
            "A ticket entered a phase",
            Some(
                "A ticket entered a phase (also on creation, into PHASE_BACKLOG). What entering \
                 sets off is done in the same transaction, and its events follow this one (next \
                 `ticketseq` values, `causationid` = this event's `id`, actor `system`): the \
                 visit's tasks (`tasks.generated`, for phases with task templates) and the \
                 context of the phase just left (`context.updated`).",
            ),
            generator.subschema_for::<PhaseEntered>(),
        ),
        doc(
            TASKS_GENERATED,
            "The tasks of a phase visit",
            Some(
                "The tasks of a phase visit. Emitted on entry to a phase that has task templates \
                 (empty `generated_tasks` when unfinished tasks of the phase carry over) and as \
                 the outcome of `tasks.generate.requested`.",
            ),
            generator.subschema_for::<TasksGenerated>(),
        ),
        doc(
            CONTEXT_UPDATED,
            "A phase was aggregated into the ticket's context",
            Some("The context of the phase just left was aggregated into the ticket."),
            generator.subschema_for::<ContextUpdated>(),
        ),
        doc(
            GATE_VALIDATED,
            "A phase's gate was judged",
            None,
            generator.subschema_for::<GateValidated>(),
        ),
        doc(
            TASK_COMPLETED,
            "A task was reported completed",
            None,
            generator.subschema_for::<TaskFinished>(),
        ),
        doc(
            TASK_FAILED,
            "A task was reported failed",
            None,
            generator.subschema_for::<TaskFinished>(),
        ),
        doc(
            ARTIFACT_COLLECTED,
            "An artifact was collected for a phase",
            Some(
                "The outcome of `artifact.submit.requested`. Artifacts that come with a task \
                 report are listed in `task.completed`/`task.failed` `artifacts_collected` \
                 instead.",
            ),
            generator.subschema_for::<ArtifactCollected>(),
        ),
        doc(
            TASK_CLAIMED,
            "An agent claimed a task",
            Some(
                "The outcome of `task.claim.requested`: the agent holds the task until \
                 `lease_expires_at` unless it heartbeats (`task.heartbeat.requested`).",
            ),
            generator.subschema_for::<TaskClaimed>(),
        ),
        doc(
            TASK_LEASE_EXTENDED,
            "The holder of a lease renewed it",
            None,
            generator.subschema_for::<TaskLeaseExtended>(),
        ),
        doc(
            TASK_RELEASED,
            "The holder of a lease gave the task back",
            None,
            generator.subschema_for::<TaskReleased>(),
        ),
        doc(
            TASK_LEASE_EXPIRED,
            "A lease ran out",
            Some(
                "A lease ran out without a heartbeat (actor `system`): the task is pending \
                 again, or, when its leases ran out `tasks.max_attempts` times, failed: \
                 `task.failed` follows (error `lease expired N times`), then what a failure \
                 sets off (the gate, when it was the phase's last open task).",
            ),
            generator.subschema_for::<TaskLeaseExpired>(),
        ),
        doc(
            GATE_REVIEW_REQUESTED,
            "A gate waits for an independent review",
            Some(
                "Every condition of a gate that requires a review holds (actor `system`): an \
                 agent that completed none of the phase's tasks is asked to judge the phase as it \
                 is now, and answers with `gate.review.submit.requested`. Published once per state \
                 of the phase: a later artifact or task asks again.",
            ),
            generator.subschema_for::<GateReviewRequested>(),
        ),
        doc(
            GATE_REVIEWED,
            "A reviewer judged a phase",
            Some(
                "The outcome of `gate.review.submit.requested`, followed by what it sets off: \
                 with `approved`, the gate is validated again (and with `auto_advance` the ticket \
                 moves on); with `changes_requested`, the gate fails with the reviewer's reasons \
                 and the phase's rework task is generated.",
            ),
            generator.subschema_for::<GateReviewed>(),
        ),
    ]
}
