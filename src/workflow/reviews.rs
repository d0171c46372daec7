//! Gates that require a review: once everything else holds, the gate waits for an independent
//! agent's verdict on the phase as it is now (the domain's `apply_review` says what the verdict
//! makes of the gate). This module finds the review of the phase's current state, asks for a
//! review once per state (`gate.review.requested`), and generates the rework task of a review
//! that requests changes.
//!
//! The rules (states, independence) are the domain's; statements are the store's.

use uuid::Uuid;

use crate::domain::template::{render, TemplateVars};
use crate::domain::{Phase, TaskId, TicketId, WorkflowDefinition};
use crate::protocol::events::{GateReviewRequested, ReviewArtifact};
use crate::protocol::{Event, SYSTEM_ACTOR};
use crate::store::{
    self, reviews::ReviewRecord, tasks::NewTask, tasks::TaskRecord, tickets::TicketRecord,
    PgConnection,
};

use super::events::EventLog;
use super::{Workflow, WorkflowError};

/// Whether the gate of `phase` requires a review.
pub(crate) fn required(definition: &WorkflowDefinition, phase: Phase) -> bool {
    definition
        .gates
        .for_phase(phase)
        .is_some_and(|gate| gate.review)
}

/// The review of the phase as it is now, if there is one.
pub(crate) async fn current(
    connection: &mut PgConnection,
    ticket_id: TicketId,
    phase: Phase,
) -> Result<Option<ReviewRecord>, WorkflowError> {
    let state = store::reviews::phase_state(connection, ticket_id, phase)
        .await?
        .key();
    Ok(store::reviews::for_state(connection, ticket_id, phase, &state).await?)
}

/// Asks for a review of the phase as it is now (`gate.review.requested`, actor `system`),
/// unless one was asked for this state before.
pub(crate) async fn ask(
    connection: &mut PgConnection,
    ticket: &TicketRecord,
    phase: Phase,
    log: &mut EventLog<'_>,
) -> Result<(), WorkflowError> {
    let state = store::reviews::phase_state(connection, ticket.id, phase)
        .await?
        .key();
    if store::reviews::request_once(connection, ticket.id, phase, &state).await? {
        let request = review_request(connection, ticket, phase).await?;
        log.emit(SYSTEM_ACTOR, Event::GateReviewRequested(request));
    }
    Ok(())
}

/// What a reviewer is shown: the ticket's summary and what the phase produced.
async fn review_request(
    connection: &mut PgConnection,
    ticket: &TicketRecord,
    phase: Phase,
) -> Result<GateReviewRequested, WorkflowError> {
    let authors = store::reviews::authors(connection, ticket.id, phase).await?;
    let tasks = store::tasks::for_phase(connection, ticket.id, phase).await?;
    let (artifacts, earlier): (Vec<_>, Vec<_>) =
        store::reviews::newest_artifacts(connection, ticket.id)
            .await?
            .into_iter()
            .filter(|artifact| artifact.phase == phase || is_before(artifact.phase, phase))
            .map(|artifact| ReviewArtifact {
                phase_id: artifact.phase,
                artifact_type: artifact.artifact_type,
                artifact_path: artifact.artifact_path,
                artifact_content: artifact.artifact_content,
            })
            .partition(|artifact| artifact.phase_id == phase);
    let done: Vec<String> = tasks
        .iter()
        .map(|task| match &task.claimed_by {
            Some(agent) => format!("{} ({}, by {agent})", task.task_type, task.status),
            None => format!("{} ({})", task.task_type, task.status),
        })
        .collect();
    let handed_in: Vec<&str> = artifacts
        .iter()
        .map(|artifact| artifact.artifact_type.as_str())
        .collect();
    let summary = format!(
        "Review {phase} of \"{}\" ({}). Tasks: {}. Artifacts: {}.\n\n{}",
        ticket.title,
        ticket.priority,
        if done.is_empty() {
            "none".to_owned()
        } else {
            done.join(", ")
        },
        if handed_in.is_empty() {
            "none".to_owned()
        } else {
            handed_in.join(", ")
        },
        ticket.context_summary
    );
    Ok(GateReviewRequested {
        ticket_id: ticket.id,
        phase_id: phase,
        summary,
        artifacts,
        earlier_artifacts: earlier,
        authors,
    })
}

/// Whether `earlier` comes before `phase` in the normal sequence.
fn is_before(earlier: Phase, phase: Phase) -> bool {
    let position = |of: Phase| Phase::SEQUENCE.iter().position(|p| *p == of);
    matches!((position(earlier), position(phase)), (Some(earlier), Some(phase)) if earlier < phase)
}

/// Files the rework task of the review `review_id` in `phase`, for the ticket's latest visit
/// of it, created in trace `trace_id`, and returns it.
pub(crate) async fn generate_rework(
    workflow: &Workflow,
    connection: &mut PgConnection,
    ticket: &TicketRecord,
    phase: Phase,
    review_id: Uuid,
    trace_id: Option<&str>,
) -> Result<TaskRecord, WorkflowError> {
    let template = &workflow.definition().review_rework;
    let vars = TemplateVars {
        ticket_title: &ticket.title,
        ticket_priority: ticket.priority,
        ticket_id: ticket.id,
        phase,
    };
    // a phase never entered has no visit: its tasks are filed under visit 0
    let visit = store::tickets::latest_visit(connection, ticket.id, phase)
        .await?
        .map_or(0, |visit| visit.id);
    let task = NewTask {
        id: TaskId::new(),
        task_type: template.task_type.clone(),
        description: render(&template.description, &vars),
        priority: template.priority,
        dependencies: Vec::new(),
        role: workflow.definition().rework_role(phase).map(str::to_owned),
    };
    let id = store::reviews::insert_rework(
        connection, review_id, ticket.id, phase, visit, &task, trace_id,
    )
    .await?;
    store::tasks::find(connection, id).await?.ok_or_else(|| {
        WorkflowError::Failed(anyhow::anyhow!(
            "rework task {id} is missing right after its insert"
        ))
    })
}
