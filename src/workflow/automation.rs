//! Moving a ticket between phases, and what happens on its own (CONTRACT §2): the work entering
//! a phase sets off, the gate check when a phase's last open task finishes, auto-advance, and
//! regression from TESTING.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::domain::{Phase, TransitionKind};
use crate::protocol::{event_type, CloudEvent, SYSTEM_ACTOR};
use crate::store::{self, tickets::HistoryRecord, tickets::TicketRecord, PgConnection};

use super::events::EventLog;
use super::{context, gates, tasks, Workflow};

/// Moves a locked ticket to `to`: updates it, records history, emits `phase.transitioned` and
/// `phase.entered`, and does what entering the phase sets off ([`enter_phase`]). When
/// `reserve_outcome` is set, `phase.transitioned` is the request's outcome: its place is
/// reserved and its data returned instead of emitted.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn move_ticket(
    workflow: &Workflow,
    connection: &mut PgConnection,
    log: &mut EventLog<'_>,
    ticket: &TicketRecord,
    to: Phase,
    kind: TransitionKind,
    reason: &str,
    actor: &str,
    artifacts: &Value,
    reserve_outcome: bool,
) -> Result<Value, sqlx::Error> {
    let history = store::tickets::move_to_phase(
        connection,
        &store::tickets::NewHistory {
            ticket_id: ticket.id,
            from_phase: Some(ticket.phase),
            to_phase: to,
            reason,
            transitioned_by: actor,
            artifacts,
            regression: kind.is_regression(),
        },
    )
    .await?;
    let transitioned = json!({
        "ticket_id": ticket.id,
        "previous_phase": ticket.phase,
        "current_phase": to,
        "transitioned_at": CloudEvent::format_time(history.created_at),
        "transitioned_by": actor,
        "reason": reason,
        "history_id": history.id,
    });
    if reserve_outcome {
        log.reserve_outcome();
    } else {
        log.emit(
            event_type::PHASE_TRANSITIONED,
            Some(ticket.id),
            actor,
            transitioned.clone(),
        );
    }
    let entered = log.emit(
        event_type::PHASE_ENTERED,
        Some(ticket.id),
        actor,
        entered_data(&history),
    );
    enter_phase(workflow, connection, log, ticket, &history, Some(entered)).await?;
    Ok(transitioned)
}

/// What entering a phase sets off, done in the transaction that entered it, so it can be
/// neither lost nor done twice, and needs no worker when the API moved the ticket: generates
/// the visit's tasks (`tasks.generated`, for phases with templates) and aggregates the context
/// of the phase just left (`context.updated`). Both events are caused by the visit's
/// `phase.entered` event: `entered` when this transaction emitted it, `None` when it is the
/// message being processed (a consumed `phase.entered`).
pub(crate) async fn enter_phase(
    workflow: &Workflow,
    connection: &mut PgConnection,
    log: &mut EventLog<'_>,
    ticket: &TicketRecord,
    visit: &HistoryRecord,
    entered: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    let emit = |log: &mut EventLog<'_>, event_type: &str, data: Value| match entered {
        Some(cause) => {
            log.emit_caused_by(cause, event_type, Some(ticket.id), SYSTEM_ACTOR, data);
        }
        None => {
            log.emit(event_type, Some(ticket.id), SYSTEM_ACTOR, data);
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
        )
        .await?;
        emit(
            log,
            event_type::TASKS_GENERATED,
            tasks::generated_data(ticket.id, phase, &generated),
        );
    }
    if let Some(left) = visit.from_phase {
        let data = context::aggregate(workflow, connection, ticket, left).await?;
        emit(log, event_type::CONTEXT_UPDATED, data);
    }
    Ok(())
}

/// `phase.entered` data for the visit a history row started.
pub(crate) fn entered_data(history: &HistoryRecord) -> Value {
    json!({
        "ticket_id": history.ticket_id,
        "phase_id": history.to_phase,
        "previous_phase": history.from_phase,
        "history_id": history.id,
        "regression": history.regression,
        "entered_at": CloudEvent::format_time(history.created_at),
    })
}

/// After a task of the ticket's current phase finished: when no task of the phase is still
/// open, validate the gate (actor `system`), then auto-advance on a pass or regress when the
/// TESTING gate failed because tests failed.
pub(crate) async fn after_task_finished(
    workflow: &Workflow,
    connection: &mut PgConnection,
    log: &mut EventLog<'_>,
    ticket: &TicketRecord,
) -> Result<(), sqlx::Error> {
    let phase = ticket.phase;
    let phase_tasks = store::tasks::for_phase(connection, ticket.id, phase).await?;
    if phase_tasks.iter().any(|task| task.status.is_open()) {
        return Ok(());
    }
    let (evaluation, data) =
        gates::validate(workflow, connection, ticket, phase, SYSTEM_ACTOR).await?;
    log.emit(
        event_type::GATE_VALIDATED,
        Some(ticket.id),
        SYSTEM_ACTOR,
        data,
    );
    if !ticket.auto_advance {
        return Ok(());
    }
    if evaluation.requirements_met {
        if let Some(next) = phase.next() {
            let reason = format!("gate of {phase} passed: all tasks completed");
            move_ticket(
                workflow,
                connection,
                log,
                ticket,
                next,
                TransitionKind::Forward,
                &reason,
                SYSTEM_ACTOR,
                &json!({}),
                false,
            )
            .await?;
        }
    } else if evaluation.regression_required {
        if let Ok(kind @ TransitionKind::Regression) =
            phase.classify_transition(Phase::Implementation)
        {
            let reason = evaluation.blocking_reasons.join("; ");
            move_ticket(
                workflow,
                connection,
                log,
                ticket,
                Phase::Implementation,
                kind,
                &reason,
                SYSTEM_ACTOR,
                &json!({}),
                false,
            )
            .await?;
        }
    }
    Ok(())
}
