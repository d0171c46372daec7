//! The phaseflow protocol for agents written in Rust: the requests they send, the events and
//! rejections they receive, as types, and a client that sends requests over RabbitMQ and
//! follows events.
//!
//! This crate is everything an agent needs and nothing of the service: it holds no workflow
//! rule (which moves are allowed, when a gate passes, who may claim what), no database and no
//! HTTP. The service depends on it for the same types, so what an agent sends and what the
//! service reads cannot drift apart.

pub mod cloudevent;
pub mod events;
pub mod gate;
pub mod guidance;
pub mod phase;
pub mod rejection;
pub mod ticket;
mod wire;

pub use cloudevent::{CloudEvent, DecodeError, RequestEnvelope};
pub use events::{event_type, Event};
pub use gate::{GateStatus, UnknownGateStatus, UnknownVerdict, Verdict};
pub use guidance::Guidance;
pub use phase::{Phase, UnknownPhase};
pub use rejection::{InvalidRequest, Rejection, RejectionCode, RejectionData};
pub use ticket::{Priority, TaskId, TaskStatus, TicketId, UnknownPriority, UnknownTaskStatus};

/// The `source` of every event phaseflow publishes.
pub const EVENT_SOURCE: &str = "phaseflow";

/// The actor of events caused by phaseflow's own automatic steps.
pub const SYSTEM_ACTOR: &str = "system";
