//! The artifacts collected for each phase of a ticket (what gates judge): storing one and
//! reading a phase's.
//!
//! Statements only; what an artifact must contain is the domain's business.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Row};
use uuid::Uuid;

use crate::domain::{Phase, TaskId, TicketId};

/// An artifact as collected.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactRecord {
    pub id: Uuid,
    pub artifact_type: String,
    pub artifact_path: Option<String>,
    pub artifact_content: Option<Value>,
    pub collected_by: String,
    pub collected_at: DateTime<Utc>,
}

/// An artifact to collect.
pub struct NewArtifact<'a> {
    pub ticket_id: TicketId,
    pub phase: Phase,
    pub artifact_type: &'a str,
    pub artifact_path: Option<&'a str>,
    pub artifact_content: Option<&'a Value>,
    pub collected_by: &'a str,
    pub task_id: Option<TaskId>,
    /// the trace id of the request that submitted it
    pub trace_id: Option<&'a str>,
}

/// Collects one artifact for a phase and returns its id.
pub async fn insert_artifact(
    connection: &mut PgConnection,
    artifact: &NewArtifact<'_>,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::new_v4();
    sqlx::query(
        "insert into phase_gate_artifacts (id, ticket_id, phase_id, artifact_type, artifact_path, artifact_content, collected_by, task_id, trace_id) \
         values ($1, $2, $3::phase, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(artifact.ticket_id.0)
    .bind(artifact.phase.as_str())
    .bind(artifact.artifact_type)
    .bind(artifact.artifact_path)
    .bind(artifact.artifact_content)
    .bind(artifact.collected_by)
    .bind(artifact.task_id.map(|task| task.0))
    .bind(artifact.trace_id)
    .execute(connection)
    .await?;
    Ok(id)
}

/// The artifacts of one phase, oldest first.
pub async fn artifacts(
    connection: &mut PgConnection,
    ticket_id: TicketId,
    phase: Phase,
) -> Result<Vec<ArtifactRecord>, sqlx::Error> {
    let statement = format!(
        "select {ARTIFACT_COLUMNS} from phase_gate_artifacts \
         where ticket_id = $1 and phase_id = $2::phase order by seq"
    );
    let rows = sqlx::query(AssertSqlSafe(statement))
        .bind(ticket_id.0)
        .bind(phase.as_str())
        .fetch_all(connection)
        .await?;
    rows.into_iter().map(artifact_from_row).collect()
}

/// The columns [`artifact_from_row`] reads.
pub(super) const ARTIFACT_COLUMNS: &str =
    "id, artifact_type, artifact_path, artifact_content, collected_by, collected_at";

pub(super) fn artifact_from_row(row: PgRow) -> Result<ArtifactRecord, sqlx::Error> {
    Ok(ArtifactRecord {
        id: row.try_get("id")?,
        artifact_type: row.try_get("artifact_type")?,
        artifact_path: row.try_get("artifact_path")?,
        artifact_content: row.try_get("artifact_content")?,
        collected_by: row.try_get("collected_by")?,
        collected_at: row.try_get("collected_at")?,
    })
}
