//! The test harness: every test gets its own database and its own exchange and queue names on
//! the real Postgres and RabbitMQ of this machine, a worker running in-process, and a tap on its
//! events exchange. Requests are sent and their outcomes read as the library's types through
//! [`requests::Requests`]; tickets are put into a phase directly by [`factory`]; whatever a test
//! created is removed when it ends, even by a panic, and what killed runs left is swept
//! ([`cleanup`]). A test that cannot reach the services fails and says how to start them.

#![allow(dead_code, unused_imports)]

pub mod cleanup;
pub mod events;
pub mod factory;
pub mod http;
pub mod process;
pub mod proxy;
pub mod requests;
pub mod rules;

pub use events::{Envelope, Event, Outcome, Rejected};
pub use requests::Requests;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use phaseflow::config::Settings;
use phaseflow_client::{OutgoingRequest, RequestClient};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use cleanup::{Cleanup, TestNames};

pub const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432";
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// How long a test waits for an expected event.
pub const WAIT: Duration = Duration::from_secs(20);

/// A worker running in this process.
pub struct RunningWorker {
    stop: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
    /// whether dropping it stops it: true until it is killed, since a killed worker's leftover
    /// tasks are part of the crash a test sets up
    stop_on_drop: bool,
}

impl RunningWorker {
    pub fn start(settings: Settings) -> RunningWorker {
        let stop = CancellationToken::new();
        let handle = tokio::spawn(phaseflow::worker::run(settings, stop.clone()));
        RunningWorker {
            stop,
            handle,
            stop_on_drop: true,
        }
    }

    /// Stops it gracefully and returns what `run` returned.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        (&mut self.handle).await?
    }

    /// Stops it abruptly: in-flight work is abandoned as a crash would.
    pub fn kill(mut self) {
        self.stop_on_drop = false;
        self.handle.abort();
    }
}

/// A test that ends without stopping its workers (it failed or panicked) stops them here, before
/// its cleanup deletes their queues: a worker left running would declare them again.
impl Drop for RunningWorker {
    fn drop(&mut self) {
        if self.stop_on_drop {
            self.stop.cancel();
            self.handle.abort();
        }
    }
}

/// One test's isolated world.
pub struct TestApp {
    pub settings: Settings,
    pub database: String,
    pub pool: PgPool,
    pub client: RequestClient,
    pub events: EventTap,
    workers: Vec<RunningWorker>,
    pub amqp: lapin::Connection,
    /// drops the database and deletes the broker names however the test ends
    cleanup: Cleanup,
}

impl TestApp {
    /// A fresh database and broker names, and one worker.
    pub async fn spawn() -> TestApp {
        let app = TestApp::without_worker().await;
        let mut app = app;
        app.start_worker();
        app
    }

