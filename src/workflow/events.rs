//! The events a message causes: collected while it is applied, then handed to its batch's
//! outbox rows, which are numbered per ticket (`ticketseq`) and written in one statement just
//! before commit.

use chrono::Utc;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::TicketId;
use crate::protocol::{CloudEvent, EVENT_SOURCE};
use crate::store::outbox::NewOutboxEvent;

/// The message being processed: every event it causes carries its id as `causationid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// the request's (or consumed event's) id
    pub message_id: String,
    /// `correlationid` of the request, else its id; carried through automatic steps
    pub correlation_id: String,
    /// who asked: the agent id (or `system` for automatic steps)
    pub actor: String,
    /// where the outcome event also goes (AMQP `reply_to`)
    pub reply: Option<Reply>,
}

/// An AMQP reply address for a request's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub routing_key: String,
    pub correlation_id: String,
}

struct DraftEvent {
    event_id: Uuid,
    event_type: String,
    ticket_id: Option<TicketId>,
    actor: String,
    data: Value,
    outcome: bool,
    /// the event that caused this one, when not the message being processed
    caused_by: Option<Uuid>,
}

/// The events of one transaction, in the order they happened.
pub(crate) struct EventLog<'o> {
    origin: &'o Origin,
    drafts: Vec<DraftEvent>,
}

impl<'o> EventLog<'o> {
    pub(crate) fn new(origin: &'o Origin) -> Self {
        EventLog {
            origin,
            drafts: Vec::new(),
        }
    }

    /// The actor of the message being processed.
    pub(crate) fn actor(&self) -> &'o str {
        &self.origin.actor
    }

    /// Records an event the transaction caused; returns its id.
    pub(crate) fn emit(
        &mut self,
        event_type: &str,
        ticket_id: Option<TicketId>,
        actor: &str,
        data: Value,
    ) -> Uuid {
        self.push(event_type, ticket_id, actor, data, None)
    }

    /// Records an event set off by an earlier event of this transaction (`causationid` is that
    /// event's id), such as `tasks.generated` by `phase.entered`.
    pub(crate) fn emit_caused_by(
        &mut self,
        cause: Uuid,
        event_type: &str,
        ticket_id: Option<TicketId>,
        actor: &str,
        data: Value,
    ) -> Uuid {
        self.push(event_type, ticket_id, actor, data, Some(cause))
    }

    fn push(
        &mut self,
        event_type: &str,
        ticket_id: Option<TicketId>,
        actor: &str,
        data: Value,
        caused_by: Option<Uuid>,
    ) -> Uuid {
        let event_id = Uuid::new_v4();
        self.drafts.push(DraftEvent {
            event_id,
            event_type: event_type.to_owned(),
            ticket_id,
            actor: actor.to_owned(),
            data,
            outcome: false,
            caused_by,
        });
        event_id
    }

    /// Records the request's outcome event. It is placed before the events its success set off
    /// (gate, transition, ...) when those were emitted first by the service.
    pub(crate) fn emit_outcome(
        &mut self,
        event_type: &str,
        ticket_id: Option<TicketId>,
        actor: &str,
        data: Value,
    ) {
        let draft = DraftEvent {
            event_id: Uuid::new_v4(),
            event_type: event_type.to_owned(),
            ticket_id,
            actor: actor.to_owned(),
            data,
            outcome: true,
            caused_by: None,
        };
        // Services emit their consequences before returning the outcome: the outcome goes
        // right after the events that precede it in the contract's order.
        let position = self
            .drafts
            .iter()
            .position(|earlier| earlier.event_type == OUTCOME_PLACEHOLDER)
            .unwrap_or(self.drafts.len());
        if position < self.drafts.len() {
            self.drafts[position] = draft;
        } else {
            self.drafts.push(draft);
        }
    }

    /// Reserves the outcome's place in the order: events emitted after this come after it.
    pub(crate) fn reserve_outcome(&mut self) {
        self.drafts.push(DraftEvent {
            event_id: Uuid::nil(),
            event_type: OUTCOME_PLACEHOLDER.to_owned(),
            ticket_id: None,
            actor: String::new(),
            data: Value::Null,
            outcome: true,
            caused_by: None,
        });
    }

    /// Adds the events, in order, to the outbox rows of the transaction, which numbers them per
    /// ticket as it appends them.
    pub(crate) fn append_to(self, rows: &mut Vec<NewOutboxEvent>) -> Result<(), serde_json::Error> {
        let now = CloudEvent::format_time(Utc::now());
        for draft in self.drafts {
            if draft.event_type == OUTCOME_PLACEHOLDER {
                continue;
            }
            let event_id = draft.event_id;
            let causationid = match draft.caused_by {
                Some(cause) => cause.to_string(),
                None => self.origin.message_id.clone(),
            };
            let event = CloudEvent {
                specversion: "1.0".into(),
                id: event_id.to_string(),
                source: EVENT_SOURCE.into(),
                event_type: draft.event_type.clone(),
                subject: draft.ticket_id.map(|id| id.to_string()),
                time: now.clone(),
                datacontenttype: "application/json".into(),
                actor: draft.actor,
                correlationid: self.origin.correlation_id.clone(),
                causationid,
                // numbered by the store as it appends, under the ticket's row lock
                ticketseq: None,
                data: draft.data,
            };
            let payload = serde_json::to_value(&event)?;
            let reply = draft
                .outcome
                .then_some(self.origin.reply.as_ref())
                .flatten();
            rows.push(NewOutboxEvent {
                ticket_id: draft.ticket_id,
                event_id,
                event_type: draft.event_type,
                payload,
                reply_to: reply.map(|reply| reply.routing_key.clone()),
                reply_correlation_id: reply.map(|reply| reply.correlation_id.clone()),
            });
        }
        Ok(())
    }
}

const OUTCOME_PLACEHOLDER: &str = "\u{0}outcome";
