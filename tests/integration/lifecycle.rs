//! A ticket's whole life driven only by messages: agents complete tasks with artifacts, gates
//! pass, the ticket advances on its own, regresses once from TESTING, is blocked and unblocked
//! without duplicate tasks, and ends in DONE with the context of every phase kept.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::{Envelope, Requests, TestApp};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_lives_from_creation_to_done_driven_only_by_messages() {
    let app = TestApp::spawn().await;
    let ticket = app.create_ticket("Login with SSO").await;
    let ticket_id: Uuid = ticket.parse().unwrap();

    // BACKLOG -> REQUIREMENTS on request
    let moved = app
        .transition(&ticket, Phase::Requirements, "groomed")
        .await
        .succeeded();
    assert_eq!(moved.data.transitioned_by, "agent-test");
    let requirements = wait_for_open_tasks(&app, &ticket, "PHASE_REQUIREMENTS", 2).await;
    assert_eq!(
        requirements
            .iter()
            .map(|(_, kind)| kind.as_str())
            .collect::<Vec<_>>(),
        ["analyze_requirements", "create_requirements_doc"]
    );

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
    let task_count: i64 = sqlx::query_scalar("select count(*) from tasks where ticket_id = $1")
        .bind(ticket_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        task_count, 2,
        "unblocking must not duplicate the carried-over tasks"
    );

    // REQUIREMENTS: the last task's completion passes the gate and advances the ticket
    complete(&app, &ticket, &requirements[0].0, vec![]).await;
    complete(
        &app,
        &ticket,
        &requirements[1].0,
        vec![requirements_document()],
    )
    .await;
    wait_for_phase(&app, &ticket, "PHASE_DESIGN").await;
    let advanced = app
        .events
        .wait_for_data("phase.transitioned", &ticket, |data: &PhaseTransitioned| {
            data.current_phase == Phase::Design
        })
        .await;
    assert_eq!(advanced.actor, "system");

    // DESIGN
    let design = wait_for_open_tasks(&app, &ticket, "PHASE_DESIGN", 2).await;
    complete(&app, &ticket, &design[0].0, vec![]).await;
    complete(
        &app,
        &ticket,
        &design[1].0,
        vec![json!({"artifact_type": "design_document", "artifact_path": "docs/design.md", "artifact_content": {"sections": ["architecture", "data_model"]}})],
    )
    .await;
    wait_for_phase(&app, &ticket, "PHASE_IMPLEMENTATION").await;

    // IMPLEMENTATION
    let implementation = wait_for_open_tasks(&app, &ticket, "PHASE_IMPLEMENTATION", 2).await;
    complete(
        &app,
        &ticket,
        &implementation[0].0,
        vec![json!({"artifact_type": "code_changes", "artifact_content": {"has_tests": true}})],
    )
    .await;
    complete(
        &app,
        &ticket,
        &implementation[1].0,
        vec![json!({"artifact_type": "test_coverage", "artifact_content": {"percentage": 86}})],
    )
    .await;
    wait_for_phase(&app, &ticket, "PHASE_TESTING").await;

    // TESTING fails: the ticket regresses with a fix task
    let testing = wait_for_open_tasks(&app, &ticket, "PHASE_TESTING", 2).await;
    complete(&app, &ticket, &testing[0].0, vec![]).await;
    complete(&app, &ticket, &testing[1].0, vec![json!({"artifact_type": "test_results", "artifact_content": {"all_passed": false, "failed": 3}})]).await;
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
    let fix = wait_for_open_tasks(&app, &ticket, "PHASE_IMPLEMENTATION", 1).await;
    assert_eq!(fix.len(), 1);
    assert_eq!(fix[0].1, "fix_failing_tests");
    complete(&app, &ticket, &fix[0].0, vec![]).await;
    wait_for_phase(&app, &ticket, "PHASE_TESTING").await;

    // TESTING passes the second time
    let retest = wait_for_open_tasks(&app, &ticket, "PHASE_TESTING", 2).await;
    complete(&app, &ticket, &retest[0].0, vec![]).await;
    complete(
        &app,
        &ticket,
        &retest[1].0,
        vec![json!({"artifact_type": "test_results", "artifact_content": {"all_passed": true}})],
    )
    .await;
    wait_for_phase(&app, &ticket, "PHASE_DEPLOYMENT").await;

    // DEPLOYMENT -> DONE
    let deployment = wait_for_open_tasks(&app, &ticket, "PHASE_DEPLOYMENT", 2).await;
    complete(&app, &ticket, &deployment[0].0, vec![]).await;
    complete(&app, &ticket, &deployment[1].0, vec![json!({"artifact_type": "deployment_record", "artifact_content": {"status": "succeeded"}})]).await;
    wait_for_phase(&app, &ticket, "PHASE_DONE").await;
    let context_updated = app
        .events
        .wait_for_data("context.updated", &ticket, |data: &ContextUpdated| {
            data.phase_id == Phase::Deployment
        })
        .await;
    assert!(context_updated.data.summary_tokens <= 2000);

    // the context of every phase is kept after DONE
    let context: Value = sqlx::query_scalar("select context from tickets where id = $1")
        .bind(ticket_id)
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
        .bind(ticket_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(summary.contains("use OAuth"), "{summary}");

    // history is a chain
    let history = sqlx::query("select from_phase::text as from_phase, to_phase::text as to_phase from phase_history where ticket_id = $1 order by id")
        .bind(ticket_id)
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let mut previous: Option<String> = None;
    for row in &history {
        assert_eq!(row.get::<Option<String>, _>("from_phase"), previous);
        previous = Some(row.get("to_phase"));
    }
    assert_eq!(previous.as_deref(), Some("PHASE_DONE"));

    // ticketseq is 1..=n over all the ticket's events, each once, in arrival order per ticket
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // the ticket's counter: how many events were numbered for it
    let outbox_events: i64 = sqlx::query_scalar("select event_seq from tickets where id = $1")
        .bind(ticket_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let events = app.events.for_ticket(&ticket);
    let mut seqs: BTreeMap<i64, String> = BTreeMap::new();
    for event in &events {
        let seq = event["ticketseq"]
            .as_i64()
            .expect("every event about the ticket has a ticketseq");
        assert!(
            seqs.insert(seq, event["type"].as_str().unwrap().to_owned())
                .is_none(),
            "ticketseq {seq} repeated"
        );
    }
    assert_eq!(seqs.len() as i64, outbox_events);
    assert_eq!(
        seqs.keys().copied().collect::<Vec<_>>(),
        (1..=outbox_events).collect::<Vec<_>>()
    );
    let arrival: Vec<i64> = events
        .iter()
        .map(|event| event["ticketseq"].as_i64().unwrap())
        .collect();
    let mut sorted = arrival.clone();
    sorted.sort_unstable();
    assert_eq!(
        arrival, sorted,
        "events of one ticket arrive in ticketseq order"
    );

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
