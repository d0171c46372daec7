//! `task.complete.requested`: a task reported `completed` or `failed`, with the artifacts of
//! its result collected for the task's phase and what its work cost since the last report
//! (`usage`). Its outcome is `task.completed` or `task.failed`,
//! followed by what it sets off when it was the last open task of the ticket's current phase
//! (the gate, and with `auto_advance` the move on or the regression).

use serde_json::Value;

use crate::domain::{ClaimId, TaskId, TaskStatus, TicketId};
use crate::protocol::events::{CollectedArtifact, TaskFinished};
use crate::protocol::fields::{Fields, Subject, DESCRIPTION_MAX_CHARS};
use crate::protocol::{Event, InvalidRequest, RejectionCode};
use crate::store::{self, PgConnection};

use super::submit_artifact::ArtifactSubmission;
use super::{Applied, RequestKind};
use crate::workflow::budgets;
use crate::workflow::events::EventLog;
use crate::workflow::leases::{fenced_off, lock_task, parse_claim_id, task_rejection, LockedTask};
use crate::workflow::usage::{self, parse_usage};
use crate::workflow::{automation, Workflow, WorkflowError};
pub use phaseflow_client::requests::complete_task::{
    CompleteTaskData, ReportedStatus, TaskContext, TaskReportData, TaskResult,
};
use phaseflow_client::usage::Usage;

/// A task report.
#[derive(Debug, Clone, PartialEq)]
pub struct CompleteTask {
    /// `None` when the task is addressed by its id alone (HTTP)
    pub ticket_id: Option<TicketId>,
    pub task_id: TaskId,
    pub report: TaskReport,
}

/// What an agent reports about a task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskReport {
    /// `Completed` or `Failed`
    pub status: TaskStatus,
    pub result: Option<Value>,
    pub error: Option<String>,
    /// the `result.artifacts` entries, already validated
    pub artifacts: Vec<ArtifactSubmission>,
    /// the claim the work was done under, when it says
    pub claim_id: Option<ClaimId>,
    /// what the work cost since the agent's last report for the task, when it says
    pub usage: Option<Usage>,
}

impl CompleteTask {
    /// Parses an HTTP task completion body, where the path names the task.
    pub fn parse_for_task(
        task_id: TaskId,
        data: Option<&Value>,
    ) -> Result<CompleteTask, InvalidRequest> {
        let mut fields = Fields::new(data);
        let parsed =
            parse_report(&mut fields, Some(task_id)).map(|(task_id, report)| CompleteTask {
                ticket_id: None,
                task_id,
                report,
            });
        fields.finish(parsed)
    }
}

impl RequestKind for CompleteTask {
    fn parse(subject: Subject<'_>, fields: &mut Fields<'_>) -> Option<Self> {
        let ticket_id = subject.required(fields);
        parse_report(fields, None).map(|(task_id, report)| CompleteTask {
            ticket_id,
            task_id,
            report,
        })
    }

    fn ticket_id(&self) -> Option<TicketId> {
        self.ticket_id
    }

