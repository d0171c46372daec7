//! `phase.entered`, consumed: the entry work of the visit it names (the visit's tasks and the
//! context of the phase left), done once.
//!
//! The worker does this work in the transaction that enters a phase, and marks the visit done
//! there; a `phase.entered` that arrives later (a replay, or another system that moved the
//! ticket) finds it done and changes nothing. It is a fact, not a request: it has no outcome
//! event, and one that cannot be read is dead-lettered. It must not move tickets.

use crate::domain::{Phase, TicketId};
use crate::protocol::fields::{Fields, Subject};
use crate::store::{self, PgConnection};

use super::{Applied, RequestKind};
use crate::workflow::events::EventLog;
use crate::workflow::{automation, RequestOutcome, Workflow, WorkflowError};

/// The visit a `phase.entered` names.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseEntered {
    pub ticket_id: TicketId,
    pub phase_id: Phase,
    /// the `phase_history` row that started the visit
    pub history_id: i64,
}

impl RequestKind for PhaseEntered {
    fn parse(subject: Subject<'_>, fields: &mut Fields<'_>) -> Option<Self> {
        let ticket = subject.required(fields);
        let phase_id = fields.required_parsed::<Phase>("phase_id");
        let history_id = fields.required_positive_integer("history_id");
        if let (Some(subject), Some(named)) = (ticket, fields.get("ticket_id")) {
            if named.as_str() != Some(subject.to_string().as_str()) {
                fields
                    .reasons
                    .push(format!("ticket_id: {named} is not the subject {subject}"));
            }
        }
        Some(PhaseEntered {
            ticket_id: ticket?,
            phase_id: phase_id?,
            history_id: history_id?,
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
        let outcome = enter(
            workflow,
            connection,
            log,
            self.ticket_id,
            self.phase_id,
            self.history_id,
        )
        .await?;
        Ok(Applied::Consumed(outcome))
    }
}

async fn enter(
    workflow: &Workflow,
    connection: &mut PgConnection,
    log: &mut EventLog<'_>,
    ticket_id: TicketId,
    phase: Phase,
    history_id: i64,
) -> Result<RequestOutcome, WorkflowError> {
    let Some(ticket) = store::tickets::lock(connection, ticket_id).await? else {
        return Ok(RequestOutcome::EventIgnored(format!(
            "ticket {ticket_id} does not exist"
        )));
    };
    let Some(state) = store::tickets::visit_state(connection, ticket.id, history_id).await? else {
        return Ok(RequestOutcome::EventIgnored(format!(
            "ticket {ticket_id} has no history row {history_id}"
        )));
    };
    if state.visit.to_phase != phase {
        return Ok(RequestOutcome::EventIgnored(format!(
            "history row {history_id} of ticket {ticket_id} entered {}, not {phase}",
            state.visit.to_phase
        )));
    }
    if state.entry_work_done {
        return Ok(RequestOutcome::Duplicate);
    }
    store::tickets::mark_entry_work_done(connection, history_id).await?;
    if !state.current {
        // tasks generated now would wait in a phase the ticket has left, and the context of the
        // phase left then was aggregated again when the ticket moved on
        return Ok(RequestOutcome::EventIgnored(format!(
            "ticket {ticket_id} has left the visit of {phase} that history row {history_id} started"
        )));
    }
    automation::enter_phase(workflow, connection, log, &ticket, &state.visit, None, None).await?;
    Ok(RequestOutcome::EventConsumed)
}
