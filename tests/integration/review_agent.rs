//! The review agent against the real broker: it consumes `gate.review.requested` events that the
//! test publishes to the test's events exchange, and the test, standing in for the worker,
//! receives its `gate.review.submit.requested` verdicts on a queue of its own bound to the
//! requests exchange, and answers them on their `reply_to` queue. No worker runs: what the
//! worker does with a verdict is tested with the worker.

use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use phaseflow::config::Settings;
use phaseflow::domain::{Phase, Verdict};
use phaseflow::workflow::requests::review_gate::ReviewGateData;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::common::{TestApp, AMQP_URL, WAIT};

const AGENT: &str = "review-agent";

/// A verdict the agent sent: its request's envelope members and its data.
#[derive(Debug, Deserialize)]
struct VerdictRequest {
    id: String,
    #[serde(rename = "type")]
    request_type: String,
    subject: String,
    actor: String,
    correlationid: String,
    data: ReviewGateData,
}

/// The agent's loop running in this process.
struct RunningAgent {
    stop: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl RunningAgent {
    fn start(settings: &Settings) -> RunningAgent {
        let stop = CancellationToken::new();
        let handle = tokio::spawn(phaseflow_agents::review::run(
            settings.amqp.broker(),
            settings.amqp.reconnect_backoff(),
            settings.review_agent.clone(),
            stop.clone(),
        ));
        RunningAgent { stop, handle }
    }

    /// Stops it as SIGTERM would, also in the middle of a review.
    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(WAIT, self.handle)
            .await
            .expect("the agent stops in time")
            .expect("the agent did not panic")
            .expect("the agent ends without error");
    }
}

/// The test's side of the broker: it publishes review requests and plays the worker.
struct Broker {
    connection: Connection,
    publisher: Channel,
    verdicts: lapin::Consumer,
    settings: Settings,
    verdict_queue: String,
}

