//! What an agent's work cost: tokens read and written by its model, and money. Agents report it
//! as increments, with heartbeats and task reports; phaseflow keeps every report and adds them
//! up per task, phase, ticket and agent.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The most tokens of each direction one report may carry.
pub const USAGE_TOKENS_MAX: u64 = 1_000_000_000;

/// The most money one report may carry, in US dollars.
pub const USAGE_COST_USD_MAX: f64 = 100_000.0;

/// Tokens and money an agent reports: what its work on a task cost since its last report for
/// the task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// tokens the model read; 0 to 1,000,000,000 in one report
    #[serde(default)]
    #[schemars(range(max = USAGE_TOKENS_MAX))]
    pub input_tokens: u64,
    /// tokens the model wrote; 0 to 1,000,000,000 in one report
    #[serde(default)]
    #[schemars(range(max = USAGE_TOKENS_MAX))]
    pub output_tokens: u64,
    /// money spent, in US dollars; 0 to 100,000 in one report
    #[serde(default)]
    #[schemars(range(min = 0, max = USAGE_COST_USD_MAX))]
    pub cost_usd: f64,
}

impl Usage {
    /// Input and output tokens together.
    pub fn tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    /// Whether it counts nothing.
    pub fn is_zero(&self) -> bool {
        self.input_tokens == 0 && self.output_tokens == 0 && self.cost_usd == 0.0
    }
}

/// What work cost in all: the sum of what its agents reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UsageTotal {
    /// tokens the model read
    pub input_tokens: u64,
    /// tokens the model wrote
    pub output_tokens: u64,
    /// money spent, in US dollars
    pub cost_usd: f64,
}
