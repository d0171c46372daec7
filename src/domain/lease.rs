//! Claims and leases as rules: when a task may be claimed, who holds a lease, and what an
//! expired lease comes to. An agent claims a pending task of its ticket's current phase whose
//! dependencies are completed, and holds it until its lease runs out unless it heartbeats; a
//! lease that runs out returns the task to pending, or fails it after the configured number of
//! expiries.
//!
//! Pure: every time is given by the caller (the database's clock, so that every replica judges a
//! lease alike). Nothing here reads the clock or stores anything.

use chrono::{DateTime, Utc};

use super::{ClaimId, Phase, TaskStatus};

pub use phaseflow_client::limits::LEASE_SECONDS;

/// How long leases last, how often one may run out or stall, and when a claim without progress
/// counts as stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeasePolicy {
    /// the lease of a claim that names none
    pub default_lease_seconds: u32,
    /// expiries (and releases of stalled tasks) after which a task fails instead of returning
    /// to pending
    pub max_attempts: u32,
    /// a claim without progress for this long is reported stalled; 0: never
    pub stall_after_seconds: u32,
    /// a stalled claim with still no progress this long after its stall is released; 0: never
    pub stall_release_after_seconds: u32,
}

impl Default for LeasePolicy {
    fn default() -> Self {
        LeasePolicy {
            default_lease_seconds: 600,
            max_attempts: 3,
            stall_after_seconds: 900,
            stall_release_after_seconds: 0,
        }
    }
}

/// What the rules need to know about a task's hold.
#[derive(Debug, Clone, Copy)]
pub struct Hold<'a> {
    pub task_type: &'a str,
    pub status: TaskStatus,
    pub claimed_by: Option<&'a str>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// the latest claim's id (the live one while the lease holds)
    pub claim_id: Option<ClaimId>,
}

impl Hold<'_> {
    /// The agent holding a lease that has not run out at `now`.
    pub fn live_holder(&self, now: DateTime<Utc>) -> Option<&str> {
        match (self.status, self.lease_expires_at) {
            (TaskStatus::Claimed, Some(deadline)) if deadline > now => self.claimed_by,
            _ => None,
        }
    }
}

/// Why a task cannot be claimed now; empty when it can. `phase` is the task's phase,
/// `ticket_phase` where its ticket is, `unfinished_dependencies` the task types of its
/// dependencies that are not completed.
pub fn claim_refusals(
    hold: &Hold<'_>,
    phase: Phase,
    ticket_phase: Phase,
    unfinished_dependencies: &[String],
    now: DateTime<Utc>,
) -> Vec<String> {
    let task = hold.task_type;
    let mut reasons = Vec::new();
    match hold.status {
        TaskStatus::Pending => {}
        TaskStatus::Claimed => match hold.live_holder(now) {
            Some(holder) => reasons.push(format!(
                "task {task} is claimed by {holder} until {}",
                format_time(hold.lease_expires_at)
            )),
            // its lease ran out and the sweep has not returned it yet
            None => reasons.push(format!(
                "task {task} is still claimed: its lease ran out at {} and it returns to pending within seconds",
                format_time(hold.lease_expires_at)
            )),
        },
        TaskStatus::Completed => reasons.push(format!("task {task} is already completed")),
        TaskStatus::Failed => reasons.push(format!(
            "task {task} failed; report it again with task.complete.requested"
        )),
    }
    match ticket_phase {
        Phase::Blocked => reasons.push(format!(
            "the ticket is blocked; its {phase} tasks can be claimed once it returns"
        )),
        Phase::Done => reasons.push("the ticket is done".to_owned()),
        current if current != phase => reasons.push(format!(
            "task {task} belongs to {phase}, not to the ticket's current phase {current}"
        )),
        _ => {}
    }
    if !unfinished_dependencies.is_empty() {
        reasons.push(format!(
            "task {task} depends on unfinished tasks: {}",
            unfinished_dependencies.join(", ")
        ));
    }
    reasons
}

/// Why `agent` does not hold a live lease on the task (for a heartbeat or a release); `None`
/// when it does.
pub fn lease_refusal(hold: &Hold<'_>, agent: &str, now: DateTime<Utc>) -> Option<String> {
    let task = hold.task_type;
    match (hold.status, hold.live_holder(now)) {
        (_, Some(holder)) if holder == agent => None,
        (_, Some(holder)) => Some(format!(
            "task {task} is claimed by {holder}, not by {agent}"
        )),
        (TaskStatus::Claimed, None) => Some(format!(
            "the lease on task {task} ran out at {}",
            format_time(hold.lease_expires_at)
        )),
        (TaskStatus::Pending, None) => Some(format!("task {task} is not claimed")),
        (status, None) => Some(format!("task {task} is {status}")),
    }
}

/// Why the claim `claim_id`, which a heartbeat, release or report quotes, is not the task's live
/// claim at `now`; `None` when it is. A claim stops being live when its lease runs out, when the
/// task is released or reported, and when the task is claimed again, even by the same agent.
pub fn fence_refusal(hold: &Hold<'_>, claim_id: ClaimId, now: DateTime<Utc>) -> Option<String> {
    let task = hold.task_type;
    if hold.claim_id != Some(claim_id) {
        return Some(format!(
            "claim {claim_id} is not the live claim of task {task}: it was claimed again since"
        ));
    }
    match (hold.status, hold.live_holder(now)) {
        (_, Some(_)) => None,
        (TaskStatus::Claimed, None) => Some(format!(
            "claim {claim_id} of task {task} is over: its lease ran out at {}",
            format_time(hold.lease_expires_at)
        )),
        (TaskStatus::Pending, None) => Some(format!(
            "claim {claim_id} of task {task} is over: the task was given back"
        )),
        (status, None) => Some(format!(
            "claim {claim_id} of task {task} is over: the task is {status}"
        )),
    }
}

