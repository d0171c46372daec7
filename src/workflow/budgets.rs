//! Budgets as the workflow applies them: the configured default of a new ticket's budget; after
//! a report's spend (or a change of budget), the alerts its marks call for, each published once
//! per limit value, and the ticket's move to BLOCKED when its spend used a limit up; and the
//! refusal of claims of a ticket, or by an agent, whose budget is used up.
//!
//! No SQL here (`store::budgets`, `store::usage`).

use serde_json::{Map, Value};

use crate::domain::budget::{self, Level, Mark};
use crate::domain::{AgentProfile, Phase, PhaseRules, TicketId};
use crate::protocol::fields::whole_number;
use crate::protocol::{Event, Rejection, RejectionCode, SYSTEM_ACTOR};
use crate::store::budgets::{AlertScope, NewAlert};
use crate::store::tickets::TicketRecord;
use crate::store::usage::SpendAfter;
use crate::store::{self, PgConnection};
use phaseflow_client::budget::{
    BudgetAlert, BudgetChange, TicketBudget, BUDGET_COST_USD_MAX, BUDGET_TOKENS_MAX,
};

use super::automation::{self, Announce, Move};
use super::events::EventLog;
use super::{Workflow, WorkflowError};

/// What budgets are when nobody says (`budgets.*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetPolicy {
    /// the budget of a ticket created without one
    pub ticket_default: TicketBudget,
    /// move a ticket whose spend used a limit up to PHASE_BLOCKED
    pub block_when_exceeded: bool,
}

impl Default for BudgetPolicy {
    fn default() -> Self {
        BudgetPolicy {
            ticket_default: TicketBudget::default(),
            block_when_exceeded: true,
        }
    }
}

/// The reason of a move to BLOCKED because a limit was used up.
fn block_reason(mark: &Mark) -> String {
    format!("budget exceeded: {}", mark.limit.as_str())
}

/// After a report added to the spend of a ticket (locked by the caller) and of an agent:
/// publishes the alerts of the marks reached for the first time at these limit values and, when
/// the ticket's spend used a limit up for the first time, moves it to BLOCKED (with
/// `budgets.block_when_exceeded`). Returns whether the ticket moved.
pub(crate) async fn after_spend(
    workflow: &Workflow,
    connection: &mut PgConnection,
    log: &mut EventLog<'_>,
    ticket: TicketId,
    spend: &SpendAfter,
) -> Result<bool, WorkflowError> {
    if let Some(day) = &spend.agent_day {
        for mark in budget::daily_marks(Some(day.daily_cost_usd), day.spent.cost_usd) {
            let scope = AlertScope::AgentDay(log.actor(), day.day);
            publish_alert(connection, log, scope, &mark).await?;
        }
    }
    // the ticket's spend is added up under its lock: only the report that crosses a mark
    // publishes its alert (an agent's marks are tried on every report past them, since its
    // budget may be given when its day's spend is already past them)
    let marks = budget::ticket_marks_crossed(&spend.ticket_budget, &spend.ticket, &spend.added);
    ticket_alerts(workflow, connection, log, ticket, marks).await
}

/// Publishes the alerts of the marks of a locked ticket not published before, and blocks the
/// ticket when one of them is a limit used up. Returns whether the ticket moved.
async fn ticket_alerts(
    workflow: &Workflow,
    connection: &mut PgConnection,
    log: &mut EventLog<'_>,
    ticket: TicketId,
    marks: Vec<Mark>,
) -> Result<bool, WorkflowError> {
    let mut used_up = None;
    for mark in marks {
        let published = publish_alert(connection, log, AlertScope::Ticket(ticket), &mark).await?;
        if published && mark.level == Level::Exceeded && used_up.is_none() {
            used_up = Some(mark);
        }
    }
    let Some(mark) = used_up.filter(|_| workflow.budgets.block_when_exceeded) else {
        return Ok(false);
    };
    // read again: what the request set off may have moved the ticket (the lock is ours)
    let Some(ticket) = store::tickets::lock(connection, ticket).await? else {
        return Ok(false);
    };
    if ticket.phase.classify_transition(Phase::Blocked).is_err() {
        return Ok(false);
    }
    let reason = block_reason(&mark);
    let artifacts = Value::Object(Map::new());
    let change = Move {
        to: Phase::Blocked,
        kind: crate::domain::TransitionKind::Block,
        reason: &reason,
        actor: SYSTEM_ACTOR,
        artifacts: &artifacts,
        forced: false,
    };
    automation::move_ticket(
        workflow,
        connection,
        log,
        &ticket,
        &change,
        Announce::AsConsequence,
    )
    .await?;
    metrics::counter!("phaseflow_budget_blocks_total").increment(1);
    Ok(true)
}

