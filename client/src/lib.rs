#![doc = include_str!("../README.md")]

pub mod broker;
pub mod budget;
pub mod cloudevent;
pub mod envelope;
pub mod events;
pub mod gate;
pub mod guidance;
pub mod limits;
pub mod phase;
pub mod rejection;
pub mod requests;
pub mod retry;
pub mod ticket;
pub mod usage;
mod wire;

pub use broker::{Broker, EventSubscription, OutgoingRequest, RequestClient};
pub use cloudevent::{CloudEvent, DecodeError, RequestEnvelope, TraceContext};
pub use envelope::{Envelope, Outcome};
pub use events::{event_type, Event};
pub use gate::{GateStatus, UnknownGateStatus, UnknownVerdict, Verdict};
pub use guidance::Guidance;
pub use phase::{Phase, UnknownPhase};
pub use rejection::{InvalidRequest, Rejection, RejectionCode, RejectionData};
pub use requests::{HttpRoute, Request, RequestType, RouteMethod};
pub use ticket::{
    ClaimId, Priority, TaskId, TaskStatus, TicketId, UnknownPriority, UnknownTaskStatus,
};

/// The `source` of every event phaseflow publishes.
pub const EVENT_SOURCE: &str = "phaseflow";

/// The actor of events caused by phaseflow's own automatic steps.
pub const SYSTEM_ACTOR: &str = "system";
