//! Budgets: which marks of a limit a spend has reached (80 % warns, 100 % stops claims), and
//! whether a spend has used a budget up.
//!
//! Pure rules: where spend and budgets are kept, and which alerts were already published, is the
//! workflow's and the store's business.

use phaseflow_client::budget::{Amount, BudgetLimit, TicketBudget, WARNING_SHARE};
use phaseflow_client::usage::{Usage, UsageTotal};

/// How far a spend has gone into a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// 80 % of the limit or more
    Warning,
    /// the whole limit or more
    Exceeded,
}

impl Level {
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::Warning => "warning",
            Level::Exceeded => "exceeded",
        }
    }
}

/// A mark of a limit that a spend has reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mark {
    pub limit: BudgetLimit,
    pub level: Level,
    pub budget: Amount,
    pub spent: Amount,
}

/// The marks `spent` has reached of `limit` (`budget` and `spent` in its unit), the lower first.
fn marks_of(limit: BudgetLimit, budget: Amount, spent: Amount) -> impl Iterator<Item = Mark> {
    let (budget_value, spent_value) = (budget.value(), spent.value());
    [
        (Level::Warning, spent_value >= budget_value * WARNING_SHARE),
        (Level::Exceeded, spent_value >= budget_value),
    ]
    .into_iter()
    .filter(|(_, reached)| *reached)
    .map(move |(level, _)| Mark {
        limit,
        level,
        budget,
        spent,
    })
}

/// The marks a ticket's spend has reached of its budget: tokens first, then money.
pub fn ticket_marks(budget: &TicketBudget, spent: &UsageTotal) -> Vec<Mark> {
    let tokens = budget.tokens.into_iter().flat_map(|tokens| {
        marks_of(
            BudgetLimit::Tokens,
            Amount::Tokens(tokens),
            Amount::Tokens(spent.input_tokens + spent.output_tokens),
        )
    });
    let cost = budget.cost_usd.into_iter().flat_map(|cost| {
        marks_of(
            BudgetLimit::CostUsd,
            Amount::Usd(cost),
            Amount::Usd(spent.cost_usd),
        )
    });
    tokens.chain(cost).collect()
}

/// The marks of a ticket's budget that a report of `added` took its spend across: reached with
/// the report (`after`), not before it. Spend is added up one report at a time under the
/// ticket's lock, so each mark is crossed by exactly one report.
pub fn ticket_marks_crossed(budget: &TicketBudget, after: &UsageTotal, added: &Usage) -> Vec<Mark> {
    let before = UsageTotal {
        input_tokens: after.input_tokens.saturating_sub(added.input_tokens),
        output_tokens: after.output_tokens.saturating_sub(added.output_tokens),
        cost_usd: (after.cost_usd - added.cost_usd).max(0.0),
    };
    let reached_before = ticket_marks(budget, &before);
    ticket_marks(budget, after)
        .into_iter()
        .filter(|mark| {
            !reached_before
                .iter()
                .any(|earlier| earlier.limit == mark.limit && earlier.level == mark.level)
        })
        .collect()
}

/// The marks an agent's spend of a day has reached of its daily budget.
pub fn daily_marks(daily_cost_usd: Option<f64>, spent_cost_usd: f64) -> Vec<Mark> {
    daily_cost_usd
        .into_iter()
        .flat_map(|budget| {
            marks_of(
                BudgetLimit::CostUsd,
                Amount::Usd(budget),
                Amount::Usd(spent_cost_usd),
            )
        })
        .collect()
}

/// The first limit of a ticket's budget its spend has used up, if any.
pub fn exhausted(budget: &TicketBudget, spent: &UsageTotal) -> Option<Mark> {
    ticket_marks(budget, spent)
        .into_iter()
        .find(|mark| mark.level == Level::Exceeded)
}

/// Why an agent may claim nothing more today, if its spend has used up its daily budget.
pub fn daily_refusal(
    agent: &str,
    daily_cost_usd: Option<f64>,
    spent_cost_usd: f64,
) -> Option<String> {
    daily_marks(daily_cost_usd, spent_cost_usd)
        .into_iter()
        .find(|mark| mark.level == Level::Exceeded)
        .map(|mark| {
            format!(
                "{agent} spent {} US dollars today (UTC) of its daily budget of {}: it may claim \
                 again tomorrow, or when an operator raises its daily_cost_usd",
                money(mark.spent.value()),
                money(mark.budget.value())
            )
        })
}

