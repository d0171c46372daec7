//! The `data` of every event phaseflow publishes, one type per event.
//!
//! The worker builds events from these types, the HTTP API answers with them (or with a part of
//! them), and tests and consumers may read events back into them. Field names and order are the
//! wire format: changing a field here changes what every consumer receives. Pure data: no I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::{GateStatus, Phase, Priority, TaskId, TaskStatus, TicketId};

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketCreated {
    pub ticket_id: TicketId,
    pub title: String,
    pub description: String,
    pub priority: Priority,
    pub phase_id: Phase,
    pub auto_advance: bool,
    #[serde(with = "time")]
    pub created_at: DateTime<Utc>,
}

/// `phase.transitioned`: a ticket moved from one phase to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseTransitioned {
    pub ticket_id: TicketId,
    pub previous_phase: Phase,
    pub current_phase: Phase,
    #[serde(with = "time")]
    pub transitioned_at: DateTime<Utc>,
    pub transitioned_by: String,
    pub reason: String,
    pub history_id: i64,
}

/// `phase.entered`: a visit of a phase began (also on creation, into PHASE_BACKLOG).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseEntered {
    pub ticket_id: TicketId,
    pub phase_id: Phase,
    /// `None` for a new ticket
    pub previous_phase: Option<Phase>,
    /// the `phase_history` row that started the visit
    pub history_id: i64,
    /// entered by regression (TESTING back to IMPLEMENTATION)
    pub regression: bool,
    #[serde(with = "time")]
    pub entered_at: DateTime<Utc>,
}

/// `tasks.generated`: the tasks of a phase visit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TasksGenerated {
    pub ticket_id: TicketId,
    pub phase_id: Phase,
    pub generated_tasks: Vec<GeneratedTask>,
}

/// One task of `tasks.generated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextUpdated {
    pub ticket_id: TicketId,
    /// the phase aggregated
    pub phase_id: Phase,
    pub summary: String,
    pub summary_tokens: usize,
}

/// `gate.validated`: a phase's gate was judged (and the result stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationResult {
    pub artifacts_checked: usize,
    pub artifacts_passed: usize,
    /// the phase has tasks and every one of them is completed
    pub tasks_completed: bool,
    pub tasks_total: usize,
    pub tasks_done: usize,
}

/// `task.completed` and `task.failed`: a task was reported finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskFinished {
    pub ticket_id: TicketId,
    pub task_id: TaskId,
    pub phase_id: Phase,
    pub task_type: String,
    pub status: TaskStatus,
    pub artifacts_collected: Vec<CollectedArtifact>,
}

/// An artifact a task report handed in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectedArtifact {
    pub artifact_id: Uuid,
    pub artifact_type: String,
}

/// `artifact.collected`: an artifact was stored for a phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactCollected {
    pub ticket_id: TicketId,
    pub phase_id: Phase,
    pub artifact_id: Uuid,
    pub artifact_type: String,
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
            Event::Rejected { rejection, .. } => Ok(rejection.to_data()),
        }
    }
}
