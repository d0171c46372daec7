//! One function per request kind. Each runs inside the caller's transaction, decides between
//! applying the change and rejecting it, and on success returns its outcome event's type and
//! data. A rejection is decided before anything is written.

use serde_json::{json, Value};

use crate::domain::context::{summarize, TicketBrief};
use crate::domain::{Phase, TaskStatus, TicketId};
use crate::protocol::{
    event_type, ArtifactSubmission, Command, Rejection, RejectionCode, TaskReport,
};
use crate::store::{self, tickets::TicketRecord, PgConnection};

use super::events::EventLog;
use super::{automation, gates, tasks, Workflow, WorkflowError};

/// A success outcome: event type, the ticket it is about, and its `data`.
pub(crate) type Success = (&'static str, TicketId, Value);

pub(crate) async fn apply(
    workflow: &Workflow,
    connection: &mut PgConnection,
    log: &mut EventLog<'_>,
    command: &Command,
) -> Result<Result<Success, Rejection>, WorkflowError> {
    match command {
        Command::CreateTicket {
            ticket_id,
            title,
            description,
            priority,
            auto_advance,
        } => {
            // with no context yet, the summary is the ticket itself
            let summary = summarize(
                &TicketBrief {
                    title,
                    priority: *priority,
                    description,
                },
                &serde_json::Map::new(),
                workflow.max_summary_tokens,
            );
            let new_ticket = store::tickets::NewTicket {
                id: *ticket_id,
                title,
                description,
                priority: *priority,
                auto_advance: *auto_advance,
                summary: &summary.text,
                summary_tokens: summary.tokens,
            };
            let Some(ticket) = store::tickets::insert(connection, &new_ticket).await? else {
                return Ok(Err(Rejection::new(
                    RejectionCode::AlreadyExists,
                    Some(*ticket_id),
                    format!("ticket {ticket_id} already exists"),
                )));
            };
            let history = store::tickets::insert_history(
                connection,
                &store::tickets::NewHistory {
                    ticket_id: ticket.id,
                    from_phase: None,
                    to_phase: Phase::Backlog,
                    reason: "ticket created",
                    transitioned_by: log_actor(log),
                    artifacts: &json!({}),
                    regression: false,
                },
            )
            .await?;
            log.reserve_outcome();
            let entered = log.emit(
                event_type::PHASE_ENTERED,
                Some(ticket.id),
                log_actor(log),
                automation::entered_data(&history),
            );
            automation::enter_phase(workflow, connection, log, &ticket, &history, Some(entered))
                .await?;
            Ok(Ok((
                event_type::TICKET_CREATED,
                ticket.id,
                ticket_created_data(&ticket),
            )))
        }
        Command::Transition {
            ticket_id,
            to_phase,
            reason,
            expected_from_phase,
            artifacts,
        } => {
            transition(
                workflow,
                connection,
                log,
                *ticket_id,
                *to_phase,
                reason,
                *expected_from_phase,
                artifacts,
            )
            .await
        }
        Command::ValidateGate {
            ticket_id,
            phase_id,
        } => {
            let Some(ticket) = store::tickets::lock(connection, *ticket_id).await? else {
                return Ok(Err(ticket_not_found(*ticket_id)));
            };
            let phase = phase_id.unwrap_or(ticket.phase);
            let actor = log_actor(log).to_owned();
            let (_, data) = gates::validate(workflow, connection, &ticket, phase, &actor).await?;
            Ok(Ok((event_type::GATE_VALIDATED, ticket.id, data)))
        }
        Command::GenerateTasks {
            ticket_id,
            phase_id,
        } => {
            let Some(ticket) = store::tickets::lock(connection, *ticket_id).await? else {
                return Ok(Err(ticket_not_found(*ticket_id)));
            };
            let phase = phase_id.unwrap_or(ticket.phase);
            let (visit_id, regression) =
                match store::tickets::latest_visit(connection, ticket.id, phase).await? {
                    Some(visit) => (visit.id, visit.regression),
                    None => (0, false),
                };
            let generated = tasks::generate_for_visit(
                workflow, connection, &ticket, phase, visit_id, regression,
            )
            .await?;
            Ok(Ok((
                event_type::TASKS_GENERATED,
                ticket.id,
                tasks::generated_data(ticket.id, phase, &generated),
            )))
        }
        Command::CompleteTask {
            ticket_id,
            task_id,
            report,
        } => complete_task(workflow, connection, log, *ticket_id, *task_id, report).await,
        Command::EnterPhase { .. } => Err(WorkflowError::Failed(anyhow::anyhow!(
            "phase.entered is an event, applied by the entry module, not as a request"
        ))),
        Command::SubmitArtifact {
            ticket_id,
            phase_id,
            artifact,
        } => {
            let Some(ticket) = store::tickets::lock(connection, *ticket_id).await? else {
                return Ok(Err(ticket_not_found(*ticket_id)));
            };
            let phase = phase_id.unwrap_or(ticket.phase);
            let actor = log_actor(log).to_owned();
            let artifact_id =
                collect_artifact(connection, ticket.id, phase, artifact, &actor, None).await?;
            Ok(Ok((
                event_type::ARTIFACT_COLLECTED,
                ticket.id,
                json!({
                    "ticket_id": ticket.id,
                    "phase_id": phase,
                    "artifact_id": artifact_id,
                    "artifact_type": artifact.artifact_type,
                }),
            )))
        }
    }
}

fn log_actor<'o>(log: &EventLog<'o>) -> &'o str {
    log.actor()
}

