//! `task.claim.requested`: its `data` and its wire facts (outcome events, rejection, HTTP route,
//! what it does). How the service applies it is the service's business.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{HttpRoute, Request};
use crate::events::event_type;
use crate::limits::{LEASE_SECONDS, NOT_BLANK_PATTERN, SHORT_TEXT_MAX_CHARS};
use crate::{RejectionCode, TaskId, TicketId};

/// Most task types a claim may name.
pub const MAX_TASK_TYPES: usize = 50;

/// The `data` of `task.claim.requested`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClaimTaskData {
    /// a given task (of the ticket in `subject`, when given); without it, the next claimable
    /// task
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<TaskId>,
    /// only tasks of these types (up to 50, each 1 to 500 characters, not all whitespace);
    /// absent or empty: any
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = MAX_TASK_TYPES),
        inner(length(min = 1, max = SHORT_TEXT_MAX_CHARS), pattern(NOT_BLANK_PATTERN))
    )]
    pub task_types: Option<Vec<String>>,
    /// 10 to 86400; default `tasks.default_lease_seconds` (600)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = *LEASE_SECONDS.start(), max = *LEASE_SECONDS.end()))]
    pub lease_seconds: Option<u32>,
}

/// The body of the HTTP claim: the claim's `data`, and the ticket a message names in `subject`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClaimTaskBody {
    /// the ticket whose task to claim; absent: any ticket
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<TicketId>,
    #[serde(flatten)]
    pub claim: ClaimTaskData,
}

impl Request for ClaimTaskData {
    const TYPE: &'static str = "task.claim.requested";
    const OUTCOMES: &'static [&'static str] = &[event_type::TASK_CLAIMED];
    const REJECTION: Option<&'static str> = Some("task.claim.rejected");
    const REJECTION_CODES: &'static [RejectionCode] = &[
        RejectionCode::TaskNotFound,
        RejectionCode::TaskNotClaimable,
        RejectionCode::NoTaskAvailable,
        RejectionCode::ClaimLimitReached,
        RejectionCode::TicketNotFound,
        RejectionCode::InvalidRequest,
    ];
    const ROUTE: Option<HttpRoute> = Some(HttpRoute::post("/api/v1/tasks/claim", 200, "claimTask"));
    const TITLE: &'static str = "Claim a task for a lease";
    const DESCRIPTION: &'static str = "Claim a given task (`task_id`), or the next claimable \
        task of the ticket in `subject`, or of any ticket when there is no `subject`, optionally \
        only of `task_types`. A task is claimable when it is pending, belongs to its ticket's \
        current phase and every task it depends on is completed; the next one is the most \
        urgent (CRITICAL, HIGH, MEDIUM, LOW), then the oldest. The agent holds it until \
        `lease_expires_at` (`lease_seconds` from now) unless it heartbeats. A refusal of \
        `task_not_claimable` gives the reasons.";
    const OPTIONAL_SUBJECT: Option<&'static str> =
        Some("The ticket whose task to claim; without it, a task of any ticket.");
}
