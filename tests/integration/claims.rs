//! Claims and leases. The rules (dependencies, priority, who may extend, release or report a
//! held task, what expiries come to, concurrent claims and sweeps) run one request at a time
//! against Postgres alone; the race of 20 agents over three worker replicas, a lease that runs
//! out in real time, and the HTTP endpoints go through the broker and the API. Tickets start in
//! REQUIREMENTS with their tasks (`common::factory`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use phaseflow::domain::{GateStatus, Phase, Priority};
use phaseflow::protocol::events::{GateValidated, TaskClaimed, TaskFinished, TaskLeaseExpired};
use phaseflow::protocol::RejectionCode;
use serde_json::json;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::common::factory::Placed;
use crate::common::requests::CLAIM;
use crate::common::rules::Rules;
use crate::common::{uuid, Outcome, Rejected, Requests, TestApp};

/// Asserts a rejection's type and code; returns its reasons, one per line.
fn assert_rejected(rejected: &Rejected, event_type: &str, code: RejectionCode) -> String {
    assert_eq!(rejected.event_type, event_type, "{rejected}");
    assert_eq!(rejected.data.code, code, "{rejected}");
    rejected.reasons()
}

/// A task's status, holder, claims so far and expiries, as stored.
async fn status_of(rules: &Rules, task: &str) -> (String, Option<String>, i32, i32) {
    sqlx::query_as("select status::text, claimed_by, attempt, expiries from tasks where id = $1")
        .bind(uuid(task))
        .fetch_one(&rules.pool)
        .await
        .expect("the task")
}

/// Makes every lease on the task run out now.
async fn run_out(rules: &Rules, task: &str) {
    sqlx::query("update tasks set lease_expires_at = now() - interval '1 second' where id = $1")
        .bind(uuid(task))
        .execute(&rules.pool)
        .await
        .expect("lease moved into the past");
}

