//! Tickets and their phase history.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Row};

use crate::domain::{Phase, Priority, TaskId, TicketId};
use phaseflow_client::budget::TicketBudget;
use phaseflow_client::usage::UsageTotal;

use super::context::{inputs_columns, inputs_ctes, inputs_from_row, InputsParams, PhaseInputs};
use super::decode_enum;

/// A ticket as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketRecord {
    pub id: TicketId,
    pub title: String,
    pub description: String,
    pub priority: Priority,
    pub phase: Phase,
    pub previous_phase: Option<Phase>,
    /// `None` when read by [`lock`]: the transactions that lock a ticket rarely need its
    /// context, which grows with every phase; context aggregation reads it when it does
    /// (`store::context::phase_inputs`).
    pub context: Option<Map<String, Value>>,
    pub context_summary: String,
    /// cl100k_base tokens of `context_summary`
    pub context_summary_tokens: i32,
    pub context_updated_at: Option<DateTime<Utc>>,
    pub auto_advance: bool,
    /// what the ticket may cost
    pub budget: TicketBudget,
    /// who changed the budget last, and when (`None`: it is the one it was created with)
    pub budget_set: Option<(String, DateTime<Utc>)>,
    /// what its work cost so far: the sums of its usage rows
    pub spent: UsageTotal,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The budget and spend columns, read by every query of a ticket.
macro_rules! budget_columns {
    () => {
        "budget_tokens, budget_cost_usd::float8 as budget_cost_usd, budget_set_by, budget_set_at, \
         spent_input_tokens, spent_output_tokens, spent_cost_usd::float8 as spent_cost_usd"
    };
}

const TICKET_COLUMNS: &str = concat!(
    "id, title, description, priority::text as priority, phase_id::text as phase_id, \
     previous_phase_id::text as previous_phase_id, context, context_summary, context_summary_tokens, context_updated_at, \
     auto_advance, created_at, updated_at, ", budget_columns!());

/// Every column but `context` (read as null).
pub(super) const LOCK_COLUMNS: &str = concat!(
    "id, title, description, priority::text as priority, phase_id::text as phase_id, \
     previous_phase_id::text as previous_phase_id, null::jsonb as context, context_summary, \
     context_summary_tokens, context_updated_at, auto_advance, created_at, updated_at, ",
    budget_columns!()
);