    async fn apply(
        &self,
        workflow: &Workflow,
        connection: &mut PgConnection,
        log: &mut EventLog<'_>,
    ) -> Result<Applied, WorkflowError> {
        let task_id = self.task_id;
        let rejected = |code: RejectionCode, ticket: TicketId, reason: String| {
            Ok(Applied::Rejected(task_rejection(
                code,
                Some(ticket),
                task_id,
                reason,
            )))
        };
        let locked = match lock_task(connection, task_id, self.ticket_id).await? {
            Ok(locked) => locked,
            Err(rejection) => return Ok(Applied::Rejected(rejection)),
        };
        if locked.task.status == TaskStatus::Completed {
            let reason = format!(
                "task {task_id} ({}) is already completed",
                locked.task.task_type
            );
            return rejected(RejectionCode::TaskAlreadyFinished, locked.ticket.id, reason);
        }
        if self.report.claim_id.is_some() {
            let now = store::claims::now(connection).await?;
            if let Some(reason) = fenced_off(&locked, self.report.claim_id, now) {
                return rejected(RejectionCode::StaleClaim, locked.ticket.id, reason);
            }
        }
        if locked.task.status == TaskStatus::Claimed {
            let now = store::claims::now(connection).await?;
            let hold = locked.hold();
            if let Some(holder) = hold
                .live_holder(now)
                .filter(|holder| *holder != log.actor())
            {
                let reason = format!(
                    "task {task_id} ({}) is claimed by {holder} until {}",
                    locked.task.task_type,
                    locked
                        .task
                        .lease_expires_at
                        .map(crate::protocol::events::time::format)
                        .unwrap_or_default()
                );
                return rejected(RejectionCode::TaskClaimedByOther, locked.ticket.id, reason);
            }
        }
        let LockedTask { ticket, task } = locked;
        let report = &self.report;
        let actor = log.actor();
        let others_open = store::tasks::finish(
            connection,
            task.id,
            report.status,
            report.result.as_ref(),
            report.error.as_deref(),
            actor,
            log.trace_id(),
        )
        .await?;
        let mut collected = Vec::with_capacity(report.artifacts.len());
        for artifact in &report.artifacts {
            let artifact_id = artifact
                .collect(
                    connection,
                    ticket.id,
                    task.phase,
                    actor,
                    Some(task.id),
                    log.trace_id(),
                )
                .await?;
            collected.push(CollectedArtifact {
                artifact_id,
                artifact_type: artifact.artifact_type.clone(),
            });
        }
        let spend = match &report.usage {
            Some(usage) => usage::record(connection, log, &task, usage).await?,
            None => None,
        };
        let usage = usage::task_total(connection, &task).await?;
        let finished = TaskFinished {
            ticket_id: ticket.id,
            task_id: task.id,
            phase_id: task.phase,
            task_type: task.task_type,
            status: report.status,
            artifacts_collected: collected,
            usage,
        };
        log.reserve_outcome();
        if task.phase == ticket.phase && !others_open {
            automation::after_phase_work_done(workflow, connection, log, &ticket).await?;
        }
        // after what finishing the task set off, so that a ticket whose budget it used up is
        // blocked from wherever that took it
        if let Some(spend) = spend {
            budgets::after_spend(workflow, connection, log, ticket.id, &spend).await?;
        }
        Ok(Applied::Succeeded(match report.status {
            TaskStatus::Failed => Event::TaskFailed(finished),
            _ => Event::TaskCompleted(finished),
        }))
    }
}

/// Reads a task report; the task is `task_id` from `data`, or `preset` when the caller names it
/// (an HTTP path).
fn parse_report(fields: &mut Fields<'_>, preset: Option<TaskId>) -> Option<(TaskId, TaskReport)> {
    let task_id = match preset {
        Some(task_id) => Some(task_id),
        None => fields.required_parsed::<TaskId>("task_id"),
    };
    let status = match fields.optional_text("status", 32).as_deref() {
        None | Some("completed") => Some(TaskStatus::Completed),
        Some("failed") => Some(TaskStatus::Failed),
        Some(other) => {
            fields
                .reasons
                .push(format!("status: `{other}` is not one of completed, failed"));
            None
        }
    };
    let error = fields.optional_text("error", DESCRIPTION_MAX_CHARS);
    let claim_id = parse_claim_id(fields);
    let usage = parse_usage(fields);
    let result = fields.optional_object("result");
    let mut artifacts = Vec::new();
    if let Some(Value::Object(result)) = &result {
        for name in ["summary"] {
            if let Some(value) = result.get(name) {
                if !value.is_string() && !value.is_null() {
                    fields
                        .reasons
                        .push(format!("result.{name}: must be a string"));
                }
            }
        }
        if let Some(Value::Object(context)) = result.get("context") {
            for name in ["decisions", "risks", "notes"] {
                if let Some(value) = context.get(name) {
                    if !value.is_array() && !value.is_null() {
                        fields
                            .reasons
                            .push(format!("result.context.{name}: must be an array"));
                    }
                }
            }
        } else if result.get("context").is_some_and(|value| !value.is_null()) {
            fields
                .reasons
                .push("result.context: must be an object".into());
        }
        match result.get("artifacts") {
            None | Some(Value::Null) => {}
            Some(Value::Array(entries)) => {
                for (index, entry) in entries.iter().enumerate() {
                    let mut entry_fields = Fields::new(Some(entry));
                    let prefix = format!("result.artifacts[{index}].");
                    if !entry.is_object() {
                        fields
                            .reasons
                            .push(format!("result.artifacts[{index}]: must be an object"));
                        continue;
                    }
                    if let Some(artifact) = ArtifactSubmission::parse(&mut entry_fields, &prefix) {
                        artifacts.push(artifact);
                    }
                    fields.reasons.append(&mut entry_fields.reasons);
                }
            }
            Some(_) => fields
                .reasons
                .push("result.artifacts: must be an array".into()),
        }
    }
    match (task_id, status, claim_id, usage) {
        (Some(task_id), Some(status), Some(claim_id), Some(usage)) => Some((
            task_id,
            TaskReport {
                status,
                result,
                error,
                artifacts,
                claim_id,
                usage,
            },
        )),
        _ => None,
    }
}
