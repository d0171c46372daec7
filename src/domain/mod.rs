//! The workflow's rules, as pure code: phases and their transition table, task templates,
//! gates and their evaluation, phase context and its token-bounded summary, agent guidance, and
//! the loading of the configurable parts (templates, gates and guidance) from TOML.
//!
//! Everything here is a function of its arguments, and must not do I/O: the `store`, `workflow`
//! and `messaging` layers bring the data in and act on the answers. The domain may use chrono to
//! parse and compare times, but never reads the clock (no `Utc::now`, `SystemTime` or `Instant`
//! outside one unit test that times itself): times are supplied by the caller. It must not import
//! the database driver, the AMQP client, the async runtime or the logging crates: no file here
//! but this one names `sqlx`, `lapin`, `tokio`, `tracing` or `log`.

pub mod agent;
pub mod budget;
pub mod context;
pub mod definition;
pub mod gate;
pub mod lease;
pub mod phase;
pub mod review;
pub mod template;

pub use agent::{AgentProfile, ANY_ROLE};
pub use context::{
    aggregate_phase, count_tokens, merge_phase, summarize, ArtifactRef, GateOutcome, PhaseContext,
    Summary, TaskContextEntry, TaskRecord, TicketBrief, CONTEXT_FORMAT_VERSION,
};
pub use definition::{DefinitionError, WorkflowDefinition};
pub use gate::{
    evaluate, evaluate_in, ArtifactRule, ArtifactSnapshot, GateEvaluation, GateRequirement,
    GateSet, GateStatus, RuleCheck, TaskSnapshot,
};
pub use lease::{
    claim_refusals, expire, fence_refusal, lease_refusal, Expiry, Hold, LeasePolicy, LEASE_SECONDS,
};
pub use phase::{InvalidTransition, Phase, PhaseRules, Transition, TransitionKind, UnknownPhase};
pub use phaseflow_client::guidance;
pub use phaseflow_client::ticket;
pub use phaseflow_client::Guidance;
pub use review::{
    apply_review, independence_refusal, PhaseState, ReviewSeen, Verdict, AWAITING_REVIEW,
};
pub use template::{plan_tasks, render, PlannedTask, TaskTemplate, TemplateSet, TemplateVars};
pub use ticket::{
    ClaimId, Priority, TaskId, TaskStatus, TicketId, UnknownPriority, UnknownTaskStatus,
    REASON_MAX_CHARS, TITLE_MAX_CHARS,
};
