//! The limits `openapi.json` states are the limits the server enforces: each test reads a bound
//! from the generated document and checks that the API accepts a value at the bound and refuses
//! one past it, and that what the document forbids (an empty query value, a blank text, a header
//! id with a space) is refused with 422 `invalid_request` naming the field.
//!
//! The API is served in-process without a worker: a write does its whole work in its
//! transaction, and the reads and refusals checked here publish nothing.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::http::{send, Api};
use crate::common::TestApp;

/// The generated document, as the API serves it.
fn document() -> Value {
    phaseflow::documents::openapi::document()
}

/// The schema of the query parameter `name` of `GET path`.
fn query_schema(document: &Value, path: &str, name: &str) -> Value {
    document["paths"][path]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|parameter| parameter["name"] == name && parameter["in"] == "query")
        .unwrap_or_else(|| panic!("{path} documents no query parameter {name}"))["schema"]
        .clone()
}

fn number(schema: &Value, key: &str) -> u64 {
    schema[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {schema}"))
}

/// Asserts a 422 `invalid_request` whose reasons name `name` first.
fn assert_refused(status: StatusCode, body: &Value, name: &str, request: &str) {
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{request}: {body}"
    );
    assert_eq!(
        body["error"]["code"], "invalid_request",
        "{request}: {body}"
    );
    let reasons = body["error"]["reasons"].as_array().expect("reasons");
    assert!(
        reasons
            .iter()
            .any(|reason| reason.as_str().unwrap_or_default().starts_with(name)),
        "{request}: no reason names {name}: {body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_query_value_is_refused_like_any_malformed_one() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let ticket = phaseflow::domain::TicketId::new().to_string();
    let cases = [
        ("/api/v1/tasks", "ticket_id", "not-a-uuid"),
        ("/api/v1/stream", "ticket_id", "not-a-uuid"),
        ("/api/v1/tasks", "task_type", " "),
        ("/api/v1/tasks", "status", "nope"),
        ("/api/v1/tasks", "claimable", "yes"),
        ("/api/v1/tasks", "cursor", "zz"),
        ("/api/v1/tickets", "priority", "URGENT"),
        ("/api/v1/tickets", "phase", "design"),
        ("/api/v1/tickets", "limit", "0"),
        ("/api/v1/board", "q", "  "),
        ("/api/v1/board/columns/PHASE_BACKLOG", "cursor", "01"),
        ("/api/v1/dead-letters", "limit", "-1"),
        (
            &format!("/api/v1/tickets/{ticket}/context"),
            "for_phase",
            "PHASE_BLOCKED",
        ),
    ];
    for (path, name, malformed) in cases {
        let bad = format!("{path}?{name}={malformed}");
        let (bad_status, bad_body) = api.get(&bad).await;
        assert_refused(bad_status, &bad_body, name, &bad);
        let empty = format!("{path}?{name}=");
        let (status, body) = api.get(&empty).await;
        assert_refused(status, &body, name, &empty);
        assert_eq!(status, bad_status, "{empty}");
        assert_eq!(body["error"]["code"], bad_body["error"]["code"], "{empty}");
    }
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_limit_maximum_is_accepted_and_one_more_is_refused() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let document = document();
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().expect("paths") {
        let Some(parameters) = item["get"]["parameters"].as_array() else {
            continue;
        };
        if !parameters
            .iter()
            .any(|parameter| parameter["name"] == "limit")
        {
            continue;
        }
        let path = path.replace("{phase_id}", "PHASE_BACKLOG");
        let schema = query_schema(
            &document,
            &path.replace("PHASE_BACKLOG", "{phase_id}"),
            "limit",
        );
        let (minimum, maximum) = (number(&schema, "minimum"), number(&schema, "maximum"));
        for accepted in [minimum, maximum] {
            let request = format!("{path}?limit={accepted}");
            let (status, body) = api.get(&request).await;
            assert_eq!(status, StatusCode::OK, "{request}: {body}");
        }
        for refused in [minimum - 1, maximum + 1] {
            let request = format!("{path}?limit={refused}");
            let (status, body) = api.get(&request).await;
            assert_refused(status, &body, "limit", &request);
        }
        checked += 1;
    }
    assert_eq!(
        checked, 5,
        "tickets, tasks, board, a board column, dead letters"
    );
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cursors_that_match_the_documented_pattern_are_accepted() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let document = document();
    for (path, lengths) in [
        ("/api/v1/tickets", "{48}"),
        ("/api/v1/tasks", "{16}"),
        ("/api/v1/board/columns/{phase_id}", "{48}"),
    ] {
        let pattern = query_schema(&document, path, "cursor")["pattern"]
            .as_str()
            .expect("a cursor pattern")
            .to_owned();
        assert!(
            pattern.ends_with(&format!("[0-9a-fA-F]{lengths}$")),
            "{pattern}"
        );
        let prefix = &pattern[1..3];
        let digits: usize = lengths[1..3].parse().expect("a count");
        let path = path.replace("{phase_id}", "PHASE_BACKLOG");
        for digit in ["0", "7", "8", "F", "f"] {
            let request = format!("{path}?cursor={prefix}{}", digit.repeat(digits));
            let (status, body) = api.get(&request).await;
            assert_eq!(status, StatusCode::OK, "{request}: {body}");
        }
        for refused in [
            prefix.to_owned(),
            format!("{prefix}{}", "0".repeat(digits + 2)),
            format!(
                "{}{}",
                if prefix == "01" { "02" } else { "01" },
                "0".repeat(digits)
            ),
        ] {
            let request = format!("{path}?cursor={refused}");
            let (status, body) = api.get(&request).await;
            assert_refused(status, &body, "cursor", &request);
        }
    }
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn header_ids_are_taken_exactly_as_the_document_bounds_them() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let document = document();
    for (name, parameter) in [
        ("Idempotency-Key", "IdempotencyKey"),
        ("X-Correlation-Id", "CorrelationId"),
    ] {
        let schema = &document["components"]["parameters"][parameter]["schema"];
        let maximum = number(schema, "maxLength") as usize;
        assert_eq!(number(schema, "minLength"), 1);
        assert_eq!(schema["pattern"], "^[!-~]+$");
        for (index, accepted) in ["k".repeat(maximum), "!~azAZ09-_.:/".to_owned()]
            .iter()
            .enumerate()
        {
            let value = format!("{index}{}", &accepted[1..]);
            let (status, body) = send(
                api.request(Method::POST, "/api/v1/tickets")
                    .header(name, &value)
                    .json(&json!({"title": "bounded"})),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{name}: {value}: {body}");
        }
        for refused in ["k".repeat(maximum + 1), "with space".to_owned()] {
            let (status, body) = send(
                api.request(Method::POST, "/api/v1/tickets")
                    .header(name, &refused)
                    .json(&json!({"title": "refused"})),
            )
            .await;
            assert_refused(status, &body, name, &refused);
        }
    }
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn claim_bodies_are_bounded_as_the_document_says() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let document = document();
    let body = &document["components"]["schemas"]["ClaimTaskBody"]["properties"];
    let lease = &body["lease_seconds"];
    let (minimum, maximum) = (number(lease, "minimum"), number(lease, "maximum"));
    for accepted in [minimum, maximum] {
        let (status, answer) = api
            .post("/api/v1/tasks/claim", json!({"lease_seconds": accepted}))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{accepted}: {answer}");
    }
    for refused in [minimum - 1, maximum + 1] {
        let (status, answer) = api
            .post("/api/v1/tasks/claim", json!({"lease_seconds": refused}))
            .await;
        assert_refused(status, &answer, "lease_seconds", &refused.to_string());
    }
    let types = &body["task_types"];
    let most = number(types, "maxItems") as usize;
    let longest = number(&types["items"], "maxLength") as usize;
    assert_eq!(number(&types["items"], "minLength"), 1);
    let (status, answer) = api
        .post(
            "/api/v1/tasks/claim",
            json!({"task_types": vec!["t".repeat(longest); most]}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    for refused in [
        json!([""]),
        json!([" \t"]),
        json!(["t".repeat(longest + 1)]),
        json!(vec!["t"; most + 1]),
    ] {
        let (status, answer) = api
            .post("/api/v1/tasks/claim", json!({"task_types": refused}))
            .await;
        assert_refused(status, &answer, "task_types", &refused.to_string());
    }
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_documents_conditional_rules_are_the_servers() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let document = document();
    let review = &document["components"]["schemas"]["ReviewGateData"];
    assert_eq!(
        review["if"]["properties"]["verdict"]["const"],
        "changes_requested"
    );
    assert_eq!(review["then"]["required"], json!(["reasons"]));
    assert_eq!(review["then"]["properties"]["reasons"]["minItems"], 1);
    let transition = document["paths"]["/api/v1/tickets/{ticket_id}/transition"]["post"]
        ["description"]
        .as_str()
        .expect("a description");
    assert!(
        transition.contains("`to_phase` is required unless the ticket is in PHASE_BLOCKED"),
        "{transition}"
    );

    let (status, created) = api
        .post("/api/v1/tickets", json!({"title": "conditional"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let ticket = created["id"].as_str().expect("an id");
    for reasons in [json!(null), json!([])] {
        let (status, answer) = api
            .post(
                &format!("/api/v1/tickets/{ticket}/reviews"),
                json!({"verdict": "changes_requested", "reasons": reasons}),
            )
            .await;
        assert_refused(status, &answer, "reasons", &reasons.to_string());
    }
    let (status, answer) = api
        .post(
            &format!("/api/v1/tickets/{ticket}/transition"),
            json!({"reason": "no target"}),
        )
        .await;
    assert_refused(status, &answer, "to_phase", "a transition without to_phase");
    for blank in ["", " ", "\u{3000}\n"] {
        let (status, answer) = api.post("/api/v1/tickets", json!({"title": blank})).await;
        assert_refused(status, &answer, "title", blank);
    }
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_text_or_object_holding_nul_is_refused_as_the_document_says() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let document = document();
    let schemas = &document["components"]["schemas"];
    let holding_nul = json!({"type": "string", "pattern": "\\u0000"});
    assert_eq!(
        schemas["CreateTicketData"]["properties"]["title"]["not"],
        holding_nul
    );
    let artifacts = &schemas["TransitionData"]["properties"]["artifacts"];
    assert_eq!(artifacts["propertyNames"]["not"], holding_nul);
    assert_eq!(
        artifacts["additionalProperties"]["$ref"],
        "#/components/schemas/StorableJson"
    );

    let (status, answer) = api
        .post("/api/v1/tickets", json!({"title": "a\u{0}b"}))
        .await;
    assert_refused(status, &answer, "title", "a title holding U+0000");
    let (status, created) = api
        .post("/api/v1/tickets", json!({"title": "holds none"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let ticket = created["id"].as_str().expect("an id");
    for (content, request) in [
        (json!({"nested": ["x\u{0}"]}), "a string holding U+0000"),
        (json!({"\u{0}": 1}), "a member name holding U+0000"),
    ] {
        let (status, answer) = api
            .post(
                &format!("/api/v1/tickets/{ticket}/artifacts"),
                json!({"artifact_type": "notes", "artifact_content": content}),
            )
            .await;
        assert_refused(status, &answer, "artifact_content", request);
    }
    for path in ["/api/v1/tasks?task_type=a%00", "/api/v1/board?q=a%00"] {
        let (status, body) = api.get(path).await;
        let name = if path.contains("task_type") {
            "task_type"
        } else {
            "q"
        };
        assert_refused(status, &body, name, path);
    }
    api.stop().await;
    app.shutdown().await;
}