fn ticket_not_found(ticket_id: TicketId) -> Rejection {
    Rejection::new(
        RejectionCode::TicketNotFound,
        Some(ticket_id),
        format!("ticket {ticket_id} does not exist"),
    )
}

/// `ticket.created` data.
pub(crate) fn ticket_created_data(ticket: &TicketRecord) -> Value {
    json!({
        "ticket_id": ticket.id,
        "title": ticket.title,
        "description": ticket.description,
        "priority": ticket.priority,
        "phase_id": ticket.phase,
        "auto_advance": ticket.auto_advance,
        "created_at": crate::protocol::CloudEvent::format_time(ticket.created_at),
    })
}

#[allow(clippy::too_many_arguments)]
async fn transition(
    workflow: &Workflow,
    connection: &mut PgConnection,
    log: &mut EventLog<'_>,
    ticket_id: TicketId,
    to_phase: Option<Phase>,
    reason: &str,
    expected_from_phase: Option<Phase>,
    artifacts: &Value,
) -> Result<Result<Success, Rejection>, WorkflowError> {
    let phase_details = |rejection: Rejection, from: Option<Phase>, to: Option<Phase>| {
        rejection
            .with_detail("from_phase", json!(from))
            .with_detail("to_phase", json!(to))
    };
    let Some(ticket) = store::tickets::lock(connection, ticket_id).await? else {
        return Ok(Err(phase_details(
            ticket_not_found(ticket_id),
            None,
            to_phase,
        )));
    };
    let from = ticket.phase;
    if let Some(expected) = expected_from_phase {
        if expected != from {
            let rejection = Rejection::new(
                RejectionCode::PhaseMismatch,
                Some(ticket.id),
                format!("ticket is in {from}, not in the expected {expected}"),
            );
            return Ok(Err(phase_details(rejection, Some(from), to_phase)));
        }
    }
    let to = match (to_phase, from) {
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
            return Ok(Err(phase_details(rejection, Some(from), None)));
        }
    };
    let transition = match from.plan_transition(to, ticket.previous_phase) {
        Ok(transition) => transition,
        Err(invalid) => {
            let rejection = Rejection::new(
                RejectionCode::InvalidTransition,
                Some(ticket.id),
                invalid.to_string(),
            );
            return Ok(Err(phase_details(rejection, Some(from), Some(to))));
        }
    };
    let kind = transition.kind;
    let actor = log_actor(log).to_owned();
    if let Some(gated) = transition
        .gate
        .filter(|phase| workflow.definition().gates.for_phase(*phase).is_some())
    {
        let (evaluation, data) =
            gates::validate(workflow, connection, &ticket, gated, &actor).await?;
        if !evaluation.requirements_met {
            let mut reasons = evaluation.blocking_reasons.clone();
            if reasons.is_empty() {
                reasons.push(format!(
                    "the gate of {gated} is {}",
                    evaluation.status.as_str()
                ));
            }
            let rejection = Rejection::new(RejectionCode::GateNotMet, Some(ticket.id), "")
                .with_reasons(reasons)
                .with_detail("gate_status", json!(evaluation.status))
                .with_detail("missing_artifacts", json!(evaluation.missing_artifacts));
            return Ok(Err(phase_details(rejection, Some(from), Some(to))));
        }
        log.emit(event_type::GATE_VALIDATED, Some(ticket.id), &actor, data);
    }
    let moved = automation::move_ticket(
        workflow, connection, log, &ticket, to, kind, reason, &actor, artifacts, true,
    )
    .await?;
    Ok(Ok((event_type::PHASE_TRANSITIONED, ticket.id, moved)))
}

