//! A ticket's context, driven by messages: the summary opens with the ticket itself from the
//! first phase it leaves (BACKLOG, which has nothing else to show), stays within its token budget
//! and is what the HTTP API shows; a decision several tasks of a phase report alike is kept once,
//! in the phase's context and in the summary; a summary stored the way earlier versions built it
//! is rebuilt, not kept, when its phase is left again with nothing new.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::{TestApp, WAIT};
use serde_json::{json, Value};
use sqlx::Row;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const CREATE: &str = "ticket.create.requested";
const TRANSITION: &str = "phase.transition.requested";
const COMPLETE_TASK: &str = "task.complete.requested";

const AGENT: &str = "agent-context";
const TOKEN: &str = "context-token-4e1d";

// ---------------------------------------------------------------------------------------------
// helpers

/// Creates a ticket over messages and returns its id.
async fn create_ticket(app: &TestApp, title: &str, description: &str, priority: &str) -> String {
    let request = app
        .send(
            CREATE,
            None,
            json!({"title": title, "description": description, "priority": priority}),
        )
        .await;
    let created = app.outcome_of(&request).await;
    assert_eq!(created["type"], "ticket.created", "{created}");
    created["data"]["ticket_id"]
        .as_str()
        .expect("ticket id")
        .to_owned()
}

/// Asks for the ticket to move to `phase` and waits for it to have moved.
async fn move_to(app: &TestApp, ticket: &str, phase: &str) {
    transition(
        app,
        ticket,
        json!({"to_phase": phase, "reason": "next step"}),
    )
    .await;
}

/// Sends a transition request and waits for the ticket to have moved.
async fn transition(app: &TestApp, ticket: &str, data: Value) {
    let request = app.send(TRANSITION, Some(ticket), data).await;
    let moved = app.outcome_of(&request).await;
    assert_eq!(moved["type"], "phase.transitioned", "{moved}");
}

/// The `context.updated` event that aggregated `phase` of the ticket.
async fn context_updated(app: &TestApp, ticket: &str, phase: &str) -> Value {
    app.events
        .wait_for(|event| {
            event["subject"] == ticket
                && event["type"] == "context.updated"
                && event["data"]["phase_id"] == phase
        })
        .await
}

