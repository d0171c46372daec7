//! W3C trace context from a request to every event it causes: a request's `traceparent` (a
//! CloudEvents attribute, an AMQP header, or an HTTP header) is continued by the span that
//! applies it, and each event carries the context of that span as its `traceparent` attribute and
//! AMQP header: the same trace id, a span of phaseflow's own. A request without one starts a
//! trace its events carry; a lease expiry starts its own; an event keeps its context through the
//! outbox, whoever publishes it.

use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::common::http::{send, Api};
use crate::common::{Requests, TestApp, WAIT};

/// A caller's context: its trace id and its span id.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// An event as it arrived: its body and its AMQP `traceparent` header.
struct Arrived {
    body: Value,
    header: Option<String>,
}

/// Every event of the app's events exchange, with its AMQP headers.
async fn follow_events(app: &TestApp) -> mpsc::UnboundedReceiver<Arrived> {
    let channel = app.amqp.create_channel().await.expect("channel");
    let queue = format!("{}.trace-tap", app.broker_prefix());
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue");
    channel
        .queue_bind(
            queue.as_str().into(),
            app.settings.amqp.events_exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("binding");
    let mut consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consumer");
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _channel = channel;
        while let Some(Ok(delivery)) = consumer.next().await {
            let _ = delivery.ack(BasicAckOptions::default()).await;
            let header = delivery.properties.headers().as_ref().and_then(|headers| {
                match headers.inner().get("traceparent") {
                    Some(AMQPValue::LongString(text)) => Some(text.to_string()),
                    _ => None,
                }
            });
            let body = serde_json::from_slice(&delivery.data).expect("events are JSON");
            if sender.send(Arrived { body, header }).is_err() {
                break;
            }
        }
    });
    receiver
}

/// The events of `ticket` that arrive until one of type `last`.
async fn events_until(
    events: &mut mpsc::UnboundedReceiver<Arrived>,
    ticket: &str,
    last: &str,
) -> Vec<Arrived> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let arrived = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no {last} of {ticket} within {WAIT:?}"))
            .expect("the event stream");
        if arrived.body["subject"] != ticket {
            continue;
        }
        let done = arrived.body["type"] == last;
        seen.push(arrived);
        if done {
            return seen;
        }
    }
}

/// The events from the move on (the ticket's creation came before, in a trace of its own).
fn from_move(events: &[Arrived]) -> &[Arrived] {
    let start = events
        .iter()
        .position(|event| event.body["type"] == "phase.transitioned")
        .expect("the move's event");
    &events[start..]
}

/// The trace id and span id of a `traceparent`, which must be well formed.
fn parts(traceparent: &str) -> (String, String) {
    let fields: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(fields.len(), 4, "{traceparent}");
    assert_eq!(fields[0], "00", "{traceparent}");
    assert_eq!(fields[1].len(), 32, "{traceparent}");
    assert_eq!(fields[2].len(), 16, "{traceparent}");
    assert_ne!(fields[1], "0".repeat(32), "{traceparent}");
    (fields[1].to_owned(), fields[2].to_owned())
}

/// Every event's `traceparent` (attribute and header alike): one trace id for all, returned.
fn one_trace(events: &[Arrived]) -> String {
    let mut traces = Vec::new();
    for event in events {
        let attribute = event.body["traceparent"]
            .as_str()
            .unwrap_or_else(|| panic!("no traceparent on {}", event.body));
        assert_eq!(event.header.as_deref(), Some(attribute), "{}", event.body);
        traces.push(parts(attribute).0);
    }
    traces.dedup();
    assert_eq!(
        traces.len(),
        1,
        "events of one request in several traces: {traces:?}"
    );
    traces.remove(0)
}

/// A move to REQUIREMENTS as a CloudEvent body with the given extra attributes.
fn move_request(ticket: &str, attributes: Value) -> Vec<u8> {
    let mut request = json!({
        "specversion": "1.0",
        "id": uuid::Uuid::new_v4().to_string(),
        "source": "agent/trace-test",
        "type": "phase.transition.requested",
        "subject": ticket,
        "actor": "tracer",
        "data": {"to_phase": "PHASE_REQUIREMENTS", "reason": "traced"},
    });
    for (name, value) in attributes.as_object().expect("attributes") {
        request[name] = value.clone();
    }
    serde_json::to_vec(&request).expect("JSON")
}

