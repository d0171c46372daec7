//! The driver's view of the broker: a request client that publishes as an agent would, and a
//! tap on the events exchange that hands each event to whoever waits for it. The driver never
//! reads the worker's state in Postgres to learn an outcome; it waits for the events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use futures_lite::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use phaseflow::config::Settings;
use phaseflow_client::event_type;
use phaseflow_client::RequestType;
use phaseflow_client::{OutgoingRequest, RequestClient};
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::sync::oneshot;
use uuid::Uuid;

pub const REQUIREMENTS: &str = "PHASE_REQUIREMENTS";
pub const BLOCKED: &str = "PHASE_BLOCKED";
pub const DONE: &str = "PHASE_DONE";

/// What an expectation accepts: the first event of one of these types is the one awaited.
#[derive(Debug, Clone, Copy)]
pub enum Expected {
    /// the outcome of a request of this kind: one of its outcome events or its rejection, as
    /// the request table lists them
    OutcomeOf(RequestType),
    /// one event of this type
    Event(&'static str),
}

impl Expected {
    fn accepts(self, event_type: &str) -> bool {
        match self {
            Expected::OutcomeOf(kind) => {
                kind.outcome_types().contains(&event_type)
                    || kind.rejection_type() == Some(event_type)
            }
            Expected::Event(expected) => expected == event_type,
        }
    }
}

pub const TRANSITION_OUTCOMES: Expected = Expected::OutcomeOf(RequestType::Transition);
pub const CREATE_OUTCOMES: Expected = Expected::OutcomeOf(RequestType::CreateTicket);
pub const TASK_OUTCOMES: Expected = Expected::OutcomeOf(RequestType::CompleteTask);
pub const PHASE_ENTERED: Expected = Expected::Event(event_type::PHASE_ENTERED);
pub const PHASE_TRANSITIONED: Expected = Expected::Event(event_type::PHASE_TRANSITIONED);
pub const TASKS_GENERATED: Expected = Expected::Event(event_type::TASKS_GENERATED);
pub const CONTEXT_UPDATED: Expected = Expected::Event(event_type::CONTEXT_UPDATED);
pub const GATE_VALIDATED: Expected = Expected::Event(event_type::GATE_VALIDATED);

/// The bench side: publishes requests, receives every event.
pub struct World {
    pub client: RequestClient,
    pub tap: Tap,
    pub amqp: lapin::Connection,
    /// the worker's database, for setting up the history stage
    pub pool: PgPool,
    pub timeout: Duration,
}

impl World {
    pub async fn connect(settings: Settings, timeout: Duration) -> anyhow::Result<World> {
        let amqp =
            phaseflow_client::broker::connect(&settings.amqp.url, 30, "phaseflow-bench").await?;
        let channel = amqp.create_channel().await?;
        // declared up front so requests published before the worker is up wait in its queue
        phaseflow::messaging::topology::declare_worker_topology(&channel, &settings.amqp)
            .await
            .context("cannot declare the worker's topology")?;
        let tap_queue = format!("{}.tap", settings.amqp.events_exchange);
        let tap = Tap::start(&amqp, &settings.amqp.events_exchange, &tap_queue).await?;
        let client = RequestClient::connect(&settings.amqp.broker(), "phaseflow-bench").await?;
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(&settings.database.url)
            .await
            .context("cannot connect to the worker's database")?;
        Ok(World {
            client,
            tap,
            amqp,
            pool,
            timeout,
        })
    }

    pub fn request(
        &self,
        request_type: &str,
        subject: Option<&str>,
        data: Value,
    ) -> OutgoingRequest {
        OutgoingRequest {
            id: Uuid::new_v4().to_string(),
            request_type: request_type.to_owned(),
            subject: subject.map(str::to_owned),
            source: "agent/phaseflow-bench".to_owned(),
            actor: Some("agent-bench".to_owned()),
            correlation_id: None,
            data,
        }
    }