pub(super) fn ticket_from_row(row: PgRow) -> Result<TicketRecord, sqlx::Error> {
    let previous: Option<String> = row.try_get("previous_phase_id")?;
    let context = match row.try_get::<Option<Value>, _>("context")? {
        Some(Value::Object(map)) => Some(map),
        Some(_) => Some(Map::new()),
        None => None,
    };
    Ok(TicketRecord {
        id: TicketId(row.try_get("id")?),
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        priority: decode_enum("priority", row.try_get::<&str, _>("priority")?)?,
        phase: decode_enum("phase_id", row.try_get::<&str, _>("phase_id")?)?,
        previous_phase: previous
            .as_deref()
            .map(|text| decode_enum("previous_phase_id", text))
            .transpose()?,
        context,
        context_summary: row.try_get("context_summary")?,
        context_summary_tokens: row.try_get("context_summary_tokens")?,
        context_updated_at: row.try_get("context_updated_at")?,
        auto_advance: row.try_get("auto_advance")?,
        budget: super::budgets::budget_from(&row)?,
        budget_set: row
            .try_get::<Option<String>, _>("budget_set_by")?
            .zip(row.try_get::<Option<DateTime<Utc>>, _>("budget_set_at")?),
        spent: super::budgets::spent_from(&row)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A ticket to create.
pub struct NewTicket<'a> {
    pub id: TicketId,
    pub title: &'a str,
    pub description: &'a str,
    pub priority: Priority,
    pub auto_advance: bool,
    pub budget: TicketBudget,
    /// the summary of a ticket with no context yet: the ticket itself
    pub summary: &'a str,
    pub summary_tokens: usize,
}

/// Inserts a ticket in BACKLOG; `None` when the id is taken.
pub async fn insert(
    connection: &mut PgConnection,
    ticket: &NewTicket<'_>,
) -> Result<Option<TicketRecord>, sqlx::Error> {
    let statement = format!(
        "insert into tickets (id, title, description, priority, auto_advance, context_summary, \
             context_summary_tokens, budget_tokens, budget_cost_usd) \
         values ($1, $2, $3, $4::ticket_priority, $5, $6, $7, $8, $9::float8::numeric) \
         on conflict (id) do nothing returning {TICKET_COLUMNS}"
    );
    sqlx::query(AssertSqlSafe(statement))
        .bind(ticket.id.0)
        .bind(ticket.title)
        .bind(ticket.description)
        .bind(ticket.priority.as_str())
        .bind(ticket.auto_advance)
        .bind(ticket.summary)
        .bind(i32::try_from(ticket.summary_tokens).unwrap_or(i32::MAX))
        .bind(
            ticket
                .budget
                .tokens
                .map(|tokens| i64::try_from(tokens).unwrap_or(i64::MAX)),
        )
        .bind(ticket.budget.cost_usd)
        .fetch_optional(connection)
        .await?
        .map(ticket_from_row)
        .transpose()
}

/// Reads a ticket and locks its row until the transaction ends: every change to a ticket, and
/// every `ticketseq` it hands out, happens under this lock.
pub async fn lock(
    connection: &mut PgConnection,
    id: TicketId,
) -> Result<Option<TicketRecord>, sqlx::Error> {
    let statement = format!("select {LOCK_COLUMNS} from tickets where id = $1 for update");
    sqlx::query(AssertSqlSafe(statement))
        .bind(id.0)
        .fetch_optional(connection)
        .await?
        .map(ticket_from_row)
        .transpose()
}

/// Reads and locks the ticket a task belongs to, as [`lock`] does, in one statement; `None`
/// when the task does not exist or, when `named` is given, belongs to another ticket (nothing
/// is locked then).
pub async fn lock_owner_of(
    connection: &mut PgConnection,
    task_id: TaskId,
    named: Option<TicketId>,
) -> Result<Option<TicketRecord>, sqlx::Error> {
    let statement = format!(
        "select {LOCK_COLUMNS} from tickets \
         where id = (select ticket_id from tasks where id = $1) and ($2::uuid is null or id = $2) \
         for update"
    );
    sqlx::query(AssertSqlSafe(statement))
        .bind(task_id.0)
        .bind(named.map(|ticket| ticket.0))
        .fetch_optional(connection)
        .await?
        .map(ticket_from_row)
        .transpose()
}

/// Reads a ticket without locking it.
pub async fn find(
    connection: &mut PgConnection,
    id: TicketId,
) -> Result<Option<TicketRecord>, sqlx::Error> {
    let statement = format!("select {TICKET_COLUMNS} from tickets where id = $1");
    sqlx::query(AssertSqlSafe(statement))
        .bind(id.0)
        .fetch_optional(connection)
        .await?
        .map(ticket_from_row)
        .transpose()
}

/// Whether a ticket exists (without reading it).
pub async fn exists(connection: &mut PgConnection, id: TicketId) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select exists (select 1 from tickets where id = $1)")
        .bind(id.0)
        .fetch_one(connection)
        .await
}

/// Moves a locked ticket from `entry.from_phase` to `entry.to_phase` (remembered as its previous
/// and current phase), records the history row, and reads what aggregating the context of the
/// phase it leaves needs (as `context::phase_inputs` does, under `context_key` with `suffix`),
/// all in one statement. The reads see the ticket as it was before the move, which the move
/// changes only in its phases.
///
/// The move's time is read from the clock now, after the ticket was locked, not at the start of
/// the transaction: a transaction that waited for the lock would otherwise record a time earlier
/// than the move it follows, and a ticket's history sorted by time would not be a chain.
pub async fn move_to_phase(
    connection: &mut PgConnection,
    entry: &NewHistory<'_>,
    context_key: &str,
    suffix: &str,
) -> Result<(HistoryRecord, PhaseInputs), sqlx::Error> {
    let inputs = InputsParams {
        ticket: "$1",
        phase: "$2",
        key: "$11",
        suffix: "$12",
    };
    let statement = format!(
        "with moment as (select clock_timestamp() as at), \
         moved as ( \
             update tickets set phase_id = $3::phase, previous_phase_id = $2::phase, \
                 updated_at = (select at from moment) \
             where id = $1 returning id), \
         history as ( \
             insert into phase_history (ticket_id, from_phase, to_phase, transition_reason, transitioned_by, artifacts, regression, forced, correlation_id, trace_id, created_at) \
             select id, $2::phase, $3::phase, $4, $5, $6, $7, $8, $9, $10, (select at from moment) from moved \
             returning {HISTORY_COLUMNS}), \
         {} \
         select history.*, {} from history",
        inputs_ctes(&inputs),
        inputs_columns(&inputs),
    );
    let row = sqlx::query(AssertSqlSafe(statement))
        .bind(entry.ticket_id.0)
        .bind(entry.from_phase.map(Phase::as_str))
        .bind(entry.to_phase.as_str())
        .bind(entry.reason)
        .bind(entry.transitioned_by)
        .bind(entry.artifacts)
        .bind(entry.regression)
        .bind(entry.forced)
        .bind(entry.correlation_id)
        .bind(entry.trace_id)
        .bind(context_key)
        .bind(suffix)
        .fetch_one(connection)
        .await?;
    Ok((history_from(&row)?, inputs_from_row(&row)?))
}

/// One row of a ticket's phase history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRecord {
    pub id: i64,
    pub ticket_id: TicketId,
    pub from_phase: Option<Phase>,
    pub to_phase: Phase,
    pub transition_reason: String,
    pub transitioned_by: String,
    pub artifacts: Value,
    pub regression: bool,
    /// an operator forced the move past a gate that refused it
    pub forced: bool,
    /// the correlation id of the request that made the move (`None` on rows written before
    /// it was kept)
    pub correlation_id: Option<String>,
    /// the trace id of the request (or automatic step) that made the move (`None` on rows
    /// written before it was kept)
    pub trace_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

fn history_from_row(row: PgRow) -> Result<HistoryRecord, sqlx::Error> {
    history_from(&row)
}

fn history_from(row: &PgRow) -> Result<HistoryRecord, sqlx::Error> {
    let from: Option<String> = row.try_get("from_phase")?;
    Ok(HistoryRecord {
        id: row.try_get("id")?,
        ticket_id: TicketId(row.try_get("ticket_id")?),
        from_phase: from
            .as_deref()
            .map(|text| decode_enum("from_phase", text))
            .transpose()?,
        to_phase: decode_enum("to_phase", row.try_get::<&str, _>("to_phase")?)?,
        transition_reason: row.try_get("transition_reason")?,
        transitioned_by: row.try_get("transitioned_by")?,
        artifacts: row.try_get("artifacts")?,
        regression: row.try_get("regression")?,
        forced: row.try_get("forced")?,
        correlation_id: row.try_get("correlation_id")?,
        trace_id: row.try_get("trace_id")?,
        created_at: row.try_get("created_at")?,
    })
}

const HISTORY_COLUMNS: &str =
    "id, ticket_id, from_phase::text as from_phase, to_phase::text as to_phase, \
     transition_reason, transitioned_by, artifacts, regression, forced, correlation_id, trace_id, created_at";

/// A phase change to record.
pub struct NewHistory<'a> {
    pub ticket_id: TicketId,
    pub from_phase: Option<Phase>,
    pub to_phase: Phase,
    pub reason: &'a str,
    pub transitioned_by: &'a str,
    pub artifacts: &'a Value,
    pub regression: bool,
    /// an operator forced the move past a gate that refused it
    pub forced: bool,
    /// the correlation id of the request that made the move
    pub correlation_id: &'a str,
    /// the trace id of the span that made it
    pub trace_id: Option<&'a str>,
}

