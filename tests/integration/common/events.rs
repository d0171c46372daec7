//! Events read back into the library's types: the CloudEvent envelope with typed `data`
//! ([`Envelope`]), and a request's outcome, either its success event or its rejection
//! ([`Outcome`]). Tests read what happened through these, never by looking up JSON members.

use std::fmt;

use phaseflow::protocol::{RejectionCode, RejectionData};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// An event as published: the envelope members a test checks, and `data` as `T`.
#[derive(Debug, Clone)]
pub struct Envelope<T> {
    pub id: String,
    pub event_type: String,
    pub subject: Option<String>,
    pub ticketseq: Option<i64>,
    pub actor: String,
    pub correlationid: String,
    pub causationid: String,
    pub data: T,
    /// the event as it arrived, for failure messages
    pub raw: Value,
}

/// An event whose data is not read yet.
pub type Event = Envelope<Value>;

impl Event {
    /// Reads an event from its JSON; panics on an event without the CloudEvent members.
    pub fn from_json(raw: Value) -> Event {
        let text = |name: &str| {
            raw.get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("the event has no `{name}`: {raw:#}"))
        };
        Envelope {
            id: text("id"),
            event_type: text("type"),
            subject: raw
                .get("subject")
                .and_then(Value::as_str)
                .map(str::to_owned),
            ticketseq: raw.get("ticketseq").and_then(Value::as_i64),
            actor: text("actor"),
            correlationid: text("correlationid"),
            causationid: text("causationid"),
            data: raw.get("data").cloned().unwrap_or(Value::Null),
            raw,
        }
    }

    /// Its data as `T`, or a failed test showing the event.
    pub fn data<T: DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.data.clone()).unwrap_or_else(|error| {
            panic!(
                "`{}` data does not read as {}: {error}\n{:#}",
                self.event_type,
                std::any::type_name::<T>(),
                self.raw
            )
        })
    }

    /// The same envelope with its data read as `T`.
    pub fn typed<T: DeserializeOwned>(self) -> Envelope<T> {
        let data = self.data();
        Envelope {
            id: self.id,
            event_type: self.event_type,
            subject: self.subject,
            ticketseq: self.ticketseq,
            actor: self.actor,
            correlationid: self.correlationid,
            causationid: self.causationid,
            data,
            raw: self.raw,
        }
    }

    pub fn is(&self, event_type: &str) -> bool {
        self.event_type == event_type
    }

    /// Whether it is of `event_type` and about `ticket`.
    pub fn is_about(&self, event_type: &str, ticket: &str) -> bool {
        self.event_type == event_type && self.subject.as_deref() == Some(ticket)
    }

    /// Whether it is a rejection (`….rejected`).
    pub fn is_rejection(&self) -> bool {
        self.event_type.ends_with(".rejected")
    }

    /// Reads a request's outcome event: its success as `T`, or its rejection.
    pub fn outcome<T: DeserializeOwned>(self) -> Outcome<T> {
        if self.is_rejection() {
            Outcome::Rejected(self.typed())
        } else {
            Outcome::Succeeded(self.typed())
        }
    }
}

impl<T> fmt::Display for Envelope<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:#}", self.raw)
    }
}

/// A rejection event.
pub type Rejected = Envelope<RejectionData>;

impl Rejected {
    /// Asserts what every rejection has: its type, its code, its ticket and reasons that each
    /// say something; returns it for further checks.
    pub fn assert(
        &self,
        event_type: &str,
        code: RejectionCode,
        ticket_id: Option<&str>,
    ) -> &Rejected {
        assert_eq!(self.event_type, event_type, "unexpected outcome: {self}");
        assert_eq!(self.data.code, code, "unexpected rejection code: {self}");
        assert!(
            !self.data.reasons.is_empty(),
            "a rejection says why: {self}"
        );
        assert!(
            self.data
                .reasons
                .iter()
                .all(|reason| !reason.trim().is_empty()),
            "every reason says something: {self}"
        );
        assert_eq!(
            self.data.ticket_id.map(|id| id.to_string()).as_deref(),
            ticket_id,
            "data.ticket_id: {self}"
        );
        self
    }

    /// Whether its data has the member `name`, null or not (`from_phase` and `to_phase` are
    /// there with null when unknown, which the typed data cannot tell from absent).
    pub fn has_member(&self, name: &str) -> bool {
        self.raw
            .get("data")
            .and_then(Value::as_object)
            .is_some_and(|data| data.contains_key(name))
    }

    /// Every reason, one per line, for `contains` checks.
    pub fn reasons(&self) -> String {
        self.data.reasons.join("\n")
    }
}

/// What a request came to: its success event, or its rejection.
#[derive(Debug, Clone)]
pub enum Outcome<T> {
    Succeeded(Envelope<T>),
    Rejected(Rejected),
}

impl<T> Outcome<T> {
    /// The success event, or a failed test showing the rejection.
    pub fn succeeded(self) -> Envelope<T> {
        match self {
            Outcome::Succeeded(event) => event,
            Outcome::Rejected(rejection) => panic!("the request was rejected: {rejection}"),
        }
    }

    /// The rejection, or a failed test showing the success.
    pub fn rejected(self) -> Rejected {
        match self {
            Outcome::Rejected(rejection) => rejection,
            Outcome::Succeeded(event) => panic!("the request was not rejected: {event}"),
        }
    }

    /// The outcome's event type.
    pub fn event_type(&self) -> &str {
        match self {
            Outcome::Succeeded(event) => &event.event_type,
            Outcome::Rejected(rejection) => &rejection.event_type,
        }
    }

    /// The outcome's envelope, whatever it came to.
    pub fn raw(&self) -> &Value {
        match self {
            Outcome::Succeeded(event) => &event.raw,
            Outcome::Rejected(rejection) => &rejection.raw,
        }
    }
}
