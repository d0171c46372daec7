//! Gate artifacts collected per phase, and stored gate validations.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, Row};
use uuid::Uuid;

use crate::domain::{GateEvaluation, GateStatus, Phase, TaskId, TicketId};

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
}

/// Collects one artifact for a phase and returns its id.
pub async fn insert_artifact(
    connection: &mut PgConnection,
    artifact: &NewArtifact<'_>,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::new_v4();
    sqlx::query(
        "insert into phase_gate_artifacts (id, ticket_id, phase_id, artifact_type, artifact_path, artifact_content, collected_by, task_id) \
         values ($1, $2, $3::phase, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(artifact.ticket_id.0)
    .bind(artifact.phase.as_str())
    .bind(artifact.artifact_type)
    .bind(artifact.artifact_path)
    .bind(artifact.artifact_content)
    .bind(artifact.collected_by)
    .bind(artifact.task_id.map(|task| task.0))
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

/// Stores one gate validation.
pub async fn insert_result(
    connection: &mut PgConnection,
    ticket_id: TicketId,
    phase: Phase,
    evaluation: &GateEvaluation,
    validated_by: &str,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::new_v4();
    sqlx::query(
        "insert into phase_gate_results (id, ticket_id, phase_id, gate_status, requirements_met, missing_artifacts, \
         blocking_reasons, validation_result, validated_by) \
         values ($1, $2, $3::phase, $4::gate_status, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(ticket_id.0)
    .bind(phase.as_str())
    .bind(evaluation.status.as_str())
    .bind(evaluation.requirements_met)
    .bind(Value::from(evaluation.missing_artifacts.clone()))
    .bind(Value::from(evaluation.blocking_reasons.clone()))
    .bind(serde_json::json!({
        "artifacts_checked": evaluation.artifacts_checked,
        "artifacts_passed": evaluation.artifacts_passed,
        "tasks_completed": evaluation.tasks_completed,
        "tasks_total": evaluation.tasks_total,
        "tasks_done": evaluation.tasks_done,
    }))
    .bind(validated_by)
    .execute(connection)
    .await?;
    Ok(id)
}

/// A stored gate validation.
#[derive(Debug, Clone, PartialEq)]
pub struct GateResultRecord {
    pub phase: Phase,
    pub status: GateStatus,
    pub requirements_met: bool,
    pub missing_artifacts: Vec<String>,
    pub blocking_reasons: Vec<String>,
    pub validated_by: String,
    pub validated_at: DateTime<Utc>,
}

/// Every gate validation of a ticket, oldest first.
pub async fn results(
    connection: &mut PgConnection,
    ticket_id: TicketId,
) -> Result<Vec<GateResultRecord>, sqlx::Error> {
    let rows = sqlx::query(
        "select phase_id::text as phase_id, gate_status::text as gate_status, requirements_met, \
                missing_artifacts, blocking_reasons, validated_by, validated_at \
         from phase_gate_results where ticket_id = $1 order by seq",
    )
    .bind(ticket_id.0)
    .fetch_all(connection)
    .await?;
    let texts = |value: Value| -> Vec<String> { serde_json::from_value(value).unwrap_or_default() };
    rows.into_iter()
        .map(|row| {
            Ok(GateResultRecord {
                phase: super::decode_enum("phase_id", row.try_get::<&str, _>("phase_id")?)?,
                status: super::decode_enum("gate_status", row.try_get::<&str, _>("gate_status")?)?,
                requirements_met: row.try_get("requirements_met")?,
                missing_artifacts: texts(row.try_get("missing_artifacts")?),
                blocking_reasons: texts(row.try_get("blocking_reasons")?),
                validated_by: row.try_get("validated_by")?,
                validated_at: row.try_get("validated_at")?,
            })
        })
        .collect()
}