/// Why a ticket's tasks may not be claimed, if its spend has used up a limit.
pub fn ticket_refusal(
    ticket: impl std::fmt::Display,
    budget: &TicketBudget,
    spent: &UsageTotal,
) -> Option<String> {
    exhausted(budget, spent).map(|mark| {
        let (spent, budget) = match mark.limit {
            BudgetLimit::Tokens => (
                format!("{} tokens", mark.spent.value()),
                format!("{} tokens", mark.budget.value()),
            ),
            BudgetLimit::CostUsd => (
                format!("{} US dollars", money(mark.spent.value())),
                format!("{} US dollars", money(mark.budget.value())),
            ),
        };
        format!(
            "ticket {ticket} spent {spent} of its budget of {budget}: an operator raises the \
             budget (ticket.budget.set.requested) before its tasks may be claimed again"
        )
    })
}

/// Money as people read it: cents, more digits when a sum is smaller than a cent.
fn money(usd: f64) -> String {
    if usd != 0.0 && usd.abs() < 0.01 {
        format!("{usd}")
    } else {
        format!("{usd:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spent(tokens: u64, cost_usd: f64) -> UsageTotal {
        UsageTotal {
            input_tokens: tokens,
            output_tokens: 0,
            cost_usd,
        }
    }

    #[test]
    fn marks_are_reached_at_80_and_100_percent() {
        let budget = TicketBudget {
            tokens: Some(1000),
            cost_usd: Some(10.0),
        };
        assert!(ticket_marks(&budget, &spent(799, 7.99)).is_empty());
        let marks = ticket_marks(&budget, &spent(800, 1.0));
        assert_eq!(marks.len(), 1);
        assert_eq!(
            (marks[0].limit, marks[0].level),
            (BudgetLimit::Tokens, Level::Warning)
        );
        let marks = ticket_marks(&budget, &spent(1000, 10.0));
        let levels: Vec<_> = marks.iter().map(|mark| (mark.limit, mark.level)).collect();
        assert_eq!(
            levels,
            [
                (BudgetLimit::Tokens, Level::Warning),
                (BudgetLimit::Tokens, Level::Exceeded),
                (BudgetLimit::CostUsd, Level::Warning),
                (BudgetLimit::CostUsd, Level::Exceeded),
            ]
        );
    }

    #[test]
    fn a_report_crosses_only_the_marks_it_takes_the_spend_past() {
        let budget = TicketBudget {
            tokens: Some(1000),
            cost_usd: None,
        };
        let report = |tokens: u64| Usage {
            input_tokens: tokens,
            output_tokens: 0,
            cost_usd: 0.0,
        };
        let crossed = |after: u64, added: u64| -> Vec<Level> {
            ticket_marks_crossed(&budget, &spent(after, 0.0), &report(added))
                .iter()
                .map(|mark| mark.level)
                .collect()
        };
        assert_eq!(crossed(700, 100), []);
        assert_eq!(crossed(800, 100), [Level::Warning]);
        assert_eq!(crossed(900, 100), []);
        assert_eq!(crossed(1200, 300), [Level::Exceeded]);
        assert_eq!(crossed(1200, 500), [Level::Warning, Level::Exceeded]);
        assert_eq!(crossed(1000, 1000), [Level::Warning, Level::Exceeded]);
        assert_eq!(crossed(1500, 100), []);
    }

    #[test]
    fn tokens_count_both_directions() {
        let budget = TicketBudget {
            tokens: Some(100),
            cost_usd: None,
        };
        let total = UsageTotal {
            input_tokens: 60,
            output_tokens: 40,
            cost_usd: 0.0,
        };
        assert_eq!(
            exhausted(&budget, &total).map(|mark| mark.spent),
            Some(Amount::Tokens(100))
        );
    }

    #[test]
    fn no_budget_is_never_exhausted() {
        assert!(exhausted(&TicketBudget::default(), &spent(u64::MAX / 2, 1e9)).is_none());
        assert!(daily_refusal("a", None, 1e9).is_none());
    }

    #[test]
    fn a_daily_budget_stops_its_agent() {
        assert!(daily_refusal("dev-1", Some(5.0), 4.99).is_none());
        let reason = daily_refusal("dev-1", Some(5.0), 5.0).unwrap();
        assert!(reason.contains("5.00 US dollars today"), "{reason}");
    }
}
