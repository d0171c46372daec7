//! The HTTP API served in-process on a free port for one test's app, with a few agents'
//! tokens, and the client that talks to it.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
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

    /// Polls the ticket's tasks until `phase` has `count` of them.
    pub async fn wait_for_tasks(&self, ticket: &str, phase: &str, count: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (status, tasks) = self.get(&format!("/api/v1/tickets/{ticket}/tasks")).await;
            assert_eq!(status, StatusCode::OK, "{tasks}");
            let of_phase: Vec<Value> = tasks
                .as_array()
                .expect("a list")
                .iter()
                .filter(|task| task["phase_id"] == phase)
                .cloned()
                .collect();
            if of_phase.len() >= count {
                return of_phase;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {count} tasks of {phase} within {WAIT:?}: {tasks}"
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
