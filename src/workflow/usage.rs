//! Usage reports: the `usage` a heartbeat or task report may carry (tokens in, tokens out, money,
//! since the agent's last report for the task), read field by field and recorded with the
//! request that carried it, once per request id; and the task's total that `task.completed` and
//! `task.failed` publish.
//!
//! No SQL here (`store::usage`).

use phaseflow_client::usage::{Usage, UsageTotal, USAGE_COST_USD_MAX, USAGE_TOKENS_MAX};

use crate::protocol::fields::Fields;
use crate::store::usage::SpendAfter;
use crate::store::usage::UsageReport;
use crate::store::{self, tasks::TaskRecord, PgConnection};

use super::events::EventLog;
use super::WorkflowError;

/// The members of `usage`.
const USAGE_FIELDS: [&str; 3] = ["input_tokens", "output_tokens", "cost_usd"];

/// Reads the `usage` a heartbeat or report may carry: `Some(None)` when there is none (or it
/// counts nothing), `None` when it is malformed (a reason naming `usage.<field>` was added to
/// `fields` for each problem).
pub(crate) fn parse_usage(fields: &mut Fields<'_>) -> Option<Option<Usage>> {
    let Some(value) = fields.get("usage") else {
        return Some(None);
    };
    let Some(members) = value.as_object() else {
        fields
            .reasons
            .push("usage: must be a JSON object".to_owned());
        return None;
    };
    let mut reasons = Vec::new();
    for name in members.keys() {
        if !USAGE_FIELDS.contains(&name.as_str()) {
            reasons.push(format!(
                "usage.{name}: is not a field of usage ({})",
                USAGE_FIELDS.join(", ")
            ));
        }
    }
    // whole numbers as JSON Schema's `integer` takes them (`35` or `35.0`)
    let mut inner = Fields::new(Some(value));
    let tokens = 0..=u32::try_from(USAGE_TOKENS_MAX).unwrap_or(u32::MAX);
    let input_tokens = inner.optional_integer_in("input_tokens", tokens.clone());
    let output_tokens = inner.optional_integer_in("output_tokens", tokens);
    reasons.extend(
        inner
            .reasons
            .into_iter()
            .map(|reason| format!("usage.{reason}")),
    );
    let (input_tokens, output_tokens) = (
        u64::from(input_tokens.unwrap_or(0)),
        u64::from(output_tokens.unwrap_or(0)),
    );
    let cost_usd = match members.get("cost_usd") {
        None | Some(serde_json::Value::Null) => 0.0,
        Some(value) => match value
            .as_f64()
            .filter(|cost| cost.is_finite() && (0.0..=USAGE_COST_USD_MAX).contains(cost))
        {
            Some(cost) => cost,
            None => {
                reasons.push(format!(
                    "usage.cost_usd: must be a number from 0 to {USAGE_COST_USD_MAX}"
                ));
                0.0
            }
        },
    };
    if !reasons.is_empty() {
        fields.reasons.extend(reasons);
        return None;
    }
    let usage = Usage {
        input_tokens,
        output_tokens,
        cost_usd,
    };
    Some((!usage.is_zero()).then_some(usage))
}

/// Records the usage a request reported about `task`, under the request's id; returns the
/// ticket's and agent's spend with it (`None` when the request was recorded before), for
/// `workflow::budgets::after_spend`.
pub(crate) async fn record(
    connection: &mut PgConnection,
    log: &EventLog<'_>,
    task: &TaskRecord,
    usage: &Usage,
) -> Result<Option<SpendAfter>, WorkflowError> {
    let report = UsageReport {
        request_id: &log.origin().message_id,
        ticket_id: task.ticket_id,
        task_id: task.id,
        phase: task.phase,
        agent: log.actor(),
        usage: *usage,
    };
    let spend = store::usage::record(connection, &report).await?;
    if spend.is_some() {
        metrics::counter!("phaseflow_usage_tokens_total", "direction" => "input")
            .increment(usage.input_tokens);
        metrics::counter!("phaseflow_usage_tokens_total", "direction" => "output")
            .increment(usage.output_tokens);
        // a float: the exporter's counters count whole numbers
        metrics::gauge!("phaseflow_usage_cost_usd_total").increment(usage.cost_usd);
    }
    Ok(spend)
}

/// What the task's work cost in all, as its agents reported it.
pub(crate) async fn task_total(
    connection: &mut PgConnection,
    task: &TaskRecord,
) -> Result<UsageTotal, WorkflowError> {
    Ok(store::usage::task_total(connection, task.id).await?)
}
