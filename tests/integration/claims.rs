//! Claims and leases. The rules (dependencies, priority, who may extend, release or report a
//! held task, what expiries come to, concurrent claims and sweeps) run one request at a time
//! against Postgres alone; the race of 20 agents over three worker replicas, a lease that runs
//! out in real time, and the HTTP endpoints go through the broker and the API.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::common::rules::Rules;
use crate::common::{uuid, TestApp};
use chrono::{DateTime, Utc};
use phaseflow::messaging::client::OutgoingRequest;
use serde_json::{json, Value};
use uuid::Uuid;

const TRANSITION: &str = "phase.transition.requested";
const CLAIM: &str = "task.claim.requested";
const HEARTBEAT: &str = "task.heartbeat.requested";
const RELEASE: &str = "task.release.requested";
const COMPLETE: &str = "task.complete.requested";

/// Creates a ticket in REQUIREMENTS and returns it with its tasks by type.
async fn in_requirements(rules: &Rules, title: &str) -> (String, BTreeMap<String, String>) {
    let ticket = rules.create_ticket(title).await;
    let moved = rules
        .send(
            TRANSITION,
            Some(&ticket),
            json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "ready"}),
        )
        .await;
    assert_eq!(rules.outcome_of(&moved).await["type"], "phase.transitioned");
    let generated = rules
        .events
        .wait_for(|event| event["type"] == "tasks.generated" && event["subject"] == json!(ticket))
        .await;
    let tasks = generated["data"]["generated_tasks"]
        .as_array()
        .expect("generated_tasks")
        .iter()
        .map(|task| {
            (
                task["task_type"].as_str().expect("task_type").to_owned(),
                task["id"].as_str().expect("id").to_owned(),
            )
        })
        .collect();
    (ticket, tasks)
}

fn assert_outcome(event: &Value, event_type: &str) {
    assert_eq!(event["type"], event_type, "{event:#}");
}

