//! Agents through MCP, driven by the SDK's own client (`rmcp`), not by phaseflow's code: over
//! the API's `/mcp` (streamable HTTP) and over `phaseflow mcp` (stdio, the real binary). The
//! tools are listed with their schemas, a ticket goes from REQUIREMENTS to DESIGN by tool calls
//! alone, a refusal is an error result with its code, a wrong or revoked token is refused, a
//! waiting claim gets the task that becomes claimable while it waits, and one request through
//! MCP, AMQP and HTTP publishes the same events.

use std::time::{Duration, Instant};

use reqwest::Method;
use rmcp::model::{CallToolRequestParams, CallToolResult, GetPromptRequestParams};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Map, Value};

use crate::common::http::{passing_artifacts, send, Api, AGENT, OPERATOR, OPERATOR_TOKEN, TOKEN};
use crate::common::{Event, Requests, TestApp};

type Client = RunningService<RoleClient, ()>;

/// The tools every MCP server of phaseflow offers.
const TOOLS: [&str; 13] = [
    "whoami",
    "get_workflow",
    "claim_task",
    "heartbeat",
    "release_task",
    "complete_task",
    "submit_artifact",
    "get_ticket",
    "list_tasks",
    "get_context",
    "check_transition",
    "request_transition",
    "submit_review",
];

/// An MCP client of the API's `/mcp` with `token`.
async fn over_http(api: &Api, token: &str) -> Result<Client, String> {
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", api.base))
        .auth_header(token);
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .map_err(|error| error.to_string())
}

/// An MCP client of `phaseflow mcp` run with the app's settings and `token`.
async fn over_stdio(app: &TestApp, token: &str) -> Result<Client, String> {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_phaseflow"));
    command
        .arg("mcp")
        .env(
            "PHASEFLOW_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
        )
        .env("DATABASE_URL", &app.settings.database.url)
        .env("PHASEFLOW_TOKEN", token)
        .env("PHASEFLOW_API_TOKENS", format!("{AGENT}={TOKEN}"))
        .env("RUST_LOG", "warn");
    let (transport, _stderr) = TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|error| error.to_string())?;
    ().serve(transport).await.map_err(|error| error.to_string())
}

/// Calls a tool; the transport must not fail.
async fn call(client: &Client, tool: &str, arguments: Value) -> CallToolResult {
    let Value::Object(arguments) = arguments else {
        panic!("arguments must be an object")
    };
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments))
        .await
        .unwrap_or_else(|error| panic!("{tool} could not be called: {error}"))
}

/// A tool's answer, which must not be an error.
async fn answer(client: &Client, tool: &str, arguments: Value) -> Value {
    let result = call(client, tool, arguments).await;
    assert_ne!(result.is_error, Some(true), "{tool} refused: {result:?}");
    result
        .structured_content
        .unwrap_or_else(|| panic!("{tool} answered without structuredContent"))
}

