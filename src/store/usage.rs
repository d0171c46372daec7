//! What agents' work cost: one row per applied report (`task_usage`), and the sums of them.

use sqlx::{PgConnection, Row};

use chrono::NaiveDate;

use crate::domain::{Phase, TaskId, TicketId};
use phaseflow_client::budget::TicketBudget;
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

/// What a ticket's and an agent's spend came to with a report.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendAfter {
    /// the ticket's spend, with the report
    pub ticket: UsageTotal,
    /// the ticket's budget
    pub ticket_budget: TicketBudget,
    /// what the report added
    pub added: Usage,
    /// the reporting agent's spend that day, when it has a daily budget
    pub agent_day: Option<AgentDay>,
}

/// An agent's spend on one UTC day, against its daily budget.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentDay {
    pub day: NaiveDate,
    /// with the report
    pub spent: UsageTotal,
    /// its daily budget in US dollars
    pub daily_cost_usd: f64,
}

/// Records a report's usage and adds it to its ticket's spend and, when the agent has a daily
/// budget, to its spend of the day, in one statement; `None` when the request id was recorded
/// before (nothing is counted again). The ticket's row is locked by the caller; the agent's day
/// row is locked by the statement until the transaction ends, so the reports of an agent with a
/// daily budget add up one after the other. An agent without one takes no lock of its own (its
/// spend of the day is the sum of its rows).
pub async fn record(
    connection: &mut PgConnection,
    report: &UsageReport<'_>,
) -> Result<Option<SpendAfter>, sqlx::Error> {
    let row = sqlx::query(
        "with inserted as ( \
             insert into task_usage \
                 (request_id, ticket_id, task_id, phase_id, agent, input_tokens, output_tokens, cost_usd) \
             values ($1, $2, $3, $4::phase, $5, $6, $7, $8::float8::numeric) \
             on conflict (request_id) do nothing \
             returning ticket_id, agent, input_tokens, output_tokens, cost_usd, \
                 (recorded_at at time zone 'UTC')::date as day), \
         ticket as ( \
             update tickets t set \
                 spent_input_tokens = t.spent_input_tokens + i.input_tokens, \
                 spent_output_tokens = t.spent_output_tokens + i.output_tokens, \
                 spent_cost_usd = t.spent_cost_usd + i.cost_usd \
             from inserted i where t.id = i.ticket_id \
             returning t.spent_input_tokens, t.spent_output_tokens, \
                 t.spent_cost_usd::float8 as spent_cost_usd, t.budget_tokens, \
                 t.budget_cost_usd::float8 as budget_cost_usd), \
         budgeted as ( \
             select a.daily_cost_usd::float8 as daily_cost_usd from agents a \
             where a.agent_id = $5 and a.daily_cost_usd is not null), \
         daily as ( \
             insert into agent_daily_spend as d (agent, day, input_tokens, output_tokens, cost_usd) \
             select i.agent, i.day, i.input_tokens, i.output_tokens, i.cost_usd \
             from inserted i, budgeted \
             on conflict (agent, day) do update set \
                 input_tokens = d.input_tokens + excluded.input_tokens, \
                 output_tokens = d.output_tokens + excluded.output_tokens, \
                 cost_usd = d.cost_usd + excluded.cost_usd \
             returning d.day, d.input_tokens as day_input_tokens, \
                 d.output_tokens as day_output_tokens, d.cost_usd::float8 as day_cost_usd) \
         select ticket.*, daily.*, budgeted.daily_cost_usd \
         from ticket left join daily on true left join budgeted on true",
    )
    .bind(report.request_id)
    .bind(report.ticket_id.0)
    .bind(report.task_id.0)
    .bind(report.phase.as_str())
    .bind(report.agent)
    .bind(report.usage.input_tokens as i64)
    .bind(report.usage.output_tokens as i64)
    .bind(report.usage.cost_usd)
    .fetch_optional(connection)
    .await?;
    row.map(|row| {
        let agent_day = match (
            row.try_get::<Option<NaiveDate>, _>("day")?,
            row.try_get::<Option<f64>, _>("daily_cost_usd")?,
        ) {
            (Some(day), Some(daily_cost_usd)) => Some(AgentDay {
                day,
                spent: UsageTotal {
                    input_tokens: count(row.try_get("day_input_tokens")?),
                    output_tokens: count(row.try_get("day_output_tokens")?),
                    cost_usd: row.try_get("day_cost_usd")?,
                },
                daily_cost_usd,
            }),
            _ => None,
        };
        Ok(SpendAfter {
            ticket: super::budgets::spent_from(&row)?,
            ticket_budget: super::budgets::budget_from(&row)?,
            added: report.usage,
            agent_day,
        })
    })
    .transpose()
}

/// A count read from a `bigint` column that is never negative.
fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
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