/// Publishes a mark's alert unless it was published before for this limit value; returns
/// whether it was published now.
async fn publish_alert(
    connection: &mut PgConnection,
    log: &mut EventLog<'_>,
    scope: AlertScope<'_>,
    mark: &Mark,
) -> Result<bool, WorkflowError> {
    let alert = NewAlert {
        scope,
        limit: mark.limit,
        level: mark.level.as_str(),
        budget: mark.budget.value(),
        spent: mark.spent.value(),
    };
    if !store::budgets::note_alert(connection, &alert).await? {
        return Ok(false);
    }
    let (ticket_id, agent_id, day) = match scope {
        AlertScope::Ticket(ticket) => (Some(ticket), None, None),
        AlertScope::AgentDay(agent, day) => (None, Some(agent.to_owned()), Some(day)),
    };
    let data = BudgetAlert {
        ticket_id,
        agent_id,
        limit: mark.limit,
        spent: mark.spent,
        budget: mark.budget,
        day,
    };
    let event = match mark.level {
        Level::Warning => Event::BudgetWarning(data),
        Level::Exceeded => Event::BudgetExceeded(data),
    };
    metrics::counter!(
        "phaseflow_budget_alerts_total",
        "level" => mark.level.as_str(),
        "scope" => if ticket_id.is_some() { "ticket" } else { "agent" }
    )
    .increment(1);
    log.emit(SYSTEM_ACTOR, event);
    Ok(true)
}

/// Gives a locked ticket another budget (set by the actor) and does what a report reaching the
/// new budget's marks would. Returns the budget as it is now.
pub(crate) async fn set_ticket_budget(
    workflow: &Workflow,
    connection: &mut PgConnection,
    log: &mut EventLog<'_>,
    ticket: &TicketRecord,
    budget: TicketBudget,
) -> Result<TicketBudget, WorkflowError> {
    store::budgets::set_ticket_budget(connection, ticket.id, &budget, log.actor()).await?;
    let marks = budget::ticket_marks(&budget, &ticket.spent);
    ticket_alerts(workflow, connection, log, ticket.id, marks).await?;
    Ok(budget)
}

/// `budget_exhausted` for a claim by an agent whose spend today used its daily budget up.
pub(crate) async fn agent_refusal(
    connection: &mut PgConnection,
    agent: &str,
    profile: &AgentProfile,
    ticket_id: Option<TicketId>,
) -> Result<Option<Rejection>, WorkflowError> {
    let Some(daily) = profile.daily_cost_usd else {
        return Ok(None);
    };
    let spent = store::budgets::agent_spent_today(connection, agent).await?;
    Ok(budget::daily_refusal(agent, Some(daily), spent.cost_usd)
        .map(|reason| Rejection::new(RejectionCode::BudgetExhausted, ticket_id, reason)))
}

/// `budget_exhausted` for a claim of a task of a locked ticket whose spend used a limit up.
pub(crate) fn ticket_refusal(ticket: &TicketRecord) -> Option<Rejection> {
    budget::ticket_refusal(ticket.id, &ticket.budget, &ticket.spent)
        .map(|reason| Rejection::new(RejectionCode::BudgetExhausted, Some(ticket.id), reason))
}

/// The members of a budget.
const BUDGET_FIELDS: [&str; 2] = ["tokens", "cost_usd"];

/// Reads a budget's limits from `value` (a new ticket's `budget`, or a change's `data`): each
/// of `tokens` and `cost_usd` absent, `null` or within its bounds, and no other member. `None`
/// when malformed, with a reason naming `<prefix><field>` added to `reasons` for each problem.
pub(crate) fn parse_limits(
    value: &Value,
    prefix: &str,
    reasons: &mut Vec<String>,
) -> Option<BudgetChange> {
    let Some(members) = value.as_object() else {
        let name = prefix.trim_end_matches('.');
        reasons.push(format!("{name}: must be a JSON object"));
        return None;
    };
    let before = reasons.len();
    for name in members.keys() {
        if !BUDGET_FIELDS.contains(&name.as_str()) {
            reasons.push(format!(
                "{prefix}{name}: is not a limit of a budget ({})",
                BUDGET_FIELDS.join(", ")
            ));
        }
    }
    let tokens = members.get("tokens").map(|tokens| match tokens {
        Value::Null => None,
        value => {
            let tokens =
                whole_number(value).filter(|tokens| (1..=BUDGET_TOKENS_MAX).contains(tokens));
            if tokens.is_none() {
                reasons.push(format!(
                    "{prefix}tokens: must be a whole number from 1 to {BUDGET_TOKENS_MAX}, or null"
                ));
            }
            tokens
        }
    });
    let cost_usd = members.get("cost_usd").map(|cost| match cost {
        Value::Null => None,
        value => {
            let cost = value
                .as_f64()
                .filter(|cost| cost.is_finite() && *cost > 0.0 && *cost <= BUDGET_COST_USD_MAX);
            if cost.is_none() {
                reasons.push(format!(
                    "{prefix}cost_usd: must be a number more than 0 and at most \
                     {BUDGET_COST_USD_MAX}, or null"
                ));
            }
            cost
        }
    });
    (reasons.len() == before).then_some(BudgetChange { tokens, cost_usd })
}
