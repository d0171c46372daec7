//! `task.claim.requested`: an agent takes a task for a lease: a given task, or the next
//! claimable task of a ticket, or of any ticket, optionally only of some task types. The next
//! task is the most urgent, then the oldest. Its outcome is `task.claimed`.
//!
//! The agent's roles limit what it may claim: "the next task" is the next among tasks that need
//! no role or one of its roles, and a given task that needs a role it lacks is not claimable
//! (`requires role <role>`). It may hold its `max_claims` live leases at once.
//!
//! A ticket whose spend used up a limit of its budget, and an agent whose spend today used up
//! its daily budget, claim nothing (`budget_exhausted`); the next task of any ticket passes over
//! such tickets.
//!
//! Two claims never get the same task: the task changes under its ticket's row lock, and a
//! claim of any ticket passes over tickets another transaction holds (then, when every
//! claimable task is on such a ticket, waits for the first one's lock and looks again).

use crate::domain::{claim_refusals, AgentProfile, TaskId, TicketId, LEASE_SECONDS};
use crate::protocol::events::TaskClaimed;
use crate::protocol::fields::{Fields, Subject, SHORT_TEXT_MAX_CHARS};
use crate::protocol::{Event, Rejection, RejectionCode};
use crate::store::{self, PgConnection};

use super::{ticket_not_found, Applied, RequestKind};
use crate::workflow::budgets;
use crate::workflow::events::EventLog;
use crate::workflow::leases::{lock_task, task_rejection};
use crate::workflow::{Workflow, WorkflowError};
pub use phaseflow_client::requests::claim_task::{ClaimTaskBody, ClaimTaskData, MAX_TASK_TYPES};

/// A claim.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimTask {
    /// the ticket whose task to claim; `None`: any ticket
    pub ticket_id: Option<TicketId>,
    /// a given task; `None`: the next claimable one
    pub task_id: Option<TaskId>,
    /// only these task types (empty: any)
    pub task_types: Vec<String>,
    /// `None`: the configured default
    pub lease_seconds: Option<u32>,
}

impl ClaimTask {
    /// Reads a claim's `data`; `ticket_id` is the ticket the request names, if any.
    pub fn parse_data(ticket_id: Option<TicketId>, fields: &mut Fields<'_>) -> Option<Self> {
        let task_id = fields.optional_parsed::<TaskId>("task_id");
        let invalid_task = fields.get("task_id").is_some() && task_id.is_none();
        let task_types =
            fields.optional_text_list("task_types", MAX_TASK_TYPES, SHORT_TEXT_MAX_CHARS);
        let lease_seconds = fields.optional_integer_in("lease_seconds", LEASE_SECONDS);
        let invalid_lease = fields.get("lease_seconds").is_some() && lease_seconds.is_none();
        if invalid_task || invalid_lease {
            return None;
        }
        Some(ClaimTask {
            ticket_id,
            task_id,
            task_types: task_types?,
            lease_seconds,
        })
    }
}

