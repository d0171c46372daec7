//! Gate validation against stored tasks and artifacts; every validation is stored.

use crate::domain::gate::{self, ArtifactSnapshot, TaskSnapshot};
use crate::domain::{GateEvaluation, Phase};
use crate::protocol::events::{GateValidated, ValidationResult};
use crate::store::{self, tickets::TicketRecord, PgConnection};

use super::Workflow;

/// Evaluates the gate of `phase`, stores a `phase_gate_results` row and returns the evaluation
/// with its `gate.validated` data.
pub(crate) async fn validate(
    workflow: &Workflow,
    connection: &mut PgConnection,
    ticket: &TicketRecord,
    phase: Phase,
    validated_by: &str,
) -> Result<(GateEvaluation, GateValidated), sqlx::Error> {
    let tasks: Vec<TaskSnapshot> = store::tasks::for_phase(connection, ticket.id, phase)
        .await?
        .into_iter()
        .map(|task| TaskSnapshot {
            task_type: task.task_type,
            status: task.status,
        })
        .collect();
    let artifacts: Vec<ArtifactSnapshot> = store::gates::artifacts(connection, ticket.id, phase)
        .await?
        .into_iter()
        .map(|artifact| ArtifactSnapshot {
            artifact_type: artifact.artifact_type,
            content: artifact.artifact_content,
        })
        .collect();
    let evaluation = gate::evaluate_in(
        phase,
        workflow.definition().gates.for_phase(phase),
        &tasks,
        &artifacts,
    );
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
