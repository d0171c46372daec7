//! Gate validation against stored tasks and artifacts (and, for a gate that requires one, the
//! review of the phase as it is now). [`evaluate`] only reads and judges (what the discovery
//! endpoints show); [`validate`] judges and stores the result, as every real validation must,
//! and asks for the review a gate waits for.

use crate::domain::gate::{self, ArtifactSnapshot, TaskSnapshot};
use crate::domain::{
    apply_review, GateEvaluation, GateStatus, Phase, ReviewSeen, TicketId, WorkflowDefinition,
};
use crate::protocol::events::{GateValidated, ValidationResult};
use crate::store::PgConnection;
use crate::store::{
    self, artifacts::ArtifactRecord, reviews::ReviewRecord, tasks::TaskRecord,
    tickets::TicketRecord,
};

use super::events::EventLog;
use super::{reviews, Workflow, WorkflowError};

/// Judges the gate of a ticket's `phase` on its tasks and artifacts as they are now; stores
/// nothing.
pub(crate) async fn evaluate(
    definition: &WorkflowDefinition,
    connection: &mut PgConnection,
    ticket_id: TicketId,
    phase: Phase,
) -> Result<GateEvaluation, WorkflowError> {
    let tasks = store::tasks::for_phase(connection, ticket_id, phase).await?;
    let artifacts = store::artifacts::artifacts(connection, ticket_id, phase).await?;
    let review = if reviews::required(definition, phase) {
        reviews::current(connection, ticket_id, phase).await?
    } else {
        None
    };
    Ok(judge(
        definition,
        phase,
        &tasks,
        &artifacts,
        review.as_ref(),
    ))
}

/// Judges the gate of `phase` on the phase's tasks and its artifacts (oldest first), read
/// however the caller read them, and, when the gate requires a review, on `review`: the review
/// of the phase as it is now (`None`: none yet).
pub(crate) fn judge(
    definition: &WorkflowDefinition,
    phase: Phase,
    tasks: &[TaskRecord],
    artifacts: &[ArtifactRecord],
    review: Option<&ReviewRecord>,
) -> GateEvaluation {
    let tasks: Vec<TaskSnapshot> = tasks
        .iter()
        .map(|task| TaskSnapshot {
            task_type: task.task_type.clone(),
            status: task.status,
        })
        .collect();
    let artifacts: Vec<ArtifactSnapshot> = artifacts
        .iter()
        .map(|artifact| ArtifactSnapshot {
            artifact_type: artifact.artifact_type.clone(),
            content: artifact.artifact_content.clone(),
        })
        .collect();
    let mut evaluation =
        gate::evaluate_in(phase, definition.gates.for_phase(phase), &tasks, &artifacts);
    if reviews::required(definition, phase) {
        let seen = review.map(|review| ReviewSeen {
            verdict: review.verdict,
            reviewer: &review.reviewer,
            reasons: &review.reasons,
        });
        apply_review(&mut evaluation, seen);
    }
    evaluation
}

/// Evaluates the gate of `phase`, stores a `phase_gate_results` row and returns the evaluation
/// with its `gate.validated` data. When the gate waits for a review, the caller asks for it
/// ([`ask_review`]) after the events the validation itself causes.
pub(crate) async fn validate(
    workflow: &Workflow,
    connection: &mut PgConnection,
    ticket: &TicketRecord,
    phase: Phase,
    validated_by: &str,
    trace_id: Option<&str>,
) -> Result<(GateEvaluation, GateValidated), WorkflowError> {
    let evaluation = evaluate(workflow.definition(), connection, ticket.id, phase).await?;
    record(
        connection,
        ticket,
        phase,
        evaluation,
        validated_by,
        trace_id,
    )
    .await
}

/// As [`validate`], for an operator's forced move: a gate that is not met is stored and
/// announced as `overridden`, with the reasons it was not met.
pub(crate) async fn validate_forced(
    workflow: &Workflow,
    connection: &mut PgConnection,
    ticket: &TicketRecord,
    phase: Phase,
    validated_by: &str,
    trace_id: Option<&str>,
) -> Result<(GateEvaluation, GateValidated), WorkflowError> {
    let mut evaluation = evaluate(workflow.definition(), connection, ticket.id, phase).await?;
    if !evaluation.requirements_met {
        evaluation.status = GateStatus::Overridden;
        evaluation.awaiting_review = false;
    }
    record(
        connection,
        ticket,
        phase,
        evaluation,
        validated_by,
        trace_id,
    )
    .await
}

/// Stores a gate validation and shapes its `gate.validated` data.
async fn record(
    connection: &mut PgConnection,
    ticket: &TicketRecord,
    phase: Phase,
    evaluation: GateEvaluation,
    validated_by: &str,
    trace_id: Option<&str>,
) -> Result<(GateEvaluation, GateValidated), WorkflowError> {
    store::gate_results::insert_result(
        connection,
        ticket.id,
        phase,
        &evaluation,
        validated_by,
        trace_id,
    )
    .await?;
    let validated = GateValidated {
        ticket_id: ticket.id,
        phase_id: phase,
        gate_status: evaluation.status,
        requirements_met: evaluation.requirements_met,
        missing_artifacts: evaluation.missing_artifacts.clone(),
        blocking_reasons: evaluation.blocking_reasons.clone(),
        validation_result: ValidationResult {
            artifacts_checked: evaluation.artifacts_checked,
            artifacts_passed: evaluation.artifacts_passed,
            tasks_completed: evaluation.tasks_completed,
            tasks_total: evaluation.tasks_total,
            tasks_done: evaluation.tasks_done,
        },
    };
    Ok((evaluation, validated))
}

/// When `evaluation` waits for a review, asks for one of the phase as it is now
/// (`gate.review.requested`, once per state of the phase).
pub(crate) async fn ask_review(
    connection: &mut PgConnection,
    ticket: &TicketRecord,
    phase: Phase,
    evaluation: &GateEvaluation,
    log: &mut EventLog<'_>,
) -> Result<(), WorkflowError> {
    if evaluation.awaiting_review {
        reviews::ask(connection, ticket, phase, log).await?;
    }
    Ok(())
}
