//! Rejections: the outcome of a request that decoded but cannot be applied, published as its
//! `….rejected` event with `data` = `{"ticket_id", "code", "reasons": [..]}` plus details.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::wire::wire_enum;
use crate::{GateStatus, Phase, TaskId, TicketId};

/// The `data` of every `….rejected` event, as the generated documents describe it; a rejection
/// is built as a [`Rejection`] and written by [`Rejection::to_data`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RejectionData {
    /// null when the request named no valid ticket
    pub ticket_id: Option<TicketId>,
    pub code: RejectionCode,
    /// every problem found, each naming its field or rule
    pub reasons: Vec<String>,
    /// `phase.transition.rejected`: the ticket's phase (null when it does not exist)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_phase: Option<Option<Phase>>,
    /// `phase.transition.rejected`: the phase asked for (null when none was)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_phase: Option<Option<Phase>>,
    /// `gate_not_met`: the gate's status
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_status: Option<GateStatus>,
    /// `gate_not_met`: required artifact types not collected
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_artifacts: Option<Vec<String>>,
    /// `task.complete.rejected`, `task.claim.rejected`, `task.heartbeat.rejected`,
    /// `task.release.rejected`: the task named
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<TaskId>,
}

wire_enum! {
    /// Why a request was rejected: the `code` of its rejection event.
    pub enum RejectionCode, error UnknownRejectionCode("rejection code") {
        /// a ticket with the `subject` id exists
        AlreadyExists = "already_exists",
        /// `subject` or `data` is malformed; `reasons` lists every problem by field
        InvalidRequest = "invalid_request",
        /// no ticket with the `subject` id
        TicketNotFound = "ticket_not_found",
        /// the phase table does not allow the move (the reason lists what is allowed), or leaving
        /// PHASE_BLOCKED would skip a gate (the reason says where the ticket was blocked from)
        InvalidTransition = "invalid_transition",
        /// a forward move whose gate did not pass; `reasons` are the gate's blocking reasons
        GateNotMet = "gate_not_met",
        /// `expected_from_phase` is not the ticket's current phase
        PhaseMismatch = "phase_mismatch",
        /// no such task, or it belongs to another ticket than `subject`
        TaskNotFound = "task_not_found",
        /// the task is already `completed`
        TaskAlreadyFinished = "task_already_finished",
        /// the task is not free to claim now; `reasons` say why (finished, claimed by another
        /// until a time, dependencies unfinished, not in the current phase, ticket blocked or done)
        TaskNotClaimable = "task_not_claimable",
        /// no claimable task matched the claim
        NoTaskAvailable = "no_task_available",
        /// the agent holds no live lease on the task (another holds it, the lease ran out, or it
        /// is not claimed), or the `claim_id` quoted is not the task's live claim
        LeaseLost = "lease_lost",
        /// a report on a task another agent holds a live lease on
        TaskClaimedByOther = "task_claimed_by_other",
        /// the agent already holds as many live leases as it may (`agents.default_max_claims`);
        /// it may claim again once it reports, releases or loses one
        ClaimLimitReached = "claim_limit_reached",
        /// a claim of a ticket whose spend reached its budget, or by an agent whose spend today
        /// reached its daily budget
        BudgetExhausted = "budget_exhausted",
        /// a report quoting a `claim_id` that is not the task's live claim (its lease ran out,
        /// the task was released or claimed again); nothing was recorded
        StaleClaim = "stale_claim",
        /// no review of the phase as it is now is awaited
        ReviewNotRequested = "review_not_requested",
        /// the reviewer completed tasks of the phase
        ReviewerNotIndependent = "reviewer_not_independent",
        /// only an operator may do this (`force`)
        Forbidden = "forbidden",
    }
}

/// A decodable request that cannot be applied: answered with a `….rejected` event.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub code: RejectionCode,
    pub ticket_id: Option<TicketId>,
    pub reasons: Vec<String>,
    /// extra members of the rejection's `data` (`from_phase`, `to_phase`, `task_id`)
    pub details: Map<String, Value>,
}

impl Rejection {
    pub fn new(
        code: RejectionCode,
        ticket_id: Option<TicketId>,
        reason: impl Into<String>,
    ) -> Self {
        Rejection {
            code,
            ticket_id,
            reasons: vec![reason.into()],
            details: Map::new(),
        }
    }

    pub fn with_reasons(mut self, reasons: Vec<String>) -> Self {
        self.reasons = reasons;
        self
    }

    pub fn with_detail(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.details.insert(name.to_owned(), value.into());
        self
    }

    /// The rejection event's `data`.
    pub fn to_data(&self) -> Value {
        let mut data = Map::new();
        data.insert(
            "ticket_id".into(),
            self.ticket_id
                .map(|id| Value::String(id.to_string()))
                .unwrap_or(Value::Null),
        );
        data.insert("code".into(), Value::String(self.code.as_str().into()));
        data.insert(
            "reasons".into(),
            Value::Array(self.reasons.iter().cloned().map(Value::String).collect()),
        );
        for (name, value) in &self.details {
            data.insert(name.clone(), value.clone());
        }
        Value::Object(data)
    }
}

/// A request whose `subject` or `data` is wrong; every reason names its field.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidRequest {
    pub ticket_id: Option<TicketId>,
    pub reasons: Vec<String>,
    /// extra members of the rejection's `data` (a transition's `to_phase`)
    pub details: Map<String, Value>,
}

impl From<InvalidRequest> for Rejection {
    fn from(invalid: InvalidRequest) -> Self {
        let mut rejection = Rejection::new(RejectionCode::InvalidRequest, invalid.ticket_id, "")
            .with_reasons(invalid.reasons);
        rejection.details = invalid.details;
        rejection
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rejection_data_as_written_reads_as_its_documented_type() {
        let rejection = Rejection::new(RejectionCode::GateNotMet, Some(TicketId::new()), "no")
            .with_detail("from_phase", "PHASE_DESIGN")
            .with_detail("to_phase", Value::Null)
            .with_detail("gate_status", "failed")
            .with_detail("missing_artifacts", json!(["design_document"]));
        let data = rejection.to_data();
        let typed: RejectionData = serde_json::from_value(data).expect("documented shape");
        assert_eq!(typed.code, RejectionCode::GateNotMet);
        assert_eq!(typed.from_phase, Some(Some(Phase::Design)));
        assert_eq!(typed.gate_status, Some(GateStatus::Failed));
        assert_eq!(
            typed.missing_artifacts,
            Some(vec!["design_document".to_owned()])
        );
    }

    #[test]
    fn rejection_data_has_the_documented_members() {
        let rejection = Rejection::new(RejectionCode::GateNotMet, None, "missing artifact: x")
            .with_detail("from_phase", "PHASE_DESIGN");
        assert_eq!(
            rejection.to_data(),
            json!({"ticket_id": null, "code": "gate_not_met", "reasons": ["missing artifact: x"], "from_phase": "PHASE_DESIGN"})
        );
    }
}
