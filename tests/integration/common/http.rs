//! The HTTP API served in-process on a free port for one test's app, with a few agents'
//! tokens, and the client that talks to it: one helper per call the tests repeat (read,
//! create, move, complete, finish a phase), each asserting the status it expects and reading
//! the body as the API's own view type (`phaseflow::api::views`). Tests that check a body's
//! exact members or a malformed answer read it as JSON ([`Api::get`], [`Api::post`]).

use std::collections::BTreeMap;
use std::time::Duration;

use phaseflow::api::views::{TaskView, TicketView};
use phaseflow::domain::TaskStatus;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{TestApp, WAIT};

pub const AGENT: &str = "agent-http";
pub const TOKEN: &str = "http-token-7f3a9c";
pub const OTHER_AGENT: &str = "agent-other";
pub const OTHER_TOKEN: &str = "other-token-51b2";
/// An agent the tests that need one name in `auth.operators` (before [`Api::start`]).
pub const OPERATOR: &str = "operator-olga";
pub const OPERATOR_TOKEN: &str = "operator-token-93d1";

/// The API served in-process on a free port, for one test's app.
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    stop: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Api {
    /// Configures the test tokens and serves the API with the app's settings.
    pub async fn start(app: &mut TestApp) -> Api {
        app.settings.api.tokens = BTreeMap::from([
            (AGENT.to_owned(), TOKEN.to_owned()),
            (OTHER_AGENT.to_owned(), OTHER_TOKEN.to_owned()),
            (OPERATOR.to_owned(), OPERATOR_TOKEN.to_owned()),
        ]);
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

    /// A request with the test agent's token.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
    }

    /// A request with another token.
    pub fn request_as(&self, token: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
    }

    /// A request without any `Authorization`.
    pub fn anonymous(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        send(self.request(Method::POST, path).json(&body)).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        send(self.request(Method::GET, path)).await
    }

    /// GET that must answer 200.
    pub async fn read(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// GET that must answer 200, its body read as `T`.
    pub async fn read_as<T: DeserializeOwned>(&self, path: &str) -> T {
        typed(&self.read(path).await)
    }

    /// GET /api/v1/tickets/{ticket}.
    pub async fn ticket(&self, ticket: &str) -> TicketView {
        self.read_as(&format!("/api/v1/tickets/{ticket}")).await
    }

    /// GET /api/v1/tickets/{ticket}/tasks: every task of the ticket, oldest first.
    pub async fn tasks(&self, ticket: &str) -> Vec<TaskView> {
        self.read_as(&format!("/api/v1/tickets/{ticket}/tasks"))
            .await
    }

    /// Creates a ticket (POST /api/v1/tickets, which must answer 201) and returns its id.
    pub async fn create_ticket(&self, body: Value) -> String {
        let (status, ticket) = self.post("/api/v1/tickets", body).await;
        assert_eq!(status, StatusCode::CREATED, "{ticket}");
        typed::<TicketView>(&ticket).id.to_string()
    }

    /// Asks to move a ticket; the answer as it came.
    pub async fn transition(&self, ticket: &str, to_phase: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/api/v1/tickets/{ticket}/transition"),
            json!({"to_phase": to_phase, "reason": "moved by a test"}),
        )
        .await
    }

    /// Moves a ticket, which must succeed.
    pub async fn moved(&self, ticket: &str, to_phase: &str) {
        let (status, body) = self.transition(ticket, to_phase).await;
        assert_eq!(status, StatusCode::OK, "to {to_phase}: {body}");
    }

    /// The dry run of a transition (GET …/transitions/{to_phase}).
    pub async fn dry_run(&self, ticket: &str, to_phase: &str) -> Value {
        self.read(&format!("/api/v1/tickets/{ticket}/transitions/{to_phase}"))
            .await
    }

    /// The ticket's tasks of `phase` that are not completed, oldest first.
    pub async fn open_tasks(&self, ticket: &str, phase: &str) -> Vec<TaskView> {
        self.tasks(ticket)
            .await
            .into_iter()
            .filter(|task| task.phase_id.as_str() == phase && task.status != TaskStatus::Completed)
            .collect()
    }

    /// Completes one task (as listed) with `result`, which must answer 200.
    pub async fn complete(&self, task: &TaskView, result: Value) {
        let id = task.id;
        let (status, body) = self
            .post(
                &format!("/api/v1/tasks/{id}/complete"),
                json!({"result": result}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Completes every open task of the ticket's `phase` with the artifacts that make its gate
    /// pass ([`passing_artifacts`]), and a decision naming the phase.
    pub async fn finish_phase(&self, ticket: &str, phase: &str) {
        for task in self.open_tasks(ticket, phase).await {
            let task_type = &task.task_type;
            self.complete(
                &task,
                json!({
                    "summary": format!("{task_type} done"),
                    "context": {"decisions": [format!("decided in {phase} by {task_type}")]},
                    "artifacts": passing_artifacts(task_type),
                }),
            )
            .await;
        }
    }

    /// Polls the ticket's tasks until `phase` has `count` of them.
    pub async fn wait_for_tasks(&self, ticket: &str, phase: &str, count: usize) -> Vec<TaskView> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let tasks = self.tasks(ticket).await;
            let of_phase: Vec<TaskView> = tasks
                .iter()
                .filter(|task| task.phase_id.as_str() == phase)
                .cloned()
                .collect();
            if of_phase.len() >= count {
                return of_phase;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {count} tasks of {phase} within {WAIT:?}: {tasks:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the server gracefully; it must end cleanly.
    pub async fn stop(self) {
        self.stop.cancel();
        let result = tokio::time::timeout(Duration::from_secs(15), self.handle)
            .await
            .expect("the API stops in time");
        result
            .expect("the API task did not panic")
            .expect("the API ends cleanly");
    }
}

pub async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("the API answers");
    let status = response.status();
    let text = response.text().await.expect("a body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// A body read as `T`, or a failed test showing it.
pub fn typed<T: DeserializeOwned>(body: &Value) -> T {
    serde_json::from_value(body.clone()).unwrap_or_else(|error| {
        panic!(
            "the body does not read as {}: {error}\n{body:#}",
            std::any::type_name::<T>()
        )
    })
}

/// Asserts that a JSON object has exactly the members `names` (separated by spaces) lists.
pub fn assert_members(body: &Value, names: &str) {
    let found: std::collections::BTreeSet<&str> = body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {body}"))
        .keys()
        .map(String::as_str)
        .collect();
    let expected: std::collections::BTreeSet<&str> = names.split_whitespace().collect();
    assert_eq!(found, expected, "the members of {body:#}");
}

/// The artifacts that make each phase's gate pass, by the task that submits them.
pub fn passing_artifacts(task_type: &str) -> Value {
    match task_type {
        "create_requirements_doc" => json!([{
            "artifact_type": "requirements_document",
            "artifact_content": {"length": 900, "sections": ["scope", "acceptance_criteria"]}
        }]),
        "create_design_doc" => json!([{
            "artifact_type": "design_document",
            "artifact_content": {"sections": ["architecture"]}
        }]),
        "implement_feature" => {
            json!([{"artifact_type": "code_changes", "artifact_content": {"has_tests": true}}])
        }
        "write_unit_tests" => {
            json!([{"artifact_type": "test_coverage", "artifact_content": {"percentage": 91}}])
        }
        "run_tests" => {
            json!([{"artifact_type": "test_results", "artifact_content": {"all_passed": true}}])
        }
        "verify_deployment" => {
            json!([{"artifact_type": "deployment_record", "artifact_content": {"status": "succeeded"}}])
        }
        _ => json!([]),
    }
}

/// An error body's code and reasons.
pub fn error_of(body: &Value) -> (String, Vec<String>) {
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.code in {body}"))
        .to_owned();
    (code, strings(&body["error"]["reasons"]))
}

/// A list of strings.
pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|item| item.as_str().expect("a string").to_owned())
        .collect()
}

/// The `member` of every item of a list, as strings.
pub fn members(list: &Value, member: &str) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|item| item[member].as_str().expect("a string member").to_owned())
        .collect()
}

/// Asserts that an answer is a 422 `invalid_request` with a reason naming `parameter`.
pub fn assert_invalid(status: StatusCode, body: &Value, parameter: &str) {
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (code, reasons) = error_of(body);
    assert_eq!(code, "invalid_request", "{body}");
    assert!(
        reasons
            .iter()
            .any(|reason| reason.starts_with(&format!("{parameter}: "))),
        "no reason names {parameter}: {body}"
    );
}
