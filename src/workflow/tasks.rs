//! Task generation per phase visit: idempotent, dependencies as task ids, filed under the phase
//! it was asked for.

use crate::domain::template::{plan_tasks, TemplateVars};
use crate::domain::{Phase, TaskId, TicketId};
use crate::protocol::events::{GeneratedTask, TasksGenerated};
use crate::store::{self, tasks::NewTask, tasks::TaskRecord, tickets::TicketRecord, PgConnection};

use super::Workflow;

/// The tasks of one visit of `phase`: those generated before for this visit, else none when
/// the phase still has unfinished tasks (they carry over), else the re-entry templates after a
/// regression (when the phase has some), else the normal templates.
pub(crate) async fn generate_for_visit(
    workflow: &Workflow,
    connection: &mut PgConnection,
    ticket: &TicketRecord,
    phase: Phase,
    visit_history_id: i64,
    regression: bool,
) -> Result<Vec<TaskRecord>, sqlx::Error> {
    let (generated, unfinished) =
        store::tasks::visit_state(connection, ticket.id, phase, visit_history_id).await?;
    if let Some(ids) = generated {
        return store::tasks::by_ids(connection, &ids).await;
    }
    let new_tasks = if unfinished {
        Vec::new()
    } else {
        let vars = TemplateVars {
            ticket_title: &ticket.title,
            ticket_priority: ticket.priority,
            ticket_id: ticket.id,
            phase,
        };
        let planned = plan_tasks(
            workflow.definition().templates.for_visit(phase, regression),
            &vars,
        );
        let ids: Vec<TaskId> = planned.iter().map(|_| TaskId::new()).collect();
        planned
            .into_iter()
            .zip(&ids)
            .map(|(task, id)| NewTask {
                id: *id,
                dependencies: task
                    .depends_on
                    .iter()
                    .filter_map(|index| ids.get(*index).copied())
                    .collect(),
                task_type: task.task_type,
                description: task.description,
                priority: task.priority,
            })
            .collect()
    };
    store::tasks::insert_generation(connection, ticket.id, phase, visit_history_id, &new_tasks)
        .await?;
    let ids: Vec<TaskId> = new_tasks.iter().map(|task| task.id).collect();
    store::tasks::by_ids(connection, &ids).await
}

/// `tasks.generated` data.
pub(crate) fn generated_data(
    ticket_id: TicketId,
    phase: Phase,
    tasks: &[TaskRecord],
) -> TasksGenerated {
    TasksGenerated {
        ticket_id,
        phase_id: phase,
        generated_tasks: tasks
            .iter()
            .map(|task| GeneratedTask {
                id: task.id,
                task_type: task.task_type.clone(),
                description: task.description.clone(),
                priority: task.priority,
                dependencies: task.dependencies.clone(),
                status: task.status,
            })
            .collect(),
    }
}
