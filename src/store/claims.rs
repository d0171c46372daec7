//! Claims and leases on tasks: finding the next claimable task, claiming, extending, releasing
//! and expiring leases. Times are the database's (`now()` of the transaction), so that every
//! replica judges a lease by one clock.
//!
//! Every change to a task is made under its ticket's row lock (which also numbers the ticket's
//! events), so two claims never take the same task: a claim without a ticket locks the ticket of
//! the task it picks with `for update skip locked`, passing over tickets another transaction
//! holds, and the sweep of expired leases does the same, so no two replicas expire one lease.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::domain::{ClaimId, TaskId, TicketId};

/// The condition that the task `task` (an alias of `tasks`) is claimable, its ticket's columns
/// being read as `{ticket}phase_id`, `{ticket}budget_tokens` and so on (`ticket` is an alias
/// and a dot, or a prefix of renamed columns): it is pending, belongs to its ticket's current
/// phase (which is then neither BLOCKED nor DONE), every task it depends on exists and is
/// completed, and its ticket's spend has not used up a limit of its budget. The claims and the
/// task listing use it alike.
pub(super) fn claimable(task: &str, ticket: &str) -> String {
    format!(
        "({task}.status = 'pending' and {ticket}phase_id = {task}.phase_id \
         and {ticket}phase_id not in ('PHASE_BLOCKED', 'PHASE_DONE') \
         and ({ticket}budget_tokens is null \
              or {ticket}spent_input_tokens + {ticket}spent_output_tokens < {ticket}budget_tokens) \
         and ({ticket}budget_cost_usd is null or {ticket}spent_cost_usd < {ticket}budget_cost_usd) \
         and not exists (select 1 from unnest({task}.dependencies) as dependency(id) \
                         where not exists (select 1 from tasks as done \
                                           where done.id = dependency.id and done.status = 'completed')))"
    )
}

/// The most urgent, then the oldest, first.
const NEXT_ORDER: &str = "order by t.priority desc, t.seq";

/// The database's time now (the transaction's start).
pub async fn now(connection: &mut PgConnection) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar("select now()")
        .fetch_one(connection)
        .await
}

/// The task types of a task's dependencies that are not completed.
pub async fn unfinished_dependencies(
    connection: &mut PgConnection,
    task_id: TaskId,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "select d.task_type from tasks t join tasks d on d.id = any(t.dependencies) \
         where t.id = $1 and d.status <> 'completed' order by d.seq",
    )
    .bind(task_id.0)
    .fetch_all(connection)
    .await
}

/// The condition that the task `t` needs no role or one among the text array parameter
/// `roles` (null: every role).
fn of_roles(roles: &str) -> String {
    format!("({roles}::text[] is null or t.role is null or t.role = any({roles}))")
}

/// What a claim of "the next task" looks for: optionally only some task types (empty: any),
/// only tasks of some roles (`None`: every role).
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub task_types: &'a [String],
    pub roles: Option<&'a [String]>,
}

/// The next claimable task of a ticket whose row the caller holds locked.
pub async fn next_of_ticket(
    connection: &mut PgConnection,
    ticket_id: TicketId,
    wanted: Wanted<'_>,
) -> Result<Option<TaskId>, sqlx::Error> {
    let statement = format!(
        "select t.id from tasks t join tickets k on k.id = t.ticket_id \
         where t.ticket_id = $1 and {} \
           and (cardinality($2::text[]) = 0 or t.task_type = any($2)) and {} \
         {NEXT_ORDER} limit 1",
        claimable("t", "k."),
        of_roles("$3")
    );
    let id: Option<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(statement))
        .bind(ticket_id.0)
        .bind(wanted.task_types)
        .bind(wanted.roles)
        .fetch_optional(connection)
        .await?;
    Ok(id.map(TaskId))
}

