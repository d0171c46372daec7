//! Moving a ticket between phases, and what happens on its own: the work entering a phase sets
//! off, the gate check when a phase's last open task finishes, auto-advance, and regression from
//! TESTING (docs/protocol.md, "What happens on its own").

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::{Phase, PhaseRules, TransitionKind};
use crate::protocol::events::{PhaseEntered, PhaseTransitioned};
use crate::protocol::{Event, SYSTEM_ACTOR};
use crate::store::context::PhaseInputs;
use crate::store::{self, tickets::HistoryRecord, tickets::TicketRecord, PgConnection};

use super::events::EventLog;
use super::{context, gates, tasks, Workflow, WorkflowError};

/// A change of phase to apply to a locked ticket.
pub(crate) struct Move<'a> {
    pub to: Phase,
    pub kind: TransitionKind,
    pub reason: &'a str,
    pub actor: &'a str,
    /// what the request attached to the move (`{}` for automatic moves)
    pub artifacts: &'a Value,
    /// an operator forced the move past a gate that refused it
    pub forced: bool,
}

/// Whether a move's `phase.transitioned` is the request's outcome or a consequence of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Announce {
    /// The request asked for the move: its place is kept and the caller emits it as the outcome.
    AsOutcome,
    /// The move follows from something else (a passed gate): emitted now.
    AsConsequence,
}

/// Moves a locked ticket: updates it, records history, emits `phase.transitioned` (or keeps its
/// place, see [`Announce`]) and `phase.entered`, and does what entering the phase sets off
/// ([`enter_phase`]). Returns the `phase.transitioned` data.
pub(crate) async fn move_ticket(
    workflow: &Workflow,
    connection: &mut PgConnection,
    log: &mut EventLog<'_>,
    ticket: &TicketRecord,
    change: &Move<'_>,
    announce: Announce,
) -> Result<PhaseTransitioned, WorkflowError> {
    let (history, left_inputs) = store::tickets::move_to_phase(
        connection,
        &store::tickets::NewHistory {
            ticket_id: ticket.id,
            from_phase: Some(ticket.phase),
            to_phase: change.to,
            reason: change.reason,
            transitioned_by: change.actor,
            artifacts: change.artifacts,
            regression: change.kind.is_regression(),
            forced: change.forced,
            correlation_id: &log.origin().correlation_id,
            trace_id: log.trace_id(),
        },
        &ticket.phase.context_key(),
        &context::suffix(workflow),
    )
    .await?;
    let transitioned = PhaseTransitioned {
        ticket_id: ticket.id,
        previous_phase: ticket.phase,
        current_phase: change.to,
        transitioned_at: history.created_at,
        transitioned_by: change.actor.to_owned(),
        reason: change.reason.to_owned(),
        history_id: history.id,
        forced: change.forced,
    };
    match announce {
        Announce::AsOutcome => log.reserve_outcome(),
        Announce::AsConsequence => {
            log.emit(change.actor, Event::PhaseTransitioned(transitioned.clone()));
        }
    }
    let entered = log.emit(change.actor, Event::PhaseEntered(entered_data(&history)));
    // the phase left was read before the tasks of the phase entered were generated, which
    // touches only the phase entered (a move never enters the phase it leaves)
    let left_inputs = (change.to != ticket.phase).then_some(left_inputs);
    enter_phase(
        workflow,
        connection,
        log,
        ticket,
        &history,
        Some(entered),
        left_inputs,
    )
    .await?;
    Ok(transitioned)
}

