//! `phaseflow review-agent`: the reference validation agent. It answers every
//! `gate.review.requested` event with a verdict, a `gate.review.submit.requested` request,
//! judged by the rules of `[review_agent]` in the configuration: `approved`, with reasons that say
//! what was checked, or `changes_requested`, with one reason per failed rule.
//!
//! It is an example of an agent written against the public protocol only: it reads events from
//! the events exchange and publishes requests to the requests exchange, through
//! [`phaseflow_client::broker`], as an agent in any language would. It has no database access
//! and calls nothing of the workflow. It is usable as is, and as a template for an LLM-backed
//! reviewer: keep the loop ([`run`]) and judge with a model that reads the request's summary and
//! artifacts instead of with [`RuleSet::judge`].
//!
//! It depends on the protocol crate alone, so it cannot read or write Postgres nor call the
//! workflow: what it knows of
//! a ticket is what the event says, and what it remembers between reviews (the numbers
//! `not_below_previous` compares) lives in its process. It must not decide the gate either: the
//! worker does, from the verdict. It does not review a phase it authored, and it acknowledges an
//! event only once its verdict is published, so no review request is lost to a crash or a
//! restart.
//!
//! `judge` holds the rules and the verdict, pure and without I/O; `agent` the loop: the
//! subscription, the verdicts, reconnecting.

mod agent;
mod judge;
mod settings;

pub use agent::{
    check_settings, prepare, request_id, run, verdict_request, Prepared, REVIEW_REQUESTED,
    REVIEW_SUBMIT_REQUESTED,
};
pub use judge::{
    Check, Judgement, Memory, Observation, ReviewArtifact, ReviewRequested, Rule, RuleSet, Verdict,
};
pub use settings::{ReviewAgentSettings, ReviewRuleKind, ReviewRuleSettings};
