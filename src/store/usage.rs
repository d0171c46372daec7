//! What agents' work cost: one row per applied report (`task_usage`), and the sums of them.

use sqlx::{PgConnection, Row};

use crate::domain::{Phase, TaskId, TicketId};
use phaseflow_client::usage::{Usage, UsageTotal};

/// A report's usage, about one task.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageReport<'a> {
    /// the reporting request's id: a request counts once
    pub request_id: &'a str,
    pub ticket_id: TicketId,
    pub task_id: TaskId,
    pub phase: Phase,
    pub agent: &'a str,
    pub usage: Usage,
}

/// Records a report's usage; a request id recorded before is not counted again.
pub async fn record(
    connection: &mut PgConnection,
    report: &UsageReport<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into task_usage \
             (request_id, ticket_id, task_id, phase_id, agent, input_tokens, output_tokens, cost_usd) \
         values ($1, $2, $3, $4::phase, $5, $6, $7, $8::float8::numeric) \
         on conflict (request_id) do nothing",
    )
    .bind(report.request_id)
    .bind(report.ticket_id.0)
    .bind(report.task_id.0)
    .bind(report.phase.as_str())
    .bind(report.agent)
    .bind(report.usage.input_tokens as i64)
    .bind(report.usage.output_tokens as i64)
    .bind(report.usage.cost_usd)
    .execute(connection)
    .await?;
    Ok(())
}

/// What the task's work cost in all.
pub async fn task_total(
    connection: &mut PgConnection,
    task_id: TaskId,
) -> Result<UsageTotal, sqlx::Error> {
    let row = sqlx::query(
        "select coalesce(sum(input_tokens), 0)::bigint, coalesce(sum(output_tokens), 0)::bigint, \
                coalesce(sum(cost_usd), 0)::float8 \
         from task_usage where task_id = $1",
    )
    .bind(task_id.0)
    .fetch_one(connection)
    .await?;
    Ok(UsageTotal {
        input_tokens: u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0),
        output_tokens: u64::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0),
        cost_usd: row.try_get(2)?,
    })
}