impl Broker {
    async fn start(settings: &Settings) -> Broker {
        let connection = phaseflow_client::broker::connect(AMQP_URL, 30, "review agent test")
            .await
            .expect("RabbitMQ reachable");
        let publisher = connection.create_channel().await.expect("channel");
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        let verdict_queue = format!("{}.verdicts", prefix(settings));
        let channel = connection.create_channel().await.expect("channel");
        channel
            .queue_declare(
                verdict_queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("verdict queue");
        channel
            .queue_bind(
                verdict_queue.as_str().into(),
                settings.amqp.requests_exchange.as_str().into(),
                "gate.review.submit.requested".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("verdict binding");
        let verdicts = channel
            .basic_consume(
                verdict_queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("verdict consumer");
        Broker {
            connection,
            publisher,
            verdicts,
            settings: settings.clone(),
            verdict_queue,
        }
    }

    /// Publishes a `gate.review.requested` event and returns its id. It must reach a queue: the
    /// agent's, whether the agent runs or not.
    async fn request_review(&self, ticket: &str, phase: &str, data: Value) -> String {
        let id = Uuid::new_v4().to_string();
        let mut data = data;
        data["ticket_id"] = json!(ticket);
        data["phase_id"] = json!(phase);
        let event = json!({
            "specversion": "1.0",
            "id": id,
            "source": "phaseflow",
            "type": "gate.review.requested",
            "subject": ticket,
            "time": "2026-11-24T10:15:00.104233Z",
            "datacontenttype": "application/json",
            "actor": "system",
            "correlationid": format!("chain-{id}"),
            "causationid": Uuid::new_v4().to_string(),
            "ticketseq": 9,
            "data": data,
        });
        let confirmation = self
            .publisher
            .basic_publish(
                self.settings.amqp.events_exchange.as_str().into(),
                "gate.review.requested".into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &serde_json::to_vec(&event).expect("JSON"),
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type("application/cloudevents+json".into()),
            )
            .await
            .expect("published")
            .await
            .expect("confirmed");
        assert!(
            matches!(confirmation, Confirmation::Ack(None)),
            "the review request reached the agent's queue: {confirmation:?}"
        );
        id
    }

    /// The next verdict the agent published: the CloudEvent and its AMQP properties.
    async fn next_verdict(&mut self) -> (VerdictRequest, BasicProperties) {
        let delivery = tokio::time::timeout(WAIT, self.verdicts.next())
            .await
            .unwrap_or_else(|_| panic!("no verdict within {WAIT:?}"))
            .expect("the verdict queue is open")
            .expect("a delivery");
        delivery
            .ack(BasicAckOptions::default())
            .await
            .expect("acked");
        let verdict = serde_json::from_slice(&delivery.data).unwrap_or_else(|error| {
            panic!(
                "the verdict does not read as a review request ({error}): {}",
                String::from_utf8_lossy(&delivery.data)
            )
        });
        (verdict, delivery.properties)
    }

    /// Answers a verdict as the worker would: its outcome event on the `reply_to` queue.
    async fn answer(&self, properties: &BasicProperties, outcome_type: &str, data: Value) {
        let reply_to = properties
            .reply_to()
            .as_ref()
            .expect("the agent waits for the outcome on a reply queue")
            .to_string();
        let outcome = json!({
            "specversion": "1.0",
            "id": Uuid::new_v4().to_string(),
            "source": "phaseflow",
            "type": outcome_type,
            "datacontenttype": "application/json",
            "data": data,
        });
        let mut reply = BasicProperties::default().with_delivery_mode(2);
        if let Some(correlation) = properties.correlation_id() {
            reply = reply.with_correlation_id(correlation.clone());
        }
        self.publisher
            .basic_publish(
                "".into(),
                reply_to.as_str().into(),
                BasicPublishOptions::default(),
                &serde_json::to_vec(&outcome).expect("JSON"),
                reply,
            )
            .await
            .expect("published")
            .await
            .expect("confirmed");
    }

    /// Answers a verdict with `gate.reviewed`.
    async fn accept(&self, verdict: &VerdictRequest, properties: &BasicProperties) {
        self.answer(
            properties,
            "gate.reviewed",
            json!({
                "ticket_id": verdict.subject,
                "phase_id": verdict.data.phase_id,
                "verdict": verdict.data.verdict,
                "reviewer": verdict.actor,
                "reasons": verdict.data.reasons,
            }),
        )
        .await;
    }

    /// Waits until the agent declared its queue.
    async fn wait_for_agent_queue(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.agent_queue_messages().await.is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the agent declared no queue within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The ready messages in the agent's queue; `None` while it does not exist.
    async fn agent_queue_messages(&self) -> Option<u32> {
        let channel = self.connection.create_channel().await.expect("channel");
        channel
            .queue_declare(
                self.settings.review_agent.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .ok()
            .map(|queue| queue.message_count())
    }

    /// The agent queue's message count once it is `expected`, or what it is after a few
    /// seconds: the broker may count a message published or returned a moment ago a little
    /// later.
    async fn agent_queue_messages_settled(&self, expected: u32) -> Option<u32> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let count = self.agent_queue_messages().await;
            if count == Some(expected) || std::time::Instant::now() >= deadline {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Deletes the agent's queue and its own.
    async fn close(self) {
        let channel = self.connection.create_channel().await.expect("channel");
        for queue in [&self.settings.review_agent.queue, &self.verdict_queue] {
            let _ = channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = self.connection.close(200, "test done".into()).await;
    }
}

/// The test's broker names begin with this.
fn prefix(settings: &Settings) -> String {
    settings
        .amqp
        .requests_exchange
        .trim_end_matches(".requests")
        .to_owned()
}

/// The test's settings, with the agent's queue named for the test.
fn agent_settings(app: &TestApp) -> Settings {
    let mut settings = app.settings.clone();
    settings.review_agent.queue = format!("{}.review-agent", prefix(&settings));
    settings.review_agent.agent_id = AGENT.to_owned();
    settings
}

fn artifact(artifact_type: &str, content: Value) -> Value {
    json!({"artifact_type": artifact_type, "artifact_path": null, "artifact_content": content})
}

fn assert_verdict(
    verdict: &VerdictRequest,
    event_id: &str,
    ticket: &str,
    expected: Verdict,
    reasons: &[&str],
) {
    assert_eq!(
        verdict.request_type, "gate.review.submit.requested",
        "{verdict:#?}"
    );
    assert_eq!(
        verdict.id,
        format!("review:{AGENT}:{event_id}"),
        "{verdict:#?}"
    );
    assert_eq!(verdict.subject, ticket, "{verdict:#?}");
    assert_eq!(verdict.actor, AGENT, "{verdict:#?}");
    assert_eq!(
        verdict.correlationid,
        format!("chain-{event_id}"),
        "{verdict:#?}"
    );
    assert_eq!(verdict.data.verdict, expected, "{verdict:#?}");
    assert_eq!(verdict.data.reasons, reasons, "{verdict:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_follow_the_rules_and_rejections_are_skipped() {
    let app = TestApp::without_worker().await;
    let settings = agent_settings(&app);
    let mut broker = Broker::start(&settings).await;
    let agent = RunningAgent::start(&settings);
    broker.wait_for_agent_queue().await;
    let ticket = Uuid::new_v4().to_string();

    // a design that names every component of the requirements
    let passing = broker
        .request_review(
            &ticket,
            "PHASE_DESIGN",
            json!({
                "summary": "the login's design",
                "artifacts": [artifact("design_document", json!({
                    "components": ["Passkey API", "session store"],
                    "content": "The passkey API keeps sessions in the session store.",
                }))],
                "earlier_artifacts": [{
                    "phase_id": "PHASE_REQUIREMENTS",
                    "artifact_type": "requirements_document",
                    "artifact_path": "docs/requirements.md",
                    "artifact_content": {"components": ["passkey api", "Session Store"]},
                }],
                "authors": ["agent-1", "agent-2"],
            }),
        )
        .await;
    let (verdict, properties) = broker.next_verdict().await;
    assert_verdict(
        &verdict,
        &passing,
        &ticket,
        Verdict::Approved,
        &[
            "not applicable: no requirements_document artifact in this review \
             (requirements_document.acceptance_criteria has at least 3 items)",
            "design_document.components (or content) mentions all 2 entries of \
             requirements_document.components",
            "not applicable: no test_coverage artifact in this review \
             (test_coverage.percentage did not drop since an earlier review)",
            "not applicable: no test_results artifact in this review \
             (test_results.failures is at most 0)",
        ],
    );
    assert_eq!(verdict.data.phase_id, Some(Phase::Design));
    broker.accept(&verdict, &properties).await;

    // failing tests: the reason names the artifact, the field, what was expected and found; the
    // worker refuses the verdict, and the agent goes on
    let failing = broker
        .request_review(
            &ticket,
            "PHASE_TESTING",
            json!({
                "summary": "the tests",
                "artifacts": [artifact("test_results", json!({"failures": 2, "total": 48}))],
                "earlier_artifacts": [],
                "authors": ["agent-3"],
            }),
        )
        .await;
    let (verdict, properties) = broker.next_verdict().await;
    assert_verdict(
        &verdict,
        &failing,
        &ticket,
        Verdict::ChangesRequested,
        &["test_results.failures is 2; at most 0 expected"],
    );
    broker
        .answer(
            &properties,
            "gate.review.submit.rejected",
            json!({"ticket_id": ticket, "code": "reviewer_not_independent",
                   "reasons": ["review-agent completed a task of PHASE_TESTING"]}),
        )
        .await;

    // a phase the agent authored gets no verdict
    broker
        .request_review(
            &ticket,
            "PHASE_IMPLEMENTATION",
            json!({"artifacts": [], "authors": [AGENT]}),
        )
        .await;

    // coverage is remembered across reviews of the ticket: a drop is refused
    let covered = broker
        .request_review(
            &ticket,
            "PHASE_IMPLEMENTATION",
            json!({"artifacts": [artifact("test_coverage", json!({"percentage": 91}))],
                   "authors": ["agent-1"]}),
        )
        .await;
    let (verdict, properties) = broker.next_verdict().await;
    assert_eq!(
        verdict.id,
        format!("review:{AGENT}:{covered}"),
        "the authored phase was skipped: {verdict:#?}"
    );
    assert_eq!(verdict.data.verdict, Verdict::Approved, "{verdict:#?}");
    broker.accept(&verdict, &properties).await;
    let dropped = broker
        .request_review(
            &ticket,
            "PHASE_IMPLEMENTATION",
            json!({"artifacts": [artifact("test_coverage", json!({"percentage": 84.5}))],
                   "authors": ["agent-1"]}),
        )
        .await;
    let (verdict, properties) = broker.next_verdict().await;
    assert_verdict(
        &verdict,
        &dropped,
        &ticket,
        Verdict::ChangesRequested,
        &[
            "test_coverage.percentage dropped to 84.5; at least 91, seen in an earlier review of \
           this ticket, expected",
        ],
    );
    broker.accept(&verdict, &properties).await;

    assert_only_the_last_is_unacknowledged(&mut broker, agent, &ticket).await;
    broker.close().await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_requests_wait_for_the_agent_and_one_under_review_is_judged_again() {
    let app = TestApp::without_worker().await;
    let settings = agent_settings(&app);
    let mut broker = Broker::start(&settings).await;
    RunningAgent::start(&settings)
        .stop_when_ready(&broker)
        .await;
    let ticket = Uuid::new_v4().to_string();

    // published while no agent runs: it waits in the durable queue
    let waiting = broker
        .request_review(
            &ticket,
            "PHASE_REQUIREMENTS",
            json!({
                "artifacts": [artifact("requirements_document",
                                       json!({"acceptance_criteria": ["a", "b"]}))],
                "authors": ["agent-1"],
            }),
        )
        .await;
    assert_eq!(broker.agent_queue_messages_settled(1).await, Some(1));
    let expected = ["requirements_document.acceptance_criteria has 2 items; at least 3 expected"];

    // the agent starts, judges it and publishes its verdict, then stops before the outcome
    // came back: the request was not acknowledged, so it returns to the queue
    let agent = RunningAgent::start(&settings);
    let (first, _unanswered) = broker.next_verdict().await;
    assert_verdict(
        &first,
        &waiting,
        &ticket,
        Verdict::ChangesRequested,
        &expected,
    );
    agent.stop().await;
    assert_eq!(
        broker.agent_queue_messages_settled(1).await,
        Some(1),
        "the request under review went back to the queue"
    );

    // started again, it judges the request again and publishes the same verdict under the same
    // id, which the worker applies at most once
    let agent = RunningAgent::start(&settings);
    let (again, properties) = broker.next_verdict().await;
    assert_eq!(again.id, first.id);
    assert_eq!(again.data, first.data);
    broker.accept(&again, &properties).await;

    assert_only_the_last_is_unacknowledged(&mut broker, agent, &ticket).await;
    broker.close().await;
    app.shutdown().await;
}

impl RunningAgent {
    /// Waits until the agent declared its queue, then stops it: the queue stays.
    async fn stop_when_ready(self, broker: &Broker) {
        broker.wait_for_agent_queue().await;
        self.stop().await;
    }
}

/// Sends one more review request and stops the agent while it waits for that verdict's outcome:
/// one request is delivered at a time, so the agent received it only once it had acknowledged
/// every earlier one, and only it goes back to the queue.
async fn assert_only_the_last_is_unacknowledged(
    broker: &mut Broker,
    agent: RunningAgent,
    ticket: &str,
) {
    let last = broker
        .request_review(
            ticket,
            "PHASE_DEPLOYMENT",
            json!({"artifacts": [], "authors": ["agent-9"]}),
        )
        .await;
    let (verdict, _unanswered) = broker.next_verdict().await;
    assert_eq!(verdict.id, format!("review:{AGENT}:{last}"), "{verdict:#?}");
    agent.stop().await;
    assert_eq!(
        broker.agent_queue_messages_settled(1).await,
        Some(1),
        "every request but the last was acknowledged"
    );
}