    /// A fresh database and broker names, the topology declared, but no worker yet.
    pub async fn without_worker() -> TestApp {
        phaseflow::telemetry::init_logging_with("warn,lapin=off");
        cleanup::sweep_stale_once().await;
        let names = TestNames::new();
        let database = names.database.clone();
        let mut settings = Settings::load_from(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config")
                .as_path(),
        )
        .expect("the repository's config/ loads");
        settings.database.url = format!("{POSTGRES_URL}/{database}");
        settings.amqp.url = AMQP_URL.to_owned();
        let prefix = names.broker.clone();
        settings.amqp.requests_exchange = format!("{prefix}.requests");
        settings.amqp.events_exchange = format!("{prefix}.events");
        settings.amqp.requests_queue = format!("{prefix}.worker.requests");
        settings.amqp.dead_letter_exchange = format!("{prefix}.dead-letter");
        settings.amqp.dead_letter_queue = format!("{prefix}.dead-letter");
        settings.amqp.delivery_limit = 3;
        settings.ops.addr = "127.0.0.1:0".parse().expect("valid address");
        settings.worker.shutdown_grace_ms = 5000;
        settings.outbox.poll_interval_ms = 200;
        settings.database.max_connections = 8;

        let admin = PgConnection::connect(&format!("{POSTGRES_URL}/postgres"))
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "cannot reach Postgres at {POSTGRES_URL} ({error}). Start it with: \
                 pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
                )
            });
        admin.close().await.ok();
        let cleanup = Cleanup::with_broker(
            names,
            vec![
                settings.amqp.requests_queue.clone(),
                settings.amqp.dead_letter_queue.clone(),
            ],
            vec![
                settings.amqp.requests_exchange.clone(),
                settings.amqp.events_exchange.clone(),
                settings.amqp.dead_letter_exchange.clone(),
            ],
        );
        let amqp = phaseflow_client::broker::connect(AMQP_URL, 30, "phaseflow tests").await.unwrap_or_else(|error| {
            panic!("cannot reach RabbitMQ at {AMQP_URL} ({error:#}). Start it with: rabbitmq-server -detached")
        });
        phaseflow::store::migrate(&settings.database.url)
            .await
            .expect("migrations apply");
        let pool = PgPool::connect(&settings.database.url)
            .await
            .expect("test database reachable");

        // declare the worker topology up front so requests published before a worker starts
        // are queued, not returned
        let channel = amqp.create_channel().await.expect("channel");
        phaseflow::messaging::topology::declare_worker_topology(&channel, &settings.amqp)
            .await
            .expect("topology declares");
        let events = EventTap::start(
            &amqp,
            &settings.amqp.events_exchange,
            &format!("{prefix}.tap"),
        )
        .await;
        let client = RequestClient::connect(&settings.amqp.broker(), "phaseflow tests")
            .await
            .expect("request client connects");
        TestApp {
            settings,
            database,
            pool,
            client,
            events,
            workers: Vec::new(),
            amqp,
            cleanup,
        }
    }

    /// The stem of the test's exchange and queue names (`test-…`).
    pub fn broker_prefix(&self) -> &str {
        &self.cleanup.names().broker
    }

    /// Deletes this queue when the test ends too (a queue it declares beside the worker's).
    pub fn clean_up_queue(&self, queue: &str) {
        self.cleanup.add_queue(queue);
    }

    /// Starts one more worker on the same database and queues.
    pub fn start_worker(&mut self) {
        self.workers
            .push(RunningWorker::start(self.settings.clone()));
    }

    /// Takes a worker out of the app (to stop or kill it).
    pub fn take_worker(&mut self, index: usize) -> RunningWorker {
        self.workers.remove(index)
    }

    /// Publishes a request with a new id and returns the id.
    pub async fn send(&self, request_type: &str, subject: Option<&str>, data: Value) -> String {
        let id = Uuid::new_v4().to_string();
        self.send_with_id(&id, request_type, subject, data).await;
        id
    }

    /// Publishes a request with the given id.
    pub async fn send_with_id(
        &self,
        id: &str,
        request_type: &str,
        subject: Option<&str>,
        data: Value,
    ) {
        self.publish(requests::ACTOR, id, request_type, subject, data)
            .await;
    }

    /// Publishes raw bytes to the requests exchange.
    pub async fn send_raw(&self, routing_key: &str, body: &[u8]) {
        self.client
            .publish_raw(
                routing_key,
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("raw message published");
    }

    /// Creates a ticket (in BACKLOG) and returns its id ([`Requests::create_ticket`]).
    pub async fn create_ticket(&self, title: &str) -> String {
        Requests::create_ticket(self, title).await
    }

    /// Reads the dead-letter queue's next message, if any: (body, x-phaseflow-error).
    pub async fn next_dead_letter(&self) -> Option<(Vec<u8>, String)> {
        let channel = self.amqp.create_channel().await.expect("channel");
        for _ in 0..100 {
            let message = channel
                .basic_get(
                    self.settings.amqp.dead_letter_queue.as_str().into(),
                    BasicGetOptions { no_ack: true },
                )
                .await
                .expect("basic.get on the dead-letter queue");
            if let Some(message) = message {
                let error = message
                    .delivery
                    .properties
                    .headers()
                    .as_ref()
                    .and_then(|headers| headers.inner().get("x-phaseflow-error").cloned())
                    .map(|value| match value {
                        lapin::types::AMQPValue::LongString(text) => text.to_string(),
                        other => format!("{other:?}"),
                    })
                    .unwrap_or_default();
                return Some((message.delivery.data.clone(), error));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// Deletes a queue a test declared beside the worker's (an agent's durable queue).
    pub async fn delete_queue(&self, queue: &str) {
        let channel = self.amqp.create_channel().await.expect("channel");
        let _ = channel
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await;
    }

    /// Stops every worker (each must stop cleanly), then deletes the test's exchanges and
    /// queues and drops its database. A test that ends otherwise is cleaned up by its guard.
    pub async fn shutdown(mut self) {
        for worker in self.workers.drain(..) {
            worker.stop().await.expect("worker stops cleanly");
        }
        self.pool.close().await;
        let _ = self.amqp.close(200, "test done".into()).await;
        self.cleanup.run().await;
    }
}

impl Requests for TestApp {
    async fn publish(
        &self,
        actor: &str,
        id: &str,
        request_type: &str,
        subject: Option<&str>,
        data: Value,
    ) {
        let request = OutgoingRequest {
            id: id.to_owned(),
            request_type: request_type.to_owned(),
            subject: subject.map(str::to_owned),
            source: "agent/test".to_owned(),
            actor: Some(actor.to_owned()),
            correlation_id: None,
            data,
        };
        self.client
            .publish(&request)
            .await
            .expect("request published");
    }

    async fn caused_by(&self, request_id: &str, types: &[&str]) -> Event {
        let event = self
            .events
            .wait_for(|event| {
                event["causationid"] == request_id
                    && types.contains(&event["type"].as_str().unwrap_or_default())
            })
            .await;
        Event::from_json(event)
    }

    fn test_pool(&self) -> &PgPool {
        &self.pool
    }

    fn test_settings(&self) -> &Settings {
        &self.settings
    }
}

/// Whether an event type is a request's outcome (success or rejection).
pub fn is_outcome_type(event_type: &str) -> bool {
    phaseflow::workflow::RequestType::is_outcome_type(event_type)
}

/// Every event published on the test's events exchange, in arrival order.
#[derive(Clone)]
pub struct EventTap {
    events: Arc<Mutex<Vec<Value>>>,
    arrived: Arc<Notify>,
}

impl EventTap {
    async fn start(connection: &lapin::Connection, exchange: &str, queue: &str) -> EventTap {
        let channel = connection.create_channel().await.expect("channel");
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("tap queue");
        channel
            .queue_bind(
                queue.into(),
                exchange.into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("tap binding");
        let mut consumer = channel
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("tap consumer");
        let tap = EventTap {
            events: Arc::default(),
            arrived: Arc::default(),
        };
        let events = tap.events.clone();
        let arrived = tap.arrived.clone();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let _ = delivery.ack(BasicAckOptions::default()).await;
                let event: Value = serde_json::from_slice(&delivery.data).expect("events are JSON");
                events.lock().expect("tap lock").push(event);
                arrived.notify_waiters();
            }
        });
        tap
    }

    /// A copy of every event so far.
    pub fn all(&self) -> Vec<Value> {
        self.events.lock().expect("tap lock").clone()
    }

    /// Every event so far, read as envelopes.
    pub fn typed(&self) -> Vec<Event> {
        self.all().into_iter().map(Event::from_json).collect()
    }

    /// Events of one type about one ticket, in arrival order.
    pub fn of_type(&self, event_type: &str, ticket_id: &str) -> Vec<Event> {
        self.typed()
            .into_iter()
            .filter(|event| event.is_about(event_type, ticket_id))
            .collect()
    }

    /// Waits for the first event of a type about a ticket, and reads its data as `T`.
    pub async fn wait_for_typed<T: serde::de::DeserializeOwned>(
        &self,
        event_type: &str,
        ticket_id: &str,
    ) -> Envelope<T> {
        let event = self
            .wait_for(|event| event["type"] == event_type && event["subject"] == ticket_id)
            .await;
        Event::from_json(event).typed()
    }

    /// Waits for the first event of a type about a ticket whose data, read as `T`, matches.
    pub async fn wait_for_data<T: serde::de::DeserializeOwned>(
        &self,
        event_type: &str,
        ticket_id: &str,
        predicate: impl Fn(&T) -> bool,
    ) -> Envelope<T> {
        let event = self
            .wait_for(|event| {
                event["type"] == event_type
                    && event["subject"] == ticket_id
                    && predicate(&Event::from_json(event.clone()).data())
            })
            .await;
        Event::from_json(event).typed()
    }

    /// Waits until at least `count` events of a type about a ticket have data, read as `T`,
    /// that matches; returns them in arrival order.
    pub async fn wait_for_count_of<T: serde::de::DeserializeOwned>(
        &self,
        count: usize,
        event_type: &str,
        ticket_id: &str,
        predicate: impl Fn(&T) -> bool,
    ) -> Vec<Envelope<T>> {
        self.wait_for_count(count, |event| {
            event["type"] == event_type
                && event["subject"] == ticket_id
                && predicate(&Event::from_json(event.clone()).data())
        })
        .await
        .into_iter()
        .map(|event| Event::from_json(event).typed())
        .collect()
    }

    /// Waits for the first event matching `predicate`, read as an envelope.
    pub async fn wait_for_event(&self, predicate: impl Fn(&Event) -> bool) -> Event {
        let event = self
            .wait_for(|raw| predicate(&Event::from_json(raw.clone())))
            .await;
        Event::from_json(event)
    }

    /// Events about one ticket, in arrival order.
    pub fn for_ticket(&self, ticket_id: &str) -> Vec<Value> {
        self.all()
            .into_iter()
            .filter(|event| event["subject"] == json!(ticket_id))
            .collect()
    }

    /// Waits for the first event matching `predicate` (already arrived or arriving within WAIT).
    pub async fn wait_for(&self, predicate: impl Fn(&Value) -> bool) -> Value {
        self.try_wait_for(&predicate, WAIT)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "no matching event within {WAIT:?}; events so far:\n{:#?}",
                    self.all()
                )
            })
    }

    /// Waits for the first event matching `predicate`, or `None` after `timeout`.
    pub async fn try_wait_for(
        &self,
        predicate: &impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            if let Some(event) = self.all().into_iter().find(|event| predicate(event)) {
                return Some(event);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.all().into_iter().find(|event| predicate(event));
            }
        }
    }

    /// Waits until at least `count` events match.
    pub async fn wait_for_count(
        &self,
        count: usize,
        predicate: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let notified = self.arrived.notified();
            let matching: Vec<Value> = self
                .all()
                .into_iter()
                .filter(|event| predicate(event))
                .collect();
            if matching.len() >= count {
                return matching;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "expected {count} matching events, saw {}:\n{matching:#?}",
                    matching.len()
                );
            }
        }
    }
}