    pub async fn wait(
        &self,
        receiver: oneshot::Receiver<Arrived>,
        what: &str,
    ) -> anyhow::Result<Arrived> {
        match tokio::time::timeout(self.timeout, receiver).await {
            Ok(Ok(arrived)) => Ok(arrived),
            Ok(Err(_)) => bail!("the event tap stopped while waiting for {what}"),
            Err(_) => bail!("no {what} within {} s", self.timeout.as_secs()),
        }
    }
}

/// An event as it arrived.
pub struct Arrived {
    pub event: Value,
    pub at: Instant,
    pub wall: DateTime<Utc>,
}

impl Arrived {
    pub fn kind(&self) -> &str {
        self.event["type"].as_str().unwrap_or_default()
    }

    pub fn id(&self) -> String {
        self.event["id"].as_str().unwrap_or_default().to_owned()
    }

    pub fn data(&self) -> &Value {
        &self.event["data"]
    }
}

struct Waiter {
    types: Expected,
    reply: oneshot::Sender<Arrived>,
}

#[derive(Default)]
struct TapState {
    /// by causation id
    waiters: HashMap<String, Vec<Waiter>>,
    /// events nobody waited for yet, by causation id
    early: HashMap<String, Vec<Arrived>>,
}

/// Routes every event on the events exchange to whoever waits for it, by `causationid` and type.
#[derive(Clone)]
pub struct Tap {
    state: Arc<Mutex<TapState>>,
}

impl Tap {
    async fn start(
        connection: &lapin::Connection,
        exchange: &str,
        queue: &str,
    ) -> anyhow::Result<Tap> {
        let channel = connection.create_channel().await?;
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
            .await?;
        channel
            .queue_bind(
                queue.into(),
                exchange.into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut consumer = channel
            .basic_consume(
                queue.into(),
                "phaseflow-bench-tap".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let tap = Tap {
            state: Arc::default(),
        };
        let router = tap.clone();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let at = Instant::now();
                if let Ok(event) = serde_json::from_slice::<Value>(&delivery.data) {
                    router.dispatch(event, at, Utc::now());
                }
            }
            // the tap is gone: fail every waiter at once
            router.lock().waiters.clear();
        });
        Ok(tap)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TapState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The first event caused by `causation` whose type is one of `types`.
    pub fn expect(&self, causation: &str, types: Expected) -> oneshot::Receiver<Arrived> {
        let (reply, receiver) = oneshot::channel();
        let mut state = self.lock();
        if let Some(early) = state.early.get_mut(causation) {
            if let Some(position) = early
                .iter()
                .position(|arrived| types.accepts(arrived.kind()))
            {
                let arrived = early.remove(position);
                if early.is_empty() {
                    state.early.remove(causation);
                }
                let _ = reply.send(arrived);
                return receiver;
            }
        }
        state
            .waiters
            .entry(causation.to_owned())
            .or_default()
            .push(Waiter { types, reply });
        receiver
    }

    /// Drops whatever is kept for `causation`.
    pub fn forget(&self, causation: &str) {
        let mut state = self.lock();
        state.early.remove(causation);
        state.waiters.remove(causation);
    }

    /// Drops events nobody waited for (between stages).
    pub fn reset(&self) {
        self.lock().early.clear();
    }

    fn dispatch(&self, event: Value, at: Instant, wall: DateTime<Utc>) {
        let Some(causation) = event["causationid"].as_str().map(str::to_owned) else {
            return;
        };
        let kind = event["type"].as_str().unwrap_or_default().to_owned();
        let mut state = self.lock();
        if let Some(waiters) = state.waiters.get_mut(&causation) {
            if let Some(position) = waiters
                .iter()
                .position(|waiter| waiter.types.accepts(kind.as_str()))
            {
                let waiter = waiters.remove(position);
                if waiters.is_empty() {
                    state.waiters.remove(&causation);
                }
                let _ = waiter.reply.send(Arrived { event, at, wall });
                return;
            }
        }
        state
            .early
            .entry(causation)
            .or_default()
            .push(Arrived { event, at, wall });
    }
}

impl World {
    /// Closes the driver's connections.
    pub async fn close(self: Arc<World>) {
        self.pool.close().await;
        let _ = self.amqp.close(200, "benchmark done".into()).await;
        if let Ok(world) = Arc::try_unwrap(self) {
            world.client.close().await;
        }
    }
}