/// Waits for `count` tasks of `phase`, and returns (id, task_type) in the order they were made.
async fn wait_for_tasks(
    app: &TestApp,
    ticket: &str,
    phase: &str,
    count: usize,
) -> Vec<(String, String)> {
    let ticket_id: Uuid = ticket.parse().expect("a ticket id");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let rows = sqlx::query(
            "select id, task_type from tasks where ticket_id = $1 and phase_id = $2::phase order by seq",
        )
        .bind(ticket_id)
        .bind(phase)
        .fetch_all(&app.pool)
        .await
        .expect("tasks read");
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
        assert!(
            tokio::time::Instant::now() < deadline,
            "{phase} never had {count} tasks; events: {:#?}",
            app.events.for_ticket(ticket)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Completes a task as an agent would, reporting `result`.
async fn complete(app: &TestApp, ticket: &str, task_id: &str, result: Value) {
    let request = app
        .send(
            COMPLETE_TASK,
            Some(ticket),
            json!({"task_id": task_id, "status": "completed", "result": result}),
        )
        .await;
    let outcome = app.outcome_of(&request).await;
    assert_eq!(outcome["type"], "task.completed", "{outcome}");
}

/// How often `needle` occurs in `text`.
fn occurrences(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

/// The HTTP API, served in-process with the app's settings and one agent token.
struct Api {
    base: String,
    http: reqwest::Client,
    stop: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Api {
    async fn start(app: &mut TestApp) -> Api {
        app.settings.api.tokens = BTreeMap::from([(AGENT.to_owned(), TOKEN.to_owned())]);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let base = format!("http://{}", listener.local_addr().expect("bound address"));
        let stop = CancellationToken::new();
        let handle = tokio::spawn(phaseflow::api::serve(
            app.settings.clone(),
            listener,
            stop.clone(),
        ));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        Api {
            base,
            http,
            stop,
            handle,
        }
    }

    /// The body of a successful GET.
    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("the API answers");
        assert!(response.status().is_success(), "GET {path}: {response:?}");
        response.json().await.expect("a JSON body")
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.handle)
            .await
            .expect("the API stops in time")
            .expect("the API task did not panic")
            .expect("the API ends cleanly");
    }
}

// ---------------------------------------------------------------------------------------------
// tests

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

    move_to(&app, &ticket, "PHASE_REQUIREMENTS").await;
    let updated = context_updated(&app, &ticket, "PHASE_BACKLOG").await;

    let summary = updated["data"]["summary"].as_str().expect("a summary");
    assert_eq!(
        summary,
        "# Single sign-on for the admin console (priority HIGH)\n\
         Admins log in with the company IdP instead of a password."
    );
    let tokens = updated["data"]["summary_tokens"]
        .as_u64()
        .expect("a token count");
    assert!(tokens > 0, "{updated}");
    assert!(
        tokens <= app.settings.context.max_tokens as u64,
        "{tokens} tokens: {updated}"
    );

    let read = api.get(&format!("/api/v1/tickets/{ticket}")).await;
    assert_eq!(read["context_summary"], summary, "{read}");
    let context = api.get(&format!("/api/v1/tickets/{ticket}/context")).await;
    assert_eq!(context["summary"], summary, "{context}");

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
    let ticket_id: Uuid = ticket.parse().expect("a ticket id");
    move_to(&app, &ticket, "PHASE_REQUIREMENTS").await;
    let tasks = wait_for_tasks(&app, &ticket, "PHASE_REQUIREMENTS", 2).await;
    assert_eq!(tasks[0].1, "analyze_requirements");
    assert_eq!(tasks[1].1, "create_requirements_doc");

    complete(
        &app,
        &ticket,
        &tasks[0].0,
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
        &tasks[1].0,
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
    let updated = context_updated(&app, &ticket, "PHASE_REQUIREMENTS").await;

    let context: Value = sqlx::query_scalar("select context from tickets where id = $1")
        .bind(ticket_id)
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

    let summary = updated["data"]["summary"].as_str().expect("a summary");
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
    let stored: String = sqlx::query_scalar("select context_summary from tickets where id = $1")
        .bind(ticket_id)
        .fetch_one(&app.pool)
        .await
        .expect("summary read");
    assert_eq!(stored, summary);

    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_stored_by_an_earlier_version_is_rebuilt_when_its_phase_is_left_again() {
    let app = TestApp::spawn().await;
    let ticket = create_ticket(&app, "Rate limits", "Limit API calls per token.", "LOW").await;
    let ticket_id: Uuid = ticket.parse().expect("a ticket id");
    move_to(&app, &ticket, "PHASE_REQUIREMENTS").await;
    move_to(&app, &ticket, "PHASE_BLOCKED").await;
    transition(&app, &ticket, json!({"reason": "unblocked"})).await;
    context_updated(&app, &ticket, "PHASE_BLOCKED").await;

    // As an earlier version left the ticket: a summary without the ticket, and fingerprints
    // of the phases' sources that did not say which way their context was built.
    sqlx::query(
        "update tickets set context_summary = '', context_summary_tokens = 0, \
         context_sources = (select jsonb_object_agg(key, regexp_replace(value #>> '{}', ':v[0-9]+$', '')) \
                            from jsonb_each(context_sources)) \
         where id = $1",
    )
    .bind(ticket_id)
    .execute(&app.pool)
    .await
    .expect("ticket rewound");

    // REQUIREMENTS is left again with nothing new in it.
    move_to(&app, &ticket, "PHASE_BLOCKED").await;
    let updates = app
        .events
        .wait_for_count(2, |event| {
            event["subject"] == ticket
                && event["type"] == "context.updated"
                && event["data"]["phase_id"] == "PHASE_REQUIREMENTS"
        })
        .await;
    let summary = updates[1]["data"]["summary"].as_str().expect("a summary");
    assert_eq!(
        summary,
        "# Rate limits (priority LOW)\nLimit API calls per token."
    );
    assert!(updates[1]["data"]["summary_tokens"].as_u64() > Some(0));
    let stored: String = sqlx::query_scalar("select context_summary from tickets where id = $1")
        .bind(ticket_id)
        .fetch_one(&app.pool)
        .await
        .expect("summary read");
    assert_eq!(stored, summary);

    app.shutdown().await;
}
