//! Budgets: changing a ticket's, the alerts published once per limit value, an agent's spend of
//! the day, and what a ticket's work cost by phase, agent and task.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

use crate::domain::{Phase, TaskId, TicketId};
use phaseflow_client::budget::{BudgetLimit, TicketBudget};
use phaseflow_client::usage::UsageTotal;

use super::decode_enum;

/// Gives a locked ticket another budget, recording who set it.
pub async fn set_ticket_budget(
    connection: &mut PgConnection,
    ticket_id: TicketId,
    budget: &TicketBudget,
    set_by: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update tickets set budget_tokens = $2, budget_cost_usd = $3::float8::numeric, \
             budget_set_by = $4, budget_set_at = clock_timestamp() \
         where id = $1",
    )
    .bind(ticket_id.0)
    .bind(
        budget
            .tokens
            .map(|tokens| i64::try_from(tokens).unwrap_or(i64::MAX)),
    )
    .bind(budget.cost_usd)
    .bind(set_by)
    .execute(connection)
    .await?;
    Ok(())
}

/// Whose budget an alert is about.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AlertScope<'a> {
    Ticket(TicketId),
    /// an agent's spend on one UTC day
    AgentDay(&'a str, NaiveDate),
}

/// An alert to publish: a mark of a limit reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewAlert<'a> {
    pub scope: AlertScope<'a>,
    pub limit: BudgetLimit,
    /// `warning` or `exceeded`
    pub level: &'static str,
    pub budget: f64,
    pub spent: f64,
}

/// Records an alert; `false` when it was recorded before for this limit value (it is published
/// once).
pub async fn note_alert(
    connection: &mut PgConnection,
    alert: &NewAlert<'_>,
) -> Result<bool, sqlx::Error> {
    let (ticket, agent, day) = match alert.scope {
        AlertScope::Ticket(ticket) => (Some(ticket.0), None, None),
        AlertScope::AgentDay(agent, day) => (None, Some(agent), Some(day)),
    };
    let inserted = sqlx::query(
        "insert into budget_alerts (ticket_id, agent, day, limit_name, level, budget, spent) \
         values ($1, $2, $3, $4, $5, $6::float8::numeric, $7::float8::numeric) \
         on conflict (ticket_id, agent, day, limit_name, level, budget) do nothing",
    )
    .bind(ticket)
    .bind(agent)
    .bind(day)
    .bind(alert.limit.as_str())
    .bind(alert.level)
    .bind(alert.budget)
    .bind(alert.spent)
    .execute(connection)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// What an agent with a daily budget spent on the current UTC day, by the database's clock (its
/// day row; an agent without a daily budget has none).
pub async fn agent_spent_today(
    connection: &mut PgConnection,
    agent: &str,
) -> Result<UsageTotal, sqlx::Error> {
    let row = sqlx::query(
        "select input_tokens, output_tokens, cost_usd::float8 as cost_usd \
         from agent_daily_spend \
         where agent = $1 and day = (clock_timestamp() at time zone 'UTC')::date",
    )
    .bind(agent)
    .fetch_optional(connection)
    .await?;
    row.map(|row| total_from(&row))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// Counts an agent's spend of the current UTC day again from its usage rows, into its day row:
/// done when it is given a daily budget, since its reports add to the day row only while it has
/// one. The day row is locked first, so a report adding to it waits and adds after.
pub async fn recount_today(connection: &mut PgConnection, agent: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into agent_daily_spend (agent, day) \
         values ($1, (clock_timestamp() at time zone 'UTC')::date) \
         on conflict (agent, day) do nothing",
    )
    .bind(agent)
    .execute(&mut *connection)
    .await?;
    sqlx::query(
        "select 1 from agent_daily_spend \
         where agent = $1 and day = (clock_timestamp() at time zone 'UTC')::date for update",
    )
    .bind(agent)
    .execute(&mut *connection)
    .await?;
    sqlx::query(
        "update agent_daily_spend d set \
             input_tokens = u.input_tokens, output_tokens = u.output_tokens, cost_usd = u.cost_usd \
         from (select coalesce(sum(input_tokens), 0)::bigint as input_tokens, \
                      coalesce(sum(output_tokens), 0)::bigint as output_tokens, \
                      coalesce(sum(cost_usd), 0) as cost_usd \
               from task_usage \
               where agent = $1 and (recorded_at at time zone 'UTC')::date = \
                   (clock_timestamp() at time zone 'UTC')::date) u \
         where d.agent = $1 and d.day = (clock_timestamp() at time zone 'UTC')::date",
    )
    .bind(agent)
    .execute(connection)
    .await?;
    Ok(())
}

/// What each agent that spent anything on the current UTC day spent (only `agent_ids`, when
/// given): the sums of its usage rows recorded since midnight UTC.
pub async fn spent_today(
    pool: &PgPool,
    agent_ids: Option<&[String]>,
) -> Result<Vec<(String, UsageTotal)>, sqlx::Error> {
    let rows = sqlx::query(
        "select agent, sum(input_tokens)::bigint as input_tokens, \
             sum(output_tokens)::bigint as output_tokens, sum(cost_usd)::float8 as cost_usd \
         from task_usage \
         where recorded_at >= date_trunc('day', clock_timestamp() at time zone 'UTC') at time zone 'UTC' \
             and ($1::text[] is null or agent = any($1)) \
         group by agent order by agent",
    )
    .bind(agent_ids)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("agent")?, total_from(row)?)))
        .collect()
}

