//! Reviews of gates: the state of a phase a review judges, who may not review it, the reviews
//! asked for (once per state) and the reviews given.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::domain::{Phase, PhaseState, TaskId, TicketId, Verdict};

use super::decode_enum;

/// The state of a phase: its newest artifact, its newest task and how many tasks finished.
pub async fn phase_state(
    connection: &mut PgConnection,
    ticket_id: TicketId,
    phase: Phase,
) -> Result<PhaseState, sqlx::Error> {
    let row = sqlx::query(
        "select (select coalesce(max(seq), 0) from phase_gate_artifacts \
                  where ticket_id = $1 and phase_id = $2::phase) as last_artifact, \
                coalesce(max(seq), 0) as last_task, \
                count(*) filter (where status in ('completed', 'failed')) as finished_tasks \
         from tasks where ticket_id = $1 and phase_id = $2::phase",
    )
    .bind(ticket_id.0)
    .bind(phase.as_str())
    .fetch_one(connection)
    .await?;
    Ok(PhaseState {
        last_artifact: row.try_get("last_artifact")?,
        last_task: row.try_get("last_task")?,
        finished_tasks: row.try_get("finished_tasks")?,
    })
}

/// The agents that completed tasks of a phase, in the order they first did.
pub async fn authors(
    connection: &mut PgConnection,
    ticket_id: TicketId,
    phase: Phase,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "select claimed_by from tasks \
         where ticket_id = $1 and phase_id = $2::phase and status = 'completed' and claimed_by is not null \
         group by claimed_by order by min(completed_at), claimed_by",
    )
    .bind(ticket_id.0)
    .bind(phase.as_str())
    .fetch_all(connection)
    .await
}

/// Records that a review of this state of the phase was asked for; `false` when it was before.
pub async fn request_once(
    connection: &mut PgConnection,
    ticket_id: TicketId,
    phase: Phase,
    state: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "insert into gate_review_requests (ticket_id, phase_id, state) values ($1, $2::phase, $3) \
         on conflict do nothing",
    )
    .bind(ticket_id.0)
    .bind(phase.as_str())
    .bind(state)
    .execute(connection)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Whether a review of this state of the phase was asked for.
pub async fn is_requested(
    connection: &mut PgConnection,
    ticket_id: TicketId,
    phase: Phase,
    state: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists (select 1 from gate_review_requests \
                        where ticket_id = $1 and phase_id = $2::phase and state = $3)",
    )
    .bind(ticket_id.0)
    .bind(phase.as_str())
    .bind(state)
    .fetch_one(connection)
    .await
}

/// A review as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewRecord {
    pub id: Uuid,
    pub phase: Phase,
    pub state: String,
    pub verdict: Verdict,
    pub reviewer: String,
    pub reasons: Vec<String>,
    pub created_at: DateTime<Utc>,
    /// the trace id of the request that submitted it
    pub trace_id: Option<String>,
}

fn review_from_row(row: sqlx::postgres::PgRow) -> Result<ReviewRecord, sqlx::Error> {
    let reasons: Value = row.try_get("reasons")?;
    Ok(ReviewRecord {
        id: row.try_get("id")?,
        phase: decode_enum("phase_id", row.try_get::<&str, _>("phase_id")?)?,
        state: row.try_get("state")?,
        verdict: decode_enum("verdict", row.try_get::<&str, _>("verdict")?)?,
        reviewer: row.try_get("reviewer")?,
        reasons: serde_json::from_value(reasons).unwrap_or_default(),
        created_at: row.try_get("created_at")?,
        trace_id: row.try_get("trace_id")?,
    })
}

const REVIEW_COLUMNS: &str =
    "id, phase_id::text as phase_id, state, verdict, reviewer, reasons, created_at, trace_id";

