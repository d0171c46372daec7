//! The workflow without the broker: a harness for the rules. Each test gets its own database on
//! the real Postgres; a request is parsed and applied through the workflow exactly as the worker
//! applies a message (same parsing, same transaction), and the events it wrote are taken from the
//! outbox at once, as the relay would take them. So a rule is tested one request at a time, with
//! nothing to wait for: `send` returns once the request's transaction has committed and its
//! events are in [`Events`].
//!
//! Its methods are named as [`super::TestApp`]'s, so a test reads the same on either.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use phaseflow::config::Settings;
use phaseflow::workflow::requests::{Command, RequestType};
use phaseflow::workflow::{Origin, Reply, RetryPolicy, Workflow};
use phaseflow::{protocol::Rejection, store};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use super::cleanup::{self, Cleanup, TestNames};
use super::events::Event;
use super::requests::Requests;
use super::{is_outcome_type, POSTGRES_URL};

pub use super::requests::ACTOR;

/// One test's database and the workflow over it.
pub struct Rules {
    pub settings: Settings,
    pub database: String,
    pub pool: PgPool,
    pub workflow: Workflow,
    pub events: Events,
    /// drops the database however the test ends
    cleanup: Cleanup,
}

impl Rules {
    /// A fresh database with the migrations applied, and the repository's workflow definition.
    pub async fn new() -> Rules {
        Rules::with_settings(|_| {}).await
    }

