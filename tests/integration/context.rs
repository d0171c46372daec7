//! A ticket's context, driven by messages: the summary opens with the ticket itself from the
//! first phase it leaves (BACKLOG, which has nothing else to show), stays within its token budget
//! and is what the HTTP API shows; a decision several tasks of a phase report alike is kept once,
//! in the phase's context and in the summary; a summary stored the way earlier versions built it
//! is rebuilt, not kept, when its phase is left again with nothing new.

use crate::common::http::Api;
use crate::common::{Envelope, Requests, TestApp};
use phaseflow::api::views::{ContextView, TicketView};
use phaseflow::domain::{Phase, TaskStatus};
use phaseflow::protocol::events::{ContextUpdated, GeneratedTask, TasksGenerated};
use serde_json::{json, Value};

/// Creates a ticket over messages and returns its id.
async fn create_ticket(app: &TestApp, title: &str, description: &str, priority: &str) -> String {
    let data = json!({"title": title, "description": description, "priority": priority});
    let created = app.create(None, data).await.succeeded();
    created.data.ticket_id.to_string()
}

/// Asks for the ticket to move to `phase`, which must succeed.
async fn move_to(app: &TestApp, ticket: &str, phase: Phase) {
    app.transition(ticket, phase, "next step").await.succeeded();
}

/// The `context.updated` event that aggregated `phase` of the ticket.
async fn context_updated(app: &TestApp, ticket: &str, phase: Phase) -> Envelope<ContextUpdated> {
    app.events
        .wait_for_data("context.updated", ticket, |data: &ContextUpdated| {
            data.phase_id == phase
        })
        .await
}

/// The tasks generated on entering `phase`, in the order they were made.
async fn generated_tasks(app: &TestApp, ticket: &str, phase: Phase) -> Vec<GeneratedTask> {
    app.events
        .wait_for_data("tasks.generated", ticket, |data: &TasksGenerated| {
            data.phase_id == phase
        })
        .await
        .data
        .generated_tasks
}

/// Completes a task as an agent would, reporting `result`.
async fn complete(app: &TestApp, ticket: &str, task: &GeneratedTask, result: Value) {
    let data = json!({"task_id": task.id, "status": "completed", "result": result});
    let finished = app.report_task(ticket, data).await.succeeded();
    assert_eq!(finished.data.status, TaskStatus::Completed, "{finished}");
}

/// The ticket's stored context summary.
async fn stored_summary(app: &TestApp, ticket: &str) -> String {
    sqlx::query_scalar("select context_summary from tickets where id = $1")
        .bind(crate::common::uuid(ticket))
        .fetch_one(&app.pool)
        .await
        .expect("summary read")
}

