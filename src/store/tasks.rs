//! Tasks, and the record of which phase visits already had their tasks generated.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Row};
use uuid::Uuid;

use crate::domain::{Phase, Priority, TaskId, TaskStatus, TicketId};

use super::decode_enum;

/// A task as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub id: TaskId,
    pub ticket_id: TicketId,
    pub phase: Phase,
    pub visit_history_id: i64,
    pub task_type: String,
    pub description: String,
    pub priority: Priority,
    pub status: TaskStatus,
    pub dependencies: Vec<TaskId>,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// the agent holding it while `claimed`; afterwards the last one that held it
    pub claimed_by: Option<String>,
    /// when the current lease runs out (only while `claimed`)
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// the length of the current lease, renewed by a heartbeat that names no other
    pub lease_seconds: Option<i32>,
    /// claims so far (1 for the first)
    pub attempt: i32,
    /// leases that ran out
    pub expiries: i32,
    /// the latest claim's id (kept after the claim ended)
    pub claim_id: Option<Uuid>,
    /// the role an agent needs to claim it (`None`: any agent)
    pub role: Option<String>,
    /// the last progress a heartbeat of the live claim reported
    pub last_progress: Option<Value>,
    /// when the live claim last made progress (its claim counts)
    pub last_progress_at: Option<DateTime<Utc>>,
    /// when the live claim's stall was reported
    pub stalled_at: Option<DateTime<Utc>>,
    /// the trace ids of the request or step that created it, that made its latest claim, and
    /// that finished it
    pub traces: TaskTraces,
}

/// The trace ids of the moments a ticket's timeline shows of a task (`None` when unknown).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskTraces {
    pub created: Option<String>,
    pub claimed: Option<String>,
    pub finished: Option<String>,
}

pub(super) const TASK_COLUMNS: &str = "id, ticket_id, phase_id::text as phase_id, visit_history_id, task_type, description, \
     priority::text as priority, status::text as status, dependencies, result, error, created_at, completed_at, \
     claimed_by, lease_expires_at, lease_seconds, attempt, expiries, claim_id, role, last_progress, \
     last_progress_at, stalled_at, trace_id, claim_trace_id, finish_trace_id";

pub(super) fn task_from_row(row: PgRow) -> Result<TaskRecord, sqlx::Error> {
    let dependencies: Vec<Uuid> = row.try_get("dependencies")?;
    Ok(TaskRecord {
        id: TaskId(row.try_get("id")?),
        ticket_id: TicketId(row.try_get("ticket_id")?),
        phase: decode_enum("phase_id", row.try_get::<&str, _>("phase_id")?)?,
        visit_history_id: row.try_get("visit_history_id")?,
        task_type: row.try_get("task_type")?,
        description: row.try_get("description")?,
        priority: decode_enum("priority", row.try_get::<&str, _>("priority")?)?,
        status: decode_enum("status", row.try_get::<&str, _>("status")?)?,
        dependencies: dependencies.into_iter().map(TaskId).collect(),
        result: row.try_get("result")?,
        error: row.try_get("error")?,
        created_at: row.try_get("created_at")?,
        completed_at: row.try_get("completed_at")?,
        claimed_by: row.try_get("claimed_by")?,
        lease_expires_at: row.try_get("lease_expires_at")?,
        lease_seconds: row.try_get("lease_seconds")?,
        attempt: row.try_get("attempt")?,
        expiries: row.try_get("expiries")?,
        claim_id: row.try_get("claim_id")?,
        role: row.try_get("role")?,
        last_progress: row.try_get("last_progress")?,
        last_progress_at: row.try_get("last_progress_at")?,
        stalled_at: row.try_get("stalled_at")?,
        traces: TaskTraces {
            created: row.try_get("trace_id")?,
            claimed: row.try_get("claim_trace_id")?,
            finished: row.try_get("finish_trace_id")?,
        },
    })
}

/// A generated task to store.
pub struct NewTask {
    pub id: TaskId,
    pub task_type: String,
    pub description: String,
    pub priority: Priority,
    pub dependencies: Vec<TaskId>,
    pub role: Option<String>,
}

