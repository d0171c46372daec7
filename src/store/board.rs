//! What the board reads that no workflow rule needs: a card per ticket (its current visit's task
//! counts, latest gate result and live claims), a ticket's artifacts of every phase, and the
//! figures of the operations page (outbox backlog, live leases, recent expiries, replicas, the
//! operators' replays of dead letters).
//!
//! Reads only, except [`report_replica`], which a process calls about itself, and
//! [`record_replay`], which the API calls once a replay is confirmed. A column is a
//! keyset page in the order of the ticket listing (most recently updated first), read through
//! `tickets_phase_updated_idx`; a card's figures are read per ticket through the indexes each
//! table has on its ticket id, so a page costs the same with 10,000 tickets as with 10.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use crate::domain::{GateStatus, Phase, Priority, TaskId, TicketId};
use phaseflow_client::budget::TicketBudget;
use phaseflow_client::usage::UsageTotal;

use super::decode_enum;

/// A ticket as its card shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct CardRecord {
    pub ticket_id: TicketId,
    pub title: String,
    pub priority: Priority,
    pub phase: Phase,
    /// tasks of the current visit of the phase
    pub tasks_done: i64,
    pub tasks_total: i64,
    /// the latest gate result of the current visit
    pub gate_status: Option<GateStatus>,
    pub blocking_reasons: Vec<String>,
    pub missing_artifacts: Vec<String>,
    /// agents holding a live lease on one of the ticket's tasks
    pub claimed_by: Vec<String>,
    pub budget: TicketBudget,
    /// what its work cost so far
    pub spent: UsageTotal,
    pub entered_phase_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Which tickets the board shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardFilter {
    pub priority: Option<Priority>,
    /// part of the title, matched case-insensitively
    pub text: Option<String>,
}

/// The card's columns, for tickets `t`: the visit is the ticket's latest history row (the move
/// into its current phase).
const CARD: &str =
    "select t.id, t.title, t.priority::text as priority, t.phase_id::text as phase, \
     t.updated_at, coalesce(visit.created_at, t.created_at) as entered_phase_at, \
     coalesce(work.done, 0) as tasks_done, coalesce(work.total, 0) as tasks_total, \
     gate.gate_status::text as gate_status, gate.blocking_reasons, gate.missing_artifacts, \
     coalesce(holders.agents, '{}') as claimed_by, t.budget_tokens, \
     t.budget_cost_usd::float8 as budget_cost_usd, t.spent_input_tokens, t.spent_output_tokens, \
     t.spent_cost_usd::float8 as spent_cost_usd \
     from tickets t \
     left join lateral (select h.id, h.created_at from phase_history h where h.ticket_id = t.id \
         order by h.id desc limit 1) as visit on true \
     left join lateral (select count(*) filter (where k.status = 'completed') as done, \
         count(*) as total from tasks k where k.ticket_id = t.id and k.phase_id = t.phase_id \
         and k.visit_history_id = visit.id) as work on true \
     left join lateral (select r.gate_status, r.blocking_reasons, r.missing_artifacts \
         from phase_gate_results r where r.ticket_id = t.id and r.phase_id = t.phase_id \
         and r.validated_at >= coalesce(visit.created_at, t.created_at) \
         order by r.seq desc limit 1) as gate on true \
     left join lateral (select array_agg(distinct c.claimed_by order by c.claimed_by) as agents \
         from tasks c where c.ticket_id = t.id and c.status = 'claimed' \
         and c.lease_expires_at > now()) as holders on true";

fn push_filter(statement: &mut QueryBuilder<Postgres>, filter: &CardFilter) {
    if let Some(priority) = filter.priority {
        statement
            .push(" and t.priority = ")
            .push_bind(priority.as_str())
            .push("::ticket_priority");
    }
    if let Some(text) = &filter.text {
        statement
            .push(" and strpos(lower(t.title), lower(")
            .push_bind(text.clone())
            .push(")) > 0");
    }
}

/// Up to `limit` cards of one phase, most recently updated first, after the ticket at `after`.
pub async fn column(
    connection: &mut PgConnection,
    phase: Phase,
    filter: &CardFilter,
    after: Option<(DateTime<Utc>, TicketId)>,
    limit: i64,
) -> Result<Vec<CardRecord>, sqlx::Error> {
    let mut statement = QueryBuilder::<Postgres>::new(CARD);
    statement
        .push(" where t.phase_id = ")
        .push_bind(phase.as_str())
        .push("::phase");
    push_filter(&mut statement, filter);
    if let Some((updated_at, id)) = after {
        statement
            .push(" and (t.updated_at, t.id) < (")
            .push_bind(updated_at)
            .push(", ")
            .push_bind(id.0)
            .push(")");
    }
    statement
        .push(" order by t.updated_at desc, t.id desc limit ")
        .push_bind(limit);
    statement
        .build()
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(card_from_row)
        .collect()
}