/// A ticket's budget and spend.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketUsage {
    pub budget: TicketBudget,
    /// who changed the budget last, and when
    pub budget_set: Option<(String, DateTime<Utc>)>,
    pub spent: UsageTotal,
    pub by_phase: Vec<(Phase, UsageTotal)>,
    pub by_agent: Vec<(String, UsageTotal)>,
    pub by_task: Vec<TaskSpend>,
}

/// What one task's work cost.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpend {
    pub task_id: TaskId,
    pub task_type: String,
    pub phase: Phase,
    pub spent: UsageTotal,
}

/// A ticket's budget and what its work cost in all and by phase, agent and task (tasks in the
/// order they were generated); `None` when the ticket does not exist.
pub async fn ticket_usage(
    connection: &mut PgConnection,
    ticket_id: TicketId,
) -> Result<Option<TicketUsage>, sqlx::Error> {
    let Some(ticket) = sqlx::query(
        "select budget_tokens, budget_cost_usd::float8 as budget_cost_usd, budget_set_by, \
             budget_set_at, spent_input_tokens, spent_output_tokens, \
             spent_cost_usd::float8 as spent_cost_usd \
         from tickets where id = $1",
    )
    .bind(ticket_id.0)
    .fetch_optional(&mut *connection)
    .await?
    else {
        return Ok(None);
    };
    let sums = "coalesce(sum(u.input_tokens), 0)::bigint as input_tokens, \
                coalesce(sum(u.output_tokens), 0)::bigint as output_tokens, \
                coalesce(sum(u.cost_usd), 0)::float8 as cost_usd";
    let by_phase = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select u.phase_id::text as phase_id, {sums} from task_usage u \
         where u.ticket_id = $1 group by u.phase_id order by u.phase_id"
    )))
    .bind(ticket_id.0)
    .fetch_all(&mut *connection)
    .await?
    .iter()
    .map(|row| {
        Ok((
            decode_enum("phase_id", row.try_get::<&str, _>("phase_id")?)?,
            total_from(row)?,
        ))
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let by_agent = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select u.agent, {sums} from task_usage u \
         where u.ticket_id = $1 group by u.agent order by u.agent"
    )))
    .bind(ticket_id.0)
    .fetch_all(&mut *connection)
    .await?
    .iter()
    .map(|row| Ok((row.try_get("agent")?, total_from(row)?)))
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let by_task = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select t.id, t.task_type, t.phase_id::text as phase_id, {sums} \
         from task_usage u join tasks t on t.id = u.task_id \
         where u.ticket_id = $1 \
         group by t.id order by t.seq"
    )))
    .bind(ticket_id.0)
    .fetch_all(&mut *connection)
    .await?
    .iter()
    .map(|row| {
        Ok(TaskSpend {
            task_id: TaskId(row.try_get("id")?),
            task_type: row.try_get("task_type")?,
            phase: decode_enum("phase_id", row.try_get::<&str, _>("phase_id")?)?,
            spent: total_from(row)?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Some(TicketUsage {
        budget: budget_from(&ticket)?,
        budget_set: ticket
            .try_get::<Option<String>, _>("budget_set_by")?
            .zip(ticket.try_get::<Option<DateTime<Utc>>, _>("budget_set_at")?),
        spent: spent_from(&ticket)?,
        by_phase,
        by_agent,
        by_task,
    }))
}

/// A ticket's budget from a row's `budget_tokens` and `budget_cost_usd` (read as `float8`).
pub(super) fn budget_from(row: &PgRow) -> Result<TicketBudget, sqlx::Error> {
    Ok(TicketBudget {
        tokens: row
            .try_get::<Option<i64>, _>("budget_tokens")?
            .and_then(|tokens| u64::try_from(tokens).ok()),
        cost_usd: row.try_get("budget_cost_usd")?,
    })
}

/// A ticket's spend from a row's `spent_input_tokens`, `spent_output_tokens` and
/// `spent_cost_usd` (read as `float8`).
pub(super) fn spent_from(row: &PgRow) -> Result<UsageTotal, sqlx::Error> {
    Ok(UsageTotal {
        input_tokens: u64::try_from(row.try_get::<i64, _>("spent_input_tokens")?).unwrap_or(0),
        output_tokens: u64::try_from(row.try_get::<i64, _>("spent_output_tokens")?).unwrap_or(0),
        cost_usd: row.try_get("spent_cost_usd")?,
    })
}

/// `input_tokens`, `output_tokens` and `cost_usd` of a row.
fn total_from(row: &PgRow) -> Result<UsageTotal, sqlx::Error> {
    Ok(UsageTotal {
        input_tokens: u64::try_from(row.try_get::<i64, _>("input_tokens")?).unwrap_or(0),
        output_tokens: u64::try_from(row.try_get::<i64, _>("output_tokens")?).unwrap_or(0),
        cost_usd: row.try_get("cost_usd")?,
    })
}
