//! Leases: finding the task a claim, heartbeat, release or report names (with its ticket's row
//! locked), the sweep that ends leases that ran out, and the one that reports (and optionally
//! releases) claims that make no progress. Any worker replica may sweep; the
//! store's `skip locked` keeps two replicas from expiring one lease, and every change is made
//! under the ticket's row lock like any request's.
//!
//! The rules (who holds a lease, what an expiry comes to) are the domain's; the statements are
//! the store's. No AMQP here: the sweep's events go through the outbox like every other.

use std::time::Instant;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{self, ClaimId, Expiry, Hold, TaskId, TaskStatus, TicketId};
use crate::protocol::events::{TaskFinished, TaskLeaseExpired, TaskReleased, TaskStalled};
use crate::protocol::fields::Fields;
use crate::protocol::{Event, Rejection, RejectionCode, SYSTEM_ACTOR};
use crate::store::{self, tasks::TaskRecord, tickets::TicketRecord, PgConnection};

use super::events::{EventLog, Origin};
use super::{automation, Workflow, WorkflowError};

/// A task named by a request, with its ticket's row locked.
pub(crate) struct LockedTask {
    pub ticket: TicketRecord,
    pub task: TaskRecord,
}

impl LockedTask {
    /// What the lease rules need to know about the task.
    pub fn hold(&self) -> Hold<'_> {
        Hold {
            task_type: &self.task.task_type,
            status: self.task.status,
            claimed_by: self.task.claimed_by.as_deref(),
            lease_expires_at: self.task.lease_expires_at,
            claim_id: self.task.claim_id.map(ClaimId),
        }
    }
}

/// Finds the task `task_id` and locks its ticket; when the request named a ticket, the task must
/// be one of its. A missing task is the rejection `task_not_found` (with `task_id`).
pub(crate) async fn lock_task(
    connection: &mut PgConnection,
    task_id: TaskId,
    named_ticket: Option<TicketId>,
) -> Result<Result<LockedTask, Rejection>, WorkflowError> {
    let missing = |reason: String| {
        Err(task_rejection(
            RejectionCode::TaskNotFound,
            named_ticket,
            task_id,
            reason,
        ))
    };
    let Some(ticket) = store::tickets::lock_owner_of(connection, task_id, named_ticket).await?
    else {
        // not locked: the task is missing, or belongs to another ticket than the one named
        let reason = match store::tasks::ticket_of(connection, task_id).await? {
            Some(_) => format!("task {task_id} does not belong to this ticket"),
            None => format!("task {task_id} does not exist"),
        };
        return Ok(missing(reason));
    };
    let Some(task) = store::tasks::find(connection, task_id).await? else {
        return Ok(missing(format!("task {task_id} does not exist")));
    };
    Ok(Ok(LockedTask { ticket, task }))
}

/// Reads the `claim_id` a heartbeat, release or report may quote: `Some(None)` when there is
/// none, `None` when it is malformed (a reason was added to `fields`).
pub(crate) fn parse_claim_id(fields: &mut Fields<'_>) -> Option<Option<ClaimId>> {
    let claim_id = fields.optional_parsed::<ClaimId>("claim_id");
    if fields.get("claim_id").is_some() && claim_id.is_none() {
        return None;
    }
    Some(claim_id)
}

/// Why the claim a request quotes, if it quotes one, is not the task's live claim at `now`.
pub(crate) fn fenced_off(
    locked: &LockedTask,
    claim_id: Option<ClaimId>,
    now: DateTime<Utc>,
) -> Option<String> {
    claim_id.and_then(|claim_id| domain::fence_refusal(&locked.hold(), claim_id, now))
}

/// A rejection about a task: it carries `task_id`.
pub(crate) fn task_rejection(
    code: RejectionCode,
    ticket: Option<TicketId>,
    task_id: TaskId,
    reason: String,
) -> Rejection {
    Rejection::new(code, ticket, reason).with_detail("task_id", task_id.to_string())
}

