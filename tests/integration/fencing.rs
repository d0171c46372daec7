//! Fencing: every claim has its own `claim_id`, and a heartbeat, release or report that quotes a
//! claim which is no longer the task's live one (the lease ran out, the task was released or
//! claimed again, even by the same agent) is refused and changes nothing. Against Postgres
//! alone, one request at a time, then a stale report racing a new claim under the ticket's lock.

use std::sync::Arc;

use phaseflow::domain::Phase;
use phaseflow::protocol::events::{TaskClaimed, TaskFinished};
use phaseflow::protocol::RejectionCode;
use serde_json::json;
use tokio::task::JoinSet;

use crate::common::requests::COMPLETE_TASK;
use crate::common::rules::Rules;
use crate::common::{uuid, Outcome, Requests};

/// A claim of the ticket's `analyze_requirements` by `agent` for a minute.
async fn claim(rules: &Rules, agent: &str, ticket: &str, task: &str) -> TaskClaimed {
    rules
        .claim(
            agent,
            Some(ticket),
            json!({"task_id": task, "lease_seconds": 60}),
        )
        .await
        .succeeded()
        .data
}

/// The task's status, holder and claim id, as stored.
async fn stored(rules: &Rules, task: &str) -> (String, Option<String>, Option<uuid::Uuid>) {
    sqlx::query_as("select status::text, claimed_by, claim_id from tasks where id = $1")
        .bind(uuid(task))
        .fetch_one(&rules.pool)
        .await
        .expect("the task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_claim_has_its_own_id_and_only_the_live_one_renews_or_releases() {
    let rules = Rules::new().await;
    let placed = rules.ticket_in(Phase::Requirements).await;
    let task = placed.task("analyze_requirements");
    let first = claim(&rules, "agent-1", &placed.ticket, task).await;
    rules
        .release(
            "agent-1",
            &placed.ticket,
            json!({"task_id": task, "claim_id": first.claim_id}),
        )
        .await
        .succeeded();
    let second = claim(&rules, "agent-1", &placed.ticket, task).await;
    assert_ne!(second.claim_id, first.claim_id, "a new claim, a new id");

    let renewed = rules
        .heartbeat(
            "agent-1",
            &placed.ticket,
            json!({"task_id": task, "claim_id": second.claim_id}),
        )
        .await;
    let stale_heartbeat = rules
        .heartbeat(
            "agent-1",
            &placed.ticket,
            json!({"task_id": task, "claim_id": first.claim_id, "lease_seconds": 3600}),
        )
        .await
        .rejected();
    let stale_release = rules
        .release(
            "agent-1",
            &placed.ticket,
            json!({"task_id": task, "claim_id": first.claim_id}),
        )
        .await
        .rejected();

    let renewed = renewed.succeeded();
    for rejected in [&stale_heartbeat, &stale_release] {
        rejected.assert(
            rejected.event_type.as_str(),
            RejectionCode::LeaseLost,
            Some(&placed.ticket),
        );
        assert!(rejected.reasons().contains("claimed again"), "{rejected}");
    }
    let lease: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("select lease_expires_at from tasks where id = $1")
            .bind(uuid(task))
            .fetch_one(&rules.pool)
            .await
            .expect("the lease");
    assert_eq!(
        lease.timestamp(),
        renewed.data.lease_expires_at.timestamp(),
        "the stale heartbeat did not renew the lease"
    );
    assert_eq!(
        stored(&rules, task).await,
        (
            "claimed".to_owned(),
            Some("agent-1".to_owned()),
            Some(second.claim_id.0)
        ),
        "the stale release gave nothing back"
    );
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_under_a_claim_that_ran_out_is_stale_and_records_nothing() {
    let rules = Rules::new().await;
    let placed = rules.ticket_in(Phase::Requirements).await;
    let task = placed.task("analyze_requirements");
    let lost = claim(&rules, "agent-1", &placed.ticket, task).await;
    sqlx::query("update tasks set lease_expires_at = now() - interval '1 second' where id = $1")
        .bind(uuid(task))
        .execute(&rules.pool)
        .await
        .expect("the lease runs out");

    let before_the_sweep = rules
        .report_task(
            &placed.ticket,
            json!({"task_id": task, "claim_id": lost.claim_id, "result": {"summary": "late"}}),
        )
        .await
        .rejected();
    rules.sweep_leases().await;
    let taken_over = claim(&rules, "agent-2", &placed.ticket, task).await;
    let after_a_new_claim = rules
        .report_task(
            &placed.ticket,
            json!({"task_id": task, "claim_id": lost.claim_id, "result": {"summary": "late"}}),
        )
        .await
        .rejected();

    for rejected in [&before_the_sweep, &after_a_new_claim] {
        rejected.assert(
            "task.complete.rejected",
            RejectionCode::StaleClaim,
            Some(&placed.ticket),
        );
    }
    assert!(
        before_the_sweep.reasons().contains("lease ran out"),
        "{before_the_sweep}"
    );
    assert_eq!(
        stored(&rules, task).await,
        (
            "claimed".to_owned(),
            Some("agent-2".to_owned()),
            Some(taken_over.claim_id.0)
        )
    );
    let result: Option<serde_json::Value> =
        sqlx::query_scalar("select result from tasks where id = $1")
            .bind(uuid(task))
            .fetch_one(&rules.pool)
            .await
            .expect("the result");
    assert_eq!(result, None, "nothing of the stale report was recorded");
    let reported = rules
        .request_as::<TaskFinished>(
            "agent-2",
            COMPLETE_TASK,
            Some(&placed.ticket),
            json!({"task_id": task, "claim_id": taken_over.claim_id}),
        )
        .await
        .succeeded();
    assert_eq!(reported.event_type, "task.completed");
    rules.shutdown().await;
}

/// What one of two racing requests came to.
enum Racer {
    Report(Outcome<TaskFinished>),
    Claim(Outcome<TaskClaimed>),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_report_racing_a_new_claim_never_lands_whichever_goes_first() {
    let rules = Arc::new(Rules::new().await);
    for round in 0..6 {
        let placed = rules.ticket_in(Phase::Requirements).await;
        let task = placed.task("analyze_requirements").to_owned();
        let lost = claim(&rules, "agent-1", &placed.ticket, &task).await;
        rules
            .release("agent-1", &placed.ticket, json!({"task_id": task}))
            .await
            .succeeded();

        let mut racers = JoinSet::new();
        {
            let (rules, ticket, task) = (rules.clone(), placed.ticket.clone(), task.clone());
            racers.spawn(async move {
                let report = json!({"task_id": task, "claim_id": lost.claim_id});
                Racer::Report(rules.report_task(&ticket, report).await)
            });
        }
        {
            let (rules, ticket, task) = (rules.clone(), placed.ticket.clone(), task.clone());
            racers.spawn(async move {
                // a new agent each round: each keeps its lease, within its claim limit
                let (agent, claim) = (format!("agent-2-{round}"), json!({"task_id": task}));
                Racer::Claim(rules.claim(&agent, Some(&ticket), claim).await)
            });
        }
        for racer in racers.join_all().await {
            match racer {
                Racer::Report(Outcome::Rejected(rejected)) => {
                    rejected.assert(
                        "task.complete.rejected",
                        RejectionCode::StaleClaim,
                        Some(&placed.ticket),
                    );
                }
                Racer::Report(Outcome::Succeeded(event)) => {
                    panic!("round {round}: a report under a released claim landed: {event}")
                }
                Racer::Claim(Outcome::Rejected(rejected)) => {
                    panic!("round {round}: the new claim was refused: {rejected}")
                }
                Racer::Claim(Outcome::Succeeded(_)) => {}
            }
        }
        let (status, holder, _) = stored(&rules, &task).await;
        assert_eq!(
            (status.as_str(), holder),
            ("claimed", Some(format!("agent-2-{round}"))),
            "round {round}"
        );
    }
    Arc::into_inner(rules)
        .expect("no racer left running")
        .shutdown()
        .await;
}
