//! Listings across tickets and tasks, one page at a time, and the read-only snapshot that
//! discovery reads in.
//!
//! Pages are keyset pages: each statement starts after the last row of the previous page, so a
//! page costs the same wherever it is, and the indexes of `20261130000003_listing_indexes.sql`
//! serve every filter in the order it is read. Filters are added to a statement only when
//! given, each value bound. Nothing here writes.

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres, QueryBuilder, Transaction};
use uuid::Uuid;

use crate::domain::{Phase, Priority, TaskStatus, TicketId};

use super::artifacts::{artifact_from_row, ArtifactRecord, ARTIFACT_COLUMNS};
use super::tasks::{task_from_row, TaskRecord, TASK_COLUMNS};
use super::tickets::{ticket_from_row, TicketRecord, LOCK_COLUMNS};

/// Opens a read-only transaction whose statements all see one snapshot of the database, so
/// that what is read together fits together. Roll it back (or drop it) when done.
///
/// JIT compilation is off in it: the planner costs a keyset page by the whole range it could
/// scan, not by the few rows its `limit` reads, and at 100,000 tickets that cost would have
/// Postgres spend over 100 ms compiling a statement that runs in a few.
pub async fn begin_snapshot(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut transaction = pool
        .begin_with("begin isolation level repeatable read, read only")
        .await?;
    sqlx::query("set local jit = off")
        .execute(&mut *transaction)
        .await?;
    Ok(transaction)
}

/// Which tickets a listing shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketFilter {
    pub phase: Option<Phase>,
    pub priority: Option<Priority>,
}

/// Up to `limit` tickets, most recently updated first (ties by id, descending), after the
/// ticket at `after` (its `updated_at` and id) in that order. Their `context` is not read.
pub async fn tickets(
    connection: &mut PgConnection,
    filter: &TicketFilter,
    after: Option<(DateTime<Utc>, TicketId)>,
    limit: i64,
) -> Result<Vec<TicketRecord>, sqlx::Error> {
    let mut statement =
        QueryBuilder::<Postgres>::new(format!("select {LOCK_COLUMNS} from tickets where true"));
    if let Some(phase) = filter.phase {
        statement
            .push(" and phase_id = ")
            .push_bind(phase.as_str())
            .push("::phase");
    }
    if let Some(priority) = filter.priority {
        statement
            .push(" and priority = ")
            .push_bind(priority.as_str())
            .push("::ticket_priority");
    }
    if let Some((updated_at, id)) = after {
        statement
            .push(" and (updated_at, id) < (")
            .push_bind(updated_at)
            .push(", ")
            .push_bind(id.0)
            .push(")");
    }
    statement
        .push(" order by updated_at desc, id desc limit ")
        .push_bind(limit);
    statement
        .build()
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(ticket_from_row)
        .collect()
}

/// Which tasks a listing shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub status: Option<TaskStatus>,
    pub task_type: Option<String>,
    /// `true`: only claimable tasks; `false`: only the others
    pub claimable: Option<bool>,
    pub ticket_id: Option<TicketId>,
    /// the roles of the agent asking: a task that needs another role is not claimable for it
    /// (`None`: every role)
    pub roles: Option<Vec<String>>,
}

/// The phase, budget and spend of each task's ticket, as `owner.ticket_phase_id` and so on,
/// joined by the ticket's key (a lateral join, so that `not` claimable reads one ticket per task
/// rather than hashing all tickets). The claimable condition (`claims::claimable`) needs them.
const OWNER: &str = " join lateral (select tickets.phase_id as ticket_phase_id, \
     tickets.budget_tokens as ticket_budget_tokens, \
     tickets.budget_cost_usd as ticket_budget_cost_usd, \
     tickets.spent_input_tokens as ticket_spent_input_tokens, \
     tickets.spent_output_tokens as ticket_spent_output_tokens, \
     tickets.spent_cost_usd as ticket_spent_cost_usd \
     from tickets where tickets.id = tasks.ticket_id) as owner on true";

