//! `task.heartbeat.requested`: the holder of a live lease renews it, from now, for as long as
//! the claim asked (or for `lease_seconds`), and may say how far the work got (`progress`): a
//! progress that differs from the last one the task got keeps it from counting as stalled, and
//! what the work cost since the last report (`usage`, recorded once per request id). Its
//! outcome is `task.lease.extended`. Only the holder of a lease that has not run out may renew
//! it: anyone else gets `lease_lost`.

use serde_json::Value;

use crate::domain::{lease_refusal, ClaimId, TaskId, TicketId, LEASE_SECONDS};
use crate::protocol::events::TaskLeaseExtended;
use crate::protocol::fields::{is_blank, Fields, Subject};
use crate::protocol::{Event, InvalidRequest, RejectionCode};
use crate::store::{self, PgConnection};

use super::{Applied, RequestKind};
use crate::workflow::budgets;
use crate::workflow::events::EventLog;
use crate::workflow::leases::{fenced_off, lock_task, parse_claim_id, task_rejection};
use crate::workflow::usage::{self, parse_usage};
use crate::workflow::{Workflow, WorkflowError};
pub use phaseflow_client::requests::heartbeat_task::{
    HeartbeatTaskData, LeaseRenewal, Progress, PROGRESS_NOTE_MAX_CHARS, PROGRESS_STEP_MAX_CHARS,
};
use phaseflow_client::usage::Usage;

/// A lease renewal.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatTask {
    /// `None` when the task is addressed by its id alone (HTTP)
    pub ticket_id: Option<TicketId>,
    pub task_id: TaskId,
    pub lease_seconds: Option<u32>,
    /// the claim the heartbeat is for, when it says
    pub claim_id: Option<ClaimId>,
    /// how far the work got, when it says
    pub progress: Option<Value>,
    /// what the work cost since the agent's last report for the task, when it says
    pub usage: Option<Usage>,
}

impl HeartbeatTask {
    /// Parses an HTTP heartbeat body, where the path names the task.
    pub fn parse_for_task(task_id: TaskId, data: Option<&Value>) -> Result<Self, InvalidRequest> {
        let mut fields = Fields::new(data);
        let lease_seconds = parse_lease(&mut fields);
        let claim_id = parse_claim_id(&mut fields);
        let progress = parse_progress(&mut fields);
        let usage = parse_usage(&mut fields);
        let parsed = lease_seconds.zip(claim_id).zip(progress).zip(usage).map(
            |(((lease_seconds, claim_id), progress), usage)| HeartbeatTask {
                ticket_id: None,
                task_id,
                lease_seconds,
                claim_id,
                progress,
                usage,
            },
        );
        fields.finish(parsed)
    }
}

/// Reads `progress`: an object of `note` (1 to 500 characters), `percent` (0 to 100) and `step`
/// (1 to 100 characters), each optional. `Some(None)` when there is none or it gives none of
/// them, `None` when it is malformed (the reasons, each naming `progress.<field>`, were added to
/// `fields`).
fn parse_progress(fields: &mut Fields<'_>) -> Option<Option<Value>> {
    let Some(value) = fields.get("progress") else {
        return Some(None);
    };
    if !value.is_object() {
        fields
            .reasons
            .push("progress: must be a JSON object".to_owned());
        return None;
    }
    let mut inner = Fields::new(Some(value));
    let note = inner.optional_text("note", PROGRESS_NOTE_MAX_CHARS);
    let step = inner.optional_text("step", PROGRESS_STEP_MAX_CHARS);
    let percent = inner.optional_integer_in("percent", 0..=100);
    for (name, text) in [("note", &note), ("step", &step)] {
        if text.as_deref().is_some_and(is_blank) {
            inner.reasons.push(format!("{name}: must not be empty"));
        }
    }
    let known = ["note", "step", "percent"];
    if let Some(members) = value.as_object() {
        for name in members
            .keys()
            .filter(|name| !known.contains(&name.as_str()))
        {
            inner.reasons.push(format!(
                "{name}: is not a field of progress (note, percent, step)"
            ));
        }
    }
    if !inner.reasons.is_empty() {
        // each reason of the inner object names its field: `progress.<field>: …`
        let reasons = inner
            .reasons
            .into_iter()
            .map(|reason| format!("progress.{reason}"));
        fields.reasons.extend(reasons);
        return None;
    }
    // a progress that says nothing (`{}`, or only nulls) is no progress
    if note.is_none() && step.is_none() && percent.is_none() {
        return Some(None);
    }
    let progress = Progress {
        note,
        percent: percent.and_then(|percent| u8::try_from(percent).ok()),
        step,
    };
    // a struct of strings and a number always serializes
    Some(serde_json::to_value(progress).ok())
}

fn parse_lease(fields: &mut Fields<'_>) -> Option<Option<u32>> {
    let lease_seconds = fields.optional_integer_in("lease_seconds", LEASE_SECONDS);
    if fields.get("lease_seconds").is_some() && lease_seconds.is_none() {
        return None;
    }
    Some(lease_seconds)
}

impl RequestKind for HeartbeatTask {
    fn parse(subject: Subject<'_>, fields: &mut Fields<'_>) -> Option<Self> {
        let ticket_id = subject.required(fields);
        let task_id = fields.required_parsed::<TaskId>("task_id");
        let lease_seconds = parse_lease(fields);
        let claim_id = parse_claim_id(fields);
        let progress = parse_progress(fields);
        let usage = parse_usage(fields);
        Some(HeartbeatTask {
            ticket_id: Some(ticket_id?),
            task_id: task_id?,
            lease_seconds: lease_seconds?,
            claim_id: claim_id?,
            progress: progress?,
            usage: usage?,
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
        let now = store::claims::now(connection).await?;
        let refusal = lease_refusal(&locked.hold(), agent, now)
            .or_else(|| fenced_off(&locked, self.claim_id, now));
        if let Some(reason) = refusal {
            return Ok(Applied::Rejected(task_rejection(
                RejectionCode::LeaseLost,
                Some(locked.ticket.id),
                self.task_id,
                reason,
            )));
        }
        let lease_expires_at = store::claims::extend(
            connection,
            self.task_id,
            self.lease_seconds,
            self.progress.as_ref(),
        )
        .await?;
        if let Some(usage) = &self.usage {
            let spend = usage::record(connection, log, &locked.task, usage).await?;
            if let Some(spend) = spend {
                log.reserve_outcome();
                budgets::after_spend(workflow, connection, log, locked.ticket.id, &spend).await?;
            }
        }
        Ok(Applied::Succeeded(Event::TaskLeaseExtended(
            TaskLeaseExtended {
                ticket_id: locked.ticket.id,
                task_id: self.task_id,
                claimed_by: agent.to_owned(),
                lease_expires_at,
            },
        )))
    }
}