/// What a lease that ran out comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// the task is pending again
    Returned,
    /// the task failed: its leases ran out this many times
    Failed { expiries: u32 },
}

/// The outcome of one more expiry of a task whose leases ran out `expiries_before` times.
pub fn expire(expiries_before: u32, policy: &LeasePolicy) -> Expiry {
    let expiries = expiries_before + 1;
    if expiries >= policy.max_attempts {
        Expiry::Failed { expiries }
    } else {
        Expiry::Returned
    }
}

fn format_time(time: Option<DateTime<Utc>>) -> String {
    time.map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| "an unknown time".to_owned())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
    }

    fn hold(status: TaskStatus, by: Option<&'static str>, until: Option<i64>) -> Hold<'static> {
        Hold {
            task_type: "design_architecture",
            status,
            claimed_by: by,
            lease_expires_at: until.map(at),
            claim_id: by.map(|_| CLAIM),
        }
    }

    /// The claim of the holds above.
    const CLAIM: ClaimId = ClaimId(uuid::Uuid::from_u128(
        0x6f1c_4c1e_9d2b_4e7a_8a51_0c3f_5e8b_2d11,
    ));

    #[test]
    fn only_the_live_claim_passes_the_fence() {
        let held = hold(TaskStatus::Claimed, Some("agent-1"), Some(60));
        assert_eq!(fence_refusal(&held, CLAIM, at(0)), None);
        let earlier = ClaimId(uuid::Uuid::from_u128(7));
        let refusal = fence_refusal(&held, earlier, at(0)).unwrap();
        assert!(refusal.contains("claimed again"), "{refusal}");
        let ran_out = fence_refusal(&held, CLAIM, at(61)).unwrap();
        assert!(ran_out.contains("lease ran out"), "{ran_out}");
        let mut released = hold(TaskStatus::Pending, None, None);
        released.claim_id = Some(CLAIM);
        let given_back = fence_refusal(&released, CLAIM, at(0)).unwrap();
        assert!(given_back.contains("given back"), "{given_back}");
        let mut reported = hold(TaskStatus::Completed, Some("agent-1"), None);
        reported.claim_id = Some(CLAIM);
        let over = fence_refusal(&reported, CLAIM, at(0)).unwrap();
        assert!(over.contains("completed"), "{over}");
    }

    #[test]
    fn a_pending_task_of_the_current_phase_with_its_dependencies_done_is_claimable() {
        let free = hold(TaskStatus::Pending, None, None);
        assert!(claim_refusals(&free, Phase::Design, Phase::Design, &[], at(0)).is_empty());
    }

    #[test]
    fn each_reason_a_task_cannot_be_claimed_is_named() {
        let held = hold(TaskStatus::Claimed, Some("agent-2"), Some(60));
        let reasons = claim_refusals(&held, Phase::Design, Phase::Design, &[], at(0));
        assert_eq!(reasons.len(), 1);
        assert!(
            reasons[0].contains("claimed by agent-2 until"),
            "{reasons:?}"
        );

        let lapsed = claim_refusals(&held, Phase::Design, Phase::Design, &[], at(61));
        assert!(lapsed[0].contains("lease ran out"), "{lapsed:?}");

        let free = hold(TaskStatus::Pending, None, None);
        let blocked = claim_refusals(&free, Phase::Design, Phase::Blocked, &[], at(0));
        assert!(blocked[0].contains("blocked"), "{blocked:?}");
        let elsewhere = claim_refusals(&free, Phase::Design, Phase::Implementation, &[], at(0));
        assert!(elsewhere[0].contains("not to the ticket's current phase"));
        let waiting = claim_refusals(
            &free,
            Phase::Design,
            Phase::Design,
            &["design_architecture".to_owned()],
            at(0),
        );
        assert!(waiting[0].contains("depends on unfinished tasks: design_architecture"));

        let done = hold(TaskStatus::Completed, Some("agent-1"), None);
        let reasons = claim_refusals(&done, Phase::Design, Phase::Done, &[], at(0));
        assert_eq!(
            reasons.len(),
            2,
            "finished and the ticket done: {reasons:?}"
        );
    }

    #[test]
    fn only_the_holder_of_a_live_lease_may_extend_or_release_it() {
        let held = hold(TaskStatus::Claimed, Some("agent-1"), Some(60));
        assert_eq!(lease_refusal(&held, "agent-1", at(0)), None);
        assert!(lease_refusal(&held, "agent-2", at(0))
            .unwrap()
            .contains("claimed by agent-1, not by agent-2"));
        assert!(lease_refusal(&held, "agent-1", at(60))
            .unwrap()
            .contains("ran out"));
        let free = hold(TaskStatus::Pending, None, None);
        assert!(lease_refusal(&free, "agent-1", at(0))
            .unwrap()
            .contains("not claimed"));
        let done = hold(TaskStatus::Completed, Some("agent-1"), None);
        assert!(lease_refusal(&done, "agent-1", at(0))
            .unwrap()
            .contains("completed"));
    }

    #[test]
    fn the_last_allowed_expiry_fails_the_task() {
        let policy = LeasePolicy::default();
        assert_eq!(expire(0, &policy), Expiry::Returned);
        assert_eq!(expire(1, &policy), Expiry::Returned);
        assert_eq!(expire(2, &policy), Expiry::Failed { expiries: 3 });
        let once = LeasePolicy {
            max_attempts: 1,
            ..policy
        };
        assert_eq!(expire(0, &once), Expiry::Failed { expiries: 1 });
    }
}