/// A ticket in REQUIREMENTS whose `analyze_requirements` `agent-1` holds for a minute.
async fn held_by_agent_1(rules: &Rules) -> (Placed, TaskClaimed) {
    let placed = rules.ticket_in(Phase::Requirements).await;
    let task = placed.task("analyze_requirements");
    let claimed = rules
        .claim(
            "agent-1",
            Some(&placed.ticket),
            json!({"task_id": task, "lease_seconds": 60}),
        )
        .await
        .succeeded();
    (placed, claimed.data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_gets_the_oldest_high_task_with_its_phase_s_guidance() {
    let rules = Rules::new().await;
    let older = rules.ticket_in(Phase::Requirements).await;
    rules.ticket_in(Phase::Requirements).await;

    let first = rules.claim("agent-1", None, json!({})).await.succeeded();

    assert_eq!(
        first.data.task_id.to_string(),
        older.task("analyze_requirements")
    );
    assert_eq!(first.data.claimed_by, "agent-1");
    assert_eq!(first.data.attempt, 1);
    assert_eq!(first.data.priority, Priority::High);
    let guidance = first.data.guidance.expect("the phase has guidance");
    assert!(
        guidance.prompt.is_some_and(|prompt| !prompt.is_empty())
            && !guidance.expected_outputs.is_empty(),
        "the claim tells the agent what its phase is for"
    );
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_waiting_for_its_dependency_is_not_claimable() {
    let rules = Rules::new().await;
    let placed = rules.ticket_in(Phase::Requirements).await;
    let doc = placed.task("create_requirements_doc");

    let early = rules
        .claim("agent-2", Some(&placed.ticket), json!({"task_id": doc}))
        .await
        .rejected();
    let of_type = rules
        .claim(
            "agent-2",
            None,
            json!({"task_types": ["create_requirements_doc"]}),
        )
        .await
        .rejected();

    let reasons = assert_rejected(
        &early,
        "task.claim.rejected",
        RejectionCode::TaskNotClaimable,
    );
    assert!(
        reasons.contains("depends on unfinished tasks: analyze_requirements"),
        "{reasons}"
    );
    assert_eq!(
        early.data.task_id.map(|id| id.to_string()).as_deref(),
        Some(doc)
    );
    assert_rejected(
        &of_type,
        "task.claim.rejected",
        RejectionCode::NoTaskAvailable,
    );
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_high_task_of_a_newer_ticket_goes_before_a_medium_one_of_an_older_ticket() {
    let rules = Rules::new().await;
    let older = rules.ticket_in(Phase::Requirements).await;
    let newer = rules.ticket_in(Phase::Requirements).await;
    let analysis = older.task("analyze_requirements");
    rules.claim("agent-1", None, json!({})).await.succeeded();
    rules
        .complete_task_as("agent-1", &older.ticket, analysis)
        .await
        .succeeded();

    let second = rules.claim("agent-2", None, json!({})).await.succeeded();
    let third = rules.claim("agent-3", None, json!({})).await.succeeded();
    let none = rules
        .claim("agent-4", Some(&newer.ticket), json!({}))
        .await
        .rejected();

    assert_eq!(
        second.data.task_id.to_string(),
        newer.task("analyze_requirements")
    );
    assert_eq!(
        third.data.task_id.to_string(),
        older.task("create_requirements_doc")
    );
    assert_eq!(
        third
            .data
            .dependencies
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [analysis]
    );
    assert_rejected(&none, "task.claim.rejected", RejectionCode::NoTaskAvailable);
    assert_eq!(
        none.data.ticket_id.map(|id| id.to_string()),
        Some(newer.ticket.clone())
    );
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_agent_may_not_claim_extend_release_or_report_a_held_task() {
    let rules = Rules::new().await;
    let (placed, _) = held_by_agent_1(&rules).await;
    let (ticket, task) = (&placed.ticket, placed.task("analyze_requirements"));
    let named = json!({"task_id": task});

    let taken = rules
        .claim("agent-2", Some(ticket), named.clone())
        .await
        .rejected();
    let extended = rules
        .heartbeat("agent-2", ticket, named.clone())
        .await
        .rejected();
    let released = rules
        .release("agent-2", ticket, named.clone())
        .await
        .rejected();
    let reported = rules
        .complete_task_as("agent-2", ticket, task)
        .await
        .rejected();

    let reasons = assert_rejected(
        &taken,
        "task.claim.rejected",
        RejectionCode::TaskNotClaimable,
    );
    assert!(reasons.contains("claimed by agent-1"), "{reasons}");
    let reasons = assert_rejected(
        &extended,
        "task.heartbeat.rejected",
        RejectionCode::LeaseLost,
    );
    assert!(
        reasons.contains("claimed by agent-1, not by agent-2"),
        "{reasons}"
    );
    assert_rejected(&released, "task.release.rejected", RejectionCode::LeaseLost);
    let reasons = assert_rejected(
        &reported,
        "task.complete.rejected",
        RejectionCode::TaskClaimedByOther,
    );
    assert!(reasons.contains("agent-1"), "{reasons}");
    assert_eq!(status_of(&rules, task).await.0, "claimed");
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_holder_extends_its_lease_by_a_heartbeat() {
    let rules = Rules::new().await;
    let (placed, claimed) = held_by_agent_1(&rules).await;

    let extended = rules
        .heartbeat(
            "agent-1",
            &placed.ticket,
            json!({"task_id": placed.task("analyze_requirements"), "lease_seconds": 120}),
        )
        .await
        .succeeded();

    assert!(
        extended.data.lease_expires_at > claimed.lease_expires_at,
        "{} after {}",
        extended.data.lease_expires_at,
        claimed.lease_expires_at
    );
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_task_is_pending_again_for_anyone_and_the_holder_s_lease_is_gone() {
    let rules = Rules::new().await;
    let (placed, _) = held_by_agent_1(&rules).await;
    let (ticket, task) = (&placed.ticket, placed.task("analyze_requirements"));

    let released = rules
        .release(
            "agent-1",
            ticket,
            json!({"task_id": task, "reason": "out of my depth"}),
        )
        .await
        .succeeded();

    assert_eq!(released.data.released_by, "agent-1");
    assert_eq!(released.data.reason.as_deref(), Some("out of my depth"));
    assert_eq!(
        status_of(&rules, task).await,
        ("pending".into(), None, 1, 0)
    );
    let again = rules
        .heartbeat("agent-1", ticket, json!({"task_id": task}))
        .await
        .rejected();
    let reasons = assert_rejected(&again, "task.heartbeat.rejected", RejectionCode::LeaseLost);
    assert!(reasons.contains("not claimed"), "{reasons}");
    let reclaimed = rules
        .claim("agent-2", Some(ticket), json!({}))
        .await
        .succeeded();
    assert_eq!(reclaimed.data.task_id.to_string(), task);
    assert_eq!(reclaimed.data.attempt, 2);
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_ran_out_protects_nothing_and_anyone_may_report_the_task() {
    let rules = Rules::new().await;
    let (placed, _) = held_by_agent_1(&rules).await;
    let (ticket, task) = (&placed.ticket, placed.task("analyze_requirements"));
    run_out(&rules, task).await;

    let late = rules
        .heartbeat("agent-1", ticket, json!({"task_id": task}))
        .await
        .rejected();
    let completed = rules.complete_task_as("agent-3", ticket, task).await;

    assert!(
        assert_rejected(&late, "task.heartbeat.rejected", RejectionCode::LeaseLost)
            .contains("ran out")
    );
    completed.succeeded();
    assert_eq!(
        status_of(&rules, task).await,
        ("completed".into(), Some("agent-3".into()), 1, 0)
    );
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_returns_the_task_and_the_last_allowed_expiry_fails_it_for_the_gate() {
    let rules = Rules::new().await;
    let max_attempts = rules.settings.tasks.max_attempts;
    assert_eq!(max_attempts, 3, "the shipped default");
    let placed = rules.ticket_in(Phase::Requirements).await;
    let ticket = &placed.ticket;
    rules
        .complete_task(ticket, placed.task("analyze_requirements"))
        .await
        .succeeded();
    let task = placed.task("create_requirements_doc");

    for attempt in 1..=max_attempts {
        let agent = format!("agent-{attempt}");
        let claimed = rules
            .claim(&agent, Some(ticket), json!({}))
            .await
            .succeeded();
        assert_eq!(claimed.data.task_id.to_string(), task, "{claimed}");
        assert_eq!(claimed.data.attempt as u32, attempt);
        assert_eq!(
            rules.sweep_leases().await.total(),
            0,
            "the lease is still live"
        );
        run_out(&rules, task).await;
        let swept = rules.sweep_leases().await;
        let expired = rules.events.of_type("task.lease.expired", ticket);
        assert_eq!(expired.len() as u32, attempt, "one expiry event per expiry");
        let last = expired.last().expect("an expiry");
        let data: TaskLeaseExpired = last.data();
        assert_eq!(last.actor, "system");
        assert_eq!(data.claimed_by, agent);
        assert_eq!(data.attempt as u32, attempt);
        assert!(last.ticketseq.is_some(), "{last}");
        if attempt < max_attempts {
            assert_eq!((swept.returned, swept.failed), (1, 0));
            assert_eq!(
                status_of(&rules, task).await,
                ("pending".into(), None, attempt as i32, attempt as i32)
            );
        } else {
            assert_eq!((swept.returned, swept.failed), (0, 1));
        }
    }
    let (status, _, _, expiries) = status_of(&rules, task).await;
    assert_eq!((status.as_str(), expiries), ("failed", 3));
    let error: String = sqlx::query_scalar("select error from tasks where id = $1")
        .bind(uuid(task))
        .fetch_one(&rules.pool)
        .await
        .expect("error");
    assert_eq!(error, "lease expired 3 times");
    let failed = rules.events.of_type("task.failed", ticket);
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].data::<TaskFinished>().task_id.to_string(), task);
    assert_eq!(failed[0].actor, "system");
    let gates = rules.events.of_type("gate.validated", ticket);
    let gate: GateValidated = gates.first().expect("the gate was validated").data();
    assert_eq!(gate.gate_status, GateStatus::Failed, "{gate:#?}");
    let blocking = gate.blocking_reasons.join("\n");
    assert!(
        blocking.contains("create_requirements_doc failed"),
        "{blocking}"
    );
    let claim = rules
        .claim("agent-9", Some(ticket), json!({}))
        .await
        .rejected();
    assert_rejected(
        &claim,
        "task.claim.rejected",
        RejectionCode::NoTaskAvailable,
    );
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_and_sweeps_that_race_never_share_a_task_or_an_expiry() {
    let rules = Arc::new(Rules::new().await);
    let mut expected = HashSet::new();
    for _ in 0..6 {
        let placed = rules.ticket_in(Phase::Requirements).await;
        expected.insert(placed.task("analyze_requirements").to_owned());
    }
    let mut claims = JoinSet::new();
    for index in 0..16 {
        let rules = rules.clone();
        claims.spawn(async move {
            rules
                .claim(&format!("agent-{index}"), None, json!({}))
                .await
        });
    }
    let outcomes = claims.join_all().await;
    let mut claimed = Vec::new();
    for outcome in outcomes {
        match outcome {
            Outcome::Succeeded(event) => claimed.push(event.data.task_id.to_string()),
            Outcome::Rejected(rejected) => {
                assert_rejected(
                    &rejected,
                    "task.claim.rejected",
                    RejectionCode::NoTaskAvailable,
                );
            }
        }
    }
    let distinct: HashSet<String> = claimed.iter().cloned().collect();
    assert_eq!(
        claimed.len(),
        distinct.len(),
        "a task was claimed twice: {claimed:?}"
    );
    assert_eq!(distinct, expected, "every claimable task was claimed once");

    sqlx::query(
        "update tasks set lease_expires_at = now() - interval '1 second' where status = 'claimed'",
    )
    .execute(&rules.pool)
    .await
    .expect("leases run out");
    let mut swept = 0;
    for _ in 0..5 {
        let mut sweeps = JoinSet::new();
        for _ in 0..3 {
            let rules = rules.clone();
            sweeps.spawn(async move { rules.workflow.expire_leases(2).await });
        }
        swept += sweeps
            .join_all()
            .await
            .into_iter()
            .map(|result| result.expect("a sweep").total())
            .sum::<u64>();
        if swept >= expected.len() as u64 {
            break;
        }
    }
    assert_eq!(swept, expected.len() as u64, "every lease expired once");
    let expiries: Vec<i32> = sqlx::query_scalar(
        "select expiries from tasks where status = 'pending' and task_type = 'analyze_requirements'",
    )
    .fetch_all(&rules.pool)
    .await
    .expect("expiries");
    assert_eq!(expiries, vec![1; expected.len()]);
    let events: i64 =
        sqlx::query_scalar("select count(*) from outbox where event_type = 'task.lease.expired'")
            .fetch_one(&rules.pool)
            .await
            .expect("outbox");
    assert_eq!(
        events,
        expected.len() as i64,
        "one task.lease.expired per lease"
    );
    Arc::into_inner(rules)
        .expect("no claim left running")
        .shutdown()
        .await;
}

/// A ticket in REQUIREMENTS with its tasks, in the app's database.
async fn ticket_with_tasks(app: &TestApp) -> String {
    app.ticket_in(Phase::Requirements).await.ticket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_agents_claiming_through_three_replicas_never_get_the_same_task() {
    let mut app = TestApp::spawn().await;
    app.start_worker();
    app.start_worker();
    let mut tickets = Vec::new();
    for _ in 0..8 {
        tickets.push(ticket_with_tasks(&app).await);
    }
    let mut requests = Vec::new();
    for agent in 0..20 {
        // half ask for any ticket, half for a given one; all are published before any outcome
        // is read
        let subject = (agent % 2 == 1).then(|| tickets[agent % tickets.len()].as_str());
        let id = Uuid::new_v4().to_string();
        app.publish(&format!("agent-{agent}"), &id, CLAIM, subject, json!({}))
            .await;
        requests.push(id);
    }
    let mut claimed = Vec::new();
    for request in &requests {
        match app.outcome_of_request::<TaskClaimed>(request, CLAIM).await {
            Outcome::Succeeded(event) => {
                claimed.push((event.data.task_id.to_string(), event.data.claimed_by))
            }
            Outcome::Rejected(rejected) => {
                assert_rejected(
                    &rejected,
                    "task.claim.rejected",
                    RejectionCode::NoTaskAvailable,
                );
            }
        }
    }
    let tasks: HashSet<&str> = claimed.iter().map(|(task, _)| task.as_str()).collect();
    assert_eq!(
        tasks.len(),
        claimed.len(),
        "a task was claimed twice: {claimed:?}"
    );
    assert_eq!(
        claimed.len(),
        tickets.len(),
        "each ticket's one claimable task was claimed"
    );
    let stored: Vec<(Uuid, String, i32)> = sqlx::query_as(
        "select id, claimed_by, attempt from tasks where status = 'claimed' order by id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("claimed tasks");
    let mut expected: Vec<(Uuid, String, i32)> = claimed
        .iter()
        .map(|(task, agent)| (uuid(task), agent.clone(), 1))
        .collect();
    expected.sort();
    assert_eq!(stored, expected, "the database agrees with the events");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_runs_out_is_announced_within_the_sweep_interval_and_a_second() {
    let app = TestApp::spawn().await;
    let interval = app.settings.tasks.lease_sweep_interval();
    let ticket = ticket_with_tasks(&app).await;
    let claimed = app
        .claim("agent-doomed", Some(&ticket), json!({"lease_seconds": 10}))
        .await
        .succeeded()
        .data;

    let expired = app
        .events
        .wait_for_data("task.lease.expired", &ticket, |data: &TaskLeaseExpired| {
            data.task_id == claimed.task_id
        })
        .await;

    let deadline = claimed.lease_expires_at;
    let late = Utc::now() - deadline;
    assert!(
        late.to_std().unwrap_or_default() <= interval + Duration::from_secs(1),
        "announced {late} after the deadline"
    );
    assert!(Utc::now() >= deadline, "not before the deadline");
    assert_eq!(expired.data.claimed_by, "agent-doomed");
    assert_eq!(expired.actor, "system");
    // pending again: another agent gets it
    let reclaimed = app
        .claim("agent-next", Some(&ticket), json!({}))
        .await
        .succeeded();
    assert_eq!(reclaimed.data.task_id, claimed.task_id, "{reclaimed}");
    assert_eq!(reclaimed.data.attempt, 2);
    app.shutdown().await;
}
