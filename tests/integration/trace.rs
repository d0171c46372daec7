//! W3C trace context from a request to every event it causes: a request's `traceparent` (a
//! CloudEvents attribute, an AMQP header, or an HTTP header) is continued by the span that
//! applies it, and each event carries the context of that span as its `traceparent` attribute and
//! AMQP header: the same trace id, a span of phaseflow's own. A request without one starts a
//! trace its events carry; a lease expiry starts its own; an event keeps its context through the
//! outbox, whoever publishes it: a worker started later, or the relay of another replica when the
//! worker that wrote it was killed before publishing it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::common::http::{send, Api};
use crate::common::process::WorkerProcess;
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
    let worker = WorkerProcess::spawn_with(
        &app,
        "otlp",
        &[
            ("PHASEFLOW_TELEMETRY__OTLP_ENDPOINT", &collector),
            // the batch of spans goes out every 200 ms instead of every 5 s
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    );
    let mut events = follow_events(&app).await;
    let ticket = app.create_ticket("Exported").await;
    app.send_raw(
        "phase.transition.requested",
        &move_request(
            &ticket,
            json!({"traceparent": TRACEPARENT, "time": chrono::Utc::now().to_rfc3339()}),
        ),
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
            "no span of trace {TRACE_ID} reached the collector\n{}",
            worker.log_tail()
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
    assert!(attribute("phaseflow.attempt").contains('1'));
    // the request's CloudEvents `time` gives the wait in the queue
    attribute("phaseflow.queue_wait_ms");
    // the transaction that applied it, in its trace
    let deadline = tokio::time::Instant::now() + WAIT;
    let transaction = loop {
        let found = received
            .lock()
            .expect("spans")
            .iter()
            .find(|(trace_id, name, _)| trace_id == TRACE_ID && name == "transaction")
            .cloned();
        if let Some(found) = found {
            break found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no transaction span in trace {TRACE_ID}\n{}",
            worker.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let of_transaction = |name: &str| {
        transaction
            .2
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_else(|| panic!("no {name} among {:?}", transaction.2))
    };
    assert!(of_transaction("db.system.name").contains("postgresql"));
    assert!(of_transaction("phaseflow.transaction.outcome").contains("committed"));
    // the relay's publish spans are linked to the context their events were created in
    let publish = format!("publish {}", app.settings.amqp.events_exchange);
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
            "no `{publish}` span linked to trace {TRACE_ID}\n{}",
            worker.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(worker);
    app.shutdown().await;
}

/// A caller's trace context: the trace id, and the `traceparent` and `tracestate` it sends.
struct Caller {
    trace_id: String,
    traceparent: String,
    tracestate: String,
}

impl Caller {
    /// A new trace, with a span id of the caller's and the given `tracestate`.
    fn new(tracestate: String) -> Caller {
        let trace_id = uuid::Uuid::new_v4().simple().to_string();
        let span_id = &uuid::Uuid::new_v4().simple().to_string()[..16];
        Caller {
            traceparent: format!("00-{trace_id}-{span_id}-01"),
            trace_id,
            tracestate,
        }
    }
}

/// A ticket of the kill test: the caller that created it, and the request that moves it.
struct Traced {
    ticket: String,
    creator: Caller,
    move_id: String,
    mover: Caller,
}

/// The moves a worker's `/metrics` counts as applied (`phaseflow_messages_total`).
fn moves_applied(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| {
            line.starts_with("phaseflow_messages_total{")
                && line.contains("type=\"phase.transition.requested\"")
                && line.contains("outcome=\"applied\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// How many outbox rows are of `event_type`.
async fn in_outbox(app: &TestApp, event_type: &str) -> i64 {
    sqlx::query_scalar("select count(*) from outbox where event_type = $1")
        .bind(event_type)
        .fetch_one(&app.pool)
        .await
        .expect("an outbox count")
}

/// Two worker processes share a stream of moves, each move in a trace of its own, and one of
/// them is killed with SIGKILL while the stream runs, with moves it committed still in the
/// outbox. The other replica's relay publishes them: every event arrives once, with the
/// `traceparent` (attribute and AMQP header) and `tracestate` of the request that caused it,
/// though that relay's process never saw the request.
///
/// Where the kill lands is not left to timing. phaseflow has no setting that slows a relay (a
/// relay is woken by every commit's NOTIFY, whatever its poll interval, and `outbox.batch_size`
/// is at least 1), so the test holds every relay back through the order the relay keeps: a
/// ticket's event is published only once the earlier events of its ticket are. Each ticket is
/// created over HTTP before any worker runs, so the events of its creation (`ticket.created`
/// first) wait in the outbox, and the test locks those rows (`for update`; a relay's claim
/// skips locked rows). No relay can then publish any event of the moves, so every move the
/// killed worker applied (its `/metrics` says how many, at least five) is committed and
/// unpublished when it dies. Once the stream is applied the test rolls its lock back, and the
/// surviving worker's relay is the only one left to publish: rows the API wrote, rows the
/// killed worker wrote, and its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_keep_their_traceparent_across_a_worker_killed_between_commit_and_publish() {
    const TICKETS: usize = 40;
    /// The moves the killed worker applies (at least) before it is killed.
    const APPLIED_BEFORE_THE_KILL: u64 = 5;
    let mut app = TestApp::without_worker().await;
    let api = Api::start(&mut app).await;
    let mut events = follow_events(&app).await;

    let mut tickets = Vec::with_capacity(TICKETS);
    for index in 0..TICKETS {
        let creator = Caller::new(format!("creator={index}"));
        let (status, body) = send(
            api.request(Method::POST, "/api/v1/tickets")
                .header("traceparent", &creator.traceparent)
                .header("tracestate", &creator.tracestate)
                .json(&json!({"title": format!("Relayed {index}"), "description": "d"})),
        )
        .await;
        assert_eq!(status.as_u16(), 201, "{body}");
        tickets.push(Traced {
            ticket: body["id"].as_str().expect("the ticket's id").to_owned(),
            creator,
            move_id: uuid::Uuid::new_v4().to_string(),
            mover: Caller::new(format!("mover={index}")),
        });
    }
    api.stop().await;

    // the hold: the events of the tickets' creations, locked until the stream is applied
    let mut hold = app.pool.begin().await.expect("a transaction");
    let held: Vec<(String, String, Option<i64>)> = sqlx::query_as(
        "select event_id::text, event_type, ticket_seq from outbox order by id for update",
    )
    .fetch_all(&mut *hold)
    .await
    .expect("the creations' events locked");
    assert_eq!(
        held.iter()
            .filter(|(_, event_type, seq)| event_type == "ticket.created" && *seq == Some(1))
            .count(),
        TICKETS,
        "each ticket's first event: {held:?}"
    );
    assert!(held.iter().all(|(_, _, seq)| seq.is_some()), "{held:?}");
    let of_creations: BTreeSet<&str> = held.iter().map(|(id, _, _)| id.as_str()).collect();

    let mut victim = WorkerProcess::spawn(&app, "victim");
    let mut survivor = WorkerProcess::spawn(&app, "survivor");
    victim.wait_until_ready().await;
    survivor.wait_until_ready().await;

    let stream = async {
        for traced in &tickets {
            app.send_raw(
                "phase.transition.requested",
                &move_request(
                    &traced.ticket,
                    json!({
                        "id": traced.move_id,
                        "traceparent": traced.mover.traceparent,
                        "tracestate": traced.mover.tracestate,
                    }),
                ),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    };
    let kill = async {
        let deadline = tokio::time::Instant::now() + WAIT;
        let applied = loop {
            let applied = victim
                .metrics()
                .await
                .map_or(0, |metrics| moves_applied(&metrics));
            if applied >= APPLIED_BEFORE_THE_KILL {
                break applied;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the worker to kill applied {applied} moves within {WAIT:?}\n{}",
                victim.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        victim.kill9();
        let status = victim.wait_for_exit(Duration::from_secs(10)).await;
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "{status}"
        );
        (applied, in_outbox(&app, "phase.transitioned").await)
    };
    let ((), (applied, unpublished)) = tokio::join!(stream, kill);
    eprintln!(
        "killed a worker that had applied {applied} moves; {unpublished} of {TICKETS} moves \
         were in the outbox"
    );
    // between commit and publish: what the killed worker committed is still in the outbox
    assert!(
        unpublished >= applied as i64,
        "the killed worker applied {applied} moves, but only {unpublished} are unpublished"
    );
    assert!(
        unpublished < TICKETS as i64,
        "the stream was applied before the kill; the test proves nothing"
    );

    // the survivor applies the rest of the stream (and what the killed worker left unacked)
    let deadline = tokio::time::Instant::now() + WAIT;
    while in_outbox(&app, "phase.transitioned").await < TICKETS as i64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the moves were not all applied within {WAIT:?}\n{}",
            survivor.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // nothing was published: the outbox holds every event of every request
    let stored: Vec<(String, String, Option<String>)> =
        sqlx::query_as("select event_id::text, event_type, traceparent from outbox order by id")
            .fetch_all(&app.pool)
            .await
            .expect("the outbox");
    let expected: BTreeSet<String> = stored.iter().map(|(id, _, _)| id.clone()).collect();
    assert!(
        stored
            .iter()
            .all(|(_, _, traceparent)| traceparent.is_some()),
        "every event is stored with its trace context: {stored:?}"
    );
    hold.rollback().await.expect("the hold ends");

    let mut arrived: BTreeMap<String, Vec<Arrived>> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !expected.iter().all(|id| arrived.contains_key(id)) {
        let Ok(event) = tokio::time::timeout_at(deadline, events.recv()).await else {
            let missing: Vec<&String> = expected
                .iter()
                .filter(|id| !arrived.contains_key(*id))
                .collect();
            panic!(
                "{} of {} events never arrived: {missing:?}\n{}",
                missing.len(),
                expected.len(),
                survivor.log_tail()
            );
        };
        let event = event.expect("the event stream");
        let id = event.body["id"].as_str().expect("an event id").to_owned();
        arrived.entry(id).or_default().push(event);
    }
    // a moment more, for an event that would arrive twice
    let quiet = tokio::time::Instant::now() + Duration::from_secs(1);
    while let Ok(Some(event)) = tokio::time::timeout_at(quiet, events.recv()).await {
        let id = event.body["id"].as_str().expect("an event id").to_owned();
        arrived.entry(id).or_default().push(event);
    }

    let received: BTreeSet<String> = arrived.keys().cloned().collect();
    assert_eq!(received, expected, "the events published are those stored");
    let by_ticket: BTreeMap<&str, &Traced> = tickets
        .iter()
        .map(|traced| (traced.ticket.as_str(), traced))
        .collect();
    // the types of each ticket's events: (of its creation, of its move)
    let mut types: BTreeMap<&str, (BTreeSet<&str>, BTreeSet<&str>)> = BTreeMap::new();
    for (id, deliveries) in &arrived {
        assert_eq!(
            deliveries.len(),
            1,
            "event {id} arrived {} times",
            deliveries.len()
        );
        let event = &deliveries[0].body;
        let subject = event["subject"].as_str().expect("a subject");
        let traced = by_ticket
            .get(subject)
            .unwrap_or_else(|| panic!("an event of no ticket of the test: {event}"));
        let event_type = event["type"].as_str().expect("a type");
        let of_ticket = types.entry(subject).or_default();
        let caller = if of_creations.contains(id.as_str()) {
            of_ticket.0.insert(event_type);
            &traced.creator
        } else {
            of_ticket.1.insert(event_type);
            // the move's events, caused by it or by its `phase.entered`, carry its id as
            // their correlation id (it names none of its own)
            assert_eq!(event["correlationid"], traced.move_id.as_str(), "{event}");
            &traced.mover
        };
        let traceparent = event["traceparent"]
            .as_str()
            .unwrap_or_else(|| panic!("no traceparent on {event}"));
        assert_eq!(
            deliveries[0].header.as_deref(),
            Some(traceparent),
            "{event}"
        );
        // the span id is phaseflow's own: only the trace is the caller's
        assert_eq!(parts(traceparent).0, caller.trace_id, "{event}");
        assert_eq!(event["tracestate"], caller.tracestate.as_str(), "{event}");
    }
    for traced in &tickets {
        let (created, moved) = types
            .get(traced.ticket.as_str())
            .cloned()
            .unwrap_or_default();
        assert!(
            created.contains("ticket.created"),
            "{}: {created:?}",
            traced.ticket
        );
        for event_type in ["phase.transitioned", "phase.entered", "tasks.generated"] {
            assert!(moved.contains(event_type), "{}: {moved:?}", traced.ticket);
        }
    }

    survivor.signal("TERM");
    let status = survivor.wait_for_exit(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "{status}\n{}", survivor.log_tail());
    drop(victim);
    app.shutdown().await;
}
