//! The worker's ops port: `/healthz`, `/readyz` and `/metrics` show what the test caused.
//!
//! The Prometheus recorder is process-wide, so this file holds a single test: it is its own test
//! binary (its own process), and the counts it reads are exactly the ones it caused.

#[path = "integration/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::requests::{CREATE, TRANSITION};
use common::{Requests, TestApp};
use phaseflow::protocol::events::{PhaseTransitioned, TicketCreated};
use serde_json::{json, Value};
use uuid::Uuid;

/// One sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// An expected sample: (metric name, labels) and its value.
type Expected<'a> = ((&'a str, BTreeMap<String, String>), f64);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ops_port_reports_health_readiness_and_the_counts_the_test_caused() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let mut app = TestApp::without_worker().await;
        let broker = Proxy::start("127.0.0.1:5672".parse().expect("address")).await;
        app.settings.amqp.url = format!("amqp://guest:guest@{}/%2f", broker.addr());
        let ops = free_local_addr();
        app.settings.ops.addr = ops;
        app.start_worker();

        a_started_worker_is_ready_and_healthy(ops).await;
        one_request_of_each_outcome(&app).await;
        each_outcome_is_counted_once(ops).await;
        an_outage_is_not_ready_and_reconnects_once_per_connection(&app, &broker, ops).await;
        a_claim_without_progress_counts_as_a_stall_and_a_live_claim(&app, ops).await;
        a_report_over_budget_counts_its_usage_the_alerts_and_the_block(&app, ops).await;

        app.shutdown().await;
    })
    .await
    .expect("the test took longer than 90 s");
}

/// `/readyz` says every part is up, `/healthz` that the process lives.
async fn a_started_worker_is_ready_and_healthy(ops: SocketAddr) {
    let ready = wait_for_readiness(ops, 200, Duration::from_secs(30)).await;
    let all_up = json!({
        "status": "ready",
        "postgres": true,
        "rabbitmq_consumer": true,
        "rabbitmq_relay": true,
        "shutting_down": false,
    });
    assert_eq!(ready, all_up);
    let (status, health) = get(ops, "/healthz").await.expect("/healthz answers");
    assert_eq!(
        (status, serde_json::from_str::<Value>(&health).ok()),
        (200, Some(json!({"status": "ok"})))
    );
}

/// Four tickets created, one transition rejected, one undecodable body dead-lettered and one
/// duplicate, each seen through to its outcome.
async fn one_request_of_each_outcome(app: &TestApp) {
    let mut created = Vec::new();
    for index in 0..4 {
        created.push(
            app.send(
                "ticket.create.requested",
                None,
                json!({ "title": format!("metered {index}") }),
            )
            .await,
        );
    }
    let missing_ticket = Uuid::new_v4().to_string();
    let rejected = app
        .send(
            "phase.transition.requested",
            Some(&missing_ticket),
            json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "go"}),
        )
        .await;
    app.send_raw("ticket.create.requested", b"this is not a CloudEvent")
        .await;
    for request in &created {
        app.outcome_of_request::<TicketCreated>(request, CREATE)
            .await
            .succeeded();
    }
    let rejection = app
        .outcome_of_request::<PhaseTransitioned>(&rejected, TRANSITION)
        .await
        .rejected();
    assert_eq!(
        rejection.event_type, "phase.transition.rejected",
        "{rejection}"
    );
    let (_, reason) = app
        .next_dead_letter()
        .await
        .expect("the undecodable body is dead-lettered");
    assert!(!reason.is_empty());
    app.send_with_id(
        &created[0],
        "ticket.create.requested",
        None,
        json!({ "title": "metered 0" }),
    )
    .await;
}

