//! Task generation per phase visit: idempotent, dependencies as task ids, filed under the phase
//! it was asked for.

use crate::domain::template::{plan_tasks, TemplateVars};
use crate::domain::{Phase, TaskId, TaskStatus, TicketId};
use crate::protocol::events::{GeneratedTask, TasksGenerated};
use crate::store::tasks::{Generation, NewTask, TaskRecord};
use crate::store::{self, tickets::TicketRecord, PgConnection};

use super::{Workflow, WorkflowError};

/// The tasks of one visit of `phase`: those generated before for this visit (as they are now),
/// else none when the phase still has unfinished tasks (they carry over), else the re-entry
/// templates after a regression (when the phase has some), else the normal templates. The
/// templates are planned before it is known whether they are needed, so that finding out and
/// storing them take one statement. Tasks stored now are created in trace `trace_id`.
pub(crate) async fn generate_for_visit(
    workflow: &Workflow,
    connection: &mut PgConnection,
    ticket: &TicketRecord,
    phase: Phase,
    visit_history_id: i64,
    regression: bool,
    trace_id: Option<&str>,
) -> Result<Vec<GeneratedTask>, WorkflowError> {
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
    let new_tasks: Vec<NewTask> = planned
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
            role: task.role,
        })
        .collect();
    let generation = store::tasks::generate(
        connection,
        ticket.id,
        phase,
        visit_history_id,
        &new_tasks,
        trace_id,
    )
    .await?;
    Ok(match generation {
        Generation::Earlier(ids) => store::tasks::by_ids(connection, &ids)
            .await?
            .into_iter()
            .map(generated_task)
            .collect(),
        Generation::CarriedOver => Vec::new(),
        Generation::Stored => new_tasks
            .into_iter()
            .map(|task| GeneratedTask {
                id: task.id,
                task_type: task.task_type,
                description: task.description,
                priority: task.priority,
                dependencies: task.dependencies,
                status: TaskStatus::Pending,
                role: task.role,
            })
            .collect(),
    })
}

/// A stored task as `tasks.generated` lists it.
pub(crate) fn generated_task(task: TaskRecord) -> GeneratedTask {
    GeneratedTask {
        id: task.id,
        task_type: task.task_type,
        description: task.description,
        priority: task.priority,
        dependencies: task.dependencies,
        status: task.status,
        role: task.role,
    }
}

/// `tasks.generated` data.
pub(crate) fn generated_data(
    ticket_id: TicketId,
    phase: Phase,
    generated_tasks: Vec<GeneratedTask>,
) -> TasksGenerated {
    TasksGenerated {
        ticket_id,
        phase_id: phase,
        generated_tasks,
    }
}