    /// As [`Rules::new`], with settings adjusted first (another workflow definition, operators).
    pub async fn with_settings(adjust: impl FnOnce(&mut Settings)) -> Rules {
        phaseflow::telemetry::init_logging_with("warn");
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
        adjust(&mut settings);
        let admin = PgConnection::connect(&format!("{POSTGRES_URL}/postgres"))
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "cannot reach Postgres at {POSTGRES_URL} ({error}). Start it with: \
                     pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
                )
            });
        admin.close().await.ok();
        let cleanup = Cleanup::database(names);
        store::migrate(&settings.database.url)
            .await
            .expect("migrations apply");
        let pool = PgPool::connect(&settings.database.url)
            .await
            .expect("test database reachable");
        let workflow = Workflow::new(
            pool.clone(),
            settings
                .workflow_definition()
                .expect("the definition loads"),
            settings.context.max_tokens,
        )
        .with_leases(settings.lease_policy())
        .with_budgets(settings.budget_policy())
        .with_agents(settings.agent_policy());
        Rules {
            settings,
            database,
            pool,
            workflow,
            events: Events::default(),
            cleanup,
        }
    }

    /// Applies a request with a new id and returns the id.
    pub async fn send(&self, request_type: &str, subject: Option<&str>, data: Value) -> String {
        let id = Uuid::new_v4().to_string();
        self.send_with_id(&id, request_type, subject, data).await;
        id
    }

    /// Applies a request with the given id (a repeated id is applied once, as over the broker),
    /// then takes every event it wrote from the outbox into [`Rules::events`].
    pub async fn send_with_id(
        &self,
        id: &str,
        request_type: &str,
        subject: Option<&str>,
        data: Value,
    ) {
        self.apply(id, ACTOR, request_type, subject, data).await;
    }

    /// Applies a request from another agent than [`ACTOR`] and returns its outcome event.
    pub async fn send_as(
        &self,
        actor: &str,
        request_type: &str,
        subject: Option<&str>,
        data: Value,
    ) -> Value {
        let id = Uuid::new_v4().to_string();
        self.apply(&id, actor, request_type, subject, data).await;
        self.outcome_of(&id).await
    }

    /// Ends the leases that ran out, as a worker's sweep does, and takes the events it wrote.
    pub async fn sweep_leases(&self) -> phaseflow::workflow::LeaseSweep {
        let swept = self
            .workflow
            .expire_leases(1000)
            .await
            .expect("the lease sweep runs");
        self.take_events().await;
        swept
    }

    /// Reports and releases stalled claims, as a worker's sweep does, and takes the events it
    /// wrote.
    pub async fn sweep_stalls(&self) -> phaseflow::workflow::StallSweep {
        let swept = self
            .workflow
            .sweep_stalls(1000)
            .await
            .expect("the stall sweep runs");
        self.take_events().await;
        swept
    }

    async fn apply(
        &self,
        id: &str,
        actor: &str,
        request_type: &str,
        subject: Option<&str>,
        data: Value,
    ) {
        let kind = RequestType::parse(request_type)
            .unwrap_or_else(|error| panic!("`{request_type}` is not a request type: {error}"));
        let command = Command::parse(kind, subject, Some(&data)).map_err(Rejection::from);
        let origin = Origin {
            message_id: id.to_owned(),
            correlation_id: id.to_owned(),
            actor: actor.to_owned(),
            reply: Some(Reply {
                routing_key: "rules".to_owned(),
                correlation_id: id.to_owned(),
            }),
            // the harness stands for a caller whose identity was checked, as a token is
            authenticated: true,
            trace: None,
        };
        let retry = RetryPolicy {
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
            max_attempts: Some(3),
        };
        self.workflow
            .handle_request(&origin, kind, &command, true, retry)
            .await
            .unwrap_or_else(|error| panic!("{request_type} {id} failed: {error:#}"));
        // a concurrent request's taking may hold some of this one's events for a moment
        for _ in 0..100 {
            self.take_events().await;
            if self.has_outcome(id) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn has_outcome(&self, request_id: &str) -> bool {
        self.events.all().iter().any(|event| {
            event["causationid"] == json!(request_id)
                && is_outcome_type(event["type"].as_str().unwrap_or_default())
        })
    }

    /// Moves what the outbox holds into [`Rules::events`], in the order it was written.
    pub async fn take_events(&self) {
        let mut transaction = self.pool.begin().await.expect("a transaction");
        let taken = store::outbox::claim_for_publishing(&mut transaction, 10_000)
            .await
            .expect("the outbox is read");
        transaction.commit().await.expect("the outbox is emptied");
        self.events
            .seen
            .lock()
            .expect("events")
            .extend(taken.events.iter().map(|event| {
                serde_json::from_slice::<Value>(&event.body_to_publish())
                    .expect("an event is stored as JSON")
            }));
    }

    /// The outcome event of a request that was sent.
    pub async fn outcome_of(&self, request_id: &str) -> Value {
        self.events
            .wait_for(|event| {
                event["causationid"] == json!(request_id)
                    && is_outcome_type(event["type"].as_str().unwrap_or_default())
            })
            .await
    }

    /// Creates a ticket (in BACKLOG) and returns its id ([`Requests::create_ticket`]).
    pub async fn create_ticket(&self, title: &str) -> String {
        Requests::create_ticket(self, title).await
    }

    /// Drops the test's database. A test that ends otherwise is cleaned up by its guard.
    pub async fn shutdown(self) {
        self.pool.close().await;
        self.cleanup.run().await;
    }
}

impl Requests for Rules {
    async fn publish(
        &self,
        actor: &str,
        id: &str,
        request_type: &str,
        subject: Option<&str>,
        data: Value,
    ) {
        self.apply(id, actor, request_type, subject, data).await;
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

/// Every event the requests of a test wrote, oldest first.
#[derive(Default)]
pub struct Events {
    seen: Mutex<Vec<Value>>,
}

impl Events {
    pub fn all(&self) -> Vec<Value> {
        self.seen.lock().expect("events").clone()
    }

    /// Every event so far, read as envelopes.
    pub fn typed(&self) -> Vec<Event> {
        self.all().into_iter().map(Event::from_json).collect()
    }

    /// Events of one type about one ticket, oldest first.
    pub fn of_type(&self, event_type: &str, ticket_id: &str) -> Vec<Event> {
        self.typed()
            .into_iter()
            .filter(|event| event.is_about(event_type, ticket_id))
            .collect()
    }

    pub fn for_ticket(&self, ticket_id: &str) -> Vec<Value> {
        self.all()
            .into_iter()
            .filter(|event| event["subject"] == json!(ticket_id))
            .collect()
    }

    /// The first event that matches. Every request's events are here when `send` returns, so
    /// there is nothing to wait for: no match fails the test.
    pub async fn wait_for(&self, predicate: impl Fn(&Value) -> bool) -> Value {
        let events = self.all();
        events
            .iter()
            .find(|event| predicate(event))
            .cloned()
            .unwrap_or_else(|| panic!("no such event among {events:#?}"))
    }
}