/// `/metrics` counts each of those once, and nothing else.
async fn each_outcome_is_counted_once(ops: SocketAddr) {
    let expected = [
        (
            messages("requests", "ticket.create.requested", "applied"),
            4.0,
        ),
        (
            messages("requests", "phase.transition.requested", "rejected"),
            1.0,
        ),
        (messages("requests", "undecodable", "dead_lettered"), 1.0),
        (
            messages("requests", "ticket.create.requested", "duplicate"),
            1.0,
        ),
        (
            (
                "phaseflow_handler_duration_seconds_count",
                labels(&[("queue", "requests")]),
            ),
            7.0,
        ),
        (("phaseflow_messages_in_flight", labels(&[])), 0.0),
        (("phaseflow_outbox_backlog", labels(&[])), 0.0),
        (
            (
                "phaseflow_amqp_connected",
                labels(&[("component", "consumer")]),
            ),
            1.0,
        ),
        (
            (
                "phaseflow_amqp_connected",
                labels(&[("component", "relay")]),
            ),
            1.0,
        ),
    ];
    let samples = wait_for_metrics(ops, &expected, Duration::from_secs(15)).await;
    let total: f64 = samples
        .iter()
        .filter(|(name, _, _)| name == "phaseflow_messages_total")
        .map(|(_, _, value)| value)
        .sum();
    assert_eq!(total, 7.0, "no other message was counted:\n{samples:#?}");
    assert_eq!(
        value(
            &samples,
            "phaseflow_amqp_reconnects_total",
            &labels(&[("component", "consumer")])
        ),
        None
    );
    assert!(
        samples
            .iter()
            .any(|(name, _, _)| name == "phaseflow_handler_duration_seconds_bucket"),
        "the handler latency is a histogram"
    );
    assert!(value(
        &samples,
        "phaseflow_outbox_oldest_age_seconds",
        &labels(&[])
    )
    .is_some());
}

