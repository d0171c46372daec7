//! An event as an agent receives it: the CloudEvent envelope with its `data` still JSON
//! ([`Envelope`]), read as one of the event types of [`crate::events`] when the agent knows
//! which ([`Envelope::read`]), and a request's outcome, its success event or its rejection
//! ([`Outcome`]).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::RejectionData;

/// An event as phaseflow publishes it: the attributes an agent looks at, and `data` as `T`
/// (JSON until read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T = Value> {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub source: String,
    /// the ticket the event is about
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// the event's place among its ticket's events, from 1
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticketseq: Option<i64>,
    /// who caused it: the requester, or `system`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// the correlation id of the request it comes from
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlationid: Option<String>,
    /// the id of the request or event that caused it
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causationid: Option<String>,
    pub data: T,
}

impl Envelope {
    /// The same event with its `data` read as `T`.
    pub fn read<T: DeserializeOwned>(self) -> Result<Envelope<T>, serde_json::Error> {
        Ok(Envelope {
            data: serde_json::from_value(self.data)?,
            id: self.id,
            event_type: self.event_type,
            source: self.source,
            subject: self.subject,
            ticketseq: self.ticketseq,
            actor: self.actor,
            correlationid: self.correlationid,
            causationid: self.causationid,
        })
    }

    /// Whether it is a rejection (`….rejected`).
    pub fn is_rejection(&self) -> bool {
        self.event_type.ends_with(".rejected")
    }

    /// Reads a request's outcome: its success event with `data` as `T`, or its rejection.
    pub fn outcome<T: DeserializeOwned>(self) -> Result<Outcome<T>, serde_json::Error> {
        Ok(if self.is_rejection() {
            Outcome::Rejected(self.read()?)
        } else {
            Outcome::Succeeded(self.read()?)
        })
    }
}

/// What a request came to: its success event, or its rejection (whose `data` says why, with a
/// code an agent can act on).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    Succeeded(Envelope<T>),
    Rejected(Envelope<RejectionData>),
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::TaskClaimed;
    use crate::RejectionCode;

    #[test]
    fn a_rejection_reads_as_one_and_a_success_as_its_type() {
        let rejected: Envelope = serde_json::from_value(json!({
            "specversion": "1.0", "id": "e1", "type": "task.claim.rejected", "source": "phaseflow",
            "actor": "agent-1",
            "data": {"code": "no_task_available", "reasons": ["no task is claimable"]}
        }))
        .unwrap();
        match rejected.outcome::<TaskClaimed>().unwrap() {
            Outcome::Rejected(rejection) => {
                assert_eq!(rejection.data.code, RejectionCode::NoTaskAvailable);
                assert_eq!(rejection.actor.as_deref(), Some("agent-1"));
            }
            Outcome::Succeeded(event) => panic!("read as a success: {event:?}"),
        }
        let unreadable: Envelope = serde_json::from_value(json!({
            "id": "e2", "type": "task.claimed", "source": "phaseflow", "data": {"task_id": 3}
        }))
        .unwrap();
        assert!(unreadable.outcome::<TaskClaimed>().is_err());
    }
}
