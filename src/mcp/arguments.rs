//! The arguments and answers of the tools, as types: their JSON schemas are the tools'
//! `inputSchema` and `outputSchema`. They are built from the request `data` types of
//! `asyncapi.json` and the answer types of `openapi.json`, so a field means the same wherever it
//! appears. The tools read their arguments with the requests' own parsers (every problem named
//! by its field), not with these types: these describe, they do not validate.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::views::ContextView;
use crate::domain::{ClaimId, Phase, TaskId, TaskStatus, TicketId};
use crate::protocol::events::TaskClaimed;
use phaseflow_client::requests::claim_task::ClaimTaskData;
use phaseflow_client::requests::complete_task::{ReportedStatus, TaskResult};
use phaseflow_client::requests::submit_artifact::ArtifactData;
use phaseflow_client::usage::Usage;

/// A tool that takes no arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArguments {}

/// The arguments of `claim_task`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ClaimArguments {
    /// Claim a task of this ticket only (with `task_id`: the ticket the task must belong to).
    #[serde(default)]
    pub ticket_id: Option<TicketId>,
    #[serde(flatten)]
    pub claim: ClaimTaskData,
    /// Seconds to wait, when nothing is claimable now, for a task to become claimable (0 to
    /// 30; 0 or absent: answer at once).
    #[serde(default)]
    #[schemars(range(min = 0, max = 30))]
    pub wait_seconds: Option<u32>,
}

/// What `claim_task` answers: the claimed task with its phase's guidance and the ticket's
/// context for that phase; `{"task": null}` when no task could be claimed.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ClaimAnswer {
    /// The claim (the `task.claimed` data); null when no task could be claimed.
    pub task: Option<TaskClaimed>,
    /// The same members as `task`, at the top level (absent when no task was claimed).
    #[serde(flatten)]
    pub claimed: Option<TaskClaimed>,
    /// The ticket's context as an agent starting the task's phase should read it: what the
    /// phases before it decided and handed in, and the ticket's summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<ContextView>,
}

/// The arguments of `complete_task`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteArguments {
    /// The task being reported.
    pub task_id: TaskId,
    /// The claim the report is about (from `claim_task`); a report quoting a claim that is no
    /// longer the task's live claim is refused.
    #[serde(default)]
    pub claim_id: Option<ClaimId>,
    /// `completed` or `failed`.
    pub status: ReportedStatus,
    /// What the work produced: a summary, outputs, context for later phases, artifacts.
    #[serde(default)]
    pub result: Option<TaskResult>,
    /// Artifacts the task hands in (added to `result.artifacts`).
    #[serde(default)]
    pub artifacts: Option<Vec<ArtifactData>>,
    /// Why the task failed (with `status: failed`).
    #[serde(default)]
    pub error: Option<String>,
    /// What the work cost since the last report.
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// The arguments of a tool about a ticket: the ticket, and the request's `data`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TicketArguments<T> {
    /// The ticket.
    pub ticket_id: TicketId,
    #[serde(flatten)]
    pub data: T,
}

/// The arguments of `get_ticket`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketIdArgument {
    /// The ticket.
    pub ticket_id: TicketId,
}

/// The arguments of `get_context`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContextArguments {
    /// The ticket.
    pub ticket_id: TicketId,
    /// Only what the phases before this one (in the normal sequence) produced, as an agent
    /// entering it should read it; absent: the whole context.
    #[serde(default)]
    pub for_phase: Option<Phase>,
}

/// The arguments of `check_transition`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckArguments {
    /// The ticket.
    pub ticket_id: TicketId,
    /// The phase the ticket would move to.
    pub to_phase: Phase,
}

/// The arguments of `list_tasks`: the query of `GET /api/v1/tasks`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArguments {
    /// Only tasks in this status.
    #[serde(default)]
    pub status: Option<TaskStatus>,
    /// Only tasks of this type.
    #[serde(default)]
    pub task_type: Option<String>,
    /// true: only tasks this agent could claim now; false: only the others.
    #[serde(default)]
    pub claimable: Option<bool>,
    /// Only tasks of this ticket.
    #[serde(default)]
    pub ticket_id: Option<TicketId>,
    /// The most tasks to answer with (at least 1; at most `api.max_page_limit`).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}