/// How often `needle` occurs in `text`.
fn occurrences(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_backlog_publishes_a_summary_that_opens_with_the_ticket_and_the_api_shows_it() {
    let mut app = TestApp::spawn().await;
    let api = Api::start(&mut app).await;
    let ticket = create_ticket(
        &app,
        "Single sign-on for the admin console",
        "Admins log in with the company IdP instead of a password.",
        "HIGH",
    )
    .await;

    move_to(&app, &ticket, Phase::Requirements).await;
    let updated = context_updated(&app, &ticket, Phase::Backlog).await;

    let summary = &updated.data.summary;
    assert_eq!(
        summary,
        "# Single sign-on for the admin console (priority HIGH)\n\
         Admins log in with the company IdP instead of a password."
    );
    let tokens = updated.data.summary_tokens;
    assert!(tokens > 0, "{updated}");
    assert!(
        tokens <= app.settings.context.max_tokens,
        "{tokens} tokens: {updated}"
    );

    let read: TicketView = api.ticket(&ticket).await;
    assert_eq!(&read.context_summary, summary, "{read:?}");
    let context: ContextView = api
        .read_as(&format!("/api/v1/tickets/{ticket}/context"))
        .await;
    assert_eq!(&context.summary, summary, "{context:?}");

    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_two_tasks_of_a_phase_report_is_kept_once_in_the_context_and_the_summary() {
    let app = TestApp::spawn().await;
    let ticket = create_ticket(
        &app,
        "Audit log export",
        "Export the audit log as CSV.",
        "MEDIUM",
    )
    .await;
    move_to(&app, &ticket, Phase::Requirements).await;
    let tasks = generated_tasks(&app, &ticket, Phase::Requirements).await;
    assert_eq!(tasks[0].task_type, "analyze_requirements");
    assert_eq!(tasks[1].task_type, "create_requirements_doc");

    complete(
        &app,
        &ticket,
        &tasks[0],
        json!({
            "summary": "analysed",
            "context": {
                "decisions": ["Export as RFC 4180 CSV"],
                "risks": ["Large logs time out"],
                "notes": ["Compliance asked for this"],
            },
        }),
    )
    .await;
    // The second task reports the same decision, risk and note again, and one more decision; its
    // requirements document lets the gate pass, so the ticket leaves REQUIREMENTS on its own.
    complete(
        &app,
        &ticket,
        &tasks[1],
        json!({
            "summary": "documented",
            "context": {
                "decisions": ["Export as RFC 4180 CSV", "Stream rows, never buffer the log"],
                "risks": ["Large logs time out"],
                "notes": ["Compliance asked for this"],
            },
            "artifacts": [{
                "artifact_type": "requirements_document",
                "artifact_path": "docs/requirements.md",
                "artifact_content": {"length": 900, "sections": ["scope", "acceptance_criteria"]},
            }],
        }),
    )
    .await;
    let updated = context_updated(&app, &ticket, Phase::Requirements).await;

    let context: Value = sqlx::query_scalar("select context from tickets where id = $1")
        .bind(crate::common::uuid(&ticket))
        .fetch_one(&app.pool)
        .await
        .expect("context read");
    let requirements = &context["requirements_phase"];
    assert_eq!(
        requirements["decisions"],
        json!([
            "Export as RFC 4180 CSV",
            "Stream rows, never buffer the log"
        ]),
        "{context:#}"
    );
    assert_eq!(requirements["risks"], json!(["Large logs time out"]));
    assert_eq!(requirements["notes"], json!(["Compliance asked for this"]));

    let summary = updated.data.summary.as_str();
    assert!(
        summary.starts_with("# Audit log export (priority MEDIUM)\nExport the audit log as CSV.\n"),
        "{summary}"
    );
    assert_eq!(
        occurrences(summary, "Export as RFC 4180 CSV"),
        1,
        "{summary}"
    );
    assert_eq!(occurrences(summary, "Large logs time out"), 1, "{summary}");
    assert_eq!(
        occurrences(summary, "Compliance asked for this"),
        1,
        "{summary}"
    );
    assert!(
        summary.contains("Decisions: Export as RFC 4180 CSV; Stream rows, never buffer the log\n"),
        "{summary}"
    );
    assert_eq!(stored_summary(&app, &ticket).await, summary);

    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_stored_by_an_earlier_version_is_rebuilt_when_its_phase_is_left_again() {
    let app = TestApp::spawn().await;
    let ticket = create_ticket(&app, "Rate limits", "Limit API calls per token.", "LOW").await;
    move_to(&app, &ticket, Phase::Requirements).await;
    move_to(&app, &ticket, Phase::Blocked).await;
    app.transition_with(&ticket, json!({"reason": "unblocked"}))
        .await
        .succeeded();
    context_updated(&app, &ticket, Phase::Blocked).await;

    // As an earlier version left the ticket: a summary without the ticket, and fingerprints
    // of the phases' sources that did not say which way their context was built.
    sqlx::query(
        "update tickets set context_summary = '', context_summary_tokens = 0, \
         context_sources = (select jsonb_object_agg(key, regexp_replace(value #>> '{}', ':v[0-9]+$', '')) \
                            from jsonb_each(context_sources)) \
         where id = $1",
    )
    .bind(crate::common::uuid(&ticket))
    .execute(&app.pool)
    .await
    .expect("ticket rewound");

    // REQUIREMENTS is left again with nothing new in it.
    move_to(&app, &ticket, Phase::Blocked).await;
    let updates = app
        .events
        .wait_for_count_of(2, "context.updated", &ticket, |data: &ContextUpdated| {
            data.phase_id == Phase::Requirements
        })
        .await;
    let updated = &updates[1];
    assert_eq!(
        updated.data.summary,
        "# Rate limits (priority LOW)\nLimit API calls per token."
    );
    assert!(updated.data.summary_tokens > 0, "{updated}");
    assert_eq!(stored_summary(&app, &ticket).await, updated.data.summary);

    app.shutdown().await;
}
