//! The HTTP API against the real Postgres and RabbitMQ: every endpoint of docs/protocol.md "HTTP API", its
//! error statuses, authentication, and that a change made over HTTP is the same transaction and
//! publishes the same events as one made over RabbitMQ.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::http::{
    assert_members, send, strings, typed, Api, AGENT, OTHER_AGENT, OTHER_TOKEN, TOKEN,
};
use crate::common::requests::TRANSITION;
use crate::common::{Envelope, Event, Outcome, Rejected, Requests, TestApp};
use phaseflow::api::views::{ContextView, HistoryEntry, TaskView, TicketView, TransitionView};
use phaseflow::api::BoardOperation;
use phaseflow::domain::{GateStatus, Phase, Priority, TaskId, TaskStatus};
use phaseflow::protocol::events::{
    ArtifactCollected, ContextUpdated, GateValidated, PhaseEntered, PhaseTransitioned, TaskClaimed,
    TaskFinished, TaskLeaseExtended, TaskReleased, TasksGenerated, TicketCreated,
};
use phaseflow::protocol::RejectionCode;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::task::JoinSet;
use uuid::Uuid;

/// Asserts the contract's error body and returns its code.
fn error_code(body: &Value) -> &str {
    let error = &body["error"];
    assert!(error["message"].is_string(), "no error.message in {body}");
    assert!(error["reasons"].is_array(), "no error.reasons in {body}");
    error["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.code in {body}"))
}

fn reasons(body: &Value) -> String {
    body["error"]["reasons"]
        .as_array()
        .map(|reasons| format!("{reasons:?}"))
        .unwrap_or_default()
}

/// Creates a ticket over HTTP and returns its id.
async fn create_ticket(api: &Api, title: &str) -> String {
    api.create_ticket(json!({ "title": title })).await
}

async fn count(app: &TestApp, statement: &'static str) -> i64 {
    sqlx::query_scalar(statement)
        .fetch_one(&app.pool)
        .await
        .expect("count query")
}

/// The artifacts that make each phase's gate pass, by the task that submits them.
fn artifacts_for(task_type: &str) -> Value {
    match task_type {
        "create_requirements_doc" => json!([{
            "artifact_type": "requirements_document",
            "artifact_path": "docs/requirements.md",
            "artifact_content": {"length": 900, "sections": ["scope", "acceptance_criteria", "risks"]}
        }]),
        "implement_feature" => {
            json!([{"artifact_type": "code_changes", "artifact_content": {"has_tests": true, "files": 7}}])
        }
        "write_unit_tests" => {
            json!([{"artifact_type": "test_coverage", "artifact_content": {"percentage": 87}}])
        }
        "run_tests" => {
            json!([{"artifact_type": "test_results", "artifact_content": {"all_passed": true, "total": 120}}])
        }
        "verify_deployment" => {
            json!([{"artifact_type": "deployment_record", "artifact_content": {"status": "succeeded"}}])
        }
        _ => json!([]),
    }
}

/// The members of a ticket as the API answers it.
const TICKET_MEMBERS: &str = "id title description priority auto_advance phase_id \
    previous_phase_id context_summary budget spent created_at updated_at valid_transitions";
/// The members of a task as a ticket's task list answers it.
const TASK_MEMBERS: &str = "id phase_id task_type description priority status dependencies role \
    result created_at completed_at";

/// The `phase.entered` of the ticket into `phase`.
async fn entered(app: &TestApp, ticket: &str, phase: Phase) -> Envelope<PhaseEntered> {
    app.events
        .wait_for_data("phase.entered", ticket, |data: &PhaseEntered| {
            data.phase_id == phase
        })
        .await
}

/// The `context.updated` that aggregated the ticket's `phase`.
async fn context_updated(app: &TestApp, ticket: &str, phase: Phase) -> Envelope<ContextUpdated> {
    app.events
        .wait_for_data("context.updated", ticket, |data: &ContextUpdated| {
            data.phase_id == phase
        })
        .await
}

