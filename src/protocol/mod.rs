//! The wire protocol (docs/protocol.md): CloudEvents envelopes, the data of every event and
//! rejections are the `phaseflow-client` crate's, shared with agents; the field-by-field reading
//! that every request kind parses its data with is the service's own ([`fields`]).
//!
//! Pure data and parsing: no database, no broker, no I/O. The request kinds themselves (their
//! data types and how they are applied) live in `workflow::requests`.

pub mod fields;

pub use phaseflow_client::{cloudevent, events, rejection};
pub use phaseflow_client::{
    event_type, CloudEvent, DecodeError, Event, InvalidRequest, Rejection, RejectionCode,
    RejectionData, RequestEnvelope, EVENT_SOURCE, SYSTEM_ACTOR,
};
