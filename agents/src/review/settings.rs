//! The review agent's settings, as the `[review_agent]` table of phaseflow's configuration
//! holds them. They are read as written here; [`super::check_settings`] checks them when the
//! agent starts.

use serde::Deserialize;

/// `phaseflow review-agent`: who it is, where it waits for review requests, and the rules it
/// judges by. The rules are read here; `review_agent` checks them when it starts.
#[derive(Clone, Debug, Deserialize)]
pub struct ReviewAgentSettings {
    /// the reviewer's agent id, the `actor` of its verdicts
    pub agent_id: String,
    /// its durable queue, bound to the events exchange for `gate.review.requested`
    pub queue: String,
    /// how long it waits for the outcome of a verdict it published
    pub outcome_timeout_ms: u64,
    #[serde(default)]
    pub rules: Vec<ReviewRuleSettings>,
}

/// One `[[review_agent.rules]]` entry as written. Which keys a kind needs is checked when the
/// agent starts, with errors naming the rule's index.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewRuleSettings {
    pub kind: ReviewRuleKind,
    /// the artifact the rule judges, in the phase under review
    pub artifact_type: String,
    /// a field of its `artifact_content`, or a dotted path (`metrics.coverage`)
    pub field: String,
    /// when true, the artifact's absence fails the rule; otherwise the rule does not apply
    #[serde(default)]
    pub required: bool,
    /// `min_items`, `at_least`, `at_most`: the bound
    pub value: Option<f64>,
    /// `covers`: the artifact whose list must be covered (the phase's, else an earlier phase's)
    pub from_artifact_type: Option<String>,
    /// `covers`: the field of that artifact holding the list of strings
    pub from_field: Option<String>,
    /// `covers`: more fields of the judged artifact searched besides `field`
    #[serde(default)]
    pub also_fields: Vec<String>,
}

/// What a review rule checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewRuleKind {
    /// the field is a list of at least `value` items
    MinItems,
    /// the field is a number of at least `value`
    AtLeast,
    /// the field is a number of at most `value`
    AtMost,
    /// every string of another artifact's list appears in the field (case-insensitively)
    Covers,
    /// the field is a number not below the highest this agent saw for the ticket before
    NotBelowPrevious,
}
