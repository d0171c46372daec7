//! `phase.transition.requested`: move a ticket to another phase, through the gate that guards
//! the move (see `domain::phase` for which moves are allowed and which are gated). Its outcome
//! is `phase.transitioned`, preceded by `gate.validated` when a gate was checked and followed by
//! the visit's `phase.entered` and what entering sets off.

use serde_json::{Map, Value};

use crate::domain::ticket::REASON_MAX_CHARS;
use crate::domain::{Phase, PhaseRules, TicketId};
use crate::protocol::fields::{Fields, Subject};
use crate::protocol::{Event, Rejection, RejectionCode};
use crate::store::{self, PgConnection};

use super::{ticket_not_found, Applied, RequestKind};
use crate::workflow::automation::{self, Announce, Move};
use crate::workflow::events::EventLog;
use crate::workflow::{discovery, gates, Workflow, WorkflowError};
pub use phaseflow_client::requests::transition::TransitionData;

/// A move asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub ticket_id: TicketId,
    /// `None` only when leaving BLOCKED: the unblock target is chosen
    pub to_phase: Option<Phase>,
    pub reason: String,
    /// refuse the move (`phase_mismatch`) unless the ticket is in this phase
    pub expected_from_phase: Option<Phase>,
    /// recorded on the history row
    pub artifacts: Value,
    /// an operator's move past a gate that refuses it
    pub force: bool,
}

impl RequestKind for Transition {
    fn parse(subject: Subject<'_>, fields: &mut Fields<'_>) -> Option<Self> {
        let ticket = subject.required(fields);
        let to_phase = fields.optional_parsed::<Phase>("to_phase");
        let reason = fields.required_text("reason", REASON_MAX_CHARS);
        let expected_from_phase = fields.optional_parsed::<Phase>("expected_from_phase");
        // a rejected transition names the phase it asked for (null when it named none)
        fields.details.insert(
            "to_phase".into(),
            to_phase.map_or(Value::Null, |phase| Value::from(phase.as_str())),
        );
        let artifacts = fields
            .optional_object("artifacts")
            .unwrap_or_else(|| Value::Object(Map::new()));
        let force = fields.optional_bool("force").unwrap_or(false);
        Some(Transition {
            ticket_id: ticket?,
            to_phase,
            reason: reason?,
            expected_from_phase,
            artifacts,
            force,
        })
    }

    fn ticket_id(&self) -> Option<TicketId> {
        Some(self.ticket_id)
    }

    async fn apply(
        &self,
        workflow: &Workflow,
        connection: &mut PgConnection,
        log: &mut EventLog<'_>,
    ) -> Result<Applied, WorkflowError> {
        let rejected = |rejection: Rejection, from: Option<Phase>, to: Option<Phase>| {
            Ok(Applied::Rejected(with_phases(rejection, from, to)))
        };
        let Some(ticket) = store::tickets::lock(connection, self.ticket_id).await? else {
            return rejected(ticket_not_found(self.ticket_id), None, self.to_phase);
        };
        if self.force && !workflow.is_operator(log) {
            let rejection = Rejection::new(
                RejectionCode::Forbidden,
                Some(ticket.id),
                format!(
                    "force: only an operator may force a transition, and {} is not one \
                     (operators are named in auth.operators; over AMQP by the message's user_id)",
                    log.actor()
                ),
            );
            return rejected(rejection, Some(ticket.phase), self.to_phase);
        }
        let from = ticket.phase;
        if let Some(expected) = self
            .expected_from_phase
            .filter(|expected| *expected != from)
        {
            let rejection = Rejection::new(
                RejectionCode::PhaseMismatch,
                Some(ticket.id),
                format!("ticket is in {from}, not in the expected {expected}"),
            );
            return rejected(rejection, Some(from), self.to_phase);
        }
        let to = match (self.to_phase, from) {
            (Some(to), _) => to,
            (None, Phase::Blocked) => Phase::unblock_target(ticket.previous_phase),
            (None, _) => {
                let rejection = Rejection::new(
                    RejectionCode::InvalidRequest,
                    Some(ticket.id),
                    format!(
                        "to_phase: is required unless the ticket is in PHASE_BLOCKED (it is in {from})"
                    ),
                );
                return rejected(rejection, Some(from), None);
            }
        };
        let definition = workflow.definition();
        let planned = match discovery::plan(definition, from, ticket.previous_phase, to) {
            Ok(planned) => planned,
            Err(invalid) => {
                return rejected(
                    discovery::refused(ticket.id, &invalid),
                    Some(from),
                    Some(to),
                )
            }
        };
        let actor = log.actor();
        if let Some(gated) = planned.gate.filter(|_| self.force) {
            // an operator's move: a gate that refuses is overridden, and says so
            let (_, validated) =
                gates::validate_forced(workflow, connection, &ticket, gated, actor, log.trace_id())
                    .await?;
            log.emit(actor, Event::GateValidated(validated));
        } else if let Some(gated) = planned.gate {
            let (evaluation, validated) =
                gates::validate(workflow, connection, &ticket, gated, actor, log.trace_id())
                    .await?;
            if let Some(rejection) = discovery::gate_not_met(ticket.id, gated, &evaluation) {
                // a gate that waits only for its review asks for one, whatever the move's fate
                gates::ask_review(connection, &ticket, gated, &evaluation, log).await?;
                return rejected(rejection, Some(from), Some(to));
            }
            log.emit(actor, Event::GateValidated(validated));
        }
        let change = Move {
            to,
            kind: planned.kind,
            reason: &self.reason,
            actor,
            artifacts: &self.artifacts,
            forced: self.force,
        };
        let moved = automation::move_ticket(
            workflow,
            connection,
            log,
            &ticket,
            &change,
            Announce::AsOutcome,
        )
        .await?;
        Ok(Applied::Succeeded(Event::PhaseTransitioned(moved)))
    }
}

/// A transition's rejection names the ticket's phase (`from_phase`, null when the ticket does
/// not exist) and the phase asked for (`to_phase`, null when none was).
pub(crate) fn with_phases(
    rejection: Rejection,
    from: Option<Phase>,
    to: Option<Phase>,
) -> Rejection {
    let phase =
        |phase: Option<Phase>| phase.map_or(Value::Null, |phase| Value::from(phase.as_str()));
    rejection
        .with_detail("from_phase", phase(from))
        .with_detail("to_phase", phase(to))
}
