//! The workflow's rules, one request at a time against Postgres alone (`common::rules`): every
//! rejection code on its rejection event with nothing changed in the database, task reports,
//! gate validation on request, and the gates that guard every way out of PHASE_BLOCKED. What
//! needs the broker (delivery, ids applied once, dead letters, replicas, envelopes) is tested in
//! `requests`.

use std::collections::BTreeMap;

use crate::common::rules::Rules;
use crate::common::{count, history_rows, phase_of, uuid};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const CREATE: &str = "ticket.create.requested";
const TRANSITION: &str = "phase.transition.requested";
const VALIDATE_GATE: &str = "gate.validate.requested";
const GENERATE_TASKS: &str = "tasks.generate.requested";
const COMPLETE_TASK: &str = "task.complete.requested";
const SUBMIT_ARTIFACT: &str = "artifact.submit.requested";

// ---------------------------------------------------------------------------------------------
// helpers

/// Asserts the shape of a rejection event, and returns its `data`: type, code, non-empty reasons,
/// `ticket_id`, and for `phase.transition.rejected` also `from_phase` and `to_phase`.
fn assert_rejection(event: &Value, event_type: &str, code: &str, ticket_id: Option<&str>) -> Value {
    let data = assert_rejection_basics(event, event_type, code, ticket_id);
    if event_type == "phase.transition.rejected" {
        assert!(
            data.get("from_phase").is_some(),
            "data.from_phase is missing: {event:#}"
        );
        assert!(
            data.get("to_phase").is_some(),
            "data.to_phase is missing: {event:#}"
        );
    }
    data
}

/// The members every rejection's `data` has: `ticket_id`, `code` and non-empty `reasons`.
fn assert_rejection_basics(
    event: &Value,
    event_type: &str,
    code: &str,
    ticket_id: Option<&str>,
) -> Value {
    assert_eq!(event["type"], event_type, "unexpected outcome: {event:#}");
    assert!(event_type.ends_with(".rejected"));
    let data = &event["data"];
    assert_eq!(data["code"], code, "unexpected rejection code: {event:#}");
    let reasons = data["reasons"]
        .as_array()
        .unwrap_or_else(|| panic!("data.reasons is not a list: {event:#}"));
    assert!(!reasons.is_empty(), "a rejection must say why: {event:#}");
    assert!(
        reasons
            .iter()
            .all(|reason| reason.as_str().is_some_and(|text| !text.trim().is_empty())),
        "every reason is a non-empty string: {event:#}"
    );
    assert!(
        data.get("ticket_id").is_some(),
        "data.ticket_id is missing: {event:#}"
    );
    assert_eq!(
        data["ticket_id"],
        json!(ticket_id),
        "data.ticket_id: {event:#}"
    );
    data.clone()
}

