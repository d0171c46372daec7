//! `task.release.requested`: the holder of a live lease gives the task back; it is pending
//! again, for anyone to claim. Its outcome is `task.released`. Only the holder of a lease that
//! has not run out may release it: anyone else gets `lease_lost`. An operator may release a
//! live lease whoever holds it with `force: true` (recorded as `released_by`); `force` from
//! anyone else is `forbidden`.

use serde_json::Value;

use crate::domain::{lease_refusal, ClaimId, TaskId, TicketId, REASON_MAX_CHARS};
use crate::protocol::events::TaskReleased;
use crate::protocol::fields::{Fields, Subject};
use crate::protocol::{Event, InvalidRequest, RejectionCode};
use crate::store::{self, PgConnection};

use super::{Applied, RequestKind};
use crate::workflow::events::EventLog;
use crate::workflow::leases::{fenced_off, lock_task, parse_claim_id, task_rejection};
use crate::workflow::{Workflow, WorkflowError};
pub use phaseflow_client::requests::release_task::{ReleaseNote, ReleaseTaskData};

/// A task given back.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseTask {
    /// `None` when the task is addressed by its id alone (HTTP)
    pub ticket_id: Option<TicketId>,
    pub task_id: TaskId,
    pub reason: Option<String>,
    /// an operator's release of a lease someone else holds
    pub force: bool,
    /// the claim given back, when it says
    pub claim_id: Option<ClaimId>,
}

impl ReleaseTask {
    /// Parses an HTTP release body, where the path names the task.
    pub fn parse_for_task(task_id: TaskId, data: Option<&Value>) -> Result<Self, InvalidRequest> {
        let mut fields = Fields::new(data);
        let reason = fields.optional_text("reason", REASON_MAX_CHARS);
        let force = fields.optional_bool("force").unwrap_or(false);
        let claim_id = parse_claim_id(&mut fields);
        let parsed = claim_id.map(|claim_id| ReleaseTask {
            ticket_id: None,
            task_id,
            reason,
            force,
            claim_id,
        });
        fields.finish(parsed)
    }
}

impl RequestKind for ReleaseTask {
    fn parse(subject: Subject<'_>, fields: &mut Fields<'_>) -> Option<Self> {
        let ticket_id = subject.required(fields);
        let task_id = fields.required_parsed::<TaskId>("task_id");
        let reason = fields.optional_text("reason", REASON_MAX_CHARS);
        let force = fields.optional_bool("force").unwrap_or(false);
        let claim_id = parse_claim_id(fields);
        Some(ReleaseTask {
            ticket_id: Some(ticket_id?),
            task_id: task_id?,
            reason,
            force,
            claim_id: claim_id?,
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
        let agent = log.actor();
        let locked = match lock_task(connection, self.task_id, self.ticket_id).await? {
            Ok(locked) => locked,
            Err(rejection) => return Ok(Applied::Rejected(rejection)),
        };
        if self.force && !workflow.is_operator(log) {
            return Ok(Applied::Rejected(task_rejection(
                RejectionCode::Forbidden,
                Some(locked.ticket.id),
                self.task_id,
                format!(
                    "force: only an operator may release a lease another agent holds, and \
                     {agent} is not one (operators are named in auth.operators)"
                ),
            )));
        }
        let now = store::claims::now(connection).await?;
        let hold = locked.hold();
        // an operator's force releases the lease of whoever holds it
        let holder = match hold.claimed_by {
            Some(holder) if self.force => holder,
            _ => agent,
        };
        let refusal =
            lease_refusal(&hold, holder, now).or_else(|| fenced_off(&locked, self.claim_id, now));
        if let Some(reason) = refusal {
            return Ok(Applied::Rejected(task_rejection(
                RejectionCode::LeaseLost,
                Some(locked.ticket.id),
                self.task_id,
                reason,
            )));
        }
        store::claims::release(connection, self.task_id).await?;
        Ok(Applied::Succeeded(Event::TaskReleased(TaskReleased {
            ticket_id: locked.ticket.id,
            task_id: self.task_id,
            released_by: agent.to_owned(),
            reason: self.reason.clone(),
        })))
    }
}