/// What [`generate`] found and did for a visit.
#[derive(Debug, Clone, PartialEq)]
pub enum Generation {
    /// The visit was generated before: the ids of its tasks, and nothing was stored now.
    Earlier(Vec<TaskId>),
    /// The phase has tasks that are not completed (open or failed): they carry over, and the
    /// visit is marked as generated with none of its own.
    CarriedOver,
    /// The tasks given were stored as the visit's.
    Stored,
}

/// Generates a visit's tasks in one statement: unless the visit was generated before, marks it
/// as generated and, unless the phase has tasks that are not completed, stores `tasks` as its
/// tasks, created in trace `trace_id`. The caller holds the ticket's row lock.
pub async fn generate(
    connection: &mut PgConnection,
    ticket_id: TicketId,
    phase: Phase,
    visit_history_id: i64,
    tasks: &[NewTask],
    trace_id: Option<&str>,
) -> Result<Generation, sqlx::Error> {
    let ids: Vec<Uuid> = tasks.iter().map(|task| task.id.0).collect();
    let types: Vec<&str> = tasks.iter().map(|task| task.task_type.as_str()).collect();
    let descriptions: Vec<&str> = tasks.iter().map(|task| task.description.as_str()).collect();
    let priorities: Vec<&str> = tasks.iter().map(|task| task.priority.as_str()).collect();
    let roles: Vec<Option<&str>> = tasks.iter().map(|task| task.role.as_deref()).collect();
    // Postgres has no ragged arrays: dependencies travel as one JSON array per task.
    let dependencies: Vec<Value> = tasks
        .iter()
        .map(|task| {
            Value::from(
                task.dependencies
                    .iter()
                    .map(|id| id.to_string())
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let row = sqlx::query(
        "with earlier as ( \
             select task_ids from task_generations \
             where ticket_id = $1 and phase_id = $2::phase and visit_history_id = $3), \
         unfinished as ( \
             select exists (select 1 from tasks where ticket_id = $1 and phase_id = $2::phase \
                            and status <> 'completed') as yes), \
         marked as ( \
             insert into task_generations (ticket_id, phase_id, visit_history_id, task_ids) \
             select $1, $2::phase, $3, \
                    case when (select yes from unfinished) then '{}'::uuid[] else $4::uuid[] end \
             where not exists (select 1 from earlier) \
             on conflict do nothing returning task_ids), \
         stored as ( \
             insert into tasks (id, ticket_id, phase_id, visit_history_id, task_type, description, priority, dependencies, role, trace_id) \
             select t.id, $1, $2::phase, $3, t.task_type, t.description, t.priority::ticket_priority, \
                    array(select jsonb_array_elements_text(t.dependencies)::uuid), t.role, $10 \
             from unnest($4::uuid[], $5::text[], $6::text[], $7::text[], $8::jsonb[], $9::text[]) \
                  with ordinality as t(id, task_type, description, priority, dependencies, role, position) \
             where exists (select 1 from marked) and not (select yes from unfinished) \
             order by t.position \
             returning id) \
         select (select task_ids from earlier) as earlier, \
                exists (select 1 from marked) as marked, \
                (select yes from unfinished) as unfinished, \
                (select count(*) from stored) as stored",
    )
    .bind(ticket_id.0)
    .bind(phase.as_str())
    .bind(visit_history_id)
    .bind(&ids)
    .bind(&types)
    .bind(&descriptions)
    .bind(&priorities)
    .bind(&dependencies)
    .bind(&roles)
    .bind(trace_id)
    .fetch_one(&mut *connection)
    .await?;
    if let Some(earlier) = row.try_get::<Option<Vec<Uuid>>, _>("earlier")? {
        return Ok(Generation::Earlier(
            earlier.into_iter().map(TaskId).collect(),
        ));
    }
    if !row.try_get::<bool, _>("marked")? {
        // marked by another transaction after this one read `earlier`, which the ticket's row
        // lock rules out; what that transaction stored is read rather than assumed
        let earlier: Vec<Uuid> = sqlx::query_scalar(
            "select task_ids from task_generations \
             where ticket_id = $1 and phase_id = $2::phase and visit_history_id = $3",
        )
        .bind(ticket_id.0)
        .bind(phase.as_str())
        .bind(visit_history_id)
        .fetch_one(connection)
        .await?;
        return Ok(Generation::Earlier(
            earlier.into_iter().map(TaskId).collect(),
        ));
    }
    if row.try_get::<bool, _>("unfinished")? {
        return Ok(Generation::CarriedOver);
    }
    Ok(Generation::Stored)
}

/// Tasks by id, in the order of `ids`.
pub async fn by_ids(
    connection: &mut PgConnection,
    ids: &[TaskId],
) -> Result<Vec<TaskRecord>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let raw: Vec<Uuid> = ids.iter().map(|id| id.0).collect();
    let statement = format!(
        "select {TASK_COLUMNS} from tasks join unnest($1::uuid[]) with ordinality as wanted(id, position) using (id) \
         order by wanted.position"
    );
    sqlx::query(AssertSqlSafe(statement))
        .bind(&raw)
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(task_from_row)
        .collect()
}

/// All tasks of one phase of a ticket (every visit), oldest first.
pub async fn for_phase(
    connection: &mut PgConnection,
    ticket_id: TicketId,
    phase: Phase,
) -> Result<Vec<TaskRecord>, sqlx::Error> {
    let statement = format!(
        "select {TASK_COLUMNS} from tasks where ticket_id = $1 and phase_id = $2::phase order by seq"
    );
    sqlx::query(AssertSqlSafe(statement))
        .bind(ticket_id.0)
        .bind(phase.as_str())
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(task_from_row)
        .collect()
}

/// All tasks of a ticket, oldest first.
pub async fn for_ticket(
    connection: &mut PgConnection,
    ticket_id: TicketId,
) -> Result<Vec<TaskRecord>, sqlx::Error> {
    let statement = format!("select {TASK_COLUMNS} from tasks where ticket_id = $1 order by seq");
    sqlx::query(AssertSqlSafe(statement))
        .bind(ticket_id.0)
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(task_from_row)
        .collect()
}

/// The ticket a task belongs to (no lock: lock the ticket, then read the task).
pub async fn ticket_of(
    connection: &mut PgConnection,
    task_id: TaskId,
) -> Result<Option<TicketId>, sqlx::Error> {
    let ticket: Option<Uuid> = sqlx::query_scalar("select ticket_id from tasks where id = $1")
        .bind(task_id.0)
        .fetch_optional(connection)
        .await?;
    Ok(ticket.map(TicketId))
}

/// A task by id.
pub async fn find(
    connection: &mut PgConnection,
    task_id: TaskId,
) -> Result<Option<TaskRecord>, sqlx::Error> {
    let statement = format!("select {TASK_COLUMNS} from tasks where id = $1");
    sqlx::query(AssertSqlSafe(statement))
        .bind(task_id.0)
        .fetch_optional(connection)
        .await?
        .map(task_from_row)
        .transpose()
}

/// Records an agent's report on a task, made in trace `trace_id`; any lease on it ends, and
/// `agent` is recorded as the one who held it. Returns whether another task of the task's phase is still open (pending or
/// claimed), so that the caller knows without another read whether the phase's work is done.
pub async fn finish(
    connection: &mut PgConnection,
    task_id: TaskId,
    status: TaskStatus,
    result: Option<&Value>,
    error: Option<&str>,
    agent: &str,
    trace_id: Option<&str>,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "update tasks set status = $2::task_status, result = $3, error = $4, completed_at = now(), \
                claimed_by = $5, lease_expires_at = null, lease_seconds = null, finish_trace_id = $6 \
         where id = $1 \
         returning exists (select 1 from tasks other \
                           where other.ticket_id = tasks.ticket_id and other.phase_id = tasks.phase_id \
                             and other.id <> tasks.id and other.status in ('pending', 'claimed'))",
    )
    .bind(task_id.0)
    .bind(status.as_str())
    .bind(result)
    .bind(error)
    .bind(agent)
    .bind(trace_id)
    .fetch_one(connection)
    .await
}