/// The latest review of this state of the phase, if any.
pub async fn for_state(
    connection: &mut PgConnection,
    ticket_id: TicketId,
    phase: Phase,
    state: &str,
) -> Result<Option<ReviewRecord>, sqlx::Error> {
    let statement = format!(
        "select {REVIEW_COLUMNS} from gate_reviews \
         where ticket_id = $1 and phase_id = $2::phase and state = $3 order by seq desc limit 1"
    );
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .bind(ticket_id.0)
        .bind(phase.as_str())
        .bind(state)
        .fetch_optional(connection)
        .await?
        .map(review_from_row)
        .transpose()
}

/// Every review of a ticket, oldest first.
pub async fn for_ticket(
    connection: &mut PgConnection,
    ticket_id: TicketId,
) -> Result<Vec<ReviewRecord>, sqlx::Error> {
    let statement =
        format!("select {REVIEW_COLUMNS} from gate_reviews where ticket_id = $1 order by seq");
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .bind(ticket_id.0)
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(review_from_row)
        .collect()
}

/// A review to store.
pub struct NewReview<'a> {
    pub ticket_id: TicketId,
    pub phase: Phase,
    pub state: &'a str,
    pub verdict: Verdict,
    pub reviewer: &'a str,
    pub reasons: &'a [String],
    /// the trace id of the request that submitted it
    pub trace_id: Option<&'a str>,
}

/// Stores a review and returns its id.
pub async fn insert(
    connection: &mut PgConnection,
    review: &NewReview<'_>,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::new_v4();
    sqlx::query(
        "insert into gate_reviews (id, ticket_id, phase_id, state, verdict, reviewer, reasons, trace_id) \
         values ($1, $2, $3::phase, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(review.ticket_id.0)
    .bind(review.phase.as_str())
    .bind(review.state)
    .bind(review.verdict.as_str())
    .bind(review.reviewer)
    .bind(Value::from(review.reasons.to_vec()))
    .bind(review.trace_id)
    .execute(connection)
    .await?;
    Ok(id)
}

/// An artifact shown to a reviewer: the newest of its type in its phase.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewedArtifact {
    pub phase: Phase,
    pub artifact_type: String,
    pub artifact_path: Option<String>,
    pub artifact_content: Option<Value>,
}

/// The newest artifact of each type of every phase of a ticket, by phase, then type.
pub async fn newest_artifacts(
    connection: &mut PgConnection,
    ticket_id: TicketId,
) -> Result<Vec<ReviewedArtifact>, sqlx::Error> {
    let rows = sqlx::query(
        "select distinct on (phase_id, artifact_type) phase_id::text as phase_id, artifact_type, \
                artifact_path, artifact_content \
         from phase_gate_artifacts where ticket_id = $1 \
         order by phase_id, artifact_type, seq desc",
    )
    .bind(ticket_id.0)
    .fetch_all(connection)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(ReviewedArtifact {
                phase: decode_enum("phase_id", row.try_get::<&str, _>("phase_id")?)?,
                artifact_type: row.try_get("artifact_type")?,
                artifact_path: row.try_get("artifact_path")?,
                artifact_content: row.try_get("artifact_content")?,
            })
        })
        .collect()
}

/// Files the rework task a review asked for in its phase, for the ticket's current visit of it,
/// created in trace `trace_id`.
pub async fn insert_rework(
    connection: &mut PgConnection,
    review_id: Uuid,
    ticket_id: TicketId,
    phase: Phase,
    visit_history_id: i64,
    task: &super::tasks::NewTask,
    trace_id: Option<&str>,
) -> Result<TaskId, sqlx::Error> {
    sqlx::query(
        "insert into tasks (id, ticket_id, phase_id, visit_history_id, task_type, description, priority, rework_of, role, trace_id) \
         values ($1, $2, $3::phase, $4, $5, $6, $7::ticket_priority, $8, $9, $10)",
    )
    .bind(task.id.0)
    .bind(ticket_id.0)
    .bind(phase.as_str())
    .bind(visit_history_id)
    .bind(&task.task_type)
    .bind(&task.description)
    .bind(task.priority.as_str())
    .bind(review_id)
    .bind(task.role.as_deref())
    .bind(trace_id)
    .execute(connection)
    .await?;
    Ok(task.id)
}
