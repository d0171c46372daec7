//! What context aggregation reads and writes on a locked ticket: one statement that says whether
//! a phase's sources changed since the phase was last aggregated and, only when they did, reads
//! everything the aggregation needs (also embedded in a move's statement, for the phase the move
//! leaves); and one that writes the phase's context and the summary.
//!
//! No decisions here: the caller builds the context from what is read (`domain::context`).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgConnection, Row};

use crate::domain::{GateStatus, Phase, TaskStatus, TicketId};

use super::decode_enum;

/// What aggregating one phase needs.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseInputs {
    /// The fingerprint of what the phase's context is made of now (its completed tasks,
    /// artifacts and gate results), followed by the caller's `suffix`.
    pub sources: String,
    /// What the phase's context is made of; `None` when `sources` is the fingerprint recorded
    /// when the phase was last aggregated, so the stored context and summary stand.
    pub changed: Option<ChangedInputs>,
}

/// A phase's tasks, artifacts and latest gate result, and the ticket's whole context.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangedInputs {
    /// every task of the phase, oldest first
    pub tasks: Vec<PhaseTask>,
    /// the phase's artifacts, oldest first: type and path
    pub artifacts: Vec<(String, Option<String>)>,
    /// the latest gate validation of the phase: its status and blocking reasons
    pub gate: Option<(GateStatus, Vec<String>)>,
    /// the ticket's context, one key per aggregated phase
    pub context: Map<String, Value>,
}

/// A task of the phase, as far as its context cares.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseTask {
    pub task_type: String,
    pub status: TaskStatus,
    pub result: Option<Value>,
}

/// Where [`phase_inputs`] and the statements that embed it (`tickets::move_to_phase`) find the
/// ticket, the phase, its context key and the fingerprint's suffix: placeholders such as `$1`.
pub(super) struct InputsParams {
    pub ticket: &'static str,
    pub phase: &'static str,
    pub key: &'static str,
    pub suffix: &'static str,
}

/// The `with` entries (`fingerprint`, `stale`) that [`inputs_columns`] reads.
pub(super) fn inputs_ctes(p: &InputsParams) -> String {
    let InputsParams {
        ticket,
        phase,
        key,
        suffix,
    } = p;
    format!(
        "fingerprint as ( \
             select concat_ws(':', \
                 (select coalesce(max(seq), 0) from phase_gate_artifacts where ticket_id = {ticket} and phase_id = {phase}::phase), \
                 (select coalesce(max(seq), 0) from phase_gate_results where ticket_id = {ticket} and phase_id = {phase}::phase), \
                 (select count(*) || '/' || coalesce(max(extract(epoch from completed_at))::text, '') \
                    from tasks where ticket_id = {ticket} and phase_id = {phase}::phase and status = 'completed') \
             ) || {suffix} as sources), \
         stale as ( \
             select (select sources from fingerprint) is distinct from \
                    (select context_sources ->> {key} from tickets where id = {ticket}) as yes)"
    )
}

/// The columns [`inputs_from_row`] reads. The reads behind `tasks`, `artifacts`, `gate` and
/// `context` are skipped by Postgres when the fingerprint is unchanged.
pub(super) fn inputs_columns(p: &InputsParams) -> String {
    let InputsParams { ticket, phase, .. } = p;
    format!(
        "(select sources from fingerprint) as inputs_sources, \
         (select yes from stale) as inputs_stale, \
         case when (select yes from stale) then ( \
             select coalesce(jsonb_agg(jsonb_build_array(task_type, status::text, result) order by seq), '[]'::jsonb) \
             from tasks where ticket_id = {ticket} and phase_id = {phase}::phase) end as inputs_tasks, \
         case when (select yes from stale) then ( \
             select coalesce(jsonb_agg(jsonb_build_array(artifact_type, artifact_path) order by seq), '[]'::jsonb) \
             from phase_gate_artifacts where ticket_id = {ticket} and phase_id = {phase}::phase) end as inputs_artifacts, \
         case when (select yes from stale) then ( \
             select jsonb_build_array(gate_status::text, blocking_reasons) from phase_gate_results \
             where ticket_id = {ticket} and phase_id = {phase}::phase order by seq desc limit 1) end as inputs_gate, \
         case when (select yes from stale) then ( \
             select context from tickets where id = {ticket}) end as inputs_context"
    )
}