/// What entering a phase sets off, done in the transaction that entered it, so it can be
/// neither lost nor done twice, and needs no worker when the API moved the ticket: generates
/// the visit's tasks (`tasks.generated`, for phases with templates) and aggregates the context
/// of the phase just left (`context.updated`). Both events are caused by the visit's
/// `phase.entered` event: `entered` when this transaction emitted it, `None` when it is the
/// message being processed (a consumed `phase.entered`). `left_inputs`: what aggregating the
/// phase left needs, when the caller read it (`context::aggregate`).
pub(crate) async fn enter_phase(
    workflow: &Workflow,
    connection: &mut PgConnection,
    log: &mut EventLog<'_>,
    ticket: &TicketRecord,
    visit: &HistoryRecord,
    entered: Option<Uuid>,
    left_inputs: Option<PhaseInputs>,
) -> Result<(), WorkflowError> {
    let emit = |log: &mut EventLog<'_>, event: Event| match entered {
        Some(cause) => {
            log.emit_caused_by(cause, SYSTEM_ACTOR, event);
        }
        None => {
            log.emit(SYSTEM_ACTOR, event);
        }
    };
    let phase = visit.to_phase;
    let templates = &workflow.definition().templates;
    if !templates.normal(phase).is_empty() || !templates.reentry(phase).is_empty() {
        let generated = tasks::generate_for_visit(
            workflow,
            connection,
            ticket,
            phase,
            visit.id,
            visit.regression,
            log.trace_id(),
        )
        .await?;
        emit(
            log,
            Event::TasksGenerated(tasks::generated_data(ticket.id, phase, generated)),
        );
    }
    if let Some(left) = visit.from_phase {
        let updated = context::aggregate(workflow, connection, ticket, left, left_inputs).await?;
        emit(log, Event::ContextUpdated(updated));
    }
    Ok(())
}

/// `phase.entered` data for the visit a history row started.
pub(crate) fn entered_data(history: &HistoryRecord) -> PhaseEntered {
    PhaseEntered {
        ticket_id: history.ticket_id,
        phase_id: history.to_phase,
        previous_phase: history.from_phase,
        history_id: history.id,
        regression: history.regression,
        entered_at: history.created_at,
    }
}

/// After a task of the ticket's current phase finished: when no task of the phase is still
/// open, validate the gate (actor `system`), then auto-advance on a pass or regress when the
/// TESTING gate failed because tests failed.
pub(crate) async fn after_task_finished(
    workflow: &Workflow,
    connection: &mut PgConnection,
    log: &mut EventLog<'_>,
    ticket: &TicketRecord,
) -> Result<(), WorkflowError> {
    let phase_tasks = store::tasks::for_phase(connection, ticket.id, ticket.phase).await?;
    if phase_tasks.iter().any(|task| task.status.is_open()) {
        return Ok(());
    }
    after_phase_work_done(workflow, connection, log, ticket).await
}

/// [`after_task_finished`] for a caller that knows no task of the ticket's current phase is
/// open any more.
pub(crate) async fn after_phase_work_done(
    workflow: &Workflow,
    connection: &mut PgConnection,
    log: &mut EventLog<'_>,
    ticket: &TicketRecord,
) -> Result<(), WorkflowError> {
    let phase = ticket.phase;
    let (evaluation, validated) = gates::validate(
        workflow,
        connection,
        ticket,
        phase,
        SYSTEM_ACTOR,
        log.trace_id(),
    )
    .await?;
    log.emit(SYSTEM_ACTOR, Event::GateValidated(validated));
    gates::ask_review(connection, ticket, phase, &evaluation, log).await?;
    if !ticket.auto_advance {
        return Ok(());
    }
    if evaluation.requirements_met {
        if let Some(next) = phase.next() {
            let reason = format!("gate of {phase} passed: all tasks completed");
            let change = Move {
                to: next,
                kind: TransitionKind::Forward,
                reason: &reason,
                actor: SYSTEM_ACTOR,
                artifacts: &Value::Object(Map::new()),
                forced: false,
            };
            move_ticket(
                workflow,
                connection,
                log,
                ticket,
                &change,
                Announce::AsConsequence,
            )
            .await?;
        }
    } else if evaluation.regression_required {
        if let Ok(kind @ TransitionKind::Regression) =
            phase.classify_transition(Phase::Implementation)
        {
            let reason = evaluation.blocking_reasons.join("; ");
            let change = Move {
                to: Phase::Implementation,
                kind,
                reason: &reason,
                actor: SYSTEM_ACTOR,
                artifacts: &Value::Object(Map::new()),
                forced: false,
            };
            move_ticket(
                workflow,
                connection,
                log,
                ticket,
                &change,
                Announce::AsConsequence,
            )
            .await?;
        }
    }
    Ok(())
}
