//! `task.heartbeat.requested`: its `data` and its wire facts (outcome events, rejection, HTTP
//! route, what it does). How the service applies it is the service's business.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{HttpRoute, Request};
use crate::events::event_type;
use crate::limits::{LEASE_SECONDS, NOT_BLANK_PATTERN};
use crate::usage::Usage;
use crate::{ClaimId, RejectionCode, TaskId};

/// The `data` of `task.heartbeat.requested`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HeartbeatTaskData {
    pub task_id: TaskId,
    #[serde(flatten)]
    pub renewal: LeaseRenewal,
}

/// How long a renewed lease lasts: the body of the HTTP heartbeat, where the path names the
/// task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LeaseRenewal {
    /// the claim the heartbeat is for (`claim_id` of `task.claimed`): refused with
    /// `lease_lost` when it is no longer the task's live claim
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_id: Option<ClaimId>,
    /// 10 to 86400; default: the length the claim asked for
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = *LEASE_SECONDS.start(), max = *LEASE_SECONDS.end()))]
    pub lease_seconds: Option<u32>,
    /// how far the work got: a heartbeat whose progress differs from the last one the task got
    /// counts as progress, and a task without progress for `tasks.stall_after_seconds` is
    /// reported stalled (`task.stalled`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// what the work cost since the agent's last report for this task
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// The longest progress `note`, in characters.
pub const PROGRESS_NOTE_MAX_CHARS: usize = 500;

/// The longest progress `step`, in characters.
pub const PROGRESS_STEP_MAX_CHARS: usize = 100;

/// What a heartbeat says about the work's progress; every field is optional (a progress that
/// gives none of them is no progress; no other member is taken).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    /// what the agent is doing now, in words (1 to 500 characters)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = PROGRESS_NOTE_MAX_CHARS), pattern(NOT_BLANK_PATTERN))]
    pub note: Option<String>,
    /// how much of the task is done, 0 to 100
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub percent: Option<u8>,
    /// the step the work is at (1 to 100 characters)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = PROGRESS_STEP_MAX_CHARS), pattern(NOT_BLANK_PATTERN))]
    pub step: Option<String>,
}

impl Request for HeartbeatTaskData {
    const TYPE: &'static str = "task.heartbeat.requested";
    const OUTCOMES: &'static [&'static str] = &[event_type::TASK_LEASE_EXTENDED];
    const REJECTION: Option<&'static str> = Some("task.heartbeat.rejected");
    const REJECTION_CODES: &'static [RejectionCode] = &[
        RejectionCode::TaskNotFound,
        RejectionCode::LeaseLost,
        RejectionCode::InvalidRequest,
    ];
    const ROUTE: Option<HttpRoute> = Some(HttpRoute::post(
        "/api/v1/tasks/{task_id}/heartbeat",
        200,
        "heartbeatTask",
    ));
    const TITLE: &'static str = "Renew the lease on a claimed task";
    const DESCRIPTION: &'static str = "Renew the lease on a task the agent holds: it now runs \
        out `lease_seconds` from now (default: as long as the claim asked). Only the holder of \
        a lease that has not run out may renew it. `progress` says how far the work got: a task \
        whose heartbeats report no new progress for `tasks.stall_after_seconds` is reported \
        stalled. A rejection carries `task_id`; `lease_lost` says why.";
}