/// Reads, in one statement, the fingerprint of `phase`'s sources (with `suffix` appended) and,
/// when it differs from the one recorded under `key`, what the aggregation is made of.
pub async fn phase_inputs(
    connection: &mut PgConnection,
    id: TicketId,
    phase: Phase,
    key: &str,
    suffix: &str,
) -> Result<PhaseInputs, sqlx::Error> {
    let params = InputsParams {
        ticket: "$1",
        phase: "$2",
        key: "$3",
        suffix: "$4",
    };
    let statement = format!(
        "with {} select {}",
        inputs_ctes(&params),
        inputs_columns(&params)
    );
    let row = sqlx::query(AssertSqlSafe(statement))
        .bind(id.0)
        .bind(phase.as_str())
        .bind(key)
        .bind(suffix)
        .fetch_one(connection)
        .await?;
    inputs_from_row(&row)
}

/// Reads what [`inputs_columns`] selects.
pub(super) fn inputs_from_row(row: &PgRow) -> Result<PhaseInputs, sqlx::Error> {
    let sources: String = row.try_get("inputs_sources")?;
    if !row.try_get::<bool, _>("inputs_stale")? {
        return Ok(PhaseInputs {
            sources,
            changed: None,
        });
    }
    type TaskRow = (String, String, Option<Value>);
    let tasks: Json<Vec<TaskRow>> = row.try_get("inputs_tasks")?;
    let tasks = tasks
        .0
        .into_iter()
        .map(|(task_type, status, result)| {
            Ok(PhaseTask {
                task_type,
                status: decode_enum("status", &status)?,
                result,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let artifacts: Json<Vec<(String, Option<String>)>> = row.try_get("inputs_artifacts")?;
    let gate: Option<Json<(String, Value)>> = row.try_get("inputs_gate")?;
    let gate = gate
        .map(|Json((status, reasons))| {
            let reasons = reasons
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|item| item.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            Ok::<_, sqlx::Error>((decode_enum("gate_status", &status)?, reasons))
        })
        .transpose()?;
    let context = match row.try_get::<Option<Value>, _>("inputs_context")? {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    Ok(PhaseInputs {
        sources,
        changed: Some(ChangedInputs {
            tasks,
            artifacts: artifacts.0,
            gate,
            context,
        }),
    })
}

/// Writes one phase's context under its own key (other phases' keys are kept), the fingerprint
/// of its sources and the new summary.
pub async fn set_phase_context(
    connection: &mut PgConnection,
    id: TicketId,
    key: &str,
    phase_context: &Value,
    summary: &str,
    summary_tokens: usize,
    sources: &str,
) -> Result<DateTime<Utc>, sqlx::Error> {
    // the time is read after the ticket was locked, as for a move (`tickets::move_to_phase`)
    sqlx::query_scalar(
        "with moment as (select clock_timestamp() as at) \
         update tickets set context = context || jsonb_build_object($2::text, $3::jsonb), \
         context_sources = context_sources || jsonb_build_object($2::text, $5::text), \
         context_summary = $4, context_summary_tokens = $6, \
         context_updated_at = (select at from moment), updated_at = (select at from moment) \
         where id = $1 returning context_updated_at",
    )
    .bind(id.0)
    .bind(key)
    .bind(phase_context)
    .bind(summary)
    .bind(sources)
    .bind(i32::try_from(summary_tokens).unwrap_or(i32::MAX))
    .fetch_one(connection)
    .await
}
