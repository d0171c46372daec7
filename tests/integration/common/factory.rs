//! Tickets put straight into a phase, for tests about that phase: the ticket, its history
//! along the phase sequence and the visit's tasks are written through `phaseflow::store` (and
//! the tasks planned from the workflow definition's templates, as entering the phase plans
//! them), in the test's own database, with no request, no event and no broker. A test about
//! DESIGN starts in DESIGN instead of replaying REQUIREMENTS.
//!
//! What a placed ticket lacks against one moved there by requests: the tasks, artifacts, gate
//! results and context of the phases it was put past, and every event. Tests that check those
//! move their ticket with requests.

use std::collections::BTreeMap;

use ::uuid::Uuid;
use phaseflow::config::Settings;
use phaseflow::domain::context::{summarize, TicketBrief};
use phaseflow::domain::template::{plan_tasks, TemplateVars};
use phaseflow::domain::{Phase, Priority, TaskId, TicketId};
use phaseflow::store::tasks::NewTask;
use phaseflow::store::tickets::{NewHistory, NewTicket};
use phaseflow::store::{self};
use serde_json::{json, Map};
use sqlx::PgPool;

use super::uuid;

/// A ticket the factory placed.
#[derive(Debug, Clone)]
pub struct Placed {
    pub ticket: String,
    pub phase: Phase,
    /// the visit's tasks, `task_type` -> id
    pub tasks: BTreeMap<String, String>,
    /// the history row that started the visit
    pub history_id: i64,
}

impl Placed {
    /// The ticket's id, typed.
    pub fn ticket_id(&self) -> phaseflow::domain::TicketId {
        self.ticket.parse().expect("a ticket id")
    }

    /// The id of the visit's task of that type.
    pub fn task(&self, task_type: &str) -> &str {
        self.tasks
            .get(task_type)
            .unwrap_or_else(|| panic!("no {task_type} task among {:?}", self.tasks))
    }
}

/// The title of every placed ticket.
pub const TITLE: &str = "A placed ticket";

/// Creates a ticket titled [`TITLE`] and puts it into `phase` (any phase on the sequence from
/// BACKLOG to DONE): one history row per phase on the way, the ticket's row in `phase`, and
/// the visit's tasks as the definition's templates plan them, all pending.
pub async fn ticket_in(
    pool: &PgPool,
    settings: &Settings,
    phase: Phase,
    auto_advance: bool,
) -> Placed {
    let title = TITLE;
    let definition = settings
        .workflow_definition()
        .expect("the definition loads");
    let mut transaction = pool.begin().await.expect("a transaction");
    let ticket_id = TicketId::new();
    let summary = summarize(
        &TicketBrief {
            title,
            priority: Priority::Medium,
            description: "",
        },
        &Map::new(),
        settings.context.max_tokens,
    );
    store::tickets::insert(
        &mut transaction,
        &NewTicket {
            id: ticket_id,
            title,
            description: "",
            priority: Priority::Medium,
            auto_advance,
            budget: Default::default(),
            summary: &summary.text,
            summary_tokens: summary.tokens,
        },
    )
    .await
    .expect("the ticket is stored")
    .expect("a new ticket id");
    let no_artifacts = json!({});
    let mut from = None;
    let mut to = Phase::Backlog;
    let history_id = loop {
        let visit = store::tickets::insert_history(
            &mut transaction,
            &NewHistory {
                ticket_id,
                from_phase: from,
                to_phase: to,
                reason: "placed by the test factory",
                transitioned_by: "test-factory",
                artifacts: &no_artifacts,
                regression: false,
                forced: false,
                correlation_id: "test-factory",
                trace_id: None,
            },
        )
        .await
        .expect("a history row");
        store::tickets::mark_entry_work_done(&mut transaction, visit.id)
            .await
            .expect("entry work marked");
        if to == phase {
            break visit.id;
        }
        from = Some(to);
        to = to
            .next()
            .unwrap_or_else(|| panic!("{phase} is not on the phase sequence"));
    };
    sqlx::query(
        "update tickets set phase_id = $2::phase, previous_phase_id = $3::phase where id = $1",
    )
    .bind(ticket_id.0)
    .bind(phase.as_str())
    .bind(from.map(Phase::as_str))
    .execute(&mut *transaction)
    .await
    .expect("the ticket is moved");
    let planned = plan_tasks(
        definition.templates.for_visit(phase, false),
        &TemplateVars {
            ticket_title: title,
            ticket_priority: Priority::Medium,
            ticket_id,
            phase,
        },
    );
    let ids: Vec<TaskId> = planned.iter().map(|_| TaskId::new()).collect();
    let tasks: Vec<NewTask> = planned
        .into_iter()
        .zip(&ids)
        .map(|(task, id)| NewTask {
            id: *id,
            dependencies: task.depends_on.iter().map(|index| ids[*index]).collect(),
            task_type: task.task_type,
            description: task.description,
            priority: task.priority,
            role: task.role,
        })
        .collect();
    if !tasks.is_empty() {
        store::tasks::generate(&mut transaction, ticket_id, phase, history_id, &tasks, None)
            .await
            .expect("the visit's tasks are stored");
    }
    transaction.commit().await.expect("the ticket is placed");
    Placed {
        ticket: ticket_id.to_string(),
        phase,
        tasks: tasks
            .into_iter()
            .map(|task| (task.task_type, task.id.to_string()))
            .collect(),
        history_id,
    }
}

/// The tasks of a ticket's phase, `task_type` -> id (the latest of each type).
pub async fn tasks_of(pool: &PgPool, ticket: &str, phase: Phase) -> BTreeMap<String, String> {
    let rows: Vec<(String, Uuid)> = sqlx::query_as(
        "select task_type, id from tasks where ticket_id = $1 and phase_id = $2::phase \
         order by seq",
    )
    .bind(uuid(ticket))
    .bind(phase.as_str())
    .fetch_all(pool)
    .await
    .expect("the phase's tasks");
    rows.into_iter()
        .map(|(task_type, id)| (task_type, id.to_string()))
        .collect()
}

/// A task's status as stored (`pending`, `in_progress`, `completed`, `failed`).
pub async fn task_status(pool: &PgPool, task: &str) -> String {
    sqlx::query_scalar("select status::text from tasks where id = $1")
        .bind(uuid(task))
        .fetch_one(pool)
        .await
        .expect("the task's status")
}