/// The reasons of a rejection joined into one text, for `contains` checks.
fn reasons_text(data: &Value) -> String {
    data["reasons"]
        .as_array()
        .map(|reasons| {
            reasons
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

async fn task_status(pool: &PgPool, task_id: &str) -> String {
    sqlx::query_scalar("select status::text from tasks where id = $1")
        .bind(uuid(task_id))
        .fetch_one(pool)
        .await
        .expect("the task's status")
}

/// Creates a ticket, moves it to REQUIREMENTS and returns its id and its generated tasks
/// (`task_type` -> task id) from its `tasks.generated`.
async fn ticket_in_requirements(app: &Rules, title: &str) -> (String, BTreeMap<String, String>) {
    let ticket = app.create_ticket(title).await;
    let request = app
        .send(
            TRANSITION,
            Some(&ticket),
            json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "ready for analysis"}),
        )
        .await;
    let moved = app.outcome_of(&request).await;
    assert_eq!(moved["type"], "phase.transitioned", "{moved:#}");
    let generated = app
        .events
        .wait_for(|event| event["type"] == "tasks.generated" && event["subject"] == json!(ticket))
        .await;
    let tasks: BTreeMap<String, String> = generated["data"]["generated_tasks"]
        .as_array()
        .expect("generated_tasks is a list")
        .iter()
        .map(|task| {
            (
                task["task_type"].as_str().expect("task_type").to_owned(),
                task["id"].as_str().expect("task id").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        tasks.keys().map(String::as_str).collect::<Vec<_>>(),
        ["analyze_requirements", "create_requirements_doc"],
        "{generated:#}"
    );
    (ticket, tasks)
}

// ---------------------------------------------------------------------------------------------
// ticket.create.rejected

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_request_naming_an_existing_ticket_is_rejected_as_already_exists() {
    let app = Rules::new().await;
    let ticket = app.create_ticket("The original").await;
    let title_before: String = sqlx::query_scalar("select title from tickets where id = $1")
        .bind(uuid(&ticket))
        .fetch_one(&app.pool)
        .await
        .expect("title");

    let request = app
        .send(CREATE, Some(&ticket), json!({"title": "An impostor"}))
        .await;
    let outcome = app.outcome_of(&request).await;

    assert_rejection(
        &outcome,
        "ticket.create.rejected",
        "already_exists",
        Some(&ticket),
    );
    assert_eq!(outcome["subject"], json!(ticket));
    let title_after: String = sqlx::query_scalar("select title from tickets where id = $1")
        .bind(uuid(&ticket))
        .fetch_one(&app.pool)
        .await
        .expect("title");
    assert_eq!(
        title_after, title_before,
        "the existing ticket is unchanged"
    );
    assert_eq!(
        history_rows(&app.pool, &ticket).await,
        1,
        "no history row was added"
    );
    let tickets: i64 = sqlx::query_scalar("select count(*) from tickets")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(tickets, 1);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_request_with_an_invalid_title_or_priority_is_rejected_as_invalid_request() {
    let app = Rules::new().await;
    let cases = [
        (json!({"title": ""}), "title"),
        (json!({"title": "x".repeat(501)}), "title"),
        (
            json!({"title": "Fine title", "priority": "URGENT"}),
            "priority",
        ),
        (json!({"description": "no title at all"}), "title"),
    ];

    for (data, field) in cases {
        let request = app.send(CREATE, None, data.clone()).await;
        let outcome = app.outcome_of(&request).await;

        let rejection =
            assert_rejection(&outcome, "ticket.create.rejected", "invalid_request", None);
        assert!(
            reasons_text(&rejection).contains(field),
            "the reasons for {data} should name `{field}`: {rejection:#}"
        );
    }
    let tickets: i64 = sqlx::query_scalar("select count(*) from tickets")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(tickets, 0, "no rejected request created a ticket");

    // the limit itself is allowed
    let request = app
        .send(
            CREATE,
            None,
            json!({"title": "y".repeat(500), "priority": "CRITICAL"}),
        )
        .await;
    let outcome = app.outcome_of(&request).await;
    assert_eq!(outcome["type"], "ticket.created", "{outcome:#}");
    assert_eq!(outcome["data"]["priority"], "CRITICAL");
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// phase.transition.rejected

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transition_of_an_unknown_ticket_is_rejected_as_ticket_not_found() {
    let app = Rules::new().await;
    let unknown = Uuid::new_v4().to_string();

    let request = app
        .send(
            TRANSITION,
            Some(&unknown),
            json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "go"}),
        )
        .await;
    let outcome = app.outcome_of(&request).await;

    let data = assert_rejection(
        &outcome,
        "phase.transition.rejected",
        "ticket_not_found",
        Some(&unknown),
    );
    assert_eq!(
        data["from_phase"],
        Value::Null,
        "an unknown ticket has no phase: {outcome:#}"
    );
    assert_eq!(data["to_phase"], "PHASE_REQUIREMENTS");
    assert!(
        outcome.get("ticketseq").is_none_or(Value::is_null),
        "no ticketseq on an event about a ticket that does not exist: {outcome:#}"
    );
    let tickets: i64 = sqlx::query_scalar("select count(*) from tickets")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(tickets, 0);
    assert_eq!(history_rows(&app.pool, &unknown).await, 0);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transition_the_phase_does_not_allow_is_rejected_as_invalid_transition() {
    let app = Rules::new().await;
    let ticket = app.create_ticket("Skipping ahead").await;

    let request = app
        .send(
            TRANSITION,
            Some(&ticket),
            json!({"to_phase": "PHASE_DESIGN", "reason": "skip"}),
        )
        .await;
    let outcome = app.outcome_of(&request).await;

    let data = assert_rejection(
        &outcome,
        "phase.transition.rejected",
        "invalid_transition",
        Some(&ticket),
    );
    assert_eq!(data["from_phase"], "PHASE_BACKLOG");
    assert_eq!(data["to_phase"], "PHASE_DESIGN");
    assert_eq!(phase_of(&app.pool, &ticket).await, "PHASE_BACKLOG");
    assert_eq!(
        history_rows(&app.pool, &ticket).await,
        1,
        "a rejection adds no history row"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_transition_with_open_tasks_is_rejected_as_gate_not_met() {
    let app = Rules::new().await;
    let (ticket, tasks) = ticket_in_requirements(&app, "Not done yet").await;
    let history_before = history_rows(&app.pool, &ticket).await;

    let request = app
        .send(
            TRANSITION,
            Some(&ticket),
            json!({"to_phase": "PHASE_DESIGN", "reason": "hurry"}),
        )
        .await;
    let outcome = app.outcome_of(&request).await;

    let data = assert_rejection(
        &outcome,
        "phase.transition.rejected",
        "gate_not_met",
        Some(&ticket),
    );
    assert_eq!(data["from_phase"], "PHASE_REQUIREMENTS");
    assert_eq!(data["to_phase"], "PHASE_DESIGN");
    let reasons = reasons_text(&data);
    for named in [
        "analyze_requirements",
        "create_requirements_doc",
        "requirements_document",
    ] {
        assert!(
            reasons.contains(named),
            "the reasons should name {named}: {reasons}"
        );
    }
    assert_eq!(phase_of(&app.pool, &ticket).await, "PHASE_REQUIREMENTS");
    assert_eq!(
        history_rows(&app.pool, &ticket).await,
        history_before,
        "a rejection adds no history row"
    );
    for task_id in tasks.values() {
        assert_eq!(task_status(&app.pool, task_id).await, "pending");
    }
    let design_tasks = count(
        &app.pool,
        "select count(*) from tasks where ticket_id = $1 and phase_id = 'PHASE_DESIGN'",
        &ticket,
    )
    .await;
    assert_eq!(design_tasks, 0);
    let caused: Vec<Value> = app
        .events
        .all()
        .into_iter()
        .filter(|event| event["causationid"] == json!(request))
        .collect();
    assert!(
        caused
            .iter()
            .all(|event| event["type"] != "phase.transitioned" && event["type"] != "phase.entered"),
        "a rejected transition moves nothing: {caused:#?}"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transition_expecting_another_phase_is_rejected_as_phase_mismatch() {
    let app = Rules::new().await;
    let ticket = app.create_ticket("Stale view").await;

    let request = app
        .send(
            TRANSITION,
            Some(&ticket),
            json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "go", "expected_from_phase": "PHASE_DESIGN"}),
        )
        .await;
    let outcome = app.outcome_of(&request).await;

    let data = assert_rejection(
        &outcome,
        "phase.transition.rejected",
        "phase_mismatch",
        Some(&ticket),
    );
    assert_eq!(data["from_phase"], "PHASE_BACKLOG");
    assert_eq!(data["to_phase"], "PHASE_REQUIREMENTS");
    assert_eq!(phase_of(&app.pool, &ticket).await, "PHASE_BACKLOG");
    assert_eq!(
        history_rows(&app.pool, &ticket).await,
        1,
        "a rejection adds no history row"
    );

    // the same request with the right expectation goes through
    let request = app
        .send(
            TRANSITION,
            Some(&ticket),
            json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "go", "expected_from_phase": "PHASE_BACKLOG"}),
        )
        .await;
    let outcome = app.outcome_of(&request).await;
    assert_eq!(outcome["type"], "phase.transitioned", "{outcome:#}");
    assert_eq!(history_rows(&app.pool, &ticket).await, 2);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transition_without_a_reason_is_rejected_as_invalid_request() {
    let app = Rules::new().await;
    let ticket = app.create_ticket("No reason given").await;

    let request = app
        .send(
            TRANSITION,
            Some(&ticket),
            json!({"to_phase": "PHASE_REQUIREMENTS"}),
        )
        .await;
    let outcome = app.outcome_of(&request).await;

    let data = assert_rejection_basics(
        &outcome,
        "phase.transition.rejected",
        "invalid_request",
        Some(&ticket),
    );
    assert!(reasons_text(&data).contains("reason"), "{data:#}");
    assert_eq!(phase_of(&app.pool, &ticket).await, "PHASE_BACKLOG");
    assert_eq!(
        history_rows(&app.pool, &ticket).await,
        1,
        "a rejection adds no history row"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transition_whose_subject_is_not_a_uuid_is_rejected_as_invalid_request() {
    let app = Rules::new().await;

    let request = app
        .send(
            TRANSITION,
            Some("ticket-42"),
            json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "go"}),
        )
        .await;
    let outcome = app.outcome_of(&request).await;

    let data = assert_rejection_basics(
        &outcome,
        "phase.transition.rejected",
        "invalid_request",
        None,
    );
    assert!(reasons_text(&data).contains("subject"), "{data:#}");
    let rows: i64 = sqlx::query_scalar("select count(*) from phase_history")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(rows, 0);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transition_to_an_unknown_phase_is_rejected_as_invalid_request() {
    let app = Rules::new().await;
    let ticket = app.create_ticket("Typo in the phase").await;

    let request = app
        .send(
            TRANSITION,
            Some(&ticket),
            json!({"to_phase": "PHASE_REQUIRMENTS", "reason": "go"}),
        )
        .await;
    let outcome = app.outcome_of(&request).await;

    let data = assert_rejection_basics(
        &outcome,
        "phase.transition.rejected",
        "invalid_request",
        Some(&ticket),
    );
    assert!(reasons_text(&data).contains("to_phase"), "{data:#}");
    assert_eq!(phase_of(&app.pool, &ticket).await, "PHASE_BACKLOG");
    assert_eq!(
        history_rows(&app.pool, &ticket).await,
        1,
        "a rejection adds no history row"
    );
    app.shutdown().await;
}

/// `phase.transition.rejected` carries `from_phase` and `to_phase` besides
/// `ticket_id`, `code` and `reasons`, whatever the code (null where unknown).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_transition_request_is_rejected_with_from_phase_and_to_phase() {
    let app = Rules::new().await;
    let ticket = app.create_ticket("Malformed transitions").await;
    let cases = [
        (ticket.clone(), json!({"to_phase": "PHASE_REQUIREMENTS"})),
        (
            "ticket-42".to_owned(),
            json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "go"}),
        ),
        (
            ticket.clone(),
            json!({"to_phase": "PHASE_REQUIRMENTS", "reason": "go"}),
        ),
    ];

    for (subject, data) in cases {
        let request = app.send(TRANSITION, Some(&subject), data).await;
        let outcome = app.outcome_of(&request).await;

        let expected_ticket = (subject == ticket).then_some(ticket.as_str());
        assert_rejection(
            &outcome,
            "phase.transition.rejected",
            "invalid_request",
            expected_ticket,
        );
    }
    assert_eq!(
        history_rows(&app.pool, &ticket).await,
        1,
        "a rejection adds no history row"
    );
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// gate.validate.rejected, tasks.generate.rejected

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_validation_of_an_unknown_ticket_is_rejected_as_ticket_not_found() {
    let app = Rules::new().await;
    let unknown = Uuid::new_v4().to_string();

    let request = app.send(VALIDATE_GATE, Some(&unknown), json!({})).await;
    let outcome = app.outcome_of(&request).await;

    assert_rejection(
        &outcome,
        "gate.validate.rejected",
        "ticket_not_found",
        Some(&unknown),
    );
    let results: i64 = sqlx::query_scalar("select count(*) from phase_gate_results")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(results, 0, "nothing was validated");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_generation_for_an_unknown_ticket_is_rejected_as_ticket_not_found() {
    let app = Rules::new().await;
    let unknown = Uuid::new_v4().to_string();

    let request = app
        .send(
            GENERATE_TASKS,
            Some(&unknown),
            json!({"phase_id": "PHASE_DESIGN"}),
        )
        .await;
    let outcome = app.outcome_of(&request).await;

    assert_rejection(
        &outcome,
        "tasks.generate.rejected",
        "ticket_not_found",
        Some(&unknown),
    );
    let tasks: i64 = sqlx::query_scalar("select count(*) from tasks")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(tasks, 0, "no task was generated");
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// task.complete.rejected

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_an_unknown_task_is_rejected_as_task_not_found() {
    let app = Rules::new().await;
    let (ticket, tasks) = ticket_in_requirements(&app, "Unknown task").await;
    let unknown_task = Uuid::new_v4().to_string();

    let request = app
        .send(
            COMPLETE_TASK,
            Some(&ticket),
            json!({"task_id": unknown_task, "status": "completed", "result": {"summary": "?"}}),
        )
        .await;
    let outcome = app.outcome_of(&request).await;

    assert_rejection(
        &outcome,
        "task.complete.rejected",
        "task_not_found",
        Some(&ticket),
    );
    for task_id in tasks.values() {
        assert_eq!(
            task_status(&app.pool, task_id).await,
            "pending",
            "the ticket's own tasks are untouched"
        );
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_a_task_of_another_ticket_is_rejected_as_task_not_found() {
    let app = Rules::new().await;
    let (_, tasks) = ticket_in_requirements(&app, "Owner of the task").await;
    let other = app.create_ticket("Someone else").await;
    let task_id = &tasks["analyze_requirements"];

    let request = app
        .send(
            COMPLETE_TASK,
            Some(&other),
            json!({"task_id": task_id, "status": "completed"}),
        )
        .await;
    let outcome = app.outcome_of(&request).await;

    assert_rejection(
        &outcome,
        "task.complete.rejected",
        "task_not_found",
        Some(&other),
    );
    assert_eq!(task_status(&app.pool, task_id).await, "pending");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_a_task_twice_is_rejected_as_task_already_finished() {
    let app = Rules::new().await;
    let (ticket, tasks) = ticket_in_requirements(&app, "Done twice").await;
    let task_id = &tasks["analyze_requirements"];
    let first = app
        .send(
            COMPLETE_TASK,
            Some(&ticket),
            json!({"task_id": task_id, "status": "completed", "result": {"summary": "first"}}),
        )
        .await;
    let completed = app.outcome_of(&first).await;
    assert_eq!(completed["type"], "task.completed", "{completed:#}");
    let (completed_at, result): (Option<chrono::DateTime<chrono::Utc>>, Option<Value>) =
        sqlx::query_as("select completed_at, result from tasks where id = $1")
            .bind(uuid(task_id))
            .fetch_one(&app.pool)
            .await
            .expect("the task");

    let second = app
        .send(
            COMPLETE_TASK,
            Some(&ticket),
            json!({"task_id": task_id, "status": "completed", "result": {"summary": "second"}}),
        )
        .await;
    let outcome = app.outcome_of(&second).await;

    assert_rejection(
        &outcome,
        "task.complete.rejected",
        "task_already_finished",
        Some(&ticket),
    );
    let (completed_at_after, result_after): (Option<chrono::DateTime<chrono::Utc>>, Option<Value>) =
        sqlx::query_as("select completed_at, result from tasks where id = $1")
            .bind(uuid(task_id))
            .fetch_one(&app.pool)
            .await
            .expect("the task");
    assert_eq!(task_status(&app.pool, task_id).await, "completed");
    assert_eq!(
        completed_at_after, completed_at,
        "the first completion stands"
    );
    assert_eq!(result_after, result, "the first result stands");
    assert_eq!(
        task_status(&app.pool, &tasks["create_requirements_doc"]).await,
        "pending"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_may_be_reported_again_and_then_completed() {
    let app = Rules::new().await;
    let (ticket, tasks) = ticket_in_requirements(&app, "Flaky work").await;
    let task_id = &tasks["analyze_requirements"];

    let failed = app
        .send(
            COMPLETE_TASK,
            Some(&ticket),
            json!({"task_id": task_id, "status": "failed", "error": "timeout"}),
        )
        .await;
    let outcome = app.outcome_of(&failed).await;
    assert_eq!(outcome["type"], "task.failed", "{outcome:#}");
    assert_eq!(task_status(&app.pool, task_id).await, "failed");

    let failed_again = app
        .send(
            COMPLETE_TASK,
            Some(&ticket),
            json!({"task_id": task_id, "status": "failed", "error": "timeout again"}),
        )
        .await;
    let outcome = app.outcome_of(&failed_again).await;
    assert_eq!(
        outcome["type"], "task.failed",
        "a failed task may be reported again: {outcome:#}"
    );

    let completed = app
        .send(
            COMPLETE_TASK,
            Some(&ticket),
            json!({"task_id": task_id, "status": "completed", "result": {"summary": "ok now"}}),
        )
        .await;
    let outcome = app.outcome_of(&completed).await;
    assert_eq!(
        outcome["type"], "task.completed",
        "a failed task may then complete: {outcome:#}"
    );
    assert_eq!(outcome["data"]["task_id"], json!(task_id));
    assert_eq!(task_status(&app.pool, task_id).await, "completed");

    let once_more = app
        .send(
            COMPLETE_TASK,
            Some(&ticket),
            json!({"task_id": task_id, "status": "failed"}),
        )
        .await;
    let outcome = app.outcome_of(&once_more).await;
    assert_rejection(
        &outcome,
        "task.complete.rejected",
        "task_already_finished",
        Some(&ticket),
    );
    assert_eq!(task_status(&app.pool, task_id).await, "completed");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_task_report_is_rejected_as_invalid_request() {
    let app = Rules::new().await;
    let (ticket, tasks) = ticket_in_requirements(&app, "Bad reports").await;
    let task_id = &tasks["analyze_requirements"];
    let cases = [
        (json!({"status": "completed"}), "task_id"),
        (
            json!({"task_id": "task-1", "status": "completed"}),
            "task_id",
        ),
        (json!({"task_id": task_id, "status": "done"}), "status"),
        (
            json!({"task_id": task_id, "result": "not an object"}),
            "result",
        ),
    ];

    for (data, field) in cases {
        let request = app.send(COMPLETE_TASK, Some(&ticket), data.clone()).await;
        let outcome = app.outcome_of(&request).await;

        let rejection = assert_rejection(
            &outcome,
            "task.complete.rejected",
            "invalid_request",
            Some(&ticket),
        );
        assert!(
            reasons_text(&rejection).contains(field),
            "the reasons for {data} should name `{field}`: {rejection:#}"
        );
    }
    for task_id in tasks.values() {
        assert_eq!(
            task_status(&app.pool, task_id).await,
            "pending",
            "no report was applied"
        );
    }
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// artifact.submit.rejected

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_for_an_unknown_ticket_is_rejected_as_ticket_not_found() {
    let app = Rules::new().await;
    let unknown = Uuid::new_v4().to_string();

    let request = app
        .send(
            SUBMIT_ARTIFACT,
            Some(&unknown),
            json!({"artifact_type": "requirements_document", "artifact_content": {"length": 900}}),
        )
        .await;
    let outcome = app.outcome_of(&request).await;

    assert_rejection(
        &outcome,
        "artifact.submit.rejected",
        "ticket_not_found",
        Some(&unknown),
    );
    let artifacts: i64 = sqlx::query_scalar("select count(*) from phase_gate_artifacts")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(artifacts, 0);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_without_a_type_is_rejected_as_invalid_request() {
    let app = Rules::new().await;
    let (ticket, _) = ticket_in_requirements(&app, "Anonymous artifact").await;

    let request = app
        .send(
            SUBMIT_ARTIFACT,
            Some(&ticket),
            json!({"artifact_path": "docs/req.md", "artifact_content": {"length": 900}}),
        )
        .await;
    let outcome = app.outcome_of(&request).await;

    let data = assert_rejection(
        &outcome,
        "artifact.submit.rejected",
        "invalid_request",
        Some(&ticket),
    );
    assert!(reasons_text(&data).contains("artifact_type"), "{data:#}");
    let artifacts = count(
        &app.pool,
        "select count(*) from phase_gate_artifacts where ticket_id = $1",
        &ticket,
    )
    .await;
    assert_eq!(artifacts, 0, "nothing was collected");
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// gate validation on request

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_validation_with_open_tasks_is_pending_and_stored() {
    let app = Rules::new().await;
    let (ticket, _) = ticket_in_requirements(&app, "Judge me early").await;
    let stored_before = count(
        &app.pool,
        "select count(*) from phase_gate_results where ticket_id = $1 and phase_id = 'PHASE_REQUIREMENTS'",
        &ticket,
    )
    .await;

    let request = app.send(VALIDATE_GATE, Some(&ticket), json!({})).await;
    let outcome = app.outcome_of(&request).await;

    assert_eq!(outcome["type"], "gate.validated", "{outcome:#}");
    let data = &outcome["data"];
    assert_eq!(data["ticket_id"], json!(ticket));
    assert_eq!(
        data["phase_id"], "PHASE_REQUIREMENTS",
        "the default is the current phase"
    );
    assert_eq!(data["gate_status"], "pending");
    assert_eq!(data["requirements_met"], false);
    assert_eq!(data["missing_artifacts"], json!(["requirements_document"]));
    assert!(
        data["blocking_reasons"]
            .as_array()
            .is_some_and(|reasons| !reasons.is_empty()),
        "{data:#}"
    );
    assert_eq!(
        data["validation_result"],
        json!({"artifacts_checked": 0, "artifacts_passed": 0, "tasks_completed": false, "tasks_total": 2, "tasks_done": 0}),
        "tasks_completed is a boolean, with the counts beside it"
    );
    let stored: Vec<(String, bool, String)> = sqlx::query_as(
        "select gate_status::text, requirements_met, validated_by from phase_gate_results \
         where ticket_id = $1 and phase_id = 'PHASE_REQUIREMENTS' order by seq",
    )
    .bind(uuid(&ticket))
    .fetch_all(&app.pool)
    .await
    .expect("gate results");
    assert_eq!(
        stored.len() as i64,
        stored_before + 1,
        "one phase_gate_results row per validation"
    );
    assert_eq!(
        stored.last().expect("a row"),
        &("pending".to_owned(), false, "agent-test".to_owned())
    );
    assert_eq!(
        phase_of(&app.pool, &ticket).await,
        "PHASE_REQUIREMENTS",
        "validating moves nothing"
    );
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// gates cannot be skipped through BLOCKED

/// Sends a transition and returns its outcome event.
async fn transition_outcome(app: &Rules, ticket: &str, data: Value) -> Value {
    let request = app.send(TRANSITION, Some(ticket), data).await;
    app.outcome_of(&request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_through_blocked_skips_the_gate_of_the_phase_it_was_blocked_from() {
    let app = Rules::new().await;
    let (ticket, _) = ticket_in_requirements(&app, "Gate unmet in requirements").await;
    let blocked = transition_outcome(
        &app,
        &ticket,
        json!({"to_phase": "PHASE_BLOCKED", "reason": "waiting for the customer"}),
    )
    .await;
    assert_eq!(blocked["type"], "phase.transitioned", "{blocked:#}");

    // further than the phase right after: invalid, saying why
    for to_phase in ["PHASE_IMPLEMENTATION", "PHASE_TESTING"] {
        let outcome = transition_outcome(
            &app,
            &ticket,
            json!({"to_phase": to_phase, "reason": "skip ahead"}),
        )
        .await;
        let data = assert_rejection(
            &outcome,
            "phase.transition.rejected",
            "invalid_transition",
            Some(&ticket),
        );
        assert_eq!(data["from_phase"], "PHASE_BLOCKED");
        assert_eq!(data["to_phase"], to_phase);
        let reasons = reasons_text(&data);
        assert!(
            reasons.contains("blocked from PHASE_REQUIREMENTS") && reasons.contains("skip"),
            "the reason says why: {reasons}"
        );
    }
    // the phase right after: a forward move through the gate of REQUIREMENTS, which is unmet
    let outcome = transition_outcome(
        &app,
        &ticket,
        json!({"to_phase": "PHASE_DESIGN", "reason": "skip the gate"}),
    )
    .await;
    let data = assert_rejection(
        &outcome,
        "phase.transition.rejected",
        "gate_not_met",
        Some(&ticket),
    );
    assert!(
        reasons_text(&data).contains("requirements_document"),
        "the reasons are the REQUIREMENTS gate's: {data:#}"
    );
    assert_eq!(phase_of(&app.pool, &ticket).await, "PHASE_BLOCKED");

    // a forward move that meets a block published just before it is still gated
    let unblocked = transition_outcome(&app, &ticket, json!({"reason": "customer answered"})).await;
    assert_eq!(unblocked["type"], "phase.transitioned", "{unblocked:#}");
    assert_eq!(unblocked["data"]["current_phase"], "PHASE_REQUIREMENTS");
    app.send(
        TRANSITION,
        Some(&ticket),
        json!({"to_phase": "PHASE_BLOCKED", "reason": "blocked again"}),
    )
    .await;
    let raced = transition_outcome(
        &app,
        &ticket,
        json!({"to_phase": "PHASE_DESIGN", "reason": "meant as a forward move"}),
    )
    .await;
    assert_rejection(
        &raced,
        "phase.transition.rejected",
        "gate_not_met",
        Some(&ticket),
    );

    let entered: Vec<String> = sqlx::query_scalar(
        "select to_phase::text from phase_history where ticket_id = $1 order by created_at, id",
    )
    .bind(uuid(&ticket))
    .fetch_all(&app.pool)
    .await
    .expect("history");
    assert_eq!(
        entered,
        [
            "PHASE_BACKLOG",
            "PHASE_REQUIREMENTS",
            "PHASE_BLOCKED",
            "PHASE_REQUIREMENTS",
            "PHASE_BLOCKED"
        ],
        "the ticket never got past REQUIREMENTS"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_ticket_whose_gate_passes_may_go_on_to_the_next_phase_through_that_gate() {
    let app = Rules::new().await;
    let created = app
        .send(
            CREATE,
            None,
            json!({"title": "Moves only when asked", "auto_advance": false}),
        )
        .await;
    let created = app.outcome_of(&created).await;
    let ticket = created["data"]["ticket_id"]
        .as_str()
        .expect("ticket id")
        .to_owned();
    let moved = transition_outcome(
        &app,
        &ticket,
        json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "ready"}),
    )
    .await;
    assert_eq!(moved["type"], "phase.transitioned", "{moved:#}");
    let generated = app
        .events
        .wait_for(|event| event["type"] == "tasks.generated" && event["subject"] == json!(ticket))
        .await;
    let document = json!({
        "length": 800,
        "sections": ["scope", "acceptance_criteria"],
    });
    for task in generated["data"]["generated_tasks"]
        .as_array()
        .expect("generated tasks")
    {
        let request = app
            .send(
                COMPLETE_TASK,
                Some(&ticket),
                json!({
                    "task_id": task["id"],
                    "result": {"artifacts": [{"artifact_type": "requirements_document", "artifact_content": document}]},
                }),
            )
            .await;
        let done = app.outcome_of(&request).await;
        assert_eq!(done["type"], "task.completed", "{done:#}");
    }
    let blocked = transition_outcome(
        &app,
        &ticket,
        json!({"to_phase": "PHASE_BLOCKED", "reason": "waiting"}),
    )
    .await;
    assert_eq!(blocked["type"], "phase.transitioned", "{blocked:#}");

    let request = app
        .send(
            TRANSITION,
            Some(&ticket),
            json!({"to_phase": "PHASE_DESIGN", "reason": "requirements were done"}),
        )
        .await;
    // a gated move publishes gate.validated before its outcome
    let outcome = app
        .events
        .wait_for(|event| {
            event["causationid"] == json!(request)
                && event["type"]
                    .as_str()
                    .is_some_and(|kind| kind.starts_with("phase.transition"))
        })
        .await;
    assert_eq!(outcome["type"], "phase.transitioned", "{outcome:#}");
    assert_eq!(outcome["data"]["previous_phase"], "PHASE_BLOCKED");
    assert_eq!(outcome["data"]["current_phase"], "PHASE_DESIGN");
    let gate = app
        .events
        .wait_for(|event| {
            event["type"] == "gate.validated"
                && event["causationid"] == json!(request)
                && event["subject"] == json!(ticket)
        })
        .await;
    assert_eq!(gate["data"]["phase_id"], "PHASE_REQUIREMENTS");
    assert_eq!(gate["data"]["gate_status"], "passed");
    assert_eq!(gate["data"]["validation_result"]["tasks_completed"], true);
    assert_eq!(gate["data"]["validation_result"]["tasks_total"], 2);
    assert_eq!(gate["data"]["validation_result"]["tasks_done"], 2);
    app.shutdown().await;
}
