//! The wire contract (CONTRACT §2): CloudEvents envelopes, the typed requests parsed from them,
//! rejection codes and the event types phaseflow emits.
//!
//! Pure data and parsing: no database, no broker, no I/O. Both the AMQP consumer and the HTTP
//! API turn their input into a [`Command`] here, so both validate exactly alike.

pub mod cloudevent;
pub mod command;

pub use cloudevent::{CloudEvent, DecodeError, RequestEnvelope, RequestType};
pub use command::{
    parse_command, ArtifactSubmission, Command, InvalidRequest, Rejection, RejectionCode,
    TaskReport,
};

/// The `source` of every event phaseflow publishes.
pub const EVENT_SOURCE: &str = "phaseflow";

/// The actor of events caused by phaseflow's own automatic steps.
pub const SYSTEM_ACTOR: &str = "system";

/// The event types phaseflow publishes on the events exchange (routing key = type).
pub mod event_type {
    pub const TICKET_CREATED: &str = "ticket.created";
    pub const PHASE_TRANSITIONED: &str = "phase.transitioned";
    pub const PHASE_ENTERED: &str = "phase.entered";
    pub const TASKS_GENERATED: &str = "tasks.generated";
    pub const CONTEXT_UPDATED: &str = "context.updated";
    pub const GATE_VALIDATED: &str = "gate.validated";
    pub const TASK_COMPLETED: &str = "task.completed";
    pub const TASK_FAILED: &str = "task.failed";
    pub const ARTIFACT_COLLECTED: &str = "artifact.collected";
}