#[tokio::test]
async fn a_requests_trace_runs_through_every_event_it_causes() {
    let app = TestApp::spawn().await;
    let mut events = follow_events(&app).await;

    // as CloudEvents attributes
    let ticket = app.create_ticket("Traced by attribute").await;
    app.send_raw(
        "phase.transition.requested",
        &move_request(
            &ticket,
            json!({"traceparent": TRACEPARENT, "tracestate": "vendor=1"}),
        ),
    )
    .await;
    let caused = events_until(&mut events, &ticket, "tasks.generated").await;
    let types: Vec<&str> = caused
        .iter()
        .filter_map(|e| e.body["type"].as_str())
        .collect();
    assert!(
        types.contains(&"phase.transitioned") && types.contains(&"phase.entered"),
        "{types:?}"
    );
    assert_eq!(one_trace(from_move(&caused)), TRACE_ID);
    for event in from_move(&caused) {
        // a span of phaseflow's own, not the caller's
        assert_ne!(
            parts(event.body["traceparent"].as_str().unwrap()).1,
            "00f067aa0ba902b7"
        );
        assert_eq!(event.body["tracestate"], "vendor=1", "{}", event.body);
    }

    // as AMQP headers
    let ticket = app.create_ticket("Traced by header").await;
    let mut headers = FieldTable::default();
    headers.insert(
        "traceparent".into(),
        AMQPValue::LongString(TRACEPARENT.into()),
    );
    app.client
        .publish_raw(
            "phase.transition.requested",
            &move_request(&ticket, json!({})),
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_headers(headers),
        )
        .await
        .expect("published");
    let caused = events_until(&mut events, &ticket, "tasks.generated").await;
    assert_eq!(one_trace(from_move(&caused)), TRACE_ID);

    // none: a trace of its own, carried by every event of the request
    let ticket = app.create_ticket("Untraced").await;
    app.send_raw(
        "phase.transition.requested",
        &move_request(&ticket, json!({})),
    )
    .await;
    let caused = events_until(&mut events, &ticket, "tasks.generated").await;
    let own = one_trace(from_move(&caused));
    assert_ne!(own, TRACE_ID);

    // a malformed one is ignored, as W3C asks: a trace of its own, and the request is applied
    let ticket = app.create_ticket("Badly traced").await;
    app.send_raw(
        "phase.transition.requested",
        &move_request(&ticket, json!({"traceparent": "00-not-a-trace-01"})),
    )
    .await;
    let caused = events_until(&mut events, &ticket, "tasks.generated").await;
    assert_ne!(one_trace(from_move(&caused)), own);
    app.shutdown().await;
}

#[tokio::test]
async fn an_http_requests_trace_reaches_its_events_published_by_a_worker_started_later() {
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let mut events = follow_events(&app).await;
    let ticket = api
        .create_ticket(json!({"title": "Traced over HTTP", "description": "d"}))
        .await;
    let (status, _) = send(
        api.request(
            Method::POST,
            &format!("/api/v1/tickets/{ticket}/transition"),
        )
        .header("traceparent", TRACEPARENT)
        .json(&json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "traced"})),
    )
    .await;
    assert!(status.is_success());
    // the events wait in the outbox until a worker's relay publishes them
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.start_worker();
    let caused = events_until(&mut events, &ticket, "tasks.generated").await;
    let moved = from_move(&caused);
    assert!(moved.len() >= 3, "{}", moved.len());
    assert_eq!(one_trace(moved), TRACE_ID);
    api.stop().await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_lease_expiry_starts_a_trace_of_its_own() {
    let mut app = TestApp::without_worker().await;
    app.settings.tasks.default_lease_seconds = 10;
    app.start_worker();
    let mut events = follow_events(&app).await;
    let ticket = app.create_ticket("Expiring").await;
    app.send_raw(
        "phase.transition.requested",
        &move_request(&ticket, json!({"traceparent": TRACEPARENT})),
    )
    .await;
    events_until(&mut events, &ticket, "tasks.generated").await;
    let claimed = app
        .request::<Value>(
            "task.claim.requested",
            Some(&ticket),
            json!({"lease_seconds": 10}),
        )
        .await
        .succeeded();
    assert_eq!(claimed.data["ticket_id"], ticket.as_str());
    // the lease runs out: the sweep publishes task.lease.expired in a trace of its own
    sqlx::query("update tasks set lease_expires_at = now() - interval '1 second' where ticket_id = $1::uuid and status = 'claimed'")
        .bind(&ticket)
        .execute(&app.pool)
        .await
        .expect("the lease ends");
    let expired = events_until(&mut events, &ticket, "task.lease.expired").await;
    let expiry = expired.last().expect("the expiry");
    let traceparent = expiry.body["traceparent"].as_str().expect("traceparent");
    assert_eq!(expiry.header.as_deref(), Some(traceparent));
    assert_ne!(parts(traceparent).0, TRACE_ID);
    app.shutdown().await;
}