impl Workflow {
    /// Ends up to `limit` leases that ran out, in one transaction: each task returns to pending
    /// with `task.lease.expired`, or fails (`task.failed` after it, then the gate when it was
    /// its phase's last open task) once its leases ran out `tasks.max_attempts` times. Returns
    /// how many leases it ended; leases on tickets another transaction holds wait for the next
    /// call.
    pub async fn expire_leases(&self, limit: u32) -> Result<LeaseSweep, WorkflowError> {
        let started = Instant::now();
        let mut transaction = self.pool.begin().await?;
        let expired = store::claims::expired(&mut transaction, i64::from(limit)).await?;
        let mut sweep = LeaseSweep::default();
        if expired.is_empty() {
            return Ok(sweep);
        }
        // a sweep that ends leases is a trace of its own, from here to its commit
        let sweep_span = tracing::info_span!(parent: None, "lease sweep", leases = expired.len());
        let mut rows = Vec::new();
        for (task_id, ticket_id) in expired {
            // each expiry is a cause of its own: its events share a correlation id
            let (origin, _step) = system_origin(&sweep_span, "lease_expiry");
            let mut log = EventLog::new(&origin);
            let Some(ticket) = store::tickets::lock(&mut transaction, ticket_id).await? else {
                continue;
            };
            let Some(task) = store::tasks::find(&mut transaction, task_id).await? else {
                continue;
            };
            let expiries = u32::try_from(task.expiries).unwrap_or(0);
            let outcome = domain::expire(expiries, &self.leases);
            let failure = match outcome {
                Expiry::Returned => None,
                Expiry::Failed { expiries } => Some(format!("lease expired {expiries} times")),
            };
            let expiries_now = match outcome {
                Expiry::Returned => expiries + 1,
                Expiry::Failed { expiries } => expiries,
            };
            if !store::claims::expire(
                &mut transaction,
                task.id,
                expiries_now,
                failure.as_deref(),
                log.trace_id(),
            )
            .await?
            {
                continue;
            }
            log.emit(
                SYSTEM_ACTOR,
                Event::TaskLeaseExpired(TaskLeaseExpired {
                    ticket_id: ticket.id,
                    task_id: task.id,
                    claimed_by: task.claimed_by.clone().unwrap_or_default(),
                    attempt: task.attempt,
                }),
            );
            match outcome {
                Expiry::Returned => sweep.returned += 1,
                Expiry::Failed { .. } => {
                    sweep.failed += 1;
                    self.system_failed(&mut transaction, &mut log, &ticket, &task)
                        .await?;
                }
            }
            log.append_to(&mut rows)
                .map_err(|error| WorkflowError::Failed(error.into()))?;
        }
        store::outbox::append_numbered(&mut transaction, &rows).await?;
        transaction.commit().await?;
        if sweep.returned + sweep.failed > 0 {
            metrics::counter!("phaseflow_task_lease_expiries_total", "result" => "returned")
                .increment(sweep.returned);
            metrics::counter!("phaseflow_task_lease_expiries_total", "result" => "failed")
                .increment(sweep.failed);
            tracing::info!(
                returned = sweep.returned,
                failed = sweep.failed,
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                "leases expired"
            );
        }
        Ok(sweep)
    }

    /// Reports up to `limit` stalls and releases up to `limit` stalled tasks, in one
    /// transaction (`tasks.stall_after_seconds`, `tasks.stall_release_after_seconds`; nothing
    /// when stalls are off). A claim without progress for the stall delay gets `task.stalled`,
    /// once; one whose stall was reported and that stays without progress for the release delay
    /// after it returns to pending (`task.released` by `system`, reason `stalled`), or fails
    /// like an expiry once it used up `tasks.max_attempts`. Every change is made under the
    /// ticket's row lock, and again only if the task still made no progress, so a heartbeat
    /// that races the sweep either comes first (and the task is not stalled) or after (and is
    /// refused as `lease_lost` when the task was released).
    pub async fn sweep_stalls(&self, limit: u32) -> Result<StallSweep, WorkflowError> {
        let mut sweep = StallSweep::default();
        let stall_after = self.leases.stall_after_seconds;
        if stall_after == 0 {
            return Ok(sweep);
        }
        let mut transaction = self.pool.begin().await?;
        let mut rows = Vec::new();
        // a check that finds stalls is a trace of its own, from the first stall to its commit
        let mut check = None;
        let mut check_span = || {
            check
                .get_or_insert_with(|| tracing::info_span!(parent: None, "stall check"))
                .clone()
        };
        for (task_id, ticket_id) in store::claims::stalled(
            &mut transaction,
            false,
            stall_after.into(),
            i64::from(limit),
        )
        .await?
        {
            if !store::claims::mark_stalled(&mut transaction, task_id, stall_after).await? {
                continue;
            }
            let Some(task) = store::tasks::find(&mut transaction, task_id).await? else {
                continue;
            };
            let (origin, _step) = system_origin(&check_span(), "stall");
            let mut log = EventLog::new(&origin);
            log.emit(
                SYSTEM_ACTOR,
                Event::TaskStalled(Box::new(TaskStalled {
                    ticket_id,
                    task_id,
                    claimed_by: task.claimed_by.clone().unwrap_or_default(),
                    claim_id: ClaimId(task.claim_id.unwrap_or_default()),
                    last_progress_at: task.last_progress_at.unwrap_or(task.created_at),
                    last_progress: task
                        .last_progress
                        .and_then(|progress| serde_json::from_value(progress).ok()),
                })),
            );
            log.append_to(&mut rows)
                .map_err(|error| WorkflowError::Failed(error.into()))?;
            sweep.stalled += 1;
        }
        let release_after = self.leases.stall_release_after_seconds;
        if release_after > 0 {
            let silent = u64::from(stall_after) + u64::from(release_after);
            for (task_id, ticket_id) in
                store::claims::stalled(&mut transaction, true, silent, i64::from(limit)).await?
            {
                let Some(ticket) = store::tickets::lock(&mut transaction, ticket_id).await? else {
                    continue;
                };
                let Some(task) = store::tasks::find(&mut transaction, task_id).await? else {
                    continue;
                };
                let expiries = u32::try_from(task.expiries).unwrap_or(0);
                let outcome = domain::expire(expiries, &self.leases);
                let (failure, expiries_now) = match outcome {
                    Expiry::Returned => (None, expiries + 1),
                    Expiry::Failed { expiries } => (
                        Some(format!("stalled or lease expired {expiries} times")),
                        expiries,
                    ),
                };
                let (origin, _step) = system_origin(&check_span(), "stall_release");
                let mut log = EventLog::new(&origin);
                if !store::claims::release_stalled(
                    &mut transaction,
                    task_id,
                    silent,
                    expiries_now,
                    failure.as_deref(),
                    log.trace_id(),
                )
                .await?
                {
                    continue;
                }
                log.emit(
                    SYSTEM_ACTOR,
                    Event::TaskReleased(TaskReleased {
                        ticket_id,
                        task_id,
                        released_by: SYSTEM_ACTOR.to_owned(),
                        reason: Some(STALLED.to_owned()),
                    }),
                );
                sweep.released += 1;
                if failure.is_some() {
                    sweep.failed += 1;
                    self.system_failed(&mut transaction, &mut log, &ticket, &task)
                        .await?;
                }
                log.append_to(&mut rows)
                    .map_err(|error| WorkflowError::Failed(error.into()))?;
            }
        }
        store::outbox::append_numbered(&mut transaction, &rows).await?;
        transaction.commit().await?;
        if sweep.stalled + sweep.released > 0 {
            metrics::counter!("phaseflow_task_stalls_total", "result" => "reported")
                .increment(sweep.stalled);
            metrics::counter!("phaseflow_task_stalls_total", "result" => "released")
                .increment(sweep.released);
            tracing::info!(
                stalled = sweep.stalled,
                released = sweep.released,
                failed = sweep.failed,
                "stalled claims swept"
            );
        }
        Ok(sweep)
    }