/// Appends a history row (same transaction as the phase change it records).
pub async fn insert_history(
    connection: &mut PgConnection,
    entry: &NewHistory<'_>,
) -> Result<HistoryRecord, sqlx::Error> {
    let statement = format!(
        "insert into phase_history (ticket_id, from_phase, to_phase, transition_reason, transitioned_by, artifacts, regression, forced, correlation_id, trace_id) \
         values ($1, $2::phase, $3::phase, $4, $5, $6, $7, $8, $9, $10) returning {HISTORY_COLUMNS}"
    );
    sqlx::query(AssertSqlSafe(statement))
        .bind(entry.ticket_id.0)
        .bind(entry.from_phase.map(Phase::as_str))
        .bind(entry.to_phase.as_str())
        .bind(entry.reason)
        .bind(entry.transitioned_by)
        .bind(entry.artifacts)
        .bind(entry.regression)
        .bind(entry.forced)
        .bind(entry.correlation_id)
        .bind(entry.trace_id)
        .fetch_one(connection)
        .await
        .and_then(history_from_row)
}

/// A ticket's whole history, oldest first.
pub async fn history(
    connection: &mut PgConnection,
    ticket_id: TicketId,
) -> Result<Vec<HistoryRecord>, sqlx::Error> {
    let statement =
        format!("select {HISTORY_COLUMNS} from phase_history where ticket_id = $1 order by id");
    sqlx::query(AssertSqlSafe(statement))
        .bind(ticket_id.0)
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(history_from_row)
        .collect()
}