/// The next claimable task of any ticket whose row no other transaction holds, with that
/// ticket's row now locked by the caller's transaction.
pub async fn next_of_any_unlocked(
    connection: &mut PgConnection,
    wanted: Wanted<'_>,
) -> Result<Option<(TaskId, TicketId)>, sqlx::Error> {
    let statement = format!(
        "select t.id, t.ticket_id from tasks t join tickets k on k.id = t.ticket_id \
         where {} and (cardinality($1::text[]) = 0 or t.task_type = any($1)) and {} \
         {NEXT_ORDER} limit 1 for update of k skip locked",
        claimable("t", "k."),
        of_roles("$2")
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(statement))
        .bind(wanted.task_types)
        .bind(wanted.roles)
        .fetch_optional(connection)
        .await?;
    row.map(|row| Ok((TaskId(row.try_get(0)?), TicketId(row.try_get(1)?))))
        .transpose()
}

/// The ticket of the next claimable task of any ticket, locked or not (no lock taken).
pub async fn ticket_of_next_of_any(
    connection: &mut PgConnection,
    wanted: Wanted<'_>,
) -> Result<Option<TicketId>, sqlx::Error> {
    let statement = format!(
        "select t.ticket_id from tasks t join tickets k on k.id = t.ticket_id \
         where {} and (cardinality($1::text[]) = 0 or t.task_type = any($1)) and {} \
         {NEXT_ORDER} limit 1",
        claimable("t", "k."),
        of_roles("$2")
    );
    let id: Option<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(statement))
        .bind(wanted.task_types)
        .bind(wanted.roles)
        .fetch_optional(connection)
        .await?;
    Ok(id.map(TicketId))
}

/// Whether a claim of the given task, else of the next task of the given ticket, else of any
/// ticket, would find a claimable task of the wanted types and roles now. Takes no lock: a
/// claim that follows may still find the task taken.
pub async fn any_claimable(
    pool: &PgPool,
    task_id: Option<TaskId>,
    ticket_id: Option<TicketId>,
    wanted: Wanted<'_>,
) -> Result<bool, sqlx::Error> {
    let statement = format!(
        "select exists (select 1 from tasks t join tickets k on k.id = t.ticket_id \
         where {} and ($1::uuid is null or t.id = $1) and ($2::uuid is null or t.ticket_id = $2) \
           and (cardinality($3::text[]) = 0 or t.task_type = any($3)) and {})",
        claimable("t", "k."),
        of_roles("$4")
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(statement))
        .bind(task_id.map(|id| id.0))
        .bind(ticket_id.map(|id| id.0))
        .bind(wanted.task_types)
        .bind(wanted.roles)
        .fetch_one(pool)
        .await
}

/// A claim as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub expires_at: DateTime<Utc>,
    /// claims of the task so far, this one included
    pub attempt: i32,
    /// the claim's own id, which fences requests of earlier claims off
    pub claim_id: ClaimId,
}

/// Claims a pending task for `agent` for `lease_seconds`, in trace `trace_id`. `None` when the
/// task is not pending.
pub async fn claim(
    connection: &mut PgConnection,
    task_id: TaskId,
    agent: &str,
    lease_seconds: u32,
    trace_id: Option<&str>,
) -> Result<Option<Lease>, sqlx::Error> {
    let claim_id = ClaimId::new();
    let row = sqlx::query(
        "update tasks set status = 'claimed', claimed_by = $2, lease_seconds = $3, \
                lease_expires_at = now() + make_interval(secs => $3), attempt = attempt + 1, \
                claim_id = $4, last_progress = null, last_progress_at = now(), stalled_at = null, \
                claim_trace_id = $5 \
         where id = $1 and status = 'pending' returning lease_expires_at, attempt",
    )
    .bind(task_id.0)
    .bind(agent)
    .bind(lease_seconds as i32)
    .bind(claim_id.0)
    .bind(trace_id)
    .fetch_optional(connection)
    .await?;
    row.map(|row| {
        Ok(Lease {
            expires_at: row.try_get(0)?,
            attempt: row.try_get(1)?,
            claim_id,
        })
    })
    .transpose()
}

