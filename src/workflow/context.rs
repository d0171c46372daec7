//! Context aggregation: a phase's completed work folded into the ticket's context under its own
//! key, and the token-bounded summary, which opens with the ticket itself, recomputed.

use chrono::Utc;

use crate::domain::context::{
    aggregate_phase, merge_phase, summarize, ArtifactRef, GateOutcome, TaskRecord, TicketBrief,
    CONTEXT_FORMAT_VERSION,
};
use crate::domain::Phase;
use crate::protocol::events::ContextUpdated;
use crate::store::{self, context::PhaseInputs, tickets::TicketRecord, PgConnection};

use super::{Workflow, WorkflowError};

/// Aggregates `phase` into the locked ticket's context and returns `context.updated` data.
/// When nothing the phase's context is made of changed since it was last aggregated (with the
/// same summary budget, and built the same way), the stored context and summary stand and nothing
/// is written. The ticket's title, priority and description, which the summary opens with, never
/// change, so they need no place in that fingerprint; the format version does, so that a summary
/// stored before it opened with the ticket is rebuilt (a phase with nothing to aggregate, such as
/// BACKLOG, still gets a summary naming the ticket).
///
/// `read`: what the aggregation needs, when the caller read it in this transaction after the
/// phase's last change (a move reads it for the phase it leaves); read here otherwise.
pub(crate) async fn aggregate(
    workflow: &Workflow,
    connection: &mut PgConnection,
    ticket: &TicketRecord,
    phase: Phase,
    read: Option<PhaseInputs>,
) -> Result<ContextUpdated, WorkflowError> {
    let key = phase.context_key();
    let inputs = match read {
        Some(inputs) => inputs,
        None => {
            store::context::phase_inputs(connection, ticket.id, phase, &key, &suffix(workflow))
                .await?
        }
    };
    let Some(changed) = inputs.changed else {
        return Ok(ContextUpdated {
            ticket_id: ticket.id,
            phase_id: phase,
            summary: ticket.context_summary.clone(),
            summary_tokens: usize::try_from(ticket.context_summary_tokens).unwrap_or_default(),
        });
    };
    let task_records: Vec<TaskRecord<'_>> = changed
        .tasks
        .iter()
        .map(|task| TaskRecord {
            task_type: &task.task_type,
            status: task.status,
            result: task.result.as_ref(),
        })
        .collect();
    let artifacts: Vec<ArtifactRef> = changed
        .artifacts
        .into_iter()
        .map(|(artifact_type, artifact_path)| ArtifactRef {
            artifact_type,
            artifact_path,
        })
        .collect();
    let gate = changed
        .gate
        .map(|(gate_status, blocking_reasons)| GateOutcome {
            gate_status,
            blocking_reasons,
        });
    let phase_context = aggregate_phase(
        phase,
        &task_records,
        &artifacts,
        gate,
        crate::protocol::events::time::format(Utc::now()),
    );
    let mut full_context = changed.context;
    merge_phase(&mut full_context, &phase_context);
    let brief = TicketBrief {
        title: &ticket.title,
        priority: ticket.priority,
        description: &ticket.description,
    };
    let summary = summarize(&brief, &full_context, workflow.max_summary_tokens);
    let phase_value = serde_json::to_value(&phase_context)
        .map_err(|error| WorkflowError::Failed(error.into()))?;
    store::context::set_phase_context(
        connection,
        ticket.id,
        &key,
        &phase_value,
        &summary.text,
        summary.tokens,
        &inputs.sources,
    )
    .await?;
    Ok(ContextUpdated {
        ticket_id: ticket.id,
        phase_id: phase,
        summary: summary.text,
        summary_tokens: summary.tokens,
    })
}

/// What follows a phase's fingerprint of its sources: the summary budget and the format
/// version, so that a change of either aggregates the phase again.
pub(crate) fn suffix(workflow: &Workflow) -> String {
    format!(":{}:v{CONTEXT_FORMAT_VERSION}", workflow.max_summary_tokens)
}
