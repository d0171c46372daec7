//! The wire contract (docs/protocol.md): CloudEvents envelopes, the data of every event,
//! rejections, and the field-by-field reading that every request kind parses its data with.
//!
//! Pure data and parsing: no database, no broker, no I/O. The request kinds themselves (their
//! data types and how they are applied) live in `workflow::requests`.

pub mod cloudevent;
pub mod events;
pub mod fields;
pub mod rejection;

pub use cloudevent::{CloudEvent, DecodeError, RequestEnvelope};
pub use events::Event;
pub use rejection::{InvalidRequest, Rejection, RejectionCode, RejectionData};

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
    pub const TASK_CLAIMED: &str = "task.claimed";
    pub const TASK_LEASE_EXTENDED: &str = "task.lease.extended";
    pub const TASK_RELEASED: &str = "task.released";
    pub const TASK_LEASE_EXPIRED: &str = "task.lease.expired";
    pub const GATE_REVIEW_REQUESTED: &str = "gate.review.requested";
    pub const GATE_REVIEWED: &str = "gate.reviewed";
}