/// Extends a claimed task's lease from now, by `lease_seconds` or else by the claim's length,
/// and keeps the `progress` it reports: when it differs from the last progress the task got
/// (JSON equality, whatever the order of members), the task made progress now.
pub async fn extend(
    connection: &mut PgConnection,
    task_id: TaskId,
    lease_seconds: Option<u32>,
    progress: Option<&Value>,
) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar(
        "update tasks set lease_seconds = coalesce($2, lease_seconds), \
                lease_expires_at = now() + make_interval(secs => coalesce($2, lease_seconds)), \
                last_progress_at = case when $3::jsonb is not null \
                                         and last_progress is distinct from $3::jsonb \
                                        then now() else last_progress_at end, \
                last_progress = coalesce($3::jsonb, last_progress) \
         where id = $1 and status = 'claimed' returning lease_expires_at",
    )
    .bind(task_id.0)
    .bind(lease_seconds.map(|seconds| seconds as i32))
    .bind(progress)
    .fetch_one(connection)
    .await
}

/// Up to `limit` claimed tasks whose claim made no progress for `silent_seconds` and whose
/// stall was reported (`reported`) or not yet, with their tickets' rows now locked by the
/// caller's transaction; tickets another transaction holds are passed over (the next sweep
/// finds them).
pub async fn stalled(
    connection: &mut PgConnection,
    reported: bool,
    silent_seconds: u64,
    limit: i64,
) -> Result<Vec<(TaskId, TicketId)>, sqlx::Error> {
    let rows = sqlx::query(
        "select t.id, t.ticket_id from tasks t join tickets k on k.id = t.ticket_id \
         where t.status = 'claimed' and (t.stalled_at is not null) = $1 \
           and t.last_progress_at <= now() - make_interval(secs => $2) \
         order by t.last_progress_at limit $3 for update of k skip locked",
    )
    .bind(reported)
    .bind(silent_seconds as f64)
    .bind(limit)
    .fetch_all(connection)
    .await?;
    rows.into_iter()
        .map(|row| Ok((TaskId(row.try_get(0)?), TicketId(row.try_get(1)?))))
        .collect()
}

/// Notes that a claimed task's stall was reported, when it still made no progress for
/// `stall_after_seconds` and its stall was not reported yet; `false` otherwise (a heartbeat
/// with progress, or another sweep, came first).
pub async fn mark_stalled(
    connection: &mut PgConnection,
    task_id: TaskId,
    stall_after_seconds: u32,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "update tasks set stalled_at = now() \
         where id = $1 and status = 'claimed' and stalled_at is null \
           and last_progress_at <= now() - make_interval(secs => $2)",
    )
    .bind(task_id.0)
    .bind(f64::from(stall_after_seconds))
    .execute(connection)
    .await?
    .rows_affected()
        == 1)
}

/// Releases a stalled task that still made no progress for `silent_seconds`: it returns to
/// pending, or fails with `failure` as its error (in trace `trace_id`, the stall check's); its
/// expiries become `expiries`. `false` when it changed since it was found.
pub async fn release_stalled(
    connection: &mut PgConnection,
    task_id: TaskId,
    silent_seconds: u64,
    expiries: u32,
    failure: Option<&str>,
    trace_id: Option<&str>,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "update tasks set expiries = $3, lease_expires_at = null, lease_seconds = null, \
             status = case when $4::text is null then 'pending' else 'failed' end::task_status, \
             claimed_by = case when $4::text is null then null else claimed_by end, \
             error = coalesce($4, error), \
             completed_at = case when $4::text is null then completed_at else now() end, \
             finish_trace_id = case when $4::text is null then finish_trace_id else $5 end \
         where id = $1 and status = 'claimed' and stalled_at is not null \
           and last_progress_at <= now() - make_interval(secs => $2)",
    )
    .bind(task_id.0)
    .bind(silent_seconds as f64)
    .bind(expiries as i32)
    .bind(failure)
    .bind(trace_id)
    .execute(connection)
    .await?
    .rows_affected()
        == 1)
}

/// The live leases of each agent holding any.
pub async fn live_leases_by_agent(pool: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query(
        "select claimed_by, count(*) from tasks \
         where status = 'claimed' and claimed_by is not null group by claimed_by",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// Returns a claimed task to pending: nobody holds it any more.
pub async fn release(connection: &mut PgConnection, task_id: TaskId) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update tasks set status = 'pending', claimed_by = null, lease_expires_at = null, \
                lease_seconds = null \
         where id = $1 and status = 'claimed'",
    )
    .bind(task_id.0)
    .execute(connection)
    .await?;
    Ok(())
}