fn assert_rejected(event: &Value, event_type: &str, code: &str) -> String {
    assert_eq!(event["type"], event_type, "{event:#}");
    assert_eq!(event["data"]["code"], code, "{event:#}");
    event["data"]["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join("\n")
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_honours_dependencies_then_priority_then_age() {
    let rules = Rules::new().await;
    let (older, older_tasks) = in_requirements(&rules, "Older ticket").await;
    let (newer, newer_tasks) = in_requirements(&rules, "Newer ticket").await;

    // of two HIGH tasks the older comes first; MEDIUM ones wait for their dependency
    let first = rules.send_as("agent-1", CLAIM, None, json!({})).await;
    assert_outcome(&first, "task.claimed");
    assert_eq!(
        first["data"]["task_id"],
        json!(older_tasks["analyze_requirements"])
    );
    assert_eq!(first["data"]["claimed_by"], "agent-1");
    assert_eq!(first["data"]["attempt"], 1);
    assert_eq!(first["data"]["priority"], "HIGH");
    let guidance = &first["data"]["guidance"];
    assert!(
        guidance["prompt"]
            .as_str()
            .is_some_and(|prompt| !prompt.is_empty())
            && guidance["expected_outputs"]
                .as_array()
                .is_some_and(|outputs| !outputs.is_empty()),
        "the claim tells the agent what its phase is for: {first:#}"
    );

    let doc = &older_tasks["create_requirements_doc"];
    let early = rules
        .send_as("agent-2", CLAIM, Some(&older), json!({"task_id": doc}))
        .await;
    let reasons = assert_rejected(&early, "task.claim.rejected", "task_not_claimable");
    assert!(
        reasons.contains("depends on unfinished tasks: analyze_requirements"),
        "{reasons}"
    );
    assert_eq!(early["data"]["task_id"], json!(doc));

    let of_type = rules
        .send_as(
            "agent-2",
            CLAIM,
            None,
            json!({"task_types": ["create_requirements_doc"]}),
        )
        .await;
    assert_rejected(&of_type, "task.claim.rejected", "no_task_available");

    // the older ticket's MEDIUM task is free now, but the newer ticket's HIGH one goes first
    let done = rules
        .send_as(
            "agent-1",
            COMPLETE,
            Some(&older),
            json!({"task_id": older_tasks["analyze_requirements"]}),
        )
        .await;
    assert_outcome(&done, "task.completed");
    let second = rules.send_as("agent-2", CLAIM, None, json!({})).await;
    assert_eq!(
        second["data"]["task_id"],
        json!(newer_tasks["analyze_requirements"])
    );
    let third = rules.send_as("agent-3", CLAIM, None, json!({})).await;
    assert_eq!(third["data"]["task_id"], json!(doc));
    assert_eq!(
        third["data"]["dependencies"],
        json!([older_tasks["analyze_requirements"]])
    );
    let none = rules
        .send_as("agent-4", CLAIM, Some(&newer), json!({}))
        .await;
    assert_rejected(&none, "task.claim.rejected", "no_task_available");
    assert_eq!(none["data"]["ticket_id"], json!(newer));
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_holder_may_extend_release_or_report_a_held_task() {
    let rules = Rules::new().await;
    let (ticket, tasks) = in_requirements(&rules, "Held work").await;
    let task = &tasks["analyze_requirements"];
    let claimed = rules
        .send_as(
            "agent-1",
            CLAIM,
            Some(&ticket),
            json!({"task_id": task, "lease_seconds": 60}),
        )
        .await;
    assert_outcome(&claimed, "task.claimed");
    let deadline: DateTime<Utc> = claimed["data"]["lease_expires_at"]
        .as_str()
        .expect("lease_expires_at")
        .parse()
        .expect("a time");

    let taken = rules
        .send_as("agent-2", CLAIM, Some(&ticket), json!({"task_id": task}))
        .await;
    let reasons = assert_rejected(&taken, "task.claim.rejected", "task_not_claimable");
    assert!(reasons.contains("claimed by agent-1"), "{reasons}");
    let foreign = rules
        .send_as(
            "agent-2",
            HEARTBEAT,
            Some(&ticket),
            json!({"task_id": task}),
        )
        .await;
    let reasons = assert_rejected(&foreign, "task.heartbeat.rejected", "lease_lost");
    assert!(
        reasons.contains("claimed by agent-1, not by agent-2"),
        "{reasons}"
    );
    let foreign = rules
        .send_as("agent-2", RELEASE, Some(&ticket), json!({"task_id": task}))
        .await;
    assert_rejected(&foreign, "task.release.rejected", "lease_lost");
    let foreign = rules
        .send_as("agent-2", COMPLETE, Some(&ticket), json!({"task_id": task}))
        .await;
    let reasons = assert_rejected(&foreign, "task.complete.rejected", "task_claimed_by_other");
    assert!(reasons.contains("agent-1"), "{reasons}");
    assert_eq!(status_of(&rules, task).await.0, "claimed");

    let extended = rules
        .send_as(
            "agent-1",
            HEARTBEAT,
            Some(&ticket),
            json!({"task_id": task, "lease_seconds": 120}),
        )
        .await;
    assert_outcome(&extended, "task.lease.extended");
    let renewed: DateTime<Utc> = extended["data"]["lease_expires_at"]
        .as_str()
        .expect("lease_expires_at")
        .parse()
        .expect("a time");
    assert!(renewed > deadline, "{renewed} after {deadline}");

    let released = rules
        .send_as(
            "agent-1",
            RELEASE,
            Some(&ticket),
            json!({"task_id": task, "reason": "out of my depth"}),
        )
        .await;
    assert_outcome(&released, "task.released");
    assert_eq!(released["data"]["released_by"], "agent-1");
    assert_eq!(released["data"]["reason"], "out of my depth");
    assert_eq!(
        status_of(&rules, task).await,
        ("pending".into(), None, 1, 0)
    );

    // released: anyone may claim it again, and the holder's lease is gone
    let again = rules
        .send_as(
            "agent-1",
            HEARTBEAT,
            Some(&ticket),
            json!({"task_id": task}),
        )
        .await;
    let reasons = assert_rejected(&again, "task.heartbeat.rejected", "lease_lost");
    assert!(reasons.contains("not claimed"), "{reasons}");
    let reclaimed = rules
        .send_as("agent-2", CLAIM, Some(&ticket), json!({}))
        .await;
    assert_eq!(reclaimed["data"]["task_id"], json!(task));
    assert_eq!(reclaimed["data"]["attempt"], 2);

    // a lease that ran out protects nothing: anyone may report the task
    run_out(&rules, task).await;
    let late = rules
        .send_as(
            "agent-2",
            HEARTBEAT,
            Some(&ticket),
            json!({"task_id": task}),
        )
        .await;
    assert!(assert_rejected(&late, "task.heartbeat.rejected", "lease_lost").contains("ran out"));
    let completed = rules
        .send_as("agent-3", COMPLETE, Some(&ticket), json!({"task_id": task}))
        .await;
    assert_outcome(&completed, "task.completed");
    assert_eq!(
        status_of(&rules, task).await,
        ("completed".into(), Some("agent-3".into()), 2, 0)
    );
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_returns_the_task_and_the_last_allowed_expiry_fails_it_for_the_gate() {
    let rules = Rules::new().await;
    let max_attempts = rules.settings.tasks.max_attempts;
    assert_eq!(max_attempts, 3, "the shipped default");
    let (ticket, tasks) = in_requirements(&rules, "Agents keep dying").await;
    let done = rules
        .send(
            COMPLETE,
            Some(&ticket),
            json!({"task_id": tasks["analyze_requirements"]}),
        )
        .await;
    assert_outcome(&rules.outcome_of(&done).await, "task.completed");
    let task = &tasks["create_requirements_doc"];

    for attempt in 1..=max_attempts {
        let agent = format!("agent-{attempt}");
        let claimed = rules.send_as(&agent, CLAIM, Some(&ticket), json!({})).await;
        assert_eq!(claimed["data"]["task_id"], json!(task), "{claimed:#}");
        assert_eq!(claimed["data"]["attempt"], attempt);
        assert_eq!(
            rules.sweep_leases().await.total(),
            0,
            "the lease is still live"
        );
        run_out(&rules, task).await;
        let swept = rules.sweep_leases().await;
        let expired: Vec<Value> = rules
            .events
            .all()
            .into_iter()
            .filter(|event| event["type"] == "task.lease.expired")
            .collect();
        assert_eq!(expired.len() as u32, attempt, "one expiry event per expiry");
        let last = expired.last().expect("an expiry");
        assert_eq!(last["actor"], "system");
        assert_eq!(last["data"]["claimed_by"], json!(agent));
        assert_eq!(last["data"]["attempt"], attempt);
        assert!(last["ticketseq"].is_u64(), "{last:#}");
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
    let failed = rules
        .events
        .wait_for(|event| event["type"] == "task.failed" && event["data"]["task_id"] == json!(task))
        .await;
    assert_eq!(failed["actor"], "system");
    let gate = rules
        .events
        .wait_for(|event| event["type"] == "gate.validated")
        .await;
    assert_eq!(gate["data"]["gate_status"], "failed", "{gate:#}");
    let blocking = gate["data"]["blocking_reasons"].to_string();
    assert!(
        blocking.contains("create_requirements_doc failed"),
        "{blocking}"
    );
    let claim = rules
        .send_as("agent-9", CLAIM, Some(&ticket), json!({}))
        .await;
    assert_rejected(&claim, "task.claim.rejected", "no_task_available");
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_and_sweeps_that_race_never_share_a_task_or_an_expiry() {
    let rules = Arc::new(Rules::new().await);
    let mut expected = HashSet::new();
    for index in 0..6 {
        let (_, tasks) = in_requirements(&rules, &format!("Race {index}")).await;
        expected.insert(tasks["analyze_requirements"].clone());
    }
    let mut claims = JoinSet::new();
    for index in 0..16 {
        let rules = rules.clone();
        claims.spawn(async move {
            rules
                .send_as(&format!("agent-{index}"), CLAIM, None, json!({}))
                .await
        });
    }
    let outcomes = claims.join_all().await;
    let claimed: Vec<String> = outcomes
        .iter()
        .filter(|event| event["type"] == "task.claimed")
        .map(|event| {
            event["data"]["task_id"]
                .as_str()
                .expect("task_id")
                .to_owned()
        })
        .collect();
    let distinct: HashSet<String> = claimed.iter().cloned().collect();
    assert_eq!(
        claimed.len(),
        distinct.len(),
        "a task was claimed twice: {claimed:?}"
    );
    assert_eq!(distinct, expected, "every claimable task was claimed once");
    for outcome in &outcomes {
        if outcome["type"] != "task.claimed" {
            assert_rejected(outcome, "task.claim.rejected", "no_task_available");
        }
    }

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

/// Publishes a request from `agent` and returns its id.
async fn publish_as(
    app: &TestApp,
    agent: &str,
    request_type: &str,
    subject: Option<&str>,
    data: Value,
) -> String {
    let id = Uuid::new_v4().to_string();
    let request = OutgoingRequest {
        id: id.clone(),
        request_type: request_type.to_owned(),
        subject: subject.map(str::to_owned),
        source: format!("agent/{agent}"),
        actor: Some(agent.to_owned()),
        correlation_id: None,
        data,
    };
    app.client.publish(&request).await.expect("published");
    id
}

/// Moves a new ticket to REQUIREMENTS over the broker; returns it once its tasks exist.
async fn ticket_with_tasks(app: &TestApp, title: &str) -> String {
    let ticket = app.create_ticket(title).await;
    let moved = app
        .send(
            TRANSITION,
            Some(&ticket),
            json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "ready"}),
        )
        .await;
    assert_eq!(app.outcome_of(&moved).await["type"], "phase.transitioned");
    app.events
        .wait_for(|event| event["type"] == "tasks.generated" && event["subject"] == json!(ticket))
        .await;
    ticket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_agents_claiming_through_three_replicas_never_get_the_same_task() {
    let mut app = TestApp::spawn().await;
    app.start_worker();
    app.start_worker();
    let mut tickets = Vec::new();
    for index in 0..8 {
        tickets.push(ticket_with_tasks(&app, &format!("Shared pool {index}")).await);
    }
    let mut requests = Vec::new();
    for agent in 0..20 {
        // half ask for any ticket, half for a given one
        let subject = (agent % 2 == 1).then(|| tickets[agent % tickets.len()].as_str());
        requests.push(publish_as(&app, &format!("agent-{agent}"), CLAIM, subject, json!({})).await);
    }
    let mut claimed = Vec::new();
    for request in &requests {
        let outcome = app.outcome_of(request).await;
        match outcome["type"].as_str() {
            Some("task.claimed") => claimed.push((
                outcome["data"]["task_id"]
                    .as_str()
                    .expect("task_id")
                    .to_owned(),
                outcome["data"]["claimed_by"]
                    .as_str()
                    .expect("claimed_by")
                    .to_owned(),
            )),
            _ => {
                assert_rejected(&outcome, "task.claim.rejected", "no_task_available");
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
    let ticket = ticket_with_tasks(&app, "The agent dies").await;
    let request = publish_as(
        &app,
        "agent-doomed",
        CLAIM,
        Some(&ticket),
        json!({"lease_seconds": 10}),
    )
    .await;
    let claimed = app.outcome_of(&request).await;
    assert_eq!(claimed["type"], "task.claimed", "{claimed:#}");
    let task = claimed["data"]["task_id"].clone();
    let deadline: DateTime<Utc> = claimed["data"]["lease_expires_at"]
        .as_str()
        .expect("lease_expires_at")
        .parse()
        .expect("a time");

    let expired = app
        .events
        .wait_for(|event| event["type"] == "task.lease.expired" && event["data"]["task_id"] == task)
        .await;
    let late = Utc::now() - deadline;
    assert!(
        late.to_std().unwrap_or_default() <= interval + Duration::from_secs(1),
        "announced {late} after the deadline"
    );
    assert!(Utc::now() >= deadline, "not before the deadline");
    assert_eq!(expired["data"]["claimed_by"], "agent-doomed");
    assert_eq!(expired["actor"], "system");
    // pending again: another agent gets it
    let again = publish_as(&app, "agent-next", CLAIM, Some(&ticket), json!({})).await;
    let reclaimed = app.outcome_of(&again).await;
    assert_eq!(reclaimed["data"]["task_id"], task, "{reclaimed:#}");
    assert_eq!(reclaimed["data"]["attempt"], 2);
    app.shutdown().await;
}
