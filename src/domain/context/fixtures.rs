//! What the unit tests of aggregation and of the summary share: the ticket the summaries are
//! about, and a design phase aggregated from finished and unfinished tasks.
//!
//! Only tests compile it; it must hold fixtures, not tests.

use serde_json::{json, Value};

use super::{aggregate_phase, ArtifactRef, GateOutcome, PhaseContext, TaskRecord, TicketBrief};
use crate::domain::gate::GateStatus;
use crate::domain::phase::Phase;
use crate::domain::ticket::{Priority, TaskStatus};

/// The ticket the summaries in these tests are about.
pub(super) const TICKET: TicketBrief<'static> = TicketBrief {
    title: "Single sign-on",
    priority: Priority::High,
    description: "Log in with the company IdP",
};

/// A task of `task_type` in `status` that reported `result`.
pub(super) fn record<'a>(
    task_type: &'a str,
    status: TaskStatus,
    result: &'a Value,
) -> TaskRecord<'a> {
    TaskRecord {
        task_type,
        status,
        result: Some(result),
    }
}

/// A design phase, aggregated at 2024-05-01T10:00:00Z from two completed tasks
/// (one reporting decisions, risks and notes under `context`, one a single decision) and an
/// unfinished one, with a design document collected and the gate passed.
pub(super) fn design_context() -> PhaseContext {
    let architecture = json!({
        "summary": "Chose a hexagonal layout",
        "outputs": {"modules": 4},
        "context": {
            "decisions": ["Use Postgres for state"],
            "risks": ["RabbitMQ outage stalls progress"],
            "notes": ["Consider sharding later"]
        }
    });
    let doc = json!({"summary": "Wrote docs/design.md", "context": {"decisions": "One queue per handler"}});
    let unfinished = json!({"summary": "never shown"});
    aggregate_phase(
        Phase::Design,
        &[
            record("design_architecture", TaskStatus::Completed, &architecture),
            record("create_design_doc", TaskStatus::Completed, &doc),
            record("review", TaskStatus::Pending, &unfinished),
        ],
        &[ArtifactRef {
            artifact_type: "design_document".into(),
            artifact_path: Some("docs/design.md".into()),
        }],
        Some(GateOutcome {
            gate_status: GateStatus::Passed,
            blocking_reasons: vec![],
        }),
        "2024-05-01T10:00:00Z".into(),
    )
}
