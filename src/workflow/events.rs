//! The events a message causes: collected while it is applied, then handed to its batch's
//! outbox rows, which are numbered per ticket (`ticketseq`) and written in one statement just
//! before commit.

use chrono::Utc;
use uuid::Uuid;

use crate::domain::AgentProfile;
use crate::protocol::{CloudEvent, Event, EVENT_SOURCE};
use crate::store::outbox::NewOutboxEvent;
use phaseflow_client::TraceContext;

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
    /// whether `actor` was authenticated (the broker-validated AMQP `user_id`, an HTTP bearer
    /// token, or phaseflow itself) rather than merely claimed by the message
    pub authenticated: bool,
    /// the W3C trace context of the span that applies it (a child of the caller's, when the
    /// request carried one): every event it causes carries it
    pub trace: Option<TraceContext>,
}

impl Origin {
    /// The trace id of the span that applies it (`None` without a trace context).
    pub fn trace_id(&self) -> Option<&str> {
        self.trace
            .as_ref()
            .and_then(|trace| crate::telemetry::trace::trace_id_in(&trace.traceparent))
    }
}

/// An AMQP reply address for a request's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub routing_key: String,
    pub correlation_id: String,
}

/// An event of the transaction, or the place kept for the request's outcome.
enum Draft {
    Event {
        event_id: Uuid,
        event: Event,
        actor: String,
        /// the request's outcome: also sent to its `reply_to`
        outcome: bool,
        /// the event that caused this one, when not the message being processed
        caused_by: Option<Uuid>,
    },
    /// where the outcome goes once the service returns it
    OutcomeSlot,
}

/// The events of one transaction, in the order they happened.
pub(crate) struct EventLog<'o> {
    origin: &'o Origin,
    /// what the actor may do (`None` for phaseflow's own steps)
    agent: Option<&'o AgentProfile>,
    drafts: Vec<Draft>,
}

impl<'o> EventLog<'o> {
    pub(crate) fn new(origin: &'o Origin) -> Self {
        EventLog {
            origin,
            agent: None,
            drafts: Vec::new(),
        }
    }

    /// The log of a request by an agent with this profile.
    pub(crate) fn with_agent(mut self, agent: Option<&'o AgentProfile>) -> Self {
        self.agent = agent;
        self
    }

    /// What the actor may do: `None` for phaseflow's own steps.
    pub(crate) fn agent(&self) -> Option<&'o AgentProfile> {
        self.agent
    }

    /// The actor of the message being processed.
    pub(crate) fn actor(&self) -> &'o str {
        &self.origin.actor
    }

    /// The message being processed.
    pub(crate) fn origin(&self) -> &'o Origin {
        self.origin
    }

    /// The trace id of the span applying the message: stored with the rows a ticket's timeline
    /// shows.
    pub(crate) fn trace_id(&self) -> Option<&'o str> {
        self.origin.trace_id()
    }

    /// Records an event the transaction caused; returns its id.
    pub(crate) fn emit(&mut self, actor: &str, event: Event) -> Uuid {
        self.push(actor, event, None)
    }

    /// Records an event set off by an earlier event of this transaction (`causationid` is that
    /// event's id), such as `tasks.generated` by `phase.entered`.
    pub(crate) fn emit_caused_by(&mut self, cause: Uuid, actor: &str, event: Event) -> Uuid {
        self.push(actor, event, Some(cause))
    }

    fn push(&mut self, actor: &str, event: Event, caused_by: Option<Uuid>) -> Uuid {
        let event_id = Uuid::new_v4();
        self.drafts.push(Draft::Event {
            event_id,
            event,
            actor: actor.to_owned(),
            outcome: false,
            caused_by,
        });
        event_id
    }

    /// Records the request's outcome event. It takes the place kept by [`Self::reserve_outcome`]
    /// when the service emitted events that follow it in the protocol's order before returning
    /// it; otherwise it comes last.
    pub(crate) fn emit_outcome(&mut self, actor: &str, event: Event) {
        let draft = Draft::Event {
            event_id: Uuid::new_v4(),
            event,
            actor: actor.to_owned(),
            outcome: true,
            caused_by: None,
        };
        match self
            .drafts
            .iter()
            .position(|earlier| matches!(earlier, Draft::OutcomeSlot))
        {
            Some(position) => self.drafts[position] = draft,
            None => self.drafts.push(draft),
        }
    }

    /// Keeps the outcome's place in the order: events emitted after this come after it.
    pub(crate) fn reserve_outcome(&mut self) {
        self.drafts.push(Draft::OutcomeSlot);
    }

    /// Adds the events, in order, to the outbox rows of the transaction, which numbers them per
    /// ticket as it appends them.
    pub(crate) fn append_to(self, rows: &mut Vec<NewOutboxEvent>) -> Result<(), serde_json::Error> {
        let now = crate::protocol::events::time::format(Utc::now());
        for draft in self.drafts {
            let Draft::Event {
                event_id,
                event,
                actor,
                outcome,
                caused_by,
            } = draft
            else {
                continue;
            };
            let causationid = match caused_by {
                Some(cause) => cause.to_string(),
                None => self.origin.message_id.clone(),
            };
            let ticket_id = event.ticket_id();
            let event_type = event.event_type();
            let cloud_event = CloudEvent {
                specversion: "1.0".into(),
                id: event_id.to_string(),
                source: EVENT_SOURCE.into(),
                event_type: event_type.to_owned(),
                subject: ticket_id.map(|id| id.to_string()),
                time: now.clone(),
                datacontenttype: "application/json".into(),
                actor,
                correlationid: self.origin.correlation_id.clone(),
                causationid,
                // numbered by the store as it appends, under the ticket's row lock, and added
                // to the body by the relay as it publishes
                ticketseq: None,
                traceparent: self
                    .origin
                    .trace
                    .as_ref()
                    .map(|trace| trace.traceparent.clone()),
                tracestate: self
                    .origin
                    .trace
                    .as_ref()
                    .and_then(|trace| trace.tracestate.clone()),
                data: event.data()?,
            };
            let body = serde_json::to_vec(&cloud_event)?;
            let reply = outcome.then_some(self.origin.reply.as_ref()).flatten();
            rows.push(NewOutboxEvent {
                ticket_id,
                event_id,
                event_type: event_type.to_owned(),
                body,
                reply_to: reply.map(|reply| reply.routing_key.clone()),
                reply_correlation_id: reply.map(|reply| reply.correlation_id.clone()),
                traceparent: cloud_event.traceparent,
                tracestate: cloud_event.tracestate,
            });
        }
        Ok(())
    }
}