impl RequestKind for ClaimTask {
    fn parse(subject: Subject<'_>, fields: &mut Fields<'_>) -> Option<Self> {
        let ticket_id = subject.ticket();
        ClaimTask::parse_data(ticket_id, fields)
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
        let profile = log
            .agent()
            .cloned()
            .unwrap_or_else(|| workflow.agents.profile(agent, None));
        // the agent's lock before any ticket's: two claims of one agent are judged one after
        // the other, whichever tickets they are about
        store::claims::lock_agent(connection, agent).await?;
        let held = store::claims::live_leases_of(connection, agent).await?;
        let limit = profile.max_claims;
        if held >= i64::from(limit) {
            return Ok(Applied::Rejected(Rejection::new(
                RejectionCode::ClaimLimitReached,
                self.ticket_id,
                format!(
                    "{agent} holds {held} live leases and may hold {limit} at once: report, \
                     release or lose one first"
                ),
            )));
        }
        if let Some(rejection) =
            budgets::agent_refusal(connection, agent, &profile, self.ticket_id).await?
        {
            return Ok(Applied::Rejected(rejection));
        }
        let lease_seconds = self
            .lease_seconds
            .unwrap_or(workflow.leases.default_lease_seconds);
        let wanted = store::claims::Wanted {
            task_types: &self.task_types,
            roles: profile.role_filter(),
        };
        let claimed = match (self.task_id, self.ticket_id) {
            (Some(task_id), named) => {
                let locked = match lock_task(connection, task_id, named).await? {
                    Ok(locked) => locked,
                    Err(rejection) => return Ok(Applied::Rejected(rejection)),
                };
                if let Some(rejection) = budgets::ticket_refusal(&locked.ticket) {
                    return Ok(Applied::Rejected(rejection));
                }
                let now = store::claims::now(connection).await?;
                let unfinished =
                    store::claims::unfinished_dependencies(connection, task_id).await?;
                let mut reasons = claim_refusals(
                    &locked.hold(),
                    locked.task.phase,
                    locked.ticket.phase,
                    &unfinished,
                    now,
                );
                reasons.extend(profile.role_refusal(locked.task.role.as_deref()));
                if !reasons.is_empty() {
                    let mut rejection = task_rejection(
                        RejectionCode::TaskNotClaimable,
                        Some(locked.ticket.id),
                        task_id,
                        String::new(),
                    );
                    rejection.reasons = reasons;
                    return Ok(Applied::Rejected(rejection));
                }
                Some((task_id, locked.ticket.id))
            }
            (None, Some(ticket_id)) => {
                let Some(ticket) = store::tickets::lock(connection, ticket_id).await? else {
                    return Ok(Applied::Rejected(ticket_not_found(ticket_id)));
                };
                if let Some(rejection) = budgets::ticket_refusal(&ticket) {
                    return Ok(Applied::Rejected(rejection));
                }
                store::claims::next_of_ticket(connection, ticket_id, wanted)
                    .await?
                    .map(|task_id| (task_id, ticket_id))
            }
            (None, None) => next_of_any(connection, wanted).await?,
        };
        let Some((task_id, ticket_id)) = claimed else {
            return Ok(Applied::Rejected(self.nothing_to_claim(&profile)));
        };
        let Some(lease) =
            store::claims::claim(connection, task_id, agent, lease_seconds, log.trace_id()).await?
        else {
            return Ok(Applied::Rejected(self.nothing_to_claim(&profile)));
        };
        let Some(task) = store::tasks::find(connection, task_id).await? else {
            return Ok(Applied::Rejected(self.nothing_to_claim(&profile)));
        };
        metrics::counter!("phaseflow_task_claims_total").increment(1);
        Ok(Applied::Succeeded(Event::TaskClaimed(Box::new(
            TaskClaimed {
                ticket_id,
                task_id,
                phase_id: task.phase,
                task_type: task.task_type,
                description: task.description,
                priority: task.priority,
                dependencies: task.dependencies,
                claimed_by: agent.to_owned(),
                role: task.role,
                claim_id: lease.claim_id,
                lease_expires_at: lease.expires_at,
                attempt: lease.attempt,
                guidance: workflow.definition().guidance(task.phase).cloned(),
            },
        ))))
    }
}

impl ClaimTask {
    /// Whether this claim by an agent of `profile` would find a task now, as far as the tasks
    /// go (its agent's limit and budget are the claim's to judge). A read without locks, for
    /// waiting until a claim is worth making.
    pub async fn would_find(
        &self,
        workflow: &Workflow,
        profile: &AgentProfile,
        retry: crate::workflow::RetryPolicy,
    ) -> Result<bool, WorkflowError> {
        let wanted = store::claims::Wanted {
            task_types: &self.task_types,
            roles: profile.role_filter(),
        };
        workflow
            .read_retrying(retry, || async {
                Ok(store::claims::any_claimable(
                    workflow.pool(),
                    self.task_id,
                    self.ticket_id,
                    wanted,
                )
                .await?)
            })
            .await
    }

    /// `no_task_available`, saying what was looked for.
    fn nothing_to_claim(&self, profile: &AgentProfile) -> Rejection {
        let mut of_types = if self.task_types.is_empty() {
            String::new()
        } else {
            format!(" of type {}", self.task_types.join(", "))
        };
        if let Some(roles) = profile.role_filter() {
            if roles.is_empty() {
                of_types.push_str(" for an agent without roles");
            } else {
                of_types.push_str(&format!(" for the roles {}", roles.join(", ")));
            }
        }
        let reason = match self.ticket_id {
            Some(ticket) => format!("ticket {ticket} has no claimable task{of_types} now"),
            None => format!("no ticket has a claimable task{of_types} now"),
        };
        Rejection::new(RejectionCode::NoTaskAvailable, self.ticket_id, reason)
    }
}

/// The next claimable task of any ticket, its ticket locked: first among tickets no other
/// transaction holds; when every claimable task is on a ticket another transaction holds, waits
/// for that ticket and looks at it again.
async fn next_of_any(
    connection: &mut PgConnection,
    wanted: store::claims::Wanted<'_>,
) -> Result<Option<(TaskId, TicketId)>, WorkflowError> {
    if let Some(found) = store::claims::next_of_any_unlocked(connection, wanted).await? {
        return Ok(Some(found));
    }
    let Some(busy) = store::claims::ticket_of_next_of_any(connection, wanted).await? else {
        return Ok(None);
    };
    if store::tickets::lock(connection, busy).await?.is_none() {
        return Ok(None);
    }
    Ok(store::claims::next_of_ticket(connection, busy, wanted)
        .await?
        .map(|task_id| (task_id, busy)))
}
