//! A ticket's whole life driven only by messages: agents complete tasks with artifacts, gates
//! pass, the ticket advances on its own, regresses once from TESTING, is blocked and unblocked
//! without duplicate tasks, and ends in DONE with the context of every phase kept.

use std::time::Duration;

use crate::common::{count, uuid, Envelope, Requests, TestApp};
use phaseflow::domain::Phase;
use phaseflow::protocol::events::{
    ContextUpdated, PhaseEntered, PhaseTransitioned, TaskFinished, TasksGenerated,
};
use serde_json::{json, Value};
use sqlx::Row;
use uuid::Uuid;

/// Waits until the ticket is in `phase` (read from the database).
async fn wait_for_phase(app: &TestApp, ticket: &str, phase: &str) {
    let ticket_id: Uuid = ticket.parse().unwrap();
    for _ in 0..200 {
        let current: String =
            sqlx::query_scalar("select phase_id::text from tickets where id = $1")
                .bind(ticket_id)
                .fetch_one(&app.pool)
                .await
                .unwrap();
        if current == phase {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "ticket {ticket} never reached {phase}; events: {:#?}",
        app.events.for_ticket(ticket)
    );
}

/// Waits for `count` tasks of `phase` that are not completed, and returns (id, task_type).
async fn wait_for_open_tasks(
    app: &TestApp,
    ticket: &str,
    phase: &str,
    count: usize,
) -> Vec<(String, String)> {
    let ticket_id: Uuid = ticket.parse().unwrap();
    for _ in 0..200 {
        let rows = sqlx::query(
            "select id, task_type from tasks where ticket_id = $1 and phase_id = $2::phase and status <> 'completed' order by seq",
        )
        .bind(ticket_id)
        .bind(phase)
        .fetch_all(&app.pool)
        .await
        .unwrap();
        if rows.len() >= count {
            return rows
                .into_iter()
                .map(|row| {
                    (
                        row.get::<Uuid, _>("id").to_string(),
                        row.get::<String, _>("task_type"),
                    )
                })
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{phase} never had {count} open tasks; events: {:#?}",
        app.events.for_ticket(ticket)
    );
}

/// Completes a task as an agent would, with the artifacts its result carries.
async fn complete(
    app: &TestApp,
    ticket: &str,
    task_id: &str,
    artifacts: Vec<Value>,
) -> Envelope<TaskFinished> {
    app.report_task(
        ticket,
        json!({
                "task_id": task_id,
                "status": "completed",
                "result": {
                    "summary": format!("finished {task_id}"),
                    "outputs": {"files": ["src/login.rs"]},
                    "context": {"decisions": ["use OAuth"], "risks": ["token expiry"], "notes": ["pairing helped"]},
                "artifacts": artifacts,
            }
        }),
    )
    .await
    .succeeded()
}

fn requirements_document() -> Value {
    json!({"artifact_type": "requirements_document", "artifact_path": "docs/requirements.md",
           "artifact_content": {"length": 1200, "sections": ["scope", "acceptance_criteria", "non_goals"]}})
}

/// Waits for the open tasks of `phase`, one per entry of `artifacts`, and completes them in
/// order, each with its entry's artifacts; returns their types.
async fn complete_open_tasks(
    app: &TestApp,
    ticket: &str,
    phase: Phase,
    artifacts: &[&[Value]],
) -> Vec<String> {
    let tasks = wait_for_open_tasks(app, ticket, phase.as_str(), artifacts.len()).await;
    assert_eq!(tasks.len(), artifacts.len(), "{tasks:?}");
    for ((task, _), artifacts) in tasks.iter().zip(artifacts) {
        complete(app, ticket, task, artifacts.to_vec()).await;
    }
    tasks.into_iter().map(|(_, task_type)| task_type).collect()
}

/// After DONE the context of every phase is kept, and its decisions are in the summary.
async fn assert_every_phase_context_is_kept(app: &TestApp, ticket: &str) {
    let context: Value = sqlx::query_scalar("select context from tickets where id = $1")
        .bind(uuid(ticket))
        .fetch_one(&app.pool)
        .await
        .unwrap();
    for key in [
        "requirements_phase",
        "design_phase",
        "implementation_phase",
        "testing_phase",
        "deployment_phase",
    ] {
        assert!(
            context.get(key).is_some(),
            "context lost {key}: {context:#}"
        );
    }
    assert_eq!(context["design_phase"]["decisions"][0], "use OAuth");
    let summary: String = sqlx::query_scalar("select context_summary from tickets where id = $1")
        .bind(uuid(ticket))
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(summary.contains("use OAuth"), "{summary}");
}

/// The ticket's history is one chain ending in DONE.
async fn assert_history_is_one_chain_to_done(app: &TestApp, ticket: &str) {
    let history: Vec<(Option<String>, String)> = sqlx::query_as(
        "select from_phase::text, to_phase::text from phase_history where ticket_id = $1 \
         order by id",
    )
    .bind(uuid(ticket))
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let mut previous: Option<String> = None;
    for (from_phase, to_phase) in history {
        assert_eq!(from_phase, previous);
        previous = Some(to_phase);
    }
    assert_eq!(previous.as_deref(), Some("PHASE_DONE"));
}

/// `ticketseq` numbers every event about the ticket once, 1..=n with n the ticket's counter,
/// and the events of one ticket arrive in that order.
async fn assert_ticketseq_numbers_every_event_in_order(app: &TestApp, ticket: &str) {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let numbered: i64 = sqlx::query_scalar("select event_seq from tickets where id = $1")
        .bind(uuid(ticket))
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let arrival: Vec<i64> = app
        .events
        .typed()
        .iter()
        .filter(|event| event.subject.as_deref() == Some(ticket))
        .map(|event| {
            event
                .ticketseq
                .unwrap_or_else(|| panic!("every event about the ticket has a ticketseq: {event}"))
        })
        .collect();
    let mut sorted = arrival.clone();
    sorted.sort_unstable();
    assert_eq!(
        arrival, sorted,
        "events of one ticket arrive in ticketseq order"
    );
    assert_eq!(
        sorted,
        (1..=numbered).collect::<Vec<_>>(),
        "each number once, no gaps"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_lives_from_creation_to_done_driven_only_by_messages() {
    let app = TestApp::spawn().await;
    let ticket = app.create_ticket("Login with SSO").await;

    // BACKLOG -> REQUIREMENTS on request
    let moved = app
        .transition(&ticket, Phase::Requirements, "groomed")
        .await
        .succeeded();
    assert_eq!(moved.data.transitioned_by, "agent-test");
    wait_for_open_tasks(&app, &ticket, "PHASE_REQUIREMENTS", 2).await;

    // blocked and unblocked without `to_phase`: back to REQUIREMENTS, no duplicate tasks
    app.transition(&ticket, Phase::Blocked, "waiting for legal")
        .await
        .succeeded();
    let unblocked = app
        .transition_with(&ticket, json!({"reason": "legal approved"}))
        .await
        .succeeded();
    assert_eq!(
        unblocked.data.current_phase,
        Phase::Requirements,
        "{unblocked}"
    );
    // the phase.entered of the unblocking visit generates nothing: the open tasks carry over
    let regenerated = app
        .events
        .wait_for_data("tasks.generated", &ticket, |data: &TasksGenerated| {
            data.phase_id == Phase::Requirements && data.generated_tasks.is_empty()
        })
        .await;
    assert_eq!(regenerated.actor, "system");
    let tasks = count(
        &app.pool,
        "select count(*) from tasks where ticket_id = $1",
        &ticket,
    )
    .await;
    assert_eq!(
        tasks, 2,
        "unblocking must not duplicate the carried-over tasks"
    );

    // REQUIREMENTS: the last task's completion passes the gate and advances the ticket
    let document = requirements_document();
    let types = complete_open_tasks(&app, &ticket, Phase::Requirements, &[&[], &[document]]).await;
    assert_eq!(types, ["analyze_requirements", "create_requirements_doc"]);
    wait_for_phase(&app, &ticket, "PHASE_DESIGN").await;
    let advanced = app
        .events
        .wait_for_data("phase.transitioned", &ticket, |data: &PhaseTransitioned| {
            data.current_phase == Phase::Design
        })
        .await;
    assert_eq!(advanced.actor, "system");

    let design = json!({"artifact_type": "design_document", "artifact_path": "docs/design.md",
                        "artifact_content": {"sections": ["architecture", "data_model"]}});
    complete_open_tasks(&app, &ticket, Phase::Design, &[&[], &[design]]).await;
    wait_for_phase(&app, &ticket, "PHASE_IMPLEMENTATION").await;

    let code = json!({"artifact_type": "code_changes", "artifact_content": {"has_tests": true}});
    let coverage =
        json!({"artifact_type": "test_coverage", "artifact_content": {"percentage": 86}});
    complete_open_tasks(
        &app,
        &ticket,
        Phase::Implementation,
        &[&[code], &[coverage]],
    )
    .await;
    wait_for_phase(&app, &ticket, "PHASE_TESTING").await;

    // TESTING fails: the ticket regresses with a fix task
    let failed = json!({"artifact_type": "test_results",
                        "artifact_content": {"all_passed": false, "failed": 3}});
    complete_open_tasks(&app, &ticket, Phase::Testing, &[&[], &[failed]]).await;
    let regression = app
        .events
        .wait_for_data("phase.entered", &ticket, |data: &PhaseEntered| {
            data.regression
        })
        .await;
    assert_eq!(regression.data.phase_id, Phase::Implementation);
    let regressed = app
        .events
        .wait_for_data("phase.transitioned", &ticket, |data: &PhaseTransitioned| {
            data.previous_phase == Phase::Testing
        })
        .await;
    assert!(regressed.data.reason.contains("all_passed"), "{regressed}");
    let fix = complete_open_tasks(&app, &ticket, Phase::Implementation, &[&[]]).await;
    assert_eq!(fix, ["fix_failing_tests"]);
    wait_for_phase(&app, &ticket, "PHASE_TESTING").await;

    // TESTING passes the second time
    let passed = json!({"artifact_type": "test_results", "artifact_content": {"all_passed": true}});
    complete_open_tasks(&app, &ticket, Phase::Testing, &[&[], &[passed]]).await;
    wait_for_phase(&app, &ticket, "PHASE_DEPLOYMENT").await;

    // DEPLOYMENT -> DONE
    let deployed =
        json!({"artifact_type": "deployment_record", "artifact_content": {"status": "succeeded"}});
    complete_open_tasks(&app, &ticket, Phase::Deployment, &[&[], &[deployed]]).await;
    wait_for_phase(&app, &ticket, "PHASE_DONE").await;
    let context_updated = app
        .events
        .wait_for_data("context.updated", &ticket, |data: &ContextUpdated| {
            data.phase_id == Phase::Deployment
        })
        .await;
    assert!(context_updated.data.summary_tokens <= 2000);

    assert_every_phase_context_is_kept(&app, &ticket).await;
    assert_history_is_one_chain_to_done(&app, &ticket).await;
    assert_ticketseq_numbers_every_event_in_order(&app, &ticket).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_a_phase_again_with_nothing_new_keeps_its_context_and_still_reports_it() {
    let app = TestApp::spawn().await;
    let ticket = app.create_ticket("Cycle through BLOCKED").await;
    let ticket_id: Uuid = ticket.parse().unwrap();
    app.transition(&ticket, Phase::Requirements, "groomed")
        .await
        .succeeded();
    let tasks = wait_for_open_tasks(&app, &ticket, "PHASE_REQUIREMENTS", 2).await;
    complete(&app, &ticket, &tasks[0].0, vec![]).await;

    let aggregated_at = |app: &TestApp| {
        let pool = app.pool.clone();
        async move {
            let context: Value = sqlx::query_scalar("select context from tickets where id = $1")
                .bind(ticket_id)
                .fetch_one(&pool)
                .await
                .unwrap();
            context["requirements_phase"]["aggregated_at"].clone()
        }
    };
    let mut first = Value::Null;
    for (round, reason) in ["first block", "second block"].into_iter().enumerate() {
        let moved = app
            .transition(&ticket, Phase::Blocked, reason)
            .await
            .succeeded();
        let entered = app
            .events
            .wait_for_event(|event| {
                event.is_about("phase.entered", &ticket)
                    && event.causationid == moved.causationid
                    && event.data::<PhaseEntered>().phase_id == Phase::Blocked
            })
            .await;
        let updated = app
            .events
            .wait_for_event(|event| {
                event.is_about("context.updated", &ticket) && event.causationid == entered.id
            })
            .await
            .typed::<ContextUpdated>();
        assert_eq!(updated.data.phase_id, Phase::Requirements);
        assert!(
            updated.data.summary.contains("analyze_requirements"),
            "{updated}"
        );
        if round == 0 {
            first = aggregated_at(&app).await;
            assert!(first.is_string());
        } else {
            assert_eq!(
                aggregated_at(&app).await,
                first,
                "nothing new in REQUIREMENTS: its context is not rebuilt"
            );
        }
        app.transition_with(&ticket, json!({"reason": "unblocked"}))
            .await
            .succeeded();
    }
    app.shutdown().await;
}
