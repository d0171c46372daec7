//! The wire protocol (docs/protocol.md): CloudEvents envelopes, the data of every event,
//! rejections, and the field-by-field reading that every request kind parses its data with.
//!
//! Pure data and parsing: no database, no broker, no I/O. The request kinds themselves (their
//! data types and how they are applied) live in `workflow::requests`.

pub mod cloudevent;
pub mod events;
pub mod fields;
pub mod rejection;

pub use cloudevent::{CloudEvent, DecodeError, RequestEnvelope};
pub use events::{event_type, Event};
pub use rejection::{InvalidRequest, Rejection, RejectionCode, RejectionData};

/// The `source` of every event phaseflow publishes.
pub const EVENT_SOURCE: &str = "phaseflow";

/// The actor of events caused by phaseflow's own automatic steps.
pub const SYSTEM_ACTOR: &str = "system";