/// A tool's refusal: its code and reasons.
async fn refusal(client: &Client, tool: &str, arguments: Value) -> (String, Vec<String>) {
    let result = call(client, tool, arguments).await;
    assert_eq!(result.is_error, Some(true), "{tool} succeeded: {result:?}");
    let content = result
        .structured_content
        .expect("a refusal's structuredContent");
    assert!(content["message"].is_string(), "{content}");
    let reasons = content["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|reason| reason.as_str().expect("a reason").to_owned())
        .collect();
    (
        content["code"].as_str().expect("a code").to_owned(),
        reasons,
    )
}

/// A new ticket (over HTTP) that does not move on by itself.
async fn new_ticket(api: &Api, title: &str) -> String {
    api.create_ticket(
        json!({"title": title, "description": "built by MCP tools", "auto_advance": false}),
    )
    .await
}

/// Claims the ticket's next task and completes it with the artifacts its gate needs.
async fn claim_and_complete(client: &Client, ticket: &str) -> Value {
    let claimed = answer(client, "claim_task", json!({"ticket_id": ticket})).await;
    let task_id = claimed["task_id"]
        .as_str()
        .expect("a claimed task")
        .to_owned();
    let task_type = claimed["task_type"]
        .as_str()
        .expect("a task type")
        .to_owned();
    answer(
        client,
        "heartbeat",
        json!({"task_id": task_id, "claim_id": claimed["claim_id"],
               "progress": {"note": "half way", "percent": 50},
               "usage": {"input_tokens": 100, "output_tokens": 40}}),
    )
    .await;
    let finished = answer(
        client,
        "complete_task",
        json!({"task_id": task_id, "claim_id": claimed["claim_id"], "status": "completed",
               "result": {"summary": format!("{task_type} done")},
               "artifacts": passing_artifacts(&task_type),
               "usage": {"input_tokens": 10, "output_tokens": 5}}),
    )
    .await;
    assert_eq!(finished["status"], "completed", "{finished}");
    claimed
}

#[tokio::test]
async fn the_tools_are_listed_with_object_schemas_and_the_guidance_as_a_prompt() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let client = over_http(&api, TOKEN)
        .await
        .expect("the client initializes");
    let tools = client.list_all_tools().await.expect("tools/list");
    let mut names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
    names.sort_unstable();
    let mut expected = TOOLS.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
    for tool in &tools {
        assert_eq!(tool.input_schema["type"], "object", "{}", tool.name);
        let output = tool.output_schema.as_ref().expect("an output schema");
        assert_eq!(output["type"], "object", "{}", tool.name);
        assert!(
            tool.description
                .as_ref()
                .is_some_and(|text| text.len() > 80),
            "{} has no description a model can act on",
            tool.name
        );
    }
    let properties = |name: &str| -> Vec<String> {
        let tool = tools.iter().find(|tool| tool.name == name).expect(name);
        tool.input_schema["properties"]
            .as_object()
            .map(|properties| properties.keys().cloned().collect())
            .unwrap_or_default()
    };
    for (tool, arguments) in [
        (
            "claim_task",
            "ticket_id task_id task_types lease_seconds wait_seconds",
        ),
        ("heartbeat", "task_id claim_id lease_seconds progress usage"),
        ("release_task", "task_id claim_id reason"),
        (
            "complete_task",
            "task_id claim_id status result artifacts usage",
        ),
        (
            "submit_artifact",
            "ticket_id artifact_type artifact_path artifact_content",
        ),
        (
            "request_transition",
            "ticket_id to_phase reason expected_from_phase",
        ),
        ("submit_review", "ticket_id phase_id verdict reasons"),
        ("check_transition", "ticket_id to_phase"),
        ("get_context", "ticket_id for_phase"),
        (
            "list_tasks",
            "status task_type claimable ticket_id limit cursor",
        ),
    ] {
        let found = properties(tool);
        for argument in arguments.split_whitespace() {
            assert!(
                found.iter().any(|name| name == argument),
                "{tool} lacks {argument}: {found:?}"
            );
        }
    }
    let read_only: Vec<&str> = tools
        .iter()
        .filter(|tool| {
            tool.annotations
                .as_ref()
                .and_then(|hints| hints.read_only_hint)
                == Some(true)
        })
        .map(|tool| tool.name.as_ref())
        .collect();
    assert!(read_only.contains(&"get_ticket") && !read_only.contains(&"claim_task"));

    let prompts = client.list_all_prompts().await.expect("prompts/list");
    let guidance = prompts
        .iter()
        .find(|prompt| prompt.name == "phase_guidance")
        .expect("the phase_guidance prompt");
    let argument = &guidance.arguments.as_ref().expect("arguments")[0];
    assert_eq!(argument.name, "phase_id");
    let mut arguments = Map::new();
    arguments.insert("phase_id".into(), json!("PHASE_DESIGN"));
    let prompt = client
        .get_prompt(GetPromptRequestParams::new("phase_guidance").with_arguments(arguments))
        .await
        .expect("the design phase's guidance");
    let text = serde_json::to_string(&prompt.messages).expect("messages");
    assert!(
        text.contains("PHASE_DESIGN") && text.contains("design_document"),
        "{text}"
    );
    let mut unknown = Map::new();
    unknown.insert("phase_id".into(), json!("PHASE_NOWHERE"));
    assert!(client
        .get_prompt(GetPromptRequestParams::new("phase_guidance").with_arguments(unknown))
        .await
        .is_err());
    client.cancel().await.ok();
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_ticket_moves_from_requirements_to_design_by_tool_calls_alone() {
    let mut app = TestApp::spawn().await;
    let api = Api::start(&mut app).await;
    let client = over_http(&api, TOKEN)
        .await
        .expect("the client initializes");
    let me = answer(&client, "whoami", json!({})).await;
    assert_eq!(me["agent_id"], AGENT);
    let workflow = answer(&client, "get_workflow", json!({})).await;
    assert!(workflow.to_string().contains("PHASE_REQUIREMENTS"));

    let ticket = new_ticket(&api, "Built by tools").await;
    let moved = answer(
        &client,
        "request_transition",
        json!({"ticket_id": ticket, "to_phase": "PHASE_REQUIREMENTS", "reason": "start"}),
    )
    .await;
    assert_eq!(moved["current_phase"], "PHASE_REQUIREMENTS");
    assert_eq!(moved["transitioned_by"], AGENT);

    let first = claim_and_complete(&client, &ticket).await;
    // one call tells the agent what to do: the claim, its phase's guidance and the context
    assert_eq!(first["phase_id"], "PHASE_REQUIREMENTS");
    assert_eq!(first["task"]["task_id"], first["task_id"]);
    assert!(first["guidance"]["prompt"].is_string(), "{first}");
    assert_eq!(first["context"]["ticket_id"], ticket.as_str());
    assert!(first["context"]["summary"]
        .as_str()
        .is_some_and(|summary| summary.contains("Built by tools")));
    claim_and_complete(&client, &ticket).await;

    let check = answer(
        &client,
        "check_transition",
        json!({"ticket_id": ticket, "to_phase": "PHASE_DESIGN"}),
    )
    .await;
    assert_eq!(check["allowed"], true, "{check}");
    let moved = answer(
        &client,
        "request_transition",
        json!({"ticket_id": ticket, "to_phase": "PHASE_DESIGN", "reason": "requirements done",
               "expected_from_phase": "PHASE_REQUIREMENTS"}),
    )
    .await;
    assert_eq!(moved["current_phase"], "PHASE_DESIGN");
    let read = answer(&client, "get_ticket", json!({"ticket_id": ticket})).await;
    assert_eq!(read["phase_id"], "PHASE_DESIGN");
    assert_eq!(read["spent"]["input_tokens"], 220, "{read}");
    let context = answer(
        &client,
        "get_context",
        json!({"ticket_id": ticket, "for_phase": "PHASE_DESIGN"}),
    )
    .await;
    assert!(
        context.to_string().contains("requirements_document"),
        "{context}"
    );
    let open = answer(
        &client,
        "list_tasks",
        json!({"ticket_id": ticket, "claimable": true}),
    )
    .await;
    assert!(
        !open["tasks"].as_array().expect("tasks").is_empty(),
        "{open}"
    );

    // the moves are the agent's, on the events exchange as on every other way in
    let entered: Event = app
        .events
        .wait_for_event(|event| {
            event.is_about("phase.transitioned", &ticket)
                && event.data["current_phase"] == "PHASE_DESIGN"
        })
        .await;
    assert_eq!(entered.data["transitioned_by"], AGENT);
    assert_eq!(entered.actor, AGENT);
    client.cancel().await.ok();
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_refusal_is_an_error_result_with_its_code_and_its_rejection_event() {
    let mut app = TestApp::spawn().await;
    let api = Api::start(&mut app).await;
    let client = over_http(&api, TOKEN)
        .await
        .expect("the client initializes");
    let ticket = new_ticket(&api, "Refused").await;
    let (code, reasons) = refusal(
        &client,
        "request_transition",
        json!({"ticket_id": ticket, "to_phase": "PHASE_DONE", "reason": "skip it all"}),
    )
    .await;
    assert_eq!(code, "invalid_transition");
    assert!(
        reasons.iter().any(|reason| reason.contains("PHASE_DONE")),
        "{reasons:?}"
    );
    app.events
        .wait_for_event(|event| event.is_about("phase.transition.rejected", &ticket))
        .await;

    let (code, reasons) = refusal(
        &client,
        "claim_task",
        json!({"ticket_id": "not-a-uuid", "wait_seconds": 99, "lease_seconds": 1}),
    )
    .await;
    assert_eq!(code, "invalid_request");
    for named in ["ticket_id", "wait_seconds", "lease_seconds"] {
        assert!(
            reasons.iter().any(|reason| reason.starts_with(named)),
            "{named}: {reasons:?}"
        );
    }
    let (code, _) = refusal(
        &client,
        "get_ticket",
        json!({"ticket_id": uuid::Uuid::new_v4()}),
    )
    .await;
    assert_eq!(code, "ticket_not_found");
    let (code, reasons) = refusal(&client, "whoami", json!({"agent_id": "someone-else"})).await;
    assert_eq!(code, "invalid_request");
    assert!(reasons[0].starts_with("agent_id"), "{reasons:?}");
    // nothing claimable is no error: the answer says there is no task
    let none = answer(&client, "claim_task", json!({"ticket_id": ticket})).await;
    assert_eq!(none, json!({"task": null}));
    client.cancel().await.ok();
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_wrong_or_revoked_token_is_refused_over_http_and_stdio() {
    let mut app = TestApp::without_worker().await;
    app.settings.auth.operators = vec![OPERATOR.to_owned()];
    let api = Api::start(&mut app).await;
    assert!(over_http(&api, "not-a-token").await.is_err());
    let anonymous = api
        .anonymous(Method::POST, "/mcp")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .expect("the API answers");
    assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert!(over_stdio(&app, "not-a-token").await.is_err());

    // a registered agent's token works until it is revoked, then at once no more
    let (status, registered) = send(
        api.request_as(OPERATOR_TOKEN, Method::POST, "/api/v1/agents")
            .json(&json!({"agent_id": "mcp-agent", "roles": ["*"]})),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{registered}");
    let token = registered["token"].as_str().expect("the token").to_owned();
    let stdio = over_stdio(&app, &token)
        .await
        .expect("stdio with a live token");
    let http = over_http(&api, &token)
        .await
        .expect("HTTP with a live token");
    assert_eq!(
        answer(&stdio, "whoami", json!({})).await["agent_id"],
        "mcp-agent"
    );
    assert_eq!(
        answer(&http, "whoami", json!({})).await["agent_id"],
        "mcp-agent"
    );
    let (status, _) = send(api.request_as(
        OPERATOR_TOKEN,
        Method::DELETE,
        "/api/v1/agents/mcp-agent/tokens",
    ))
    .await;
    assert!(status.is_success(), "{status}");
    let (code, _) = refusal(&stdio, "whoami", json!({})).await;
    assert_eq!(code, "unauthorized");
    assert!(http
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .is_err());
    stdio.cancel().await.ok();
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_waiting_claim_gets_the_task_that_becomes_claimable_meanwhile() {
    let mut app = TestApp::spawn().await;
    let api = Api::start(&mut app).await;
    let client = over_stdio(&app, TOKEN)
        .await
        .expect("the stdio client initializes");
    let ticket = new_ticket(&api, "Waited for").await;
    let started = Instant::now();
    let waiting = {
        let ticket = ticket.clone();
        async move {
            let answer = answer(
                &client,
                "claim_task",
                json!({"ticket_id": ticket, "wait_seconds": 25}),
            )
            .await;
            (answer, client)
        }
    };
    let mover = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        api.moved(&ticket, "PHASE_REQUIREMENTS").await;
        Instant::now()
    };
    let ((claimed, client), moved_at) = tokio::join!(waiting, mover);
    let waited = started.elapsed();
    assert_eq!(claimed["ticket_id"], ticket.as_str(), "{claimed}");
    assert_eq!(claimed["phase_id"], "PHASE_REQUIREMENTS");
    assert!(
        waited >= Duration::from_millis(1500),
        "claimed before the task existed"
    );
    let after_move = moved_at.elapsed();
    println!("claimed {after_move:?} after the move made the task claimable (waited {waited:?})");
    // woken by the move's events, not by the end of its wait
    assert!(waited < Duration::from_secs(20), "waited {waited:?}");

    // nothing more to claim: the wait ends empty-handed after its seconds
    let started = Instant::now();
    let none = answer(
        &client,
        "claim_task",
        json!({"ticket_id": ticket, "wait_seconds": 2}),
    )
    .await;
    assert_eq!(none, json!({"task": null}));
    assert!(started.elapsed() >= Duration::from_secs(2));
    client.cancel().await.ok();
    api.stop().await;
    app.shutdown().await;
}

/// An event as the comparison reads it: its type, and its data with ids, times and history
/// numbers left out.
fn shape(event: &Value) -> (String, Value) {
    fn strip(value: &Value) -> Value {
        match value {
            // history ids number every ticket's moves in one sequence
            Value::Object(members) => Value::Object(
                members
                    .iter()
                    .filter(|(name, _)| name.as_str() != "history_id")
                    .map(|(name, value)| (name.clone(), strip(value)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(strip).collect()),
            Value::String(text)
                if uuid::Uuid::parse_str(text).is_ok()
                    || chrono::DateTime::parse_from_rfc3339(text).is_ok() =>
            {
                Value::String("…".to_owned())
            }
            other => other.clone(),
        }
    }
    (
        event["type"].as_str().expect("a type").to_owned(),
        strip(&event["data"]),
    )
}

#[tokio::test]
async fn one_request_through_mcp_amqp_and_http_publishes_the_same_events() {
    let mut app = TestApp::spawn().await;
    let api = Api::start(&mut app).await;
    let client = over_http(&api, TOKEN)
        .await
        .expect("the client initializes");
    let tickets = [
        new_ticket(&api, "Same events").await,
        new_ticket(&api, "Same events").await,
        new_ticket(&api, "Same events").await,
    ];
    let body = json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "start"});
    let mut arguments = body.clone();
    arguments["ticket_id"] = json!(tickets[0]);
    answer(&client, "request_transition", arguments).await;
    app.publish(
        AGENT,
        &uuid::Uuid::new_v4().to_string(),
        "phase.transition.requested",
        Some(&tickets[1]),
        body.clone(),
    )
    .await;
    let (status, _) = send(
        api.request(
            Method::POST,
            &format!("/api/v1/tickets/{}/transition", tickets[2]),
        )
        .json(&body),
    )
    .await;
    assert!(status.is_success());
    // entering REQUIREMENTS generates its tasks: wait for the last event of each
    let mut shapes = Vec::new();
    for ticket in &tickets {
        app.events
            .wait_for_event(|event| event.is_about("tasks.generated", ticket))
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let events: Vec<(String, Value)> = app
            .events
            .for_ticket(ticket)
            .iter()
            .filter(|event| event["type"] != "ticket.created")
            .map(shape)
            .collect();
        assert!(events.len() >= 3, "{events:?}");
        shapes.push(events);
    }
    assert_eq!(shapes[0], shapes[1], "MCP and AMQP differ");
    assert_eq!(shapes[0], shapes[2], "MCP and HTTP differ");
    let actors: Vec<String> = tickets
        .iter()
        .map(|ticket| {
            let moved = app
                .events
                .for_ticket(ticket)
                .into_iter()
                .find(|event| event["type"] == "phase.transitioned")
                .expect("the move");
            format!("{}", moved["actor"])
        })
        .collect();
    assert!(actors.iter().all(|actor| actor == &actors[0]), "{actors:?}");
    client.cancel().await.ok();
    api.stop().await;
    app.shutdown().await;
}

/// The median and 90th percentile of durations, in milliseconds.
fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort_unstable();
    let at =
        |share: f64| samples[((samples.len() - 1) as f64 * share) as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.9))
}

/// The latency a tool call adds over the same request over HTTP, measured (not asserted: timing
/// on a shared machine is for the record, docs/performance.md): a read (`get_ticket`, `GET
/// /api/v1/tickets/{id}`) and a write (`heartbeat`, `POST /api/v1/tasks/{id}/heartbeat`), each
/// pair alternated so that both see the same load. Run it alone for figures:
/// `cargo nextest run --test integration mcp::tool_call_latency --no-capture`.
#[tokio::test]
async fn tool_call_latency_next_to_http() {
    const ROUNDS: usize = 200;
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let client = over_http(&api, TOKEN)
        .await
        .expect("the client initializes");
    let ticket = new_ticket(&api, "Measured").await;
    api.moved(&ticket, "PHASE_REQUIREMENTS").await;
    let claimed = answer(
        &client,
        "claim_task",
        json!({"ticket_id": ticket, "lease_seconds": 3600}),
    )
    .await;
    let task = claimed["task_id"].as_str().expect("a task").to_owned();
    let (mut read_http, mut read_mcp, mut write_http, mut write_mcp) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let (status, _) =
            send(api.request(Method::GET, &format!("/api/v1/tickets/{ticket}"))).await;
        read_http.push(started.elapsed());
        assert!(status.is_success());
        let started = Instant::now();
        answer(&client, "get_ticket", json!({"ticket_id": ticket})).await;
        read_mcp.push(started.elapsed());

        let started = Instant::now();
        let (status, _) = send(
            api.request(Method::POST, &format!("/api/v1/tasks/{task}/heartbeat"))
                .json(&json!({"progress": {"percent": 10}})),
        )
        .await;
        write_http.push(started.elapsed());
        assert!(status.is_success());
        let started = Instant::now();
        answer(
            &client,
            "heartbeat",
            json!({"task_id": task, "progress": {"percent": 10}}),
        )
        .await;
        write_mcp.push(started.elapsed());
    }
    for (label, http, mcp) in [
        ("read (get_ticket)", &mut read_http, &mut read_mcp),
        ("write (heartbeat)", &mut write_http, &mut write_mcp),
    ] {
        let (http_median, http_p90) = percentiles(http);
        let (mcp_median, mcp_p90) = percentiles(mcp);
        println!(
            "{label}: HTTP median {http_median:.2} ms, p90 {http_p90:.2} ms; MCP median {mcp_median:.2} ms, p90 {mcp_p90:.2} ms; added median {:.2} ms",
            mcp_median - http_median
        );
    }
    client.cancel().await.ok();
    api.stop().await;
    app.shutdown().await;
}

/// A tool call over HTTP continues the trace of its request's `traceparent` header: the events
/// it causes carry that trace id.
#[tokio::test]
async fn a_tool_call_continues_the_trace_of_its_http_request() {
    const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
    let mut app = TestApp::spawn().await;
    let api = Api::start(&mut app).await;
    let ticket = new_ticket(&api, "Traced tool call").await;
    let (status, answer) = send(
        api.request(Method::POST, "/mcp")
            .header("accept", "application/json, text/event-stream")
            .header("traceparent", format!("00-{TRACE_ID}-b7ad6b7169203331-01"))
            .json(&json!({
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {
                    "name": "request_transition",
                    "arguments": {
                        "ticket_id": ticket,
                        "to_phase": "PHASE_REQUIREMENTS",
                        "reason": "traced",
                    },
                },
            })),
    )
    .await;
    assert!(status.is_success(), "{status}: {answer}");
    let moved = app
        .events
        .wait_for_event(|event| event.is_about("phase.transitioned", &ticket))
        .await;
    let traceparent = moved.raw["traceparent"].as_str().unwrap_or_default();
    assert_eq!(
        traceparent.split('-').nth(1),
        Some(TRACE_ID),
        "the move's event is not in the caller's trace: {}",
        moved.raw
    );
    api.stop().await;
    app.shutdown().await;
}
