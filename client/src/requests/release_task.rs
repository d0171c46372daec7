//! `task.release.requested`: its `data` and its wire facts (outcome events, rejection, HTTP route,
//! what it does). How the service applies it is the service's business.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{HttpRoute, Request};
use crate::events::event_type;
use crate::limits::REASON_MAX_CHARS;
use crate::{ClaimId, RejectionCode, TaskId};

/// The `data` of `task.release.requested`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReleaseTaskData {
    pub task_id: TaskId,
    #[serde(flatten)]
    pub note: ReleaseNote,
}

/// Why a task is given back: the body of the HTTP release, where the path names the task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReleaseNote {
    /// the claim given back (`claim_id` of `task.claimed`): refused with `lease_lost` when it
    /// is no longer the task's live claim
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_id: Option<ClaimId>,
    /// up to 10,000 characters
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = REASON_MAX_CHARS))]
    pub reason: Option<String>,
    /// operators only: release a live lease another agent holds; `null` as absent, `false`
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schemars(extend("type" = ["boolean", "null"]))]
    pub force: bool,
}

impl Request for ReleaseTaskData {
    const TYPE: &'static str = "task.release.requested";
    const OUTCOMES: &'static [&'static str] = &[event_type::TASK_RELEASED];
    const REJECTION: Option<&'static str> = Some("task.release.rejected");
    const REJECTION_CODES: &'static [RejectionCode] = &[
        RejectionCode::TaskNotFound,
        RejectionCode::LeaseLost,
        RejectionCode::Forbidden,
        RejectionCode::InvalidRequest,
    ];
    const ROUTE: Option<HttpRoute> = Some(HttpRoute::post(
        "/api/v1/tasks/{task_id}/release",
        200,
        "releaseTask",
    ));
    const TITLE: &'static str = "Give a claimed task back";
    const DESCRIPTION: &'static str = "Give back a task the agent holds: it is pending again, \
        for anyone to claim. Only the holder of a lease that has not run out may release it. A \
        rejection carries `task_id`; `lease_lost` says why. An operator \
        (`auth.operators`) may release a live lease whoever holds it with `force: true`; \
        `force` from anyone else is rejected with `forbidden`.";
}
