//! Gate validation against stored tasks and artifacts. [`evaluate`] only reads and judges (what
//! the discovery endpoints show); [`validate`] judges and stores the result, as every real
//! validation must.

use crate::domain::gate::{self, ArtifactSnapshot, TaskSnapshot};
use crate::domain::{GateEvaluation, Phase, TicketId, WorkflowDefinition};
use crate::protocol::events::{GateValidated, ValidationResult};
use crate::store::PgConnection;
use crate::store::{self, gates::ArtifactRecord, tasks::TaskRecord, tickets::TicketRecord};

use super::Workflow;

/// Judges the gate of a ticket's `phase` on its tasks and artifacts as they are now; stores
/// nothing.
pub(crate) async fn evaluate(
    definition: &WorkflowDefinition,
    connection: &mut PgConnection,
    ticket_id: TicketId,
    phase: Phase,
) -> Result<GateEvaluation, sqlx::Error> {
    let tasks = store::tasks::for_phase(connection, ticket_id, phase).await?;
    let artifacts = store::gates::artifacts(connection, ticket_id, phase).await?;
    Ok(judge(definition, phase, &tasks, &artifacts))
}

/// Judges the gate of `phase` on the phase's tasks and its artifacts (oldest first), read
/// however the caller read them.
pub(crate) fn judge(
    definition: &WorkflowDefinition,
    phase: Phase,
    tasks: &[TaskRecord],
    artifacts: &[ArtifactRecord],
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
    gate::evaluate_in(phase, definition.gates.for_phase(phase), &tasks, &artifacts)
}

/// Evaluates the gate of `phase`, stores a `phase_gate_results` row and returns the evaluation
/// with its `gate.validated` data.
pub(crate) async fn validate(
    workflow: &Workflow,
    connection: &mut PgConnection,
    ticket: &TicketRecord,
    phase: Phase,
    validated_by: &str,
) -> Result<(GateEvaluation, GateValidated), sqlx::Error> {
    let evaluation = evaluate(workflow.definition(), connection, ticket.id, phase).await?;
    store::gates::insert_result(connection, ticket.id, phase, &evaluation, validated_by).await?;
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
