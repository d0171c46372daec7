//! Stored gate validations: one row per judgement of a phase's gate, kept as the gate's history.
//!
//! Statements only; judging a gate is the domain's business.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::domain::{GateEvaluation, GateStatus, Phase, TicketId};

/// Stores one gate validation, made in trace `trace_id`.
pub async fn insert_result(
    connection: &mut PgConnection,
    ticket_id: TicketId,
    phase: Phase,
    evaluation: &GateEvaluation,
    validated_by: &str,
    trace_id: Option<&str>,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::new_v4();
    sqlx::query(
        "insert into phase_gate_results (id, ticket_id, phase_id, gate_status, requirements_met, missing_artifacts, \
         blocking_reasons, validation_result, validated_by, trace_id) \
         values ($1, $2, $3::phase, $4::gate_status, $5, $6, $7, $8, $9, $10)",
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
    .bind(trace_id)
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
    /// the trace id of the request or step that judged the gate
    pub trace_id: Option<String>,
}

/// Every gate validation of a ticket, oldest first.
pub async fn results(
    connection: &mut PgConnection,
    ticket_id: TicketId,
) -> Result<Vec<GateResultRecord>, sqlx::Error> {
    let rows = sqlx::query(
        "select phase_id::text as phase_id, gate_status::text as gate_status, requirements_met, \
                missing_artifacts, blocking_reasons, validated_by, validated_at, trace_id \
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
                trace_id: row.try_get("trace_id")?,
            })
        })
        .collect()
}