/// A UUID from its text, or a failed test naming it.
pub fn uuid(text: &str) -> Uuid {
    text.parse()
        .unwrap_or_else(|error| panic!("`{text}` is not a UUID: {error}"))
}

/// How many history rows a ticket has.
pub async fn history_rows(pool: &PgPool, ticket_id: &str) -> i64 {
    sqlx::query_scalar("select count(*) from phase_history where ticket_id = $1")
        .bind(uuid(ticket_id))
        .fetch_one(pool)
        .await
        .expect("phase_history count")
}

/// A ticket's phase as stored.
pub async fn phase_of(pool: &PgPool, ticket_id: &str) -> String {
    sqlx::query_scalar("select phase_id::text from tickets where id = $1")
        .bind(uuid(ticket_id))
        .fetch_one(pool)
        .await
        .expect("the ticket's phase")
}

/// The single number `statement` counts for a ticket (its one parameter).
pub async fn count(pool: &PgPool, statement: &'static str, ticket_id: &str) -> i64 {
    sqlx::query_scalar(statement)
        .bind(uuid(ticket_id))
        .fetch_one(pool)
        .await
        .unwrap_or_else(|error| panic!("`{statement}` failed: {error}"))
}

/// The repository's workflow definition with `review = true` on the gates of `phases`, written
/// to a file of its own; returns its path for `settings.workflow.definition_path`.
pub fn definition_with_reviews(phases: &[&str]) -> std::path::PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/workflow.toml");
    let shipped = std::fs::read_to_string(&shipped).expect("config/workflow.toml");
    let mut text = String::with_capacity(shipped.len());
    let mut found = 0;
    for line in shipped.lines() {
        text.push_str(line);
        text.push('\n');
        if phases
            .iter()
            .any(|phase| line == format!("[gates.{phase}]"))
        {
            text.push_str("review = true\n");
            found += 1;
        }
    }
    assert_eq!(found, phases.len(), "every phase has a gate: {phases:?}");
    let path = std::env::temp_dir().join(format!("phaseflow-workflow-{}.toml", Uuid::new_v4()));
    std::fs::write(&path, text).expect("definition written");
    path
}