/// The history row that started the latest visit of `phase`, if the ticket was ever there.
pub async fn latest_visit(
    connection: &mut PgConnection,
    ticket_id: TicketId,
    phase: Phase,
) -> Result<Option<HistoryRecord>, sqlx::Error> {
    let statement = format!(
        "select {HISTORY_COLUMNS} from phase_history where ticket_id = $1 and to_phase = $2::phase \
         order by id desc limit 1"
    );
    sqlx::query(AssertSqlSafe(statement))
        .bind(ticket_id.0)
        .bind(phase.as_str())
        .fetch_optional(connection)
        .await?
        .map(history_from_row)
        .transpose()
}

/// A visit (the history row that started it) of a ticket, whether its entry work was done, and
/// whether it is still the ticket's current visit.
pub struct VisitState {
    pub visit: HistoryRecord,
    pub entry_work_done: bool,
    pub current: bool,
}

/// The visit `history_id` of a ticket, if the ticket has such a history row.
pub async fn visit_state(
    connection: &mut PgConnection,
    ticket_id: TicketId,
    history_id: i64,
) -> Result<Option<VisitState>, sqlx::Error> {
    let statement = format!(
        "select {HISTORY_COLUMNS}, entry_work_done, \
             id = (select max(id) from phase_history where ticket_id = $1) as current \
         from phase_history where ticket_id = $1 and id = $2"
    );
    let Some(row) = sqlx::query(AssertSqlSafe(statement))
        .bind(ticket_id.0)
        .bind(history_id)
        .fetch_optional(connection)
        .await?
    else {
        return Ok(None);
    };
    let entry_work_done = row.try_get("entry_work_done")?;
    let current = row.try_get("current")?;
    Ok(Some(VisitState {
        visit: history_from_row(row)?,
        entry_work_done,
        current,
    }))
}

/// Records that a visit's entry work was done (or is no longer wanted).
pub async fn mark_entry_work_done(
    connection: &mut PgConnection,
    history_id: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("update phase_history set entry_work_done = true where id = $1")
        .bind(history_id)
        .execute(connection)
        .await?;
    Ok(())
}
