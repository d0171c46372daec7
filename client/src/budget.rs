//! Budgets: what a ticket may cost, in tokens and in US dollars, and the alerts phaseflow
//! publishes as a ticket's (or an agent's daily) spend nears and reaches its budget.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The largest token budget a ticket may be given.
pub const BUDGET_TOKENS_MAX: u64 = 1_000_000_000_000;

/// The largest money budget a ticket may be given, in US dollars.
pub const BUDGET_COST_USD_MAX: f64 = 10_000_000.0;

/// The share of a limit whose reach publishes `budget.warning`.
pub const WARNING_SHARE: f64 = 0.8;

/// What a ticket may cost; a limit that is null is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TicketBudget {
    /// input and output tokens together (null: no limit)
    pub tokens: Option<u64>,
    /// US dollars (null: no limit)
    pub cost_usd: Option<f64>,
}

impl TicketBudget {
    /// Whether it limits nothing.
    pub fn is_unlimited(&self) -> bool {
        self.tokens.is_none() && self.cost_usd.is_none()
    }
}

/// A change of a ticket's budget (`ticket.budget.set.requested`, and the body of `PUT
/// /api/v1/tickets/{ticket_id}/budget`): a limit that is given replaces the ticket's, `null`
/// removes it, an absent one stays as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetChange {
    /// input and output tokens together, 1 to 1,000,000,000,000; `null` removes the limit,
    /// absent keeps it
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "present_or_null"
    )]
    #[schemars(
        with = "Option<u64>",
        range(min = 1, max = BUDGET_TOKENS_MAX)
    )]
    pub tokens: Option<Option<u64>>,
    /// US dollars, more than 0 and at most 10,000,000; `null` removes the limit, absent keeps
    /// it
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "present_or_null"
    )]
    #[schemars(
        with = "Option<f64>",
        extend("exclusiveMinimum" = 0),
        range(max = BUDGET_COST_USD_MAX)
    )]
    pub cost_usd: Option<Option<f64>>,
}

impl BudgetChange {
    /// The budget `current` becomes.
    pub fn applied_to(&self, current: TicketBudget) -> TicketBudget {
        TicketBudget {
            tokens: self.tokens.unwrap_or(current.tokens),
            cost_usd: self.cost_usd.unwrap_or(current.cost_usd),
        }
    }
}

/// A member that may be absent (`None`), `null` (`Some(None)`) or a value.
mod present_or_null {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(
        value: &Option<Option<T>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

/// Which limit an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BudgetLimit {
    /// input and output tokens together
    Tokens,
    /// US dollars
    CostUsd,
}

impl BudgetLimit {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            BudgetLimit::Tokens => "tokens",
            BudgetLimit::CostUsd => "cost_usd",
        }
    }
}

/// An amount of a limit: a whole number of tokens, or US dollars.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Amount {
    Tokens(u64),
    Usd(f64),
}

impl Amount {
    /// The amount as a number.
    pub fn value(self) -> f64 {
        match self {
            Amount::Tokens(tokens) => tokens as f64,
            Amount::Usd(usd) => usd,
        }
    }
}

/// `budget.warning` and `budget.exceeded`: a ticket's spend (or an agent's spend of a UTC day)
/// reached 80 % or 100 % of a limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BudgetAlert {
    /// the ticket whose budget it is (absent for an agent's daily budget)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<crate::TicketId>,
    /// the agent whose daily budget it is (absent for a ticket's budget)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    pub limit: BudgetLimit,
    /// what was spent when the mark was reached: tokens, or US dollars
    pub spent: Amount,
    /// the limit's value: tokens, or US dollars
    pub budget: Amount,
    /// the UTC day of an agent's daily budget (absent for a ticket's budget)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<NaiveDate>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_tells_absent_from_null() {
        let change: BudgetChange = serde_json::from_str(r#"{"tokens": null}"#).unwrap();
        assert_eq!(change.tokens, Some(None));
        assert_eq!(change.cost_usd, None);
        let current = TicketBudget {
            tokens: Some(10),
            cost_usd: Some(2.5),
        };
        assert_eq!(
            change.applied_to(current),
            TicketBudget {
                tokens: None,
                cost_usd: Some(2.5)
            }
        );
        let change: BudgetChange = serde_json::from_str(r#"{"cost_usd": 4}"#).unwrap();
        assert_eq!(change.applied_to(current).cost_usd, Some(4.0));
        assert_eq!(
            serde_json::to_value(change).unwrap(),
            serde_json::json!({"cost_usd": 4.0})
        );
    }

    #[test]
    fn amounts_keep_whole_tokens_whole() {
        assert_eq!(serde_json::to_string(&Amount::Tokens(800)).unwrap(), "800");
        assert_eq!(serde_json::to_string(&Amount::Usd(1.5)).unwrap(), "1.5");
    }
}
