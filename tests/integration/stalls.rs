//! Progress-aware stalls, against Postgres alone: a claimed task whose heartbeats report no new
//! progress for `tasks.stall_after_seconds` gets one `task.stalled` per claim, and, when
//! `tasks.stall_release_after_seconds` is set, is released by `system` (reason `stalled`),
//! which counts towards `tasks.max_attempts`. Time passes by moving the task's last progress
//! into the past, not by sleeping. The races (a heartbeat with progress against the sweep, two
//! sweeps) run concurrently under the tickets' row locks.

use std::sync::Arc;

use phaseflow::domain::Phase;
use phaseflow::protocol::events::{TaskClaimed, TaskReleased, TaskStalled};
use phaseflow::protocol::RejectionCode;
use serde_json::json;
use tokio::task::JoinSet;

use crate::common::rules::Rules;
use crate::common::{uuid, Outcome, Requests};

/// Moves the task's last progress `seconds` into the past.
async fn silent_for(rules: &Rules, task: &str, seconds: i64) {
    sqlx::query(
        "update tasks set last_progress_at = now() - make_interval(secs => $2), \
                stalled_at = case when stalled_at is null then null \
                                  else now() - make_interval(secs => $2) end \
         where id = $1",
    )
    .bind(uuid(task))
    .bind(seconds as f64)
    .execute(&rules.pool)
    .await
    .expect("progress moved into the past");
}

/// A ticket in REQUIREMENTS whose `analyze_requirements` `analyst` holds for an hour.
async fn held(rules: &Rules) -> (String, String, TaskClaimed) {
    held_by(rules, "analyst").await
}

/// A ticket in REQUIREMENTS whose `analyze_requirements` `agent` holds for an hour.
async fn held_by(rules: &Rules, agent: &str) -> (String, String, TaskClaimed) {
    let placed = rules.ticket_in(Phase::Requirements).await;
    let task = placed.task("analyze_requirements").to_owned();
    let claimed = rules
        .claim(
            agent,
            Some(&placed.ticket),
            json!({"task_id": task, "lease_seconds": 3600}),
        )
        .await
        .succeeded()
        .data;
    (placed.ticket, task, claimed)
}

