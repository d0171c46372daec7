//! A ticket's budget and what its work cost, as `GET /api/v1/tickets/{ticket_id}/usage` and the
//! ticket view answer them. No I/O and no decisions here.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::optional_time;
use crate::domain::{Phase, TicketId};
use crate::store::budgets::TicketUsage;
use phaseflow_client::usage::UsageTotal;

/// A ticket's budget and what its work cost, as its agents reported it: in all, and by phase,
/// agent and task.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "TicketUsage")]
pub struct UsageView {
    pub ticket_id: TicketId,
    pub budget: BudgetView,
    pub spent: SpentView,
    /// by phase id
    pub by_phase: BTreeMap<String, SpentView>,
    /// by agent id
    pub by_agent: BTreeMap<String, SpentView>,
    /// by task id, with the task's type and phase
    pub by_task: BTreeMap<String, TaskSpentView>,
}

/// What a ticket may cost, and who set it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "TicketBudgetState")]
pub struct BudgetView {
    /// input and output tokens together (null: no limit)
    pub tokens: Option<u64>,
    /// US dollars (null: no limit)
    pub cost_usd: Option<f64>,
    /// the operator who changed it last (null: it is the one the ticket was created with)
    pub set_by: Option<String>,
    /// when it was changed last
    #[serde(with = "optional_time")]
    #[schemars(with = "Option<DateTime<Utc>>")]
    pub set_at: Option<DateTime<Utc>>,
}

/// What work cost.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Spent")]
pub struct SpentView {
    /// tokens the models read
    pub input_tokens: u64,
    /// tokens the models wrote
    pub output_tokens: u64,
    /// input and output tokens together (what a token budget counts)
    pub tokens: u64,
    /// US dollars
    pub cost_usd: f64,
}

impl From<&UsageTotal> for SpentView {
    fn from(total: &UsageTotal) -> Self {
        SpentView {
            input_tokens: total.input_tokens,
            output_tokens: total.output_tokens,
            tokens: total.input_tokens + total.output_tokens,
            cost_usd: total.cost_usd,
        }
    }
}

/// What one task's work cost.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "TaskSpent")]
pub struct TaskSpentView {
    pub task_type: String,
    pub phase_id: Phase,
    #[serde(flatten)]
    pub spent: SpentView,
}

impl UsageView {
    pub fn new(ticket_id: TicketId, usage: &TicketUsage) -> Self {
        UsageView {
            ticket_id,
            budget: BudgetView {
                tokens: usage.budget.tokens,
                cost_usd: usage.budget.cost_usd,
                set_by: usage.budget_set.as_ref().map(|(by, _)| by.clone()),
                set_at: usage.budget_set.as_ref().map(|(_, at)| *at),
            },
            spent: SpentView::from(&usage.spent),
            by_phase: usage
                .by_phase
                .iter()
                .map(|(phase, spent)| (phase.as_str().to_owned(), SpentView::from(spent)))
                .collect(),
            by_agent: usage
                .by_agent
                .iter()
                .map(|(agent, spent)| (agent.clone(), SpentView::from(spent)))
                .collect(),
            by_task: usage
                .by_task
                .iter()
                .map(|task| {
                    (
                        task.task_id.to_string(),
                        TaskSpentView {
                            task_type: task.task_type.clone(),
                            phase_id: task.phase,
                            spent: SpentView::from(&task.spent),
                        },
                    )
                })
                .collect(),
        }
    }
}
