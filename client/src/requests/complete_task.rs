//! `task.complete.requested`: its `data` and its wire facts (outcome events, rejection, HTTP route,
//! what it does). How the service applies it is the service's business.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::submit_artifact::ArtifactData;
use super::{HttpRoute, Request};
use crate::events::event_type;
use crate::limits::DESCRIPTION_MAX_CHARS;
use crate::usage::Usage;
use crate::{ClaimId, RejectionCode, TaskId};

/// The `data` of `task.complete.requested`: the task, and the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CompleteTaskData {
    pub task_id: TaskId,
    #[serde(flatten)]
    pub report: TaskReportData,
}

/// What an agent reports about a task: the body of the HTTP completion, where the path names
/// the task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskReportData {
    /// the claim the work was done under (`claim_id` of `task.claimed`): refused with
    /// `stale_claim`, recording nothing, when it is no longer the task's live claim
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_id: Option<ClaimId>,
    /// default `completed`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ReportedStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<TaskResult>,
    /// why the task failed; up to 100,000 characters
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = DESCRIPTION_MAX_CHARS))]
    pub error: Option<String>,
    /// what the work cost since the agent's last report for this task
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// What an agent may report a task as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportedStatus {
    /// done; it may not be reported again
    Completed,
    /// it may be reported again later
    Failed,
}

/// What a task produced. Its context feeds the ticket's context; its artifacts are collected
/// for the task's phase. Stored whole, with members of its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("additionalProperties" = true))]
pub struct TaskResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// anything the task produced
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<TaskContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Vec<ArtifactData>>,
}

/// What a task learned, for the ticket's context. Stored whole, with members of its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend("additionalProperties" = true))]
pub struct TaskContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decisions: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risks: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<Vec<Value>>,
}

impl Request for CompleteTaskData {
    const TYPE: &'static str = "task.complete.requested";
    const OUTCOMES: &'static [&'static str] =
        &[event_type::TASK_COMPLETED, event_type::TASK_FAILED];
    const REJECTION: Option<&'static str> = Some("task.complete.rejected");
    const REJECTION_CODES: &'static [RejectionCode] = &[
        RejectionCode::TaskNotFound,
        RejectionCode::TaskAlreadyFinished,
        RejectionCode::TaskClaimedByOther,
        RejectionCode::StaleClaim,
        RejectionCode::InvalidRequest,
    ];
    const ROUTE: Option<HttpRoute> = Some(HttpRoute::post(
        "/api/v1/tasks/{task_id}/complete",
        200,
        "completeTask",
    ));
    const TITLE: &'static str = "Report a task as completed or failed";
    const DESCRIPTION: &'static str = "Report a task as `completed` (default) or `failed`. The \
        artifacts in `result.artifacts` are collected for the task's phase. A `failed` task may \
        be reported again; a `completed` one may not. What its outcome sets off: when it was the last open task of the ticket's \
        current phase, `gate.validated` (actor `system`) and, with `auto_advance`, either \
        `phase.transitioned` + `phase.entered` to the next phase (gate passed) or, when the \
        PHASE_TESTING gate failed on the test results, to PHASE_IMPLEMENTATION (regression). \
        A task another agent holds a live lease on may not be reported by anyone else. \
        A rejection carries `task_id`.";
}