/// A RabbitMQ outage: not ready while it lasts, one reconnect per connection after it, and
/// requests are applied again.
async fn an_outage_is_not_ready_and_reconnects_once_per_connection(
    app: &TestApp,
    broker: &Proxy,
    ops: SocketAddr,
) {
    let outage = broker.cut();
    let during = wait_for_readiness(ops, 503, Duration::from_secs(10)).await;
    assert_eq!(during["postgres"], true, "{during}");
    let cut_samples = scrape(ops)
        .await
        .expect("/metrics answers during the outage");
    assert_eq!(
        value(
            &cut_samples,
            "phaseflow_amqp_connected",
            &labels(&[("component", "consumer")])
        ),
        Some(0.0)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    outage.restore();
    wait_for_readiness(ops, 200, Duration::from_secs(30)).await;
    let after = app
        .send(
            "ticket.create.requested",
            None,
            json!({"title": "after the outage"}),
        )
        .await;
    app.outcome_of_request::<TicketCreated>(&after, CREATE)
        .await
        .succeeded();
    let expected_after = [
        (
            messages("requests", "ticket.create.requested", "applied"),
            5.0,
        ),
        (
            (
                "phaseflow_amqp_reconnects_total",
                labels(&[("component", "consumer")]),
            ),
            1.0,
        ),
        (
            (
                "phaseflow_amqp_reconnects_total",
                labels(&[("component", "relay")]),
            ),
            1.0,
        ),
        (
            (
                "phaseflow_amqp_connected",
                labels(&[("component", "consumer")]),
            ),
            1.0,
        ),
    ];
    wait_for_metrics(ops, &expected_after, Duration::from_secs(15)).await;
}

/// A claim whose last progress lies past `tasks.stall_after_seconds` is reported stalled once by
/// the lease sweep, and its agent's live claims are a gauge of their own.
async fn a_claim_without_progress_counts_as_a_stall_and_a_live_claim(
    app: &TestApp,
    ops: SocketAddr,
) {
    let placed = app.ticket_in(phaseflow::domain::Phase::Design).await;
    app.claim(
        "metrics-agent",
        Some(&placed.ticket),
        json!({"lease_seconds": 3600}),
    )
    .await
    .succeeded();
    sqlx::query(
        "update tasks set last_progress_at = now() - interval '1 hour' where claimed_by = $1",
    )
    .bind("metrics-agent")
    .execute(&app.pool)
    .await
    .expect("the claim's progress moved into the past");
    let expected = [
        (
            (
                "phaseflow_task_stalls_total",
                labels(&[("result", "reported")]),
            ),
            1.0,
        ),
        (
            (
                "phaseflow_agent_live_claims",
                labels(&[("agent", "metrics-agent")]),
            ),
            1.0,
        ),
    ];
    wait_for_metrics(ops, &expected, Duration::from_secs(15)).await;
}

/// A report that takes a ticket past its whole token budget counts its tokens and money, both
/// alerts and the ticket's move to BLOCKED.
async fn a_report_over_budget_counts_its_usage_the_alerts_and_the_block(
    app: &TestApp,
    ops: SocketAddr,
) {
    let placed = app
        .ticket_in(phaseflow::domain::Phase::Implementation)
        .await;
    sqlx::query("update tickets set budget_tokens = 1000 where id = $1")
        .bind(common::uuid(&placed.ticket))
        .execute(&app.pool)
        .await
        .expect("the ticket gets a budget");
    let task = placed.task("implement_feature").to_owned();
    app.claim(
        "metrics-spender",
        Some(&placed.ticket),
        json!({"task_id": task}),
    )
    .await
    .succeeded();
    app.heartbeat(
        "metrics-spender",
        &placed.ticket,
        json!({"task_id": task, "usage": {"input_tokens": 900, "output_tokens": 200, "cost_usd": 0.5}}),
    )
    .await
    .succeeded();
    let expected = [
        (
            (
                "phaseflow_usage_tokens_total",
                labels(&[("direction", "input")]),
            ),
            900.0,
        ),
        (
            (
                "phaseflow_usage_tokens_total",
                labels(&[("direction", "output")]),
            ),
            200.0,
        ),
        (("phaseflow_usage_cost_usd_total", labels(&[])), 0.5),
        (
            (
                "phaseflow_budget_alerts_total",
                labels(&[("level", "warning"), ("scope", "ticket")]),
            ),
            1.0,
        ),
        (
            (
                "phaseflow_budget_alerts_total",
                labels(&[("level", "exceeded"), ("scope", "ticket")]),
            ),
            1.0,
        ),
        (("phaseflow_budget_blocks_total", labels(&[])), 1.0),
    ];
    wait_for_metrics(ops, &expected, Duration::from_secs(15)).await;
}

fn messages(queue: &str, kind: &str, outcome: &str) -> (&'static str, BTreeMap<String, String>) {
    (
        "phaseflow_messages_total",
        labels(&[("queue", queue), ("type", kind), ("outcome", outcome)]),
    )
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

fn value(samples: &[Sample], name: &str, wanted: &BTreeMap<String, String>) -> Option<f64> {
    samples
        .iter()
        .find(|(sample, labels, _)| sample == name && labels == wanted)
        .map(|(_, _, value)| *value)
}

/// Scrapes until every expected sample has its value; panics showing the differences.
async fn wait_for_metrics(
    ops: SocketAddr,
    expected: &[Expected<'_>],
    within: Duration,
) -> Vec<Sample> {
    let deadline = Instant::now() + within;
    loop {
        let samples = scrape(ops).await.unwrap_or_default();
        let wrong: Vec<String> = expected
            .iter()
            .filter_map(|((name, wanted), expected)| {
                let actual = value(&samples, name, wanted);
                (actual != Some(*expected))
                    .then(|| format!("{name}{wanted:?}: expected {expected}, got {actual:?}"))
            })
            .collect();
        if wrong.is_empty() {
            return samples;
        }
        assert!(
            Instant::now() < deadline,
            "/metrics does not show what the test caused:\n{}",
            wrong.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads `/metrics` and parses the Prometheus text format.
async fn scrape(ops: SocketAddr) -> Option<Vec<Sample>> {
    let (status, text) = get(ops, "/metrics").await?;
    assert_eq!(status, 200, "{text}");
    Some(text.lines().filter_map(parse_sample).collect())
}

/// `name{a="x",b="y"} 1` → (name, {a: x, b: y}, 1.0); comments and blank lines are skipped.
fn parse_sample(line: &str) -> Option<Sample> {
    if line.starts_with('#') || line.trim().is_empty() {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        None => (series.to_owned(), BTreeMap::new()),
        Some((name, rest)) => {
            let inner = rest.strip_suffix('}')?;
            let mut labels = BTreeMap::new();
            for pair in inner.split("\",").filter(|pair| !pair.is_empty()) {
                let (key, value) = pair.split_once("=\"")?;
                labels.insert(key.to_owned(), value.trim_end_matches('"').to_owned());
            }
            (name.to_owned(), labels)
        }
    };
    Some((name, labels, value))
}

async fn get(ops: SocketAddr, path: &str) -> Option<(u16, String)> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(4))
        .build()
        .expect("an HTTP client");
    let response = client
        .get(format!("http://{ops}{path}"))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

async fn wait_for_readiness(ops: SocketAddr, status: u16, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    let mut last = None;
    loop {
        if let Some((answer, body)) = get(ops, "/readyz").await {
            if answer == status {
                return serde_json::from_str(&body).unwrap_or(Value::Null);
            }
            last = Some((answer, body));
        }
        assert!(
            Instant::now() < deadline,
            "/readyz did not answer {status} within {within:?}; last: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn free_local_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address")
}