/// Asking again for the REQUIREMENTS visit's tasks answers the same ones, and its gate is
/// pending while they are open.
async fn generating_again_and_validating_early_change_nothing(
    api: &Api,
    ticket: &str,
    tasks: &[TaskView],
) {
    let (status, body) = api
        .post(
            &format!("/api/v1/tickets/{ticket}/generate-tasks"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_members(&body, "ticket_id phase_id generated_tasks");
    let again: TasksGenerated = typed(&body);
    let ids: Vec<TaskId> = again.generated_tasks.iter().map(|task| task.id).collect();
    assert_eq!(ids, tasks.iter().map(|task| task.id).collect::<Vec<_>>());
    assert_eq!(
        tasks[1].dependencies,
        [tasks[0].id],
        "the second task depends on the first"
    );

    let path = format!("/api/v1/tickets/{ticket}/validate-gate");
    let (status, body) = send(api.request(Method::POST, &path)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_members(
        &body,
        "ticket_id phase_id gate_status requirements_met missing_artifacts \
        blocking_reasons validation_result",
    );
    let gate: GateValidated = typed(&body);
    assert_eq!(gate.gate_status, GateStatus::Pending);
    assert!(!gate.requirements_met);
    assert_eq!(gate.missing_artifacts, ["requirements_document"]);
}

/// An artifact submitted on its own rather than with a task, in DESIGN.
async fn submit_a_design_document(app: &TestApp, api: &Api, ticket: &str) {
    let (status, body) = api
        .post(
            &format!("/api/v1/tickets/{ticket}/artifacts"),
            json!({"artifact_type": "design_document", "artifact_path": "docs/design.md",
                   "artifact_content": {"sections": ["architecture", "data_model"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_members(&body, "ticket_id phase_id artifact_id artifact_type");
    let collected: ArtifactCollected = typed(&body);
    assert_eq!(collected.phase_id, Phase::Design);
    let event = app
        .events
        .wait_for_typed::<ArtifactCollected>("artifact.collected", ticket)
        .await;
    assert_eq!(event.actor, AGENT);
    assert_eq!(event.data.artifact_id, collected.artifact_id);
}

/// Completes a task over HTTP with a decision and the artifacts its gate needs; the answer
/// and the published `task.completed` say so.
async fn complete_over_http(app: &TestApp, api: &Api, ticket: &str, task: &TaskView) {
    let task_type = task.task_type.as_str();
    let body = json!({
        "status": "completed",
        "result": {
            "summary": format!("{task_type} done"),
            "outputs": {"notes": "all good"},
            "context": {"decisions": [format!("decided in {task_type}")], "risks": [], "notes": []},
            "artifacts": artifacts_for(task_type),
        }
    });
    let (status, body) = api
        .post(&format!("/api/v1/tasks/{}/complete", task.id), body)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_members(
        &body,
        "ticket_id task_id phase_id task_type status artifacts_collected usage",
    );
    let finished: TaskFinished = typed(&body);
    assert_eq!(finished.status, TaskStatus::Completed);
    assert_eq!(
        Some(finished.artifacts_collected.len()),
        artifacts_for(task_type).as_array().map(Vec::len)
    );
    let event = app
        .events
        .wait_for_data("task.completed", ticket, |data: &TaskFinished| {
            data.task_id == task.id
        })
        .await;
    assert_eq!(event.actor, AGENT);
}

/// The ticket's history is one chain from BACKLOG to DONE: the first move by the agent, the
/// rest by the system.
async fn assert_history_is_one_chain(api: &Api, ticket: &str) {
    let body = api.read(&format!("/api/v1/tickets/{ticket}/history")).await;
    assert_members(
        &body[0],
        "id from_phase to_phase transition_reason transitioned_by \
        artifacts created_at",
    );
    let history: Vec<HistoryEntry> = typed(&body);
    let to_phases: Vec<Phase> = history.iter().map(|row| row.to_phase).collect();
    assert_eq!(to_phases, Phase::SEQUENCE);
    assert_eq!(history[0].from_phase, None);
    for pair in history.windows(2) {
        assert_eq!(
            pair[1].from_phase,
            Some(pair[0].to_phase),
            "the history is a chain"
        );
    }
    assert_eq!(history[1].transitioned_by, AGENT);
    assert!(history[2..]
        .iter()
        .all(|row| row.transitioned_by == "system"));
}

/// The ticket's events: how many of each type a walk to DONE over HTTP publishes, and
/// `ticketseq` numbering them without gaps or repeats.
fn assert_the_events_of_a_walk_to_done(app: &TestApp, ticket: &str) {
    let events: Vec<Event> = app
        .events
        .typed()
        .into_iter()
        .filter(|event| event.subject.as_deref() == Some(ticket))
        .collect();
    let count_of = |event_type: &str| events.iter().filter(|event| event.is(event_type)).count();
    assert_eq!(count_of("ticket.created"), 1);
    assert_eq!(count_of("phase.transitioned"), 6);
    assert_eq!(count_of("phase.entered"), 7);
    assert_eq!(
        count_of("tasks.generated"),
        6,
        "five phases, plus the answer to generate-tasks"
    );
    assert_eq!(count_of("task.completed"), 10);
    assert_eq!(count_of("context.updated"), 6);
    assert_eq!(
        count_of("gate.validated"),
        6,
        "five automatic validations, plus the answer to validate-gate"
    );
    let mut seqs: Vec<i64> = events.iter().filter_map(|event| event.ticketseq).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=events.len() as i64).collect::<Vec<_>>(),
        "ticketseq has no gaps or repeats"
    );
}

/// Creates a ticket over HTTP with a correlation id: the answer is the ticket as it reads back,
/// in BACKLOG, and its events carry the agent and the correlation id; returns its id.
async fn create_with_a_correlation_id(app: &TestApp, api: &Api) -> String {
    let (status, body) = send(
        api.request(Method::POST, "/api/v1/tickets")
            .header("X-Correlation-Id", "flow-correlation-1")
            .json(&json!({"title": "Single sign-on", "description": "Log in with the company IdP", "priority": "HIGH"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_members(&body, TICKET_MEMBERS);
    let created: TicketView = typed(&body);
    assert_eq!(
        (created.phase_id, created.previous_phase_id),
        (Phase::Backlog, None)
    );
    assert_eq!(created.priority, Priority::High);
    assert!(created.auto_advance, "the default");
    assert!(
        created.context_summary.starts_with("# Single sign-on"),
        "a new ticket's summary is the ticket itself: {body}"
    );
    let ticket = created.id.to_string();
    let read = api.read(&format!("/api/v1/tickets/{ticket}")).await;
    assert_eq!(read, body, "the created ticket reads back the same");
    let event = app
        .events
        .wait_for_typed::<TicketCreated>("ticket.created", &ticket)
        .await;
    assert_eq!(event.actor, AGENT);
    assert_eq!(event.correlationid, "flow-correlation-1");
    assert_eq!(event.data.title, "Single sign-on");
    assert_eq!(entered(app, &ticket, Phase::Backlog).await.actor, AGENT);
    ticket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_goes_from_creation_to_done_over_http_alone() {
    let mut app = TestApp::spawn().await;
    let api = Api::start(&mut app).await;

    let ticket = create_with_a_correlation_id(&app, &api).await;

    // leave BACKLOG by asking
    let (status, body) = api.transition(&ticket, "PHASE_REQUIREMENTS").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_members(
        &body,
        "ticket_id previous_phase current_phase transitioned_at transitioned_by",
    );
    let moved: TransitionView = typed(&body);
    assert_eq!(moved.ticket_id.to_string(), ticket);
    assert_eq!(
        (moved.previous_phase, moved.current_phase),
        (Phase::Backlog, Phase::Requirements)
    );
    assert_eq!(moved.transitioned_by, AGENT);
    let event = app
        .events
        .wait_for_typed::<PhaseTransitioned>("phase.transitioned", &ticket)
        .await;
    assert_eq!(event.actor, AGENT);
    assert_eq!(event.data.transitioned_by, AGENT);
    assert_eq!(event.data.reason, "moved by a test");
    assert_eq!(
        entered(&app, &ticket, Phase::Requirements).await.actor,
        AGENT
    );
    context_updated(&app, &ticket, Phase::Backlog).await;

    // every phase: the system generates its tasks, the agent does them over HTTP, and the last
    // one validates the gate and moves the ticket on, in the same transaction
    let mut phase = Phase::Requirements;
    while let Some(next) = phase.next() {
        let generated = app
            .events
            .wait_for_data("tasks.generated", &ticket, |data: &TasksGenerated| {
                data.phase_id == phase
            })
            .await;
        assert_eq!(generated.actor, "system");
        let tasks = api.wait_for_tasks(&ticket, phase.as_str(), 2).await;
        assert_eq!(tasks.len(), 2, "{tasks:?}");
        assert!(
            tasks.iter().all(|task| task.status == TaskStatus::Pending),
            "{tasks:?}"
        );
        match phase {
            Phase::Requirements => {
                generating_again_and_validating_early_change_nothing(&api, &ticket, &tasks).await
            }
            Phase::Design => submit_a_design_document(&app, &api, &ticket).await,
            _ => {}
        }
        for task in &tasks {
            complete_over_http(&app, &api, &ticket, task).await;
        }

        let read = api.ticket(&ticket).await;
        assert_eq!(
            (read.phase_id, read.previous_phase_id),
            (next, Some(phase)),
            "{read:?}"
        );
        let gate = app
            .events
            .wait_for_event(|event| {
                event.is_about("gate.validated", &ticket)
                    && event.actor == "system"
                    && event.data::<GateValidated>().phase_id == phase
            })
            .await
            .typed::<GateValidated>();
        assert_eq!(gate.data.gate_status, GateStatus::Passed, "{gate}");
        let moved = app
            .events
            .wait_for_data("phase.transitioned", &ticket, |data: &PhaseTransitioned| {
                data.current_phase == next
            })
            .await;
        assert_eq!(moved.actor, "system");
        assert_eq!(moved.data.transitioned_by, "system");
        entered(&app, &ticket, next).await;
        context_updated(&app, &ticket, phase).await;
        phase = next;
    }

    // DONE: history, context, tasks and the event stream tell the whole story
    assert_history_is_one_chain(&api, &ticket).await;
    let body = api.read(&format!("/api/v1/tickets/{ticket}/context")).await;
    assert_members(&body, "ticket_id full_context summary last_updated");
    let context: ContextView = typed(&body);
    for key in [
        "requirements_phase",
        "design_phase",
        "implementation_phase",
        "testing_phase",
        "deployment_phase",
    ] {
        assert!(context.full_context.contains_key(key), "no {key} in {body}");
    }
    assert!(context.summary.contains("decided in"), "{body}");
    let body = api.read(&format!("/api/v1/tickets/{ticket}/tasks")).await;
    for task in body.as_array().expect("a list") {
        assert_members(task, TASK_MEMBERS);
    }
    let tasks: Vec<TaskView> = typed(&body);
    assert_eq!(tasks.len(), 10);
    assert!(tasks.iter().all(|task| task.status == TaskStatus::Completed
        && task.completed_at.is_some()
        && task.result.as_ref().is_some_and(Value::is_object)));
    assert_the_events_of_a_walk_to_done(&app, &ticket);

    api.stop().await;
    app.shutdown().await;
}

/// The app without a worker and its API: answers over HTTP need none.
async fn served() -> (TestApp, Api) {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    (app, api)
}

/// Asserts an answer's status and the contract's error body with `code`.
fn assert_error(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    let (actual, body) = answer;
    assert_eq!((*actual, error_code(body)), (status, code), "{body}");
}

/// Asserts a 422 `invalid_request` whose reasons contain each of `named`.
fn assert_unprocessable(answer: &(StatusCode, Value), named: &[&str]) {
    let (status, body) = answer;
    assert_eq!(*status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    for text in named {
        assert!(
            reasons(body).contains(text),
            "no reason says `{text}`: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tickets_tasks_and_routes_are_404_with_the_error_body() {
    let (app, api) = served().await;
    let unknown = Uuid::new_v4();

    assert_error(
        &api.get(&format!("/api/v1/tickets/{unknown}")).await,
        StatusCode::NOT_FOUND,
        "ticket_not_found",
    );
    for path in ["context", "history", "tasks"] {
        let answer = api.get(&format!("/api/v1/tickets/{unknown}/{path}")).await;
        assert_error(&answer, StatusCode::NOT_FOUND, "ticket_not_found");
    }
    let answer = api
        .post(
            &format!("/api/v1/tickets/{unknown}/transition"),
            json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "go"}),
        )
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "ticket_not_found");
    for path in ["generate-tasks", "validate-gate"] {
        let answer = api
            .post(&format!("/api/v1/tickets/{unknown}/{path}"), json!({}))
            .await;
        assert_error(&answer, StatusCode::NOT_FOUND, "ticket_not_found");
    }
    let answer = api
        .post(
            &format!("/api/v1/tickets/{unknown}/artifacts"),
            json!({"artifact_type": "x"}),
        )
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "ticket_not_found");
    let answer = api
        .post(&format!("/api/v1/tasks/{unknown}/complete"), json!({}))
        .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "task_not_found");
    assert_error(
        &api.get("/api/v1/nothing-here").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transition_the_phase_does_not_allow_is_409_and_published_as_its_rejection() {
    let mut app = TestApp::spawn().await;
    let api = Api::start(&mut app).await;
    let ticket = create_ticket(&api, "Errors").await;

    let answer = api
        .post(
            &format!("/api/v1/tickets/{ticket}/transition"),
            json!({"to_phase": "PHASE_DESIGN", "reason": "skip ahead"}),
        )
        .await;

    assert_error(&answer, StatusCode::CONFLICT, "invalid_transition");
    let rejected: Rejected = app
        .events
        .wait_for_typed("phase.transition.rejected", &ticket)
        .await;
    assert_eq!(rejected.actor, AGENT);
    assert_eq!(rejected.data.code, RejectionCode::InvalidTransition);
    assert_eq!(rejected.data.from_phase, Some(Some(Phase::Backlog)));
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transition_expecting_another_phase_is_409_phase_mismatch() {
    let (app, api) = served().await;
    let ticket = create_ticket(&api, "Errors").await;

    let answer = api
        .post(
            &format!("/api/v1/tickets/{ticket}/transition"),
            json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "go", "expected_from_phase": "PHASE_DESIGN"}),
        )
        .await;

    assert_error(&answer, StatusCode::CONFLICT, "phase_mismatch");
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_fields_are_422_invalid_request_with_a_reason_naming_each() {
    let (app, api) = served().await;
    let ticket = create_ticket(&api, "Errors").await;
    let transition = format!("/api/v1/tickets/{ticket}/transition");

    let answer = api
        .post(&transition, json!({"to_phase": "PHASE_NOPE", "reason": 7}))
        .await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert_unprocessable(
        &answer,
        &[
            "to_phase: unknown phase `PHASE_NOPE`",
            "reason: must be a string",
        ],
    );
    let answer = api
        .post(
            "/api/v1/tickets",
            json!({"description": "no title", "priority": "URGENT"}),
        )
        .await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert_unprocessable(
        &answer,
        &["title: is required", "priority: unknown priority `URGENT`"],
    );
    let answer = api
        .post("/api/v1/tickets", json!({"title": "x".repeat(501)}))
        .await;
    assert_unprocessable(
        &answer,
        &["title: is 501 characters long; the limit is 500"],
    );
    let answer = api.get("/api/v1/tickets/not-a-uuid").await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert_unprocessable(&answer, &["ticket_id: `not-a-uuid` is not a UUID"]);
    let answer = api.post("/api/v1/tasks/42/complete", json!({})).await;
    assert_unprocessable(&answer, &["task_id:"]);
    let answer = api
        .post(
            &format!("/api/v1/tickets/{ticket}/artifacts"),
            json!({"artifact_content": []}),
        )
        .await;
    assert_unprocessable(
        &answer,
        &[
            "artifact_type: is required",
            "artifact_content: must be a JSON object",
        ],
    );
    let answer = api
        .post(
            &format!("/api/v1/tickets/{ticket}/validate-gate"),
            json!({"phase_id": "DESIGN"}),
        )
        .await;
    assert_unprocessable(&answer, &["phase_id:"]);
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_one_small_json_object_is_422_saying_why() {
    let (app, api) = served().await;
    let ticket = create_ticket(&api, "Errors").await;
    let transition = format!("/api/v1/tickets/{ticket}/transition");
    let raw = |content_type: &str, body: String| {
        send(
            api.request(Method::POST, &transition)
                .header("content-type", content_type)
                .body(body),
        )
    };

    let answer = raw("application/json", "{\"to_phase\": ".to_owned()).await;
    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert_unprocessable(&answer, &["body: not valid JSON"]);
    let answer = raw("text/plain", "{}".to_owned()).await;
    assert_unprocessable(&answer, &["Content-Type"]);
    let answer = api.post(&transition, json!(["PHASE_REQUIREMENTS"])).await;
    assert_unprocessable(&answer, &["body: must be a JSON object"]);
    let deep = format!(
        "{{\"to_phase\": \"PHASE_REQUIREMENTS\", \"reason\": \"go\", \"artifacts\": {{\"a\": {}{}}}}}",
        "[".repeat(40),
        "]".repeat(40)
    );
    let answer = raw("application/json", deep).await;
    assert_unprocessable(&answer, &["deeper than 32"]);
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_above_the_size_limit_is_413_payload_too_large() {
    let (app, api) = served().await;
    let limit = app.settings.api.max_body_bytes;

    let answer = api
        .post(
            "/api/v1/tickets",
            json!({"title": "big", "description": "d".repeat(limit)}),
        )
        .await;

    assert_error(&answer, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transition_through_a_gate_with_open_tasks_is_422_gate_not_met() {
    let (app, api) = served().await;
    let placed = app.ticket_in(Phase::Requirements).await;

    let answer = api
        .post(
            &format!("/api/v1/tickets/{}/transition", placed.ticket),
            json!({"to_phase": "PHASE_DESIGN", "reason": "too early"}),
        )
        .await;

    assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "gate_not_met");
    assert!(
        !strings(&answer.1["error"]["reasons"]).is_empty(),
        "{}",
        answer.1
    );
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_a_task_twice_is_409_task_already_finished() {
    let (app, api) = served().await;
    let placed = app.ticket_in(Phase::Requirements).await;
    let complete = format!(
        "/api/v1/tasks/{}/complete",
        placed.task("analyze_requirements")
    );
    let (status, body) = api
        .post(&complete, json!({"result": {"summary": "analysed"}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let again = api.post(&complete, json!({})).await;
    let malformed = api.post(&complete, json!({"status": "done"})).await;

    assert_error(&again, StatusCode::CONFLICT, "task_already_finished");
    assert_unprocessable(&malformed, &["status: `done`"]);
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_reported_failed_over_http_answers_failed_and_is_published() {
    let mut app = TestApp::spawn().await;
    let api = Api::start(&mut app).await;
    let placed = app.ticket_in(Phase::Requirements).await;

    let (status, body) = api
        .post(
            &format!(
                "/api/v1/tasks/{}/complete",
                placed.task("create_requirements_doc")
            ),
            json!({"status": "failed", "error": "template missing"}),
        )
        .await;

    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("failed")),
        "{body}"
    );
    let failed: Envelope<TaskFinished> = app
        .events
        .wait_for_typed("task.failed", &placed.ticket)
        .await;
    assert_eq!(
        failed.data.task_id.to_string(),
        placed.task("create_requirements_doc")
    );
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_method_is_405_with_the_error_body() {
    let (app, api) = served().await;
    let ticket = create_ticket(&api, "Errors").await;

    let answer = send(api.request(Method::DELETE, &format!("/api/v1/tickets/{ticket}"))).await;

    assert_error(
        &answer,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_token_get_401_and_change_nothing() {
    let mut app = TestApp::spawn().await;
    let api = Api::start(&mut app).await;
    let ticket = create_ticket(&api, "Guarded").await;
    app.events
        .wait_for_event(|event| event.is_about("phase.entered", &ticket))
        .await;
    let tickets_before = count(&app, "select count(*) from tickets").await;
    let history_before = count(&app, "select count(*) from phase_history").await;
    // events numbered for any ticket (the relay deletes published events from the outbox)
    let events_numbered = "select coalesce(sum(event_seq), 0)::int8 from tickets";
    let numbered_before = count(&app, events_numbered).await;
    let events_before = app.events.all().len();

    let transition = format!("/api/v1/tickets/{ticket}/transition");
    let body = json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "sneaky"});
    let attempts = [
        (
            "missing",
            api.anonymous(Method::POST, &transition).json(&body),
        ),
        (
            "wrong",
            api.anonymous(Method::POST, &transition)
                .bearer_auth("not-the-token")
                .json(&body),
        ),
        (
            "prefix of a real token",
            api.anonymous(Method::POST, &transition)
                .bearer_auth(&TOKEN[..TOKEN.len() - 1])
                .json(&body),
        ),
        (
            "malformed scheme",
            api.anonymous(Method::POST, &transition)
                .header("authorization", format!("Token {TOKEN}"))
                .json(&body),
        ),
        (
            "malformed token",
            api.anonymous(Method::POST, &transition)
                .header("authorization", format!("Bearer {TOKEN} x"))
                .json(&body),
        ),
        (
            "empty",
            api.anonymous(Method::POST, &transition)
                .header("authorization", "Bearer ")
                .json(&body),
        ),
        (
            "create",
            api.anonymous(Method::POST, "/api/v1/tickets")
                .bearer_auth("nope")
                .json(&json!({"title": "no"})),
        ),
        (
            "read",
            api.anonymous(Method::GET, &format!("/api/v1/tickets/{ticket}")),
        ),
        (
            "read tasks",
            api.anonymous(Method::GET, &format!("/api/v1/tickets/{ticket}/tasks"))
                .bearer_auth("nope"),
        ),
        (
            "bad path and no token",
            api.anonymous(Method::GET, "/api/v1/tickets/not-a-uuid"),
        ),
    ];
    for (what, request) in attempts {
        let response = request.send().await.expect("the API answers");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert!(
            response
                .headers()
                .get("www-authenticate")
                .is_some_and(|value| value.to_str().unwrap_or_default().starts_with("Bearer")),
            "{what}"
        );
        let body: Value = response.json().await.expect("an error body");
        assert_eq!(error_code(&body), "unauthorized", "{what}");
        assert!(
            !body.to_string().contains(TOKEN) && !body.to_string().contains("not-the-token"),
            "no token echoed: {body}"
        );
    }

    assert_eq!(
        count(&app, "select count(*) from tickets").await,
        tickets_before
    );
    assert_eq!(
        count(&app, "select count(*) from phase_history").await,
        history_before
    );
    assert_eq!(count(&app, events_numbered).await, numbered_before);
    assert_eq!(api.ticket(&ticket).await.phase_id, Phase::Backlog);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.events.all().len(),
        events_before,
        "nothing was published"
    );

    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transitions_over_http_and_amqp_have_one_winner_per_step() {
    let mut app = TestApp::spawn().await;
    let api = Api::start(&mut app).await;
    let ticket = create_ticket(&api, "Contended").await;
    let steps = [
        ("PHASE_BACKLOG", "PHASE_REQUIREMENTS"),
        ("PHASE_REQUIREMENTS", "PHASE_BLOCKED"),
        ("PHASE_BLOCKED", "PHASE_REQUIREMENTS"),
    ];

    for (step, (from, to)) in steps.into_iter().enumerate() {
        let body = json!({"to_phase": to, "reason": format!("race to {to}")});
        // HTTP requests and messages are in flight at once; which door starts first alternates,
        // so that each of them wins some steps
        let mut http = JoinSet::new();
        let mut amqp_ids = Vec::new();
        let http_first = step % 2 == 0;
        for _ in 0..10 {
            let request = api
                .request(
                    Method::POST,
                    &format!("/api/v1/tickets/{ticket}/transition"),
                )
                .json(&body);
            let delay = if http_first {
                Duration::ZERO
            } else {
                Duration::from_millis(20)
            };
            http.spawn(async move {
                tokio::time::sleep(delay).await;
                send(request).await
            });
            amqp_ids.push(
                app.send("phase.transition.requested", Some(&ticket), body.clone())
                    .await,
            );
        }
        let mut http_winners = 0;
        while let Some(answer) = http.join_next().await {
            let (status, body) = answer.expect("request task");
            match status {
                StatusCode::OK => {
                    http_winners += 1;
                    let moved: TransitionView = typed(&body);
                    assert_eq!(
                        (moved.previous_phase.as_str(), moved.current_phase.as_str()),
                        (from, to)
                    );
                    assert_eq!(moved.transitioned_by, AGENT);
                }
                StatusCode::CONFLICT => {
                    assert_eq!(error_code(&body), "invalid_transition", "{body}")
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        let mut amqp_winners = 0;
        for id in &amqp_ids {
            let outcome = app
                .outcome_of_request::<PhaseTransitioned>(id, TRANSITION)
                .await;
            match outcome {
                Outcome::Succeeded(moved) => {
                    amqp_winners += 1;
                    assert_eq!(moved.data.previous_phase.as_str(), from);
                    assert_eq!(moved.actor, "agent-test");
                }
                Outcome::Rejected(rejected) => {
                    assert_eq!(
                        rejected.data.code,
                        RejectionCode::InvalidTransition,
                        "{rejected}"
                    )
                }
            }
        }
        assert_eq!(
            http_winners + amqp_winners,
            1,
            "exactly one request moves the ticket {from} -> {to}"
        );
        let transitioned = |data: &PhaseTransitioned| {
            data.previous_phase.as_str() == from && data.current_phase.as_str() == to
        };
        app.events
            .wait_for_data("phase.transitioned", &ticket, transitioned)
            .await;
        app.events
            .wait_for_data("phase.entered", &ticket, |data: &PhaseEntered| {
                data.phase_id.as_str() == to
            })
            .await;
        assert_eq!(
            app.events
                .of_type("phase.transitioned", &ticket)
                .iter()
                .filter(|event| transitioned(&event.data()))
                .count(),
            1
        );
    }

    let history: Vec<HistoryEntry> = api
        .read_as(&format!("/api/v1/tickets/{ticket}/history"))
        .await;
    let path: Vec<(Option<Phase>, Phase)> = history
        .iter()
        .map(|row| (row.from_phase, row.to_phase))
        .collect();
    assert_eq!(
        path,
        [
            (None, Phase::Backlog),
            (Some(Phase::Backlog), Phase::Requirements),
            (Some(Phase::Requirements), Phase::Blocked),
            (Some(Phase::Blocked), Phase::Requirements),
        ]
    );
    let read = api.ticket(&ticket).await;
    assert_eq!(
        (read.phase_id, read.previous_phase_id),
        (Phase::Requirements, Some(Phase::Blocked))
    );

    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_applies_a_write_once_per_agent() {
    let mut app = TestApp::spawn().await;
    let api = Api::start(&mut app).await;

    let create = |token: &str| {
        api.anonymous(Method::POST, "/api/v1/tickets")
            .bearer_auth(token)
            .header("Idempotency-Key", "create-once-1")
            .json(&json!({"title": "Once"}))
    };
    let (status, first) = send(create(TOKEN)).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = send(create(TOKEN)).await;
    assert_eq!(
        (status, error_code(&again)),
        (StatusCode::CONFLICT, "duplicate_request"),
        "{again}"
    );
    assert_eq!(count(&app, "select count(*) from tickets").await, 1);
    let (status, other) = send(create(OTHER_TOKEN)).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "another agent's key is its own: {other}"
    );
    assert_eq!(count(&app, "select count(*) from tickets").await, 2);
    let event = app
        .events
        .wait_for_typed::<TicketCreated>(
            "ticket.created",
            &typed::<TicketView>(&other).id.to_string(),
        )
        .await;
    assert_eq!(event.actor, OTHER_AGENT);
    assert_eq!(
        event.causationid,
        format!("http:{OTHER_AGENT}:create-once-1")
    );

    let (status, body) = send(
        api.request(Method::POST, "/api/v1/tickets")
            .header("Idempotency-Key", "has space")
            .json(&json!({"title": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reasons(&body).contains("Idempotency-Key"), "{body}");

    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_json_describes_exactly_the_routes_served() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;

    let (status, document) = send(api.anonymous(Method::GET, "/api/v1/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        document,
        serde_json::from_str::<Value>(phaseflow::api::OPENAPI_JSON).expect("openapi.json is JSON")
    );
    let mut described = BTreeSet::new();
    for (path, operations) in document["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            let secured = operation.get("security") != Some(&json!([]));
            let id = operation["operationId"]
                .as_str()
                .expect("operationId")
                .to_owned();
            described.insert((method.to_uppercase(), path.clone(), id, secured));
        }
    }
    let served: BTreeSet<(String, String, String, bool)> = phaseflow::api::endpoints()
        .iter()
        .map(|endpoint| {
            (
                endpoint.method.as_str().to_owned(),
                endpoint.path.to_owned(),
                endpoint.operation.id().to_owned(),
                endpoint.operation.authenticated(),
            )
        })
        .collect();
    assert_eq!(described, served, "openapi.json and the router disagree");

    // and each route is really served (not the router's 404)
    for endpoint in phaseflow::api::endpoints() {
        let path = endpoint
            .path
            .replace("{ticket_id}", &Uuid::new_v4().to_string())
            .replace("{task_id}", &Uuid::new_v4().to_string())
            .replace("{phase_id}", "PHASE_DESIGN")
            .replace("{message_id}", &Uuid::new_v4().to_string());
        let method = Method::from_bytes(endpoint.method.as_str().as_bytes()).expect("method");
        if endpoint.operation == phaseflow::api::Operation::Board(BoardOperation::Stream) {
            // a stream that lasts: its headers say it is served
            let response = api
                .request(method, &path)
                .send()
                .await
                .expect("the API answers");
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(
                response.headers()["content-type"],
                "text/event-stream",
                "{path}"
            );
            continue;
        }
        let (status, body) = send(
            api.request(method, &path)
                .header("content-type", "application/json")
                .body("{}"),
        )
        .await;
        assert_ne!(
            body["error"]["code"],
            "not_found",
            "{} {path} is not routed: {status}",
            endpoint.method.as_str()
        );
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        if endpoint.operation.authenticated() {
            let (status, _) = send(api.anonymous(
                Method::from_bytes(endpoint.method.as_str().as_bytes()).expect("method"),
                &path,
            ))
            .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} needs a token");
        }
    }

    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_need_no_token() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;

    let (status, body) = send(api.anonymous(Method::GET, "/healthz")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, body) = send(api.anonymous(Method::GET, "/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["postgres"], &body["rabbitmq"]),
        (&json!(true), &json!(true))
    );

    // a write over HTTP needs no worker to be applied (the worker only publishes it later)
    let ticket = create_ticket(&api, "Without a worker").await;
    let (status, body) = api.get(&format!("/api/v1/tickets/{ticket}")).await;
    assert_eq!(
        (status, &body["title"]),
        (StatusCode::OK, &json!("Without a worker"))
    );

    let response = api
        .anonymous(Method::GET, "/metrics")
        .send()
        .await
        .expect("metrics");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("metrics text");
    assert!(
        text.lines()
            .any(|line| line.starts_with("phaseflow_http_requests_total{")
                && line.contains("route=\"/api/v1/tickets\"")
                && line.contains("status=\"201\"")),
        "{text}"
    );

    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_503_unavailable_after_retries() {
    let mut app = TestApp::without_worker().await;
    // nothing listens on port 1: every attempt fails at once
    app.settings.database.url = "postgres://postgres@127.0.0.1:1/phaseflow_unreachable".to_owned();
    app.settings.database.acquire_timeout_ms = 200;
    let api = Api::start(&mut app).await;

    let (status, body) = api
        .post("/api/v1/tickets", json!({"title": "Nowhere to go"}))
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        "{body}"
    );
    let response = api
        .request(Method::GET, &format!("/api/v1/tickets/{}", Uuid::new_v4()))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok()),
        Some("1")
    );
    let (status, body) = send(api.anonymous(Method::GET, "/readyz")).await;
    assert_eq!(
        (status, &body["postgres"]),
        (StatusCode::SERVICE_UNAVAILABLE, &json!(false)),
        "{body}"
    );

    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entering_a_phase_over_http_generates_its_tasks_without_a_worker() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let ticket = create_ticket(&api, "No worker running").await;

    let (status, moved) = api
        .post(
            &format!("/api/v1/tickets/{ticket}/transition"),
            json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "ready"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    // no polling: the answer comes after the commit that also generated the visit's tasks
    let tasks = api.tasks(&ticket).await;
    let types: BTreeSet<&str> = tasks.iter().map(|task| task.task_type.as_str()).collect();
    assert_eq!(
        types,
        BTreeSet::from(["analyze_requirements", "create_requirements_doc"]),
        "{tasks:?}"
    );
    let context: ContextView = api
        .read_as(&format!("/api/v1/tickets/{ticket}/context"))
        .await;
    assert!(
        context.full_context.contains_key("backlog_phase"),
        "leaving BACKLOG was aggregated: {context:?}"
    );

    // the events wait in the outbox, in the contract's order, for a worker's relay
    let pending: Vec<(String, i64, Value)> = sqlx::query_as(
        "select event_type, ticket_seq, convert_from(body, 'UTF8')::jsonb from outbox \
         where ticket_id = $1::uuid order by ticket_seq",
    )
    .bind(&ticket)
    .fetch_all(&app.pool)
    .await
    .expect("outbox rows");
    let types: Vec<&str> = pending.iter().map(|(kind, ..)| kind.as_str()).collect();
    assert_eq!(
        types,
        [
            "ticket.created",
            "phase.entered",
            "phase.transitioned",
            "phase.entered",
            "tasks.generated",
            "context.updated"
        ]
    );
    let sequence: Vec<i64> = pending.iter().map(|(_, seq, _)| *seq).collect();
    assert_eq!(sequence, [1, 2, 3, 4, 5, 6]);
    let entered = Event::from_json(pending[3].2.clone());
    for (_, _, caused) in &pending[4..] {
        let caused = Event::from_json(caused.clone());
        assert_eq!(caused.causationid, entered.id, "{caused}");
        assert_eq!(caused.actor, "system", "{caused}");
        assert_eq!(caused.correlationid, entered.correlationid, "{caused}");
    }

    api.stop().await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_ticket_reads_back_the_auto_advance_it_was_created_with() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;

    let (status, created) = api
        .post(
            "/api/v1/tickets",
            json!({"title": "Moves only when asked", "auto_advance": false}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let created: TicketView = typed(&created);
    assert!(!created.auto_advance);
    let read = api.ticket(&created.id.to_string()).await;
    assert!(!read.auto_advance, "{read:?}");

    api.stop().await;
    app.shutdown().await;
}

#[tokio::test]
async fn over_http_a_blocked_ticket_cannot_skip_the_gate_of_the_phase_it_was_blocked_from() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let ticket = create_ticket(&api, "Blocked in requirements").await;
    let transition = format!("/api/v1/tickets/{ticket}/transition");
    for to_phase in ["PHASE_REQUIREMENTS", "PHASE_BLOCKED"] {
        let (status, body) = api
            .post(
                &transition,
                json!({"to_phase": to_phase, "reason": "setting up"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    // two phases ahead of where it was blocked from: never allowed
    for to_phase in ["PHASE_IMPLEMENTATION", "PHASE_TESTING"] {
        let (status, body) = api
            .post(
                &transition,
                json!({"to_phase": to_phase, "reason": "skip ahead"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(error_code(&body), "invalid_transition", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|message| message.contains("blocked from PHASE_REQUIREMENTS")),
            "the reason says why: {body}"
        );
    }
    // the phase right after: only through the gate of REQUIREMENTS
    let (status, body) = api
        .post(
            &transition,
            json!({"to_phase": "PHASE_DESIGN", "reason": "skip the gate"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_code(&body), "gate_not_met", "{body}");
    let read = api.ticket(&ticket).await;
    assert_eq!(read.phase_id, Phase::Blocked, "nothing moved: {read:?}");

    // back where it was blocked from: ungated
    let (status, body) = api
        .post(
            &transition,
            json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "unblocked"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let moved: TransitionView = typed(&body);
    assert_eq!(moved.current_phase, Phase::Requirements);

    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_an_agent_claims_heartbeats_releases_and_completes_a_task() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let ticket = create_ticket(&api, "Claimed over HTTP").await;
    let (status, _) = api
        .post(
            &format!("/api/v1/tickets/{ticket}/transition"),
            json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "ready"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, claimed) = api
        .post(
            "/api/v1/tasks/claim",
            json!({"ticket_id": ticket, "lease_seconds": 30}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    let claimed: TaskClaimed = typed(&claimed);
    assert_eq!(claimed.claimed_by, AGENT);
    assert_eq!(claimed.task_type, "analyze_requirements");
    assert_eq!(claimed.attempt, 1);
    let task = claimed.task_id;

    // nothing else is claimable: its sibling depends on it
    let (status, body) = api
        .post("/api/v1/tasks/claim", json!({"ticket_id": ticket}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null, "204 has no body");
    let (status, body) = api
        .post("/api/v1/tasks/claim", json!({"lease_seconds": 5}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(reasons(&body).contains("lease_seconds"), "{body}");

    // someone else may neither extend, release nor report it
    let other = |path: String, body: Value| {
        send(
            api.http
                .post(format!("{}{path}", api.base))
                .bearer_auth(OTHER_TOKEN)
                .json(&body),
        )
    };
    let (status, body) = other(format!("/api/v1/tasks/{task}/heartbeat"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "lease_lost");
    let (status, body) = other(format!("/api/v1/tasks/{task}/complete"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "task_claimed_by_other");
    let (status, body) = other("/api/v1/tasks/claim".to_owned(), json!({"task_id": task})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "task_not_claimable");

    let (status, extended) = api
        .post(
            &format!("/api/v1/tasks/{task}/heartbeat"),
            json!({"lease_seconds": 60}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{extended}");
    assert_eq!(typed::<TaskLeaseExtended>(&extended).claimed_by, AGENT);
    let (status, released) = api
        .post(
            &format!("/api/v1/tasks/{task}/release"),
            json!({"reason": "handing over"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{released}");
    assert_eq!(typed::<TaskReleased>(&released).released_by, AGENT);
    let (status, body) = api
        .post(&format!("/api/v1/tasks/{task}/release"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let (status, claimed) = other("/api/v1/tasks/claim".to_owned(), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    let claimed: TaskClaimed = typed(&claimed);
    assert_eq!((claimed.task_id, claimed.attempt), (task, 2));
    let (status, finished) = other(format!("/api/v1/tasks/{task}/complete"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{finished}");
    let (status, body) = api
        .post(
            &format!("/api/v1/tasks/{}/heartbeat", Uuid::new_v4()),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(error_code(&body), "task_not_found");

    api.stop().await;
    app.shutdown().await;
}