/// The spans an OTLP/HTTP receiver got: (trace id, span name, attribute names and values, and
/// a `link` entry with the trace id of each link).
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String, Vec<(String, String)>)>>>;

/// An OTLP/HTTP receiver on a free port (protobuf at `/v1/traces`): its base URL and what it got.
async fn otlp_receiver() -> (String, Received) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    let received = Received::default();
    let spans = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let spans = spans.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let mut spans = spans.lock().expect("spans");
                for resource in request.resource_spans {
                    for scope in resource.scope_spans {
                        for span in scope.spans {
                            let trace_id: String = span
                                .trace_id
                                .iter()
                                .map(|byte| format!("{byte:02x}"))
                                .collect();
                            let links = span.links.iter().map(|link| {
                                let trace: String = link
                                    .trace_id
                                    .iter()
                                    .map(|byte| format!("{byte:02x}"))
                                    .collect();
                                ("link".to_owned(), trace)
                            });
                            let attributes = span
                                .attributes
                                .iter()
                                .map(|attribute| {
                                    let value = attribute
                                        .value
                                        .as_ref()
                                        .and_then(|value| value.value.as_ref())
                                        .map(|value| format!("{value:?}"))
                                        .unwrap_or_default();
                                    (attribute.key.clone(), value)
                                })
                                .chain(links)
                                .collect();
                            spans.push((trace_id, span.name, attributes));
                        }
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, received)
}

#[tokio::test]
async fn spans_go_to_an_otlp_collector_under_the_callers_trace() {
    let app = TestApp::without_worker().await;
    let (collector, received) = otlp_receiver().await;
    let amqp = &app.settings.amqp;
    let log = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("trace-{}.log", app.database));
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_phaseflow"));
    command
        .arg("worker")
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("PHASEFLOW_") || key.starts_with("OTEL_") || key == "DATABASE_URL" {
            command.env_remove(key);
        }
    }
    let mut worker = command
        .env(
            "PHASEFLOW_CONFIG_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config"),
        )
        .env("DATABASE_URL", &app.settings.database.url)
        .env("AMQP_URL", crate::common::AMQP_URL)
        .env("PHASEFLOW_AMQP__REQUESTS_EXCHANGE", &amqp.requests_exchange)
        .env("PHASEFLOW_AMQP__EVENTS_EXCHANGE", &amqp.events_exchange)
        .env("PHASEFLOW_AMQP__REQUESTS_QUEUE", &amqp.requests_queue)
        .env(
            "PHASEFLOW_AMQP__DEAD_LETTER_EXCHANGE",
            &amqp.dead_letter_exchange,
        )
        .env("PHASEFLOW_AMQP__DEAD_LETTER_QUEUE", &amqp.dead_letter_queue)
        .env(
            "PHASEFLOW_AMQP__DELIVERY_LIMIT",
            amqp.delivery_limit.to_string(),
        )
        .env("PHASEFLOW_OPS_ADDR", "127.0.0.1:0")
        .env("PHASEFLOW_TELEMETRY__OTLP_ENDPOINT", &collector)
        // the batch of spans goes out every 200 ms instead of every 5 s
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&log).expect("a log file"))
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("phaseflow worker starts");
    let mut events = follow_events(&app).await;
    let ticket = app.create_ticket("Exported").await;
    app.send_raw(
        "phase.transition.requested",
        &move_request(&ticket, json!({"traceparent": TRACEPARENT})),
    )
    .await;
    events_until(&mut events, &ticket, "tasks.generated").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let message = loop {
        let found = received
            .lock()
            .expect("spans")
            .iter()
            .find(|(trace_id, name, _)| trace_id == TRACE_ID && name == "process requests")
            .cloned();
        if let Some(found) = found {
            break found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no span of trace {TRACE_ID} reached the collector; the worker logged: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let attribute = |name: &str| {
        message
            .2
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_else(|| panic!("no {name} among {:?}", message.2))
    };
    assert!(attribute("messaging.system").contains("rabbitmq"));
    assert!(attribute("messaging.operation.type").contains("process"));
    assert!(attribute("cloudevents.event_type").contains("phase.transition.requested"));
    assert!(attribute("trace_id").contains(TRACE_ID));
    assert!(attribute("phaseflow.outcome").contains("phase.transitioned"));
    // the relay's publish spans are linked to the context their events were created in
    let publish = format!("publish {}", amqp.events_exchange);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let linked = received
            .lock()
            .expect("spans")
            .iter()
            .any(|(_, name, attributes)| {
                name == &publish
                    && attributes
                        .iter()
                        .any(|(key, value)| key == "link" && value == TRACE_ID)
            });
        if linked {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no `{publish}` span linked to trace {TRACE_ID}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.kill().await.ok();
    app.shutdown().await;
}