    /// `task.failed` of a task phaseflow failed (its last allowed lease ran out, or it stalled
    /// once too often), then what a failure sets off: the gate, when it was the last open task
    /// of its ticket's current phase.
    async fn system_failed(
        &self,
        connection: &mut PgConnection,
        log: &mut EventLog<'_>,
        ticket: &TicketRecord,
        task: &TaskRecord,
    ) -> Result<(), WorkflowError> {
        let usage = super::usage::task_total(connection, task).await?;
        log.emit(
            SYSTEM_ACTOR,
            Event::TaskFailed(TaskFinished {
                ticket_id: ticket.id,
                task_id: task.id,
                phase_id: task.phase,
                task_type: task.task_type.clone(),
                status: TaskStatus::Failed,
                artifacts_collected: Vec::new(),
                usage,
            }),
        );
        if task.phase == ticket.phase {
            automation::after_task_finished(self, connection, log, ticket).await?;
        }
        Ok(())
    }

    /// The live leases of each agent holding any (for the per-agent gauge).
    pub async fn live_leases_by_agent(&self) -> Result<Vec<(String, i64)>, WorkflowError> {
        Ok(store::claims::live_leases_by_agent(&self.pool).await?)
    }

    /// How many tasks are claimed now (for the live-leases gauge).
    pub async fn live_leases(&self) -> Result<i64, WorkflowError> {
        Ok(store::claims::live_leases(&self.pool).await?)
    }
}

/// The `reason` of a release by `system` of a task that stalled.
pub const STALLED: &str = "stalled";

/// The origin of one of phaseflow's own steps: a cause of its own, whose events share a
/// correlation id, in a span of the sweep that takes it (`step` names it). The span is
/// returned to be kept while the step's work goes on.
fn system_origin(sweep: &tracing::Span, step: &'static str) -> (Origin, tracing::Span) {
    let span = tracing::info_span!(parent: sweep, "system", step);
    let origin = Origin {
        message_id: Uuid::new_v4().to_string(),
        correlation_id: Uuid::new_v4().to_string(),
        actor: SYSTEM_ACTOR.to_owned(),
        reply: None,
        authenticated: true,
        trace: crate::telemetry::trace::context_of(&span),
    };
    (origin, span)
}

/// What one stall sweep transaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StallSweep {
    /// stalls reported (`task.stalled`)
    pub stalled: u64,
    /// stalled tasks released
    pub released: u64,
    /// of those, tasks failed after their last allowed attempt
    pub failed: u64,
}

impl StallSweep {
    pub fn total(&self) -> u64 {
        self.stalled + self.released
    }
}

/// What one sweep transaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseSweep {
    /// tasks pending again
    pub returned: u64,
    /// tasks failed after their last allowed expiry
    pub failed: u64,
}

impl LeaseSweep {
    pub fn total(&self) -> u64 {
        self.returned + self.failed
    }
}
