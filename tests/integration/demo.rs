//! `phaseflow demo` in a short configuration, against a worker on this test's own exchanges: it
//! ends with every ticket DONE, after one crashed agent's lease ran out and one failing test run
//! sent a ticket back to IMPLEMENTATION. With reviews on DESIGN and DEPLOYMENT and the reference
//! validation agent running, a design that leaves out a component goes through a round of
//! changes before every ticket is DONE.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use phaseflow::demo::{DemoOptions, DemoSummary};
use tokio_util::sync::CancellationToken;

use crate::common::{definition_with_reviews, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_demo_drives_every_ticket_to_done_through_a_crash_and_a_regression() {
    let app = TestApp::spawn().await;
    let options = DemoOptions {
        agents: 3,
        tickets: 2,
        lease_seconds: 10,
        crashes: 1,
        test_failures: 1,
        incomplete_designs: 0,
        timeout: Duration::from_secs(120),
        in_process_worker: false,
        budget_usd: None,
        via_mcp: None,
    };
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = lines.clone();
    let summary: DemoSummary = phaseflow::demo::run(app.settings.clone(), options, move |line| {
        log.lock().expect("log").push(line.to_owned())
    })
    .await
    .unwrap_or_else(|error| {
        panic!(
            "the demo failed: {error:#}\n{}",
            lines.lock().expect("log").join("\n")
        )
    });
    let log = lines.lock().expect("log").join("\n");
    assert_eq!(summary.tickets_done, 2, "{summary}\n{log}");
    assert!(
        summary.leases_expired >= 1,
        "the crashed agent's lease ran out: {summary}\n{log}"
    );
    assert_eq!(summary.regressions, 1, "{summary}\n{log}");
    assert!(
        summary.tasks_claimed > summary.tasks_completed,
        "the crashed task was claimed again: {summary}"
    );
    assert!(log.contains("crashes holding"), "{log}");
    assert!(log.contains("task.lease.expired"), "{log}");
    assert!(log.contains("TESTING -> IMPLEMENTATION"), "{log}");
    let done: i64 =
        sqlx::query_scalar("select count(*) from tickets where phase_id = 'PHASE_DONE'")
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(done, 2);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_a_budget_the_first_ticket_runs_out_and_is_stopped_while_the_others_finish() {
    let app = TestApp::spawn().await;
    let options = DemoOptions {
        agents: 3,
        tickets: 2,
        lease_seconds: 10,
        crashes: 0,
        test_failures: 0,
        incomplete_designs: 0,
        timeout: Duration::from_secs(120),
        in_process_worker: false,
        budget_usd: Some(0.25),
        via_mcp: None,
    };
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = lines.clone();
    let outcome = phaseflow::demo::run(app.settings.clone(), options, move |line| {
        log.lock().expect("log").push(line.to_owned())
    })
    .await;
    let log = lines.lock().expect("log").join("\n");
    let summary = outcome.unwrap_or_else(|error| panic!("the demo failed: {error:#}\n{log}"));
    assert_eq!(
        (summary.tickets_done, summary.tickets_stopped),
        (1, 1),
        "{summary}\n{log}"
    );
    assert!(summary.cost_usd > 0.0 && summary.tokens > 0, "{summary}");
    assert!(log.contains("budget.warning"), "{log}");
    assert!(log.contains("budget.exceeded"), "{log}");
    assert!(
        log.contains("by system: budget exceeded: cost_usd"),
        "{log}"
    );
    let stopped: (String, f64) = sqlx::query_as(
        "select phase_id::text, spent_cost_usd::float8 from tickets \
         where budget_cost_usd is not null",
    )
    .fetch_one(&app.pool)
    .await
    .expect("the budgeted ticket");
    assert_eq!(stopped.0, "PHASE_BLOCKED");
    assert!(stopped.1 >= 0.25, "{stopped:?}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_and_the_reference_reviewer_take_reviewed_tickets_to_done_through_a_round_of_changes(
) {
    let mut app = TestApp::without_worker().await;
    app.settings.workflow.definition_path =
        definition_with_reviews(&["PHASE_DESIGN", "PHASE_DEPLOYMENT"]);
    app.settings.review_agent.queue = format!("{}.review-agent", app.settings.amqp.requests_queue);
    app.start_worker();
    let reviewer_stop = CancellationToken::new();
    let reviewer = tokio::spawn(phaseflow_agents::review::run(
        app.settings.amqp.broker(),
        app.settings.amqp.reconnect_backoff(),
        app.settings.review_agent.clone(),
        reviewer_stop.clone(),
    ));
    let options = DemoOptions {
        agents: 3,
        tickets: 2,
        lease_seconds: 30,
        crashes: 0,
        test_failures: 0,
        incomplete_designs: 1,
        timeout: Duration::from_secs(120),
        in_process_worker: false,
        budget_usd: None,
        via_mcp: None,
    };
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = lines.clone();
    let outcome = phaseflow::demo::run(app.settings.clone(), options, move |line| {
        log.lock().expect("log").push(line.to_owned())
    })
    .await;
    reviewer_stop.cancel();
    reviewer
        .await
        .expect("the reviewer did not panic")
        .expect("the reviewer stops cleanly");
    let log = lines.lock().expect("log").join("\n");
    let summary = outcome.unwrap_or_else(|error| panic!("the demo failed: {error:#}\n{log}"));
    assert_eq!(summary.tickets_done, 2, "{summary}\n{log}");
    // DESIGN and DEPLOYMENT of both tickets approved, one design sent back once
    assert_eq!(summary.changes_requested, 1, "{summary}\n{log}");
    assert_eq!(summary.reviews, 5, "{summary}\n{log}");
    assert!(log.contains("changes_requested by review-agent"), "{log}");
    assert!(
        log.contains("account recovery"),
        "the reason names what is missing: {log}"
    );
    let reviewed: Vec<(String, String, String)> =
        sqlx::query_as("select phase_id::text, verdict, reviewer from gate_reviews order by seq")
            .fetch_all(&app.pool)
            .await
            .expect("reviews");
    assert!(reviewed
        .iter()
        .all(|(_, _, reviewer)| reviewer == "review-agent"));
    assert_eq!(
        reviewed
            .iter()
            .filter(|(phase, verdict, _)| phase == "PHASE_DESIGN" && verdict == "approved")
            .count(),
        2
    );
    let rework: i64 = sqlx::query_scalar(
        "select count(*) from tasks where task_type = 'address_review_feedback' and status = 'completed'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("rework");
    assert_eq!(rework, 1);
    app.delete_queue(&app.settings.review_agent.queue.clone())
        .await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_demo_through_mcp_drives_every_ticket_to_done() {
    let app = TestApp::spawn().await;
    let options = DemoOptions {
        agents: 3,
        tickets: 2,
        lease_seconds: 10,
        crashes: 0,
        test_failures: 1,
        incomplete_designs: 0,
        timeout: Duration::from_secs(120),
        in_process_worker: false,
        budget_usd: None,
        via_mcp: Some(env!("CARGO_BIN_EXE_phaseflow").into()),
    };
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = lines.clone();
    let summary: DemoSummary = phaseflow::demo::run(app.settings.clone(), options, move |line| {
        log.lock().expect("log").push(line.to_owned())
    })
    .await
    .unwrap_or_else(|error| {
        panic!(
            "the demo failed: {error:#}\n{}",
            lines.lock().expect("log").join("\n")
        )
    });
    let log = lines.lock().expect("log").join("\n");
    assert_eq!(summary.tickets_done, 2, "{summary}\n{log}");
    assert_eq!(summary.regressions, 1, "{summary}\n{log}");
    assert!(log.contains("through MCP"), "{log}");
    // every claim and report was a tool call of a registered agent with its own token
    let actors: Vec<String> = sqlx::query_scalar(
        "select distinct claimed_by from tasks where claimed_by is not null order by 1",
    )
    .fetch_all(&app.pool)
    .await
    .expect("the agents that claimed");
    assert_eq!(actors.len(), 3, "{actors:?}");
    let issued: i64 = sqlx::query_scalar("select count(*) from agent_tokens")
        .fetch_one(&app.pool)
        .await
        .expect("the tokens");
    assert_eq!(issued, 3);
    app.shutdown().await;
}
