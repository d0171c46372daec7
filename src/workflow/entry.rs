//! A consumed `phase.entered` event: the entry work of the visit it names (the visit's tasks and
//! the context of the phase left), done once.
//!
//! The worker does this work in the transaction that enters a phase, and marks the visit done
//! there; a `phase.entered` that arrives later (a replay, or another system that moved the
//! ticket) finds it done and changes nothing. This module must not move tickets or emit an
//! outcome event: `phase.entered` is a fact, not a request.

use crate::domain::{Phase, TicketId};
use crate::store::{self, PgConnection};

use super::events::EventLog;
use super::{automation, Workflow};

/// What consuming a `phase.entered` did.
pub(crate) enum Entry {
    /// The visit's entry work was done now.
    Done,
    /// It was done before: nothing changed.
    AlreadyDone,
    /// Nothing to act on, and why.
    NothingToDo(String),
}

pub(crate) async fn apply(
    workflow: &Workflow,
    connection: &mut PgConnection,
    log: &mut EventLog<'_>,
    ticket_id: TicketId,
    phase: Phase,
    history_id: i64,
) -> Result<Entry, sqlx::Error> {
    let Some(ticket) = store::tickets::lock(connection, ticket_id).await? else {
        return Ok(Entry::NothingToDo(format!(
            "ticket {ticket_id} does not exist"
        )));
    };
    let Some(state) = store::tickets::visit_state(connection, ticket.id, history_id).await? else {
        return Ok(Entry::NothingToDo(format!(
            "ticket {ticket_id} has no history row {history_id}"
        )));
    };
    if state.visit.to_phase != phase {
        return Ok(Entry::NothingToDo(format!(
            "history row {history_id} of ticket {ticket_id} entered {}, not {phase}",
            state.visit.to_phase
        )));
    }
    if state.entry_work_done {
        return Ok(Entry::AlreadyDone);
    }
    store::tickets::mark_entry_work_done(connection, history_id).await?;
    if !state.current {
        // tasks generated now would wait in a phase the ticket has left, and the context of the
        // phase left then was aggregated again when the ticket moved on
        return Ok(Entry::NothingToDo(format!(
            "ticket {ticket_id} has left the visit of {phase} that history row {history_id} started"
        )));
    }
    automation::enter_phase(workflow, connection, log, &ticket, &state.visit, None).await?;
    Ok(Entry::Done)
}