/// How many tickets of each phase match `filter` (phases without any are left out).
pub async fn column_totals(
    connection: &mut PgConnection,
    filter: &CardFilter,
) -> Result<Vec<(Phase, i64)>, sqlx::Error> {
    let mut statement = QueryBuilder::<Postgres>::new(
        "select t.phase_id::text as phase, count(*) as total from tickets t where true",
    );
    push_filter(&mut statement, filter);
    statement.push(" group by t.phase_id");
    statement
        .build()
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(|row| {
            Ok((
                decode_enum("phase", row.try_get::<&str, _>("phase")?)?,
                row.try_get("total")?,
            ))
        })
        .collect()
}

/// One ticket's card; `None` when there is no such ticket.
pub async fn card(
    connection: &mut PgConnection,
    ticket_id: TicketId,
) -> Result<Option<CardRecord>, sqlx::Error> {
    let mut statement = QueryBuilder::<Postgres>::new(CARD);
    statement.push(" where t.id = ").push_bind(ticket_id.0);
    statement
        .build()
        .fetch_optional(connection)
        .await?
        .map(card_from_row)
        .transpose()
}

fn strings(value: Option<Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn card_from_row(row: PgRow) -> Result<CardRecord, sqlx::Error> {
    let gate: Option<String> = row.try_get("gate_status")?;
    Ok(CardRecord {
        ticket_id: TicketId(row.try_get("id")?),
        title: row.try_get("title")?,
        priority: decode_enum("priority", row.try_get::<&str, _>("priority")?)?,
        phase: decode_enum("phase", row.try_get::<&str, _>("phase")?)?,
        tasks_done: row.try_get("tasks_done")?,
        tasks_total: row.try_get("tasks_total")?,
        gate_status: gate
            .as_deref()
            .map(|text| decode_enum("gate_status", text))
            .transpose()?,
        blocking_reasons: strings(row.try_get("blocking_reasons")?),
        missing_artifacts: strings(row.try_get("missing_artifacts")?),
        claimed_by: row.try_get("claimed_by")?,
        budget: super::budgets::budget_from(&row)?,
        spent: super::budgets::spent_from(&row)?,
        entered_phase_at: row.try_get("entered_phase_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// An artifact with the phase and task it was collected for.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketArtifact {
    pub phase: Phase,
    pub artifact_type: String,
    pub artifact_path: Option<String>,
    pub content: Option<Value>,
    pub collected_by: String,
    pub task_id: Option<TaskId>,
    pub collected_at: DateTime<Utc>,
    /// the trace id of the request that submitted it
    pub trace_id: Option<String>,
}

/// Every artifact of a ticket, of every phase, oldest first.
pub async fn artifacts(
    connection: &mut PgConnection,
    ticket_id: TicketId,
) -> Result<Vec<TicketArtifact>, sqlx::Error> {
    let rows = sqlx::query(
        "select phase_id::text as phase, artifact_type, artifact_path, artifact_content, \
         collected_by, task_id, collected_at, trace_id from phase_gate_artifacts \
         where ticket_id = $1 order by seq",
    )
    .bind(ticket_id.0)
    .fetch_all(connection)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(TicketArtifact {
                phase: decode_enum("phase", row.try_get::<&str, _>("phase")?)?,
                artifact_type: row.try_get("artifact_type")?,
                artifact_path: row.try_get("artifact_path")?,
                content: row.try_get("artifact_content")?,
                collected_by: row.try_get("collected_by")?,
                task_id: row.try_get::<Option<uuid::Uuid>, _>("task_id")?.map(TaskId),
                collected_at: row.try_get("collected_at")?,
                trace_id: row.try_get("trace_id")?,
            })
        })
        .collect()
}

/// The outbox's events not published yet, and the age of the oldest in seconds.
pub async fn outbox_backlog(
    connection: &mut PgConnection,
) -> Result<(i64, Option<f64>), sqlx::Error> {
    let row = sqlx::query(
        "select count(*) as backlog, \
         extract(epoch from now() - min(created_at))::float8 as oldest from outbox",
    )
    .fetch_one(connection)
    .await?;
    Ok((row.try_get("backlog")?, row.try_get("oldest")?))
}

/// A lease that ran out, as the sweep recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpiryRecord {
    pub ticket_id: TicketId,
    pub task_id: TaskId,
    pub task_type: String,
    pub claimed_by: String,
    pub attempt: i32,
    pub failed: bool,
    pub expired_at: DateTime<Utc>,
}

/// The `limit` most recent lease expiries, newest first.
pub async fn recent_expiries(
    connection: &mut PgConnection,
    limit: i64,
) -> Result<Vec<ExpiryRecord>, sqlx::Error> {
    let rows = sqlx::query(
        "select ticket_id, task_id, task_type, claimed_by, attempt, failed, expired_at \
         from lease_expiries order by expired_at desc, id desc limit $1",
    )
    .bind(limit)
    .fetch_all(connection)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(ExpiryRecord {
                ticket_id: TicketId(row.try_get("ticket_id")?),
                task_id: TaskId(row.try_get("task_id")?),
                task_type: row.try_get("task_type")?,
                claimed_by: row.try_get("claimed_by")?,
                attempt: row.try_get("attempt")?,
                failed: row.try_get("failed")?,
                expired_at: row.try_get("expired_at")?,
            })
        })
        .collect()
}