async fn complete_task(
    workflow: &Workflow,
    connection: &mut PgConnection,
    log: &mut EventLog<'_>,
    named_ticket: Option<TicketId>,
    task_id: crate::domain::TaskId,
    report: &TaskReport,
) -> Result<Result<Success, Rejection>, WorkflowError> {
    let not_found = || {
        Rejection::new(
            RejectionCode::TaskNotFound,
            named_ticket,
            format!("task {task_id} does not exist"),
        )
        .with_detail("task_id", json!(task_id))
    };
    let Some(owner) = store::tasks::ticket_of(connection, task_id).await? else {
        return Ok(Err(not_found()));
    };
    if named_ticket.is_some_and(|named| named != owner) {
        return Ok(Err(Rejection::new(
            RejectionCode::TaskNotFound,
            named_ticket,
            format!("task {task_id} does not belong to this ticket"),
        )
        .with_detail("task_id", json!(task_id))));
    }
    let Some(ticket) = store::tickets::lock(connection, owner).await? else {
        return Ok(Err(not_found()));
    };
    let Some(task) = store::tasks::find(connection, task_id).await? else {
        return Ok(Err(not_found()));
    };
    if task.status == TaskStatus::Completed {
        return Ok(Err(Rejection::new(
            RejectionCode::TaskAlreadyFinished,
            Some(ticket.id),
            format!("task {task_id} ({}) is already completed", task.task_type),
        )
        .with_detail("task_id", json!(task_id))));
    }
    let actor = log_actor(log).to_owned();
    store::tasks::finish(
        connection,
        task.id,
        report.status,
        report.result.as_ref(),
        report.error.as_deref(),
    )
    .await?;
    let mut collected = Vec::with_capacity(report.artifacts.len());
    for artifact in &report.artifacts {
        let artifact_id = collect_artifact(
            connection,
            ticket.id,
            task.phase,
            artifact,
            &actor,
            Some(task.id),
        )
        .await?;
        collected
            .push(json!({"artifact_id": artifact_id, "artifact_type": artifact.artifact_type}));
    }
    let outcome_type = match report.status {
        TaskStatus::Failed => event_type::TASK_FAILED,
        _ => event_type::TASK_COMPLETED,
    };
    let data = json!({
        "ticket_id": ticket.id,
        "task_id": task.id,
        "phase_id": task.phase,
        "task_type": task.task_type,
        "status": report.status,
        "artifacts_collected": collected,
    });
    log.reserve_outcome();
    if task.phase == ticket.phase {
        automation::after_task_finished(workflow, connection, log, &ticket).await?;
    }
    Ok(Ok((outcome_type, ticket.id, data)))
}

async fn collect_artifact(
    connection: &mut PgConnection,
    ticket_id: TicketId,
    phase: Phase,
    artifact: &ArtifactSubmission,
    collected_by: &str,
    task_id: Option<crate::domain::TaskId>,
) -> Result<uuid::Uuid, sqlx::Error> {
    store::gates::insert_artifact(
        connection,
        &store::gates::NewArtifact {
            ticket_id,
            phase,
            artifact_type: &artifact.artifact_type,
            artifact_path: artifact.artifact_path.as_deref(),
            artifact_content: artifact.artifact_content.as_ref(),
            collected_by,
            task_id,
        },
    )
    .await
}