/// Up to `limit` claimed tasks whose lease ran out, oldest deadline first, with their tickets'
/// rows now locked by the caller's transaction; tickets another transaction holds are passed
/// over (the next sweep finds their leases).
pub async fn expired(
    connection: &mut PgConnection,
    limit: i64,
) -> Result<Vec<(TaskId, TicketId)>, sqlx::Error> {
    let rows = sqlx::query(
        "select t.id, t.ticket_id from tasks t join tickets k on k.id = t.ticket_id \
         where t.status = 'claimed' and t.lease_expires_at <= now() \
         order by t.lease_expires_at limit $1 for update of k skip locked",
    )
    .bind(limit)
    .fetch_all(connection)
    .await?;
    rows.into_iter()
        .map(|row| Ok((TaskId(row.try_get(0)?), TicketId(row.try_get(1)?))))
        .collect()
}

/// Ends a lease that ran out: the task returns to pending, or fails with `failure` as its
/// error (in trace `trace_id`, the sweep's). Its expiries become `expiries`. The expiry is recorded in `lease_expiries` for the
/// operations page (the same statement, so it is recorded exactly when it happens). `false`
/// when the task was not claimed with a lease that ran out (it changed since it was found).
pub async fn expire(
    connection: &mut PgConnection,
    task_id: TaskId,
    expiries: u32,
    failure: Option<&str>,
    trace_id: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let recorded: Option<i64> = sqlx::query_scalar(
        "with ran_out as ( \
             select id, ticket_id, task_type, claimed_by, attempt from tasks \
             where id = $1 and status = 'claimed' and lease_expires_at <= now()), \
         ended as ( \
             update tasks set expiries = $2, lease_expires_at = null, lease_seconds = null, \
                 status = case when $3::text is null then 'pending' else 'failed' end::task_status, \
                 claimed_by = case when $3::text is null then null else tasks.claimed_by end, \
                 error = coalesce($3, error), \
                 completed_at = case when $3::text is null then completed_at else now() end, \
                 finish_trace_id = case when $3::text is null then finish_trace_id else $4 end \
             from ran_out where tasks.id = ran_out.id and tasks.status = 'claimed' \
                 and tasks.lease_expires_at <= now() returning tasks.id) \
         insert into lease_expiries (ticket_id, task_id, task_type, claimed_by, attempt, failed) \
         select ticket_id, id, task_type, coalesce(claimed_by, ''), attempt, $3::text is not null \
         from ran_out where exists (select 1 from ended) returning id",
    )
    .bind(task_id.0)
    .bind(expiries as i32)
    .bind(failure)
    .bind(trace_id)
    .fetch_optional(connection)
    .await?;
    Ok(recorded.is_some())
}

/// The key class of the advisory locks that serialize one agent's claims (the second key is a
/// hash of the agent's name; two names with one hash only wait for each other).
const AGENT_LOCK_CLASS: i32 = 0x7066_0001;

/// Locks `agent` for the rest of the transaction: another transaction's claim by the same
/// agent waits for this one's commit, so the leases it counts are the ones that hold. Taken
/// before any ticket's row lock.
pub async fn lock_agent(connection: &mut PgConnection, agent: &str) -> Result<(), sqlx::Error> {
    sqlx::query("select pg_advisory_xact_lock($1, hashtext($2))")
        .bind(AGENT_LOCK_CLASS)
        .bind(agent)
        .execute(connection)
        .await?;
    Ok(())
}

/// How many live leases (claimed, not run out) `agent` holds.
pub async fn live_leases_of(
    connection: &mut PgConnection,
    agent: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "select count(*) from tasks \
         where status = 'claimed' and claimed_by = $1 and lease_expires_at > now()",
    )
    .bind(agent)
    .fetch_one(connection)
    .await
}

/// How many tasks are claimed now.
pub async fn live_leases(pool: &PgPool) -> Result<i64, sqlx::Error> {
    live_leases_on(&mut *pool.acquire().await?).await
}

/// [`live_leases`] on a given connection (in a snapshot with other reads).
pub async fn live_leases_on(connection: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from tasks where status = 'claimed'")
        .fetch_one(connection)
        .await
}