/// What a process reports about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaReport<'a> {
    pub replica_id: &'a str,
    /// `worker` or `api`
    pub kind: &'a str,
    pub host: &'a str,
    pub pid: i32,
    pub started_at: DateTime<Utc>,
    pub ready: bool,
    pub in_flight: i64,
    pub handled: i64,
}

/// A process as it last reported itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaRecord {
    pub replica_id: String,
    pub kind: String,
    pub host: String,
    pub pid: i32,
    pub started_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// seconds since `last_seen_at`, by the database's clock
    pub silent_for: f64,
    pub ready: bool,
    pub in_flight: i64,
    pub handled: i64,
}

/// Records a process's report (time from the database's clock), deletes the rows of processes
/// silent for a day, the lease expiries older than a week and the replays older than 90 days (a
/// few at a time, so that this stays a small statement however long nobody cleaned up).
pub async fn report_replica(
    connection: &mut PgConnection,
    report: &ReplicaReport<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "with gone as (delete from replicas where last_seen_at < now() - interval '1 day'), \
         forgotten as (delete from lease_expiries where id in (select id from lease_expiries \
             where expired_at < now() - interval '7 days' order by expired_at limit 1000)), \
         old_replays as (delete from dead_letter_replays where id in (select id from \
             dead_letter_replays where replayed_at < now() - interval '90 days' \
             order by replayed_at limit 1000)) \
         insert into replicas (replica_id, kind, host, pid, started_at, last_seen_at, ready, \
             in_flight, handled) values ($1, $2, $3, $4, $5, now(), $6, $7, $8) \
         on conflict (replica_id) do update set last_seen_at = now(), ready = excluded.ready, \
             in_flight = excluded.in_flight, handled = excluded.handled",
    )
    .bind(report.replica_id)
    .bind(report.kind)
    .bind(report.host)
    .bind(report.pid)
    .bind(report.started_at)
    .bind(report.ready)
    .bind(report.in_flight)
    .bind(report.handled)
    .execute(connection)
    .await?;
    Ok(())
}

/// Every process that reported in the last day, workers first, most recently started first.
pub async fn replicas(connection: &mut PgConnection) -> Result<Vec<ReplicaRecord>, sqlx::Error> {
    let rows = sqlx::query(
        "select replica_id, kind, host, pid, started_at, last_seen_at, \
         extract(epoch from now() - last_seen_at)::float8 as silent_for, ready, in_flight, \
         handled from replicas where last_seen_at >= now() - interval '1 day' \
         order by kind desc, started_at desc, replica_id",
    )
    .fetch_all(connection)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(ReplicaRecord {
                replica_id: row.try_get("replica_id")?,
                kind: row.try_get("kind")?,
                host: row.try_get("host")?,
                pid: row.try_get("pid")?,
                started_at: row.try_get("started_at")?,
                last_seen_at: row.try_get("last_seen_at")?,
                silent_for: row.try_get("silent_for")?,
                ready: row.try_get("ready")?,
                in_flight: row.try_get("in_flight")?,
                handled: row.try_get("handled")?,
            })
        })
        .collect()
}

/// A dead letter an operator replayed.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayRecord {
    pub message_id: String,
    pub routing_key: String,
    pub reason: Option<String>,
    pub replayed_by: String,
    pub replayed_at: DateTime<Utc>,
}

/// Records a replay.
pub async fn record_replay(
    connection: &mut PgConnection,
    message_id: &str,
    routing_key: &str,
    reason: Option<&str>,
    replayed_by: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into dead_letter_replays (message_id, routing_key, reason, replayed_by) \
         values ($1, $2, $3, $4)",
    )
    .bind(message_id)
    .bind(routing_key)
    .bind(reason)
    .bind(replayed_by)
    .execute(connection)
    .await?;
    Ok(())
}

/// The `limit` most recent replays, newest first.
pub async fn recent_replays(
    connection: &mut PgConnection,
    limit: i64,
) -> Result<Vec<ReplayRecord>, sqlx::Error> {
    let rows = sqlx::query(
        "select message_id, routing_key, reason, replayed_by, replayed_at \
         from dead_letter_replays order by replayed_at desc, id desc limit $1",
    )
    .bind(limit)
    .fetch_all(connection)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(ReplayRecord {
                message_id: row.try_get("message_id")?,
                routing_key: row.try_get("routing_key")?,
                reason: row.try_get("reason")?,
                replayed_by: row.try_get("replayed_by")?,
                replayed_at: row.try_get("replayed_at")?,
            })
        })
        .collect()
}