/// Up to `limit` tasks in the order they were created (`seq`), after the task whose `seq` is
/// `after`; each with its `seq`, the position a next page starts after.
pub async fn tasks(
    connection: &mut PgConnection,
    filter: &TaskFilter,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<(i64, TaskRecord)>, sqlx::Error> {
    let mut statement =
        QueryBuilder::<Postgres>::new(format!("select {TASK_COLUMNS}, seq from tasks"));
    if filter.claimable.is_some() {
        statement.push(OWNER);
    }
    statement.push(" where true");
    if let Some(status) = filter.status {
        statement
            .push(" and tasks.status = ")
            .push_bind(status.as_str())
            .push("::task_status");
    }
    if let Some(task_type) = &filter.task_type {
        statement
            .push(" and tasks.task_type = ")
            .push_bind(task_type.clone());
    }
    if let Some(ticket_id) = filter.ticket_id {
        statement
            .push(" and tasks.ticket_id = ")
            .push_bind(ticket_id.0);
    }
    if let Some(claimable) = filter.claimable {
        statement
            .push(if claimable { " and (" } else { " and not (" })
            .push(super::claims::claimable("tasks", "owner.ticket_"));
        if let Some(roles) = &filter.roles {
            statement
                .push(" and (tasks.role is null or tasks.role = any(")
                .push_bind(roles.clone())
                .push("))");
        }
        statement.push(")");
    }
    if let Some(seq) = after {
        statement.push(" and tasks.seq > ").push_bind(seq);
    }
    statement
        .push(" order by tasks.seq limit ")
        .push_bind(limit);
    let rows = statement.build().fetch_all(connection).await?;
    rows.into_iter()
        .map(|row| {
            let seq: i64 = sqlx::Row::try_get(&row, "seq")?;
            Ok((seq, task_from_row(row)?))
        })
        .collect()
}

/// The tasks of each (ticket, phase) pair, each pair's oldest first.
pub async fn tasks_of_phases(
    connection: &mut PgConnection,
    pairs: &[(TicketId, Phase)],
) -> Result<Vec<TaskRecord>, sqlx::Error> {
    let (tickets, phases) = unzip(pairs);
    let statement = format!(
        "select {TASK_COLUMNS} from tasks \
         join (select * from unnest($1::uuid[], $2::text[]::phase[])) as wanted(ticket_id, phase_id) \
              using (ticket_id, phase_id) \
         order by ticket_id, seq"
    );
    sqlx::query(AssertSqlSafe(statement))
        .bind(&tickets)
        .bind(&phases)
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(task_from_row)
        .collect()
}

/// The artifacts collected for each (ticket, phase) pair, each pair's oldest first.
pub async fn artifacts_of_phases(
    connection: &mut PgConnection,
    pairs: &[(TicketId, Phase)],
) -> Result<Vec<(TicketId, Phase, ArtifactRecord)>, sqlx::Error> {
    let (tickets, phases) = unzip(pairs);
    let statement = format!(
        "select ticket_id as owner, phase_id::text as phase, {ARTIFACT_COLUMNS} \
         from phase_gate_artifacts \
         join (select * from unnest($1::uuid[], $2::text[]::phase[])) as wanted(ticket_id, phase_id) \
              using (ticket_id, phase_id) \
         order by ticket_id, seq"
    );
    sqlx::query(AssertSqlSafe(statement))
        .bind(&tickets)
        .bind(&phases)
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(|row| {
            let owner: Uuid = sqlx::Row::try_get(&row, "owner")?;
            let phase = super::decode_enum("phase", sqlx::Row::try_get::<&str, _>(&row, "phase")?)?;
            Ok((TicketId(owner), phase, artifact_from_row(row)?))
        })
        .collect()
}

fn unzip(pairs: &[(TicketId, Phase)]) -> (Vec<Uuid>, Vec<&'static str>) {
    pairs
        .iter()
        .map(|(ticket, phase)| (ticket.0, phase.as_str()))
        .unzip()
}
