//! The `worker` command: wires configuration, Postgres and the workflow to the worker's
//! services, and runs them until asked to stop.
//!
//! The services (`service`), in the order they start:
//!
//! 1. the ops server (`ops`): `/healthz`, `/readyz`, `/metrics`, answering from the start (also
//!    while the migrations wait for Postgres, which run next) to the end of the stop;
//! 2. the outbox relay (`messaging::relay`): publishes what is committed;
//! 3. the lease sweep (`leases`): ends the leases that ran out;
//! 4. the replica report (`crate::replicas`): this worker's row on the Operations page;
//! 5. maintenance (`maintenance`): inbox pruning and outbox vacuum on their own schedules;
//! 6. the request consumer (`messaging::consumer`): takes work last, once everything it leans
//!    on runs.
//!
//! Stop (SIGTERM or SIGINT, or a service that fails on its own, such as an ops address that
//! cannot be bound): readiness turns 503 first; then the services stop in the reverse order:
//! the consumer is cancelled and its in-flight messages finish, maintenance, the replica report
//! and the lease sweep end, the relay drains what is committed, the ops server closes; last the
//! database pool closes. When `worker.shutdown_grace_ms` runs out, the consumer and the relay
//! give up what is unfinished, which stays in its queue or in the outbox for the next worker.

pub mod health;
pub mod leases;
pub mod maintenance;
pub mod ops;
pub mod service;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::{redact_url, Settings};
use crate::messaging::consumer::{self, ConsumerContext};
use crate::messaging::relay::Relay;
use crate::replicas::{Replica, Status};
use crate::retry::OutageLog;
use crate::workflow::{RetryPolicy, Workflow};
use crate::{store, telemetry};
use health::Health;
use leases::LeaseSweeper;
use maintenance::Maintenance;
use ops::OpsServer;
use service::{Service, Services};

/// Runs a worker until `stop` is cancelled. Fails when a service fails on its own (after
/// stopping the others) or when the migrations fail.
pub async fn run(settings: Settings, stop: CancellationToken) -> anyhow::Result<()> {
    let definition = settings.workflow_definition()?;
    telemetry::metrics_handle();
    tracing::info!(
        database = %redact_url(&settings.database.url),
        amqp = %redact_url(&settings.amqp.addresses().join(",")),
        requests_queue = %settings.amqp.requests_queue,
        prefetch = settings.amqp.prefetch,
        "phaseflow worker starting"
    );
    // the pool connects lazily, so health and metrics answer while Postgres is still away
    let pool = store::connect(
        &settings.database.url,
        settings.database.max_connections,
        settings.acquire_timeout(),
    )
    .await?;
    let health = Health::default();
    let mut services = Services::new();
    services.start(OpsServer {
        addr: settings.ops.addr,
        pool: pool.clone(),
        health: health.clone(),
    });
    let workflow = Workflow::new(pool.clone(), definition, settings.context.max_tokens)
        .with_leases(settings.lease_policy())
        .with_budgets(settings.budget_policy())
        .with_agents(settings.agent_policy())
        .with_seen_agents();
    // one log per server for every loop of this worker that retries against it
    let postgres = workflow.postgres_outages().clone();
    let rabbitmq = OutageLog::new("RabbitMQ");
    if settings.worker.migrate_on_start {
        let migrated = store::migrate_when_reachable(
            &settings.database.url,
            settings.worker.retry_backoff(),
            &postgres,
        );
        let migrated = tokio::select! {
            result = migrated => result.context("migrations failed"),
            () = stop.cancelled() => Err(anyhow::anyhow!("stopped before migrations finished")),
            error = services.ended() => Err(error),
        };
        if let Err(error) = migrated {
            services.stop().await;
            pool.close().await;
            return if stop.is_cancelled() {
                Ok(())
            } else {
                Err(error)
            };
        }
    }

    // cancelled when the grace period of a stop runs out
    let abandon = CancellationToken::new();
    services.start(OutboxRelay {
        relay: Relay {
            pool: pool.clone(),
            amqp: settings.amqp.clone(),
            outbox: settings.outbox.clone(),
            health: health.clone(),
            rabbitmq: rabbitmq.clone(),
            postgres: postgres.clone(),
        },
        abandon: abandon.clone(),
    });
    services.start(LeaseSweeper {
        workflow: workflow.clone(),
        settings: settings.tasks.clone(),
    });
    services.start(ReplicaReport {
        workflow: workflow.clone(),
        interval: settings.ops.replica_report_interval(),
        health: health.clone(),
    });
    services.start(Maintenance {
        pool: pool.clone(),
        outbox: settings.outbox.clone(),
        postgres,
    });
    services.start(RequestConsumer {
        context: Arc::new(ConsumerContext {
            workflow,
            settings: settings.amqp.clone(),
            retry: RetryPolicy {
                min_delay: Duration::from_millis(settings.worker.retry_min_delay_ms),
                max_delay: Duration::from_millis(settings.worker.retry_max_delay_ms),
                max_attempts: None,
            },
            health: health.clone(),
            rabbitmq,
        }),
        abandon: abandon.clone(),
    });

    let failure = tokio::select! {
        () = stop.cancelled() => None,
        error = services.ended() => Some(error),
    };
    // a failure is logged by the caller, with what `run` returns
    tracing::info!(
        grace_ms = settings.worker.shutdown_grace_ms,
        "shutting down"
    );
    health.begin_shutdown();
    let grace = settings.shutdown_grace();
    let abandon_timer = {
        let abandon = abandon.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            abandon.cancel();
        })
    };
    services.stop().await;
    abandon_timer.abort();
    pool.close().await;
    tracing::info!("phaseflow worker stopped");
    failure.map_or(Ok(()), Err)
}

/// The request consumer as a service: on stop it cancels its consumers and lets in-flight
/// messages finish, until `abandon`.
struct RequestConsumer {
    context: Arc<ConsumerContext>,
    abandon: CancellationToken,
}

impl Service for RequestConsumer {
    fn name(&self) -> &'static str {
        "consumer"
    }

    async fn start(self, stop: CancellationToken) -> anyhow::Result<()> {
        consumer::run(self.context, stop, self.abandon).await;
        Ok(())
    }
}

/// The outbox relay as a service: on stop it publishes what is committed, until `abandon`.
struct OutboxRelay {
    relay: Relay,
    abandon: CancellationToken,
}

impl Service for OutboxRelay {
    fn name(&self) -> &'static str {
        "outbox relay"
    }

    async fn start(self, stop: CancellationToken) -> anyhow::Result<()> {
        self.relay.run(stop, self.abandon).await;
        Ok(())
    }
}

/// This worker's reports to the Operations page, every `ops.replica_report_ms`.
struct ReplicaReport {
    workflow: Workflow,
    interval: Duration,
    health: Health,
}

impl Service for ReplicaReport {
    fn name(&self) -> &'static str {
        "replica report"
    }

    async fn start(self, stop: CancellationToken) -> anyhow::Result<()> {
        let health = self.health;
        Replica::this_process("worker")
            .report(self.workflow, self.interval, stop, move || Status {
                ready: health.ready(),
                in_flight: health.in_flight(),
                handled: health.handled(),
            })
            .await;
        Ok(())
    }
}