async fn status_of(rules: &Rules, task: &str) -> (String, Option<String>, i32) {
    sqlx::query_as("select status::text, claimed_by, expiries from tasks where id = $1")
        .bind(uuid(task))
        .fetch_one(&rules.pool)
        .await
        .expect("the task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_without_progress_is_reported_stalled_once() {
    let rules = Rules::new().await;
    let (ticket, task, claimed) = held(&rules).await;
    let stall_after = i64::from(rules.settings.tasks.stall_after_seconds);
    assert_eq!(stall_after, 900, "the default");
    silent_for(&rules, &task, stall_after - 30).await;
    assert_eq!(rules.sweep_stalls().await.stalled, 0, "not yet");

    // heartbeats without progress, or with the same progress again, do not count
    let progress = json!({"step": "reading", "percent": 10});
    rules
        .heartbeat(
            "analyst",
            &ticket,
            json!({"task_id": task, "progress": progress}),
        )
        .await
        .succeeded();
    silent_for(&rules, &task, stall_after + 1).await;
    rules
        .heartbeat("analyst", &ticket, json!({"task_id": task}))
        .await
        .succeeded();
    rules
        .heartbeat(
            "analyst",
            &ticket,
            json!({"task_id": task, "progress": {"percent": 10, "step": "reading"}}),
        )
        .await
        .succeeded();
    let swept = rules.sweep_stalls().await;
    assert_eq!((swept.stalled, swept.released), (1, 0));
    let stalled = rules.events.of_type("task.stalled", &ticket);
    assert_eq!(stalled.len(), 1);
    assert_eq!(stalled[0].actor, "system");
    let data: TaskStalled = stalled[0].data();
    assert_eq!(data.claimed_by, "analyst");
    assert_eq!(data.claim_id, claimed.claim_id);
    let last = data.last_progress.expect("the last progress");
    assert_eq!(
        (last.percent, last.step.as_deref()),
        (Some(10), Some("reading"))
    );

    silent_for(&rules, &task, 10 * stall_after).await;
    assert_eq!(rules.sweep_stalls().await.total(), 0, "once per claim");
    assert_eq!(
        status_of(&rules, &task).await.0,
        "claimed",
        "reported, not released: stall_release_after_seconds is 0"
    );

    // a new claim is watched afresh
    rules
        .release("analyst", &ticket, json!({"task_id": task}))
        .await
        .succeeded();
    rules
        .claim("analyst", Some(&ticket), json!({"task_id": task}))
        .await
        .succeeded();
    silent_for(&rules, &task, stall_after + 1).await;
    assert_eq!(rules.sweep_stalls().await.stalled, 1);
    assert_eq!(rules.events.of_type("task.stalled", &ticket).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_keeps_a_task_from_stalling() {
    let rules = Rules::new().await;
    let (ticket, task, _) = held(&rules).await;
    for percent in [10, 20, 30] {
        silent_for(&rules, &task, 899).await;
        rules
            .heartbeat(
                "analyst",
                &ticket,
                json!({"task_id": task, "progress": {"percent": percent}}),
            )
            .await
            .succeeded();
        assert_eq!(rules.sweep_stalls().await.stalled, 0);
    }
    let bad = rules
        .heartbeat(
            "analyst",
            &ticket,
            json!({"task_id": task, "progress": {"percent": 101, "note": "", "mood": "x"}}),
        )
        .await
        .rejected();
    assert_eq!(bad.data.code, RejectionCode::InvalidRequest, "{bad}");
    let reasons = bad.reasons();
    for field in ["progress.percent", "progress.note", "progress.mood"] {
        assert!(reasons.contains(field), "{field}: {reasons}");
    }
    // a progress that says nothing is no progress
    silent_for(&rules, &task, 901).await;
    rules
        .heartbeat(
            "analyst",
            &ticket,
            json!({"task_id": task, "progress": {"step": null}}),
        )
        .await
        .succeeded();
    assert_eq!(rules.sweep_stalls().await.stalled, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_task_is_released_when_configured_and_it_counts_as_an_attempt() {
    let rules = Rules::with_settings(|settings| {
        settings.tasks.stall_after_seconds = 60;
        settings.tasks.stall_release_after_seconds = 120;
        settings.tasks.max_attempts = 2;
    })
    .await;
    let (ticket, task, _) = held(&rules).await;
    silent_for(&rules, &task, 61).await;
    assert_eq!(rules.sweep_stalls().await.stalled, 1);
    silent_for(&rules, &task, 170).await;
    assert_eq!(
        rules.sweep_stalls().await.released,
        0,
        "not long enough after the stall"
    );
    silent_for(&rules, &task, 181).await;
    let swept = rules.sweep_stalls().await;
    assert_eq!((swept.released, swept.failed), (1, 0));
    let released = rules.events.of_type("task.released", &ticket);
    let data: TaskReleased = released.last().expect("a release").data();
    assert_eq!(data.released_by, "system");
    assert_eq!(data.reason.as_deref(), Some("stalled"));
    assert_eq!(status_of(&rules, &task).await, ("pending".into(), None, 1));
    let late = rules
        .heartbeat(
            "analyst",
            &ticket,
            json!({"task_id": task, "progress": {"percent": 90}}),
        )
        .await
        .rejected();
    assert_eq!(late.data.code, RejectionCode::LeaseLost, "{late}");

    // the second release is the last allowed attempt: the task fails
    rules
        .claim("analyst", Some(&ticket), json!({"task_id": task}))
        .await
        .succeeded();
    silent_for(&rules, &task, 61).await;
    rules.sweep_stalls().await;
    silent_for(&rules, &task, 181).await;
    let swept = rules.sweep_stalls().await;
    assert_eq!((swept.released, swept.failed), (1, 1));
    let (status, _, expiries) = status_of(&rules, &task).await;
    assert_eq!((status.as_str(), expiries), ("failed", 2));
    assert_eq!(rules.events.of_type("task.failed", &ticket).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sweeps_report_a_stall_once_and_a_heartbeat_racing_a_release_wins_or_loses_whole() {
    let rules = Arc::new(
        Rules::with_settings(|settings| {
            settings.tasks.stall_after_seconds = 60;
            settings.tasks.stall_release_after_seconds = 60;
        })
        .await,
    );
    let mut held_tasks = Vec::new();
    for index in 0..8 {
        let agent = format!("analyst-{index}");
        let (ticket, task, _) = held_by(&rules, &agent).await;
        silent_for(&rules, &task, 61).await;
        held_tasks.push((ticket, task, agent));
    }
    let mut sweeps = JoinSet::new();
    for _ in 0..2 {
        let workflow = rules.workflow.clone();
        sweeps.spawn(async move { workflow.sweep_stalls(1000).await.expect("sweeps") });
    }
    let mut stalled = 0;
    while let Some(swept) = sweeps.join_next().await {
        stalled += swept.expect("the sweep ran").stalled;
    }
    assert_eq!(stalled, 8, "each stall reported by exactly one sweep");
    rules.take_events().await;
    for (ticket, _, _) in &held_tasks {
        assert_eq!(rules.events.of_type("task.stalled", ticket).len(), 1);
    }

    // each heartbeat with progress races a release sweep
    for (_, task, _) in &held_tasks {
        silent_for(&rules, task, 121).await;
    }
    let mut racers = JoinSet::new();
    for (ticket, task, agent) in held_tasks.clone() {
        let rules = rules.clone();
        racers.spawn(async move {
            let outcome = rules
                .heartbeat(
                    &agent,
                    &ticket,
                    json!({"task_id": task, "progress": {"note": "still here"}}),
                )
                .await;
            (task, agent, matches!(outcome, Outcome::Succeeded(_)))
        });
    }
    let workflow = rules.workflow.clone();
    let sweep = tokio::spawn(async move { workflow.sweep_stalls(1000).await.expect("sweeps") });
    let mut renewed = Vec::new();
    while let Some(raced) = racers.join_next().await {
        renewed.push(raced.expect("the heartbeat ran"));
    }
    let released = sweep.await.expect("the sweep ran").released;
    let mut kept = 0;
    for (task, agent, heartbeat_won) in renewed {
        let (status, holder, _) = status_of(&rules, &task).await;
        if heartbeat_won {
            kept += 1;
            assert_eq!(
                (status.as_str(), holder.as_deref()),
                ("claimed", Some(agent.as_str()))
            );
        } else {
            assert_eq!(
                status, "pending",
                "a refused heartbeat came after the release"
            );
        }
    }
    assert_eq!(
        kept + released,
        8,
        "every task either kept by its heartbeat or released"
    );
}
