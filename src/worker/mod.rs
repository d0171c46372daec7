//! The `worker` command: wires configuration, Postgres, the workflow, the consumers, the
//! outbox relay, the lease sweep and the ops endpoints together, and runs them until asked to
//! stop.
//!
//! Shutdown order: readiness turns 503, consumers are cancelled and in-flight messages finish,
//! then the relay drains what is committed, then connections close. Whatever is unfinished when
//! the grace period ends stays in its queue or in the outbox for the next worker.

pub mod health;
pub mod leases;
pub mod ops;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::{redact_url, Settings};
use crate::messaging::consumer::{self, ConsumerContext};
use crate::messaging::relay::Relay;
use crate::retry::OutageLog;
use crate::workflow::{RetryPolicy, Workflow};
use crate::{store, telemetry};
use health::Health;

/// Runs a worker until `stop` is cancelled.
pub async fn run(settings: Settings, stop: CancellationToken) -> anyhow::Result<()> {
    let definition = settings.workflow_definition()?;
    telemetry::metrics_handle();
    tracing::info!(
        database = %redact_url(&settings.database.url),
        amqp = %redact_url(&settings.amqp.url),
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
    let ops_stop = CancellationToken::new();
    let mut ops_task = tokio::spawn(ops::serve(
        settings.ops.addr,
        pool.clone(),
        health.clone(),
        ops_stop.clone(),
    ));
    let workflow = Workflow::new(pool.clone(), definition, settings.context.max_tokens)
        .with_leases(settings.tasks.lease_policy())
        .with_operators(settings.auth.operators.clone());
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
        };
        if let Err(error) = migrated {
            ops_stop.cancel();
            ops_task.await.ok();
            pool.close().await;
            return if stop.is_cancelled() {
                Ok(())
            } else {
                Err(error)
            };
        }
    }

    let consumers_stop = stop.child_token();
    let relay_stop = CancellationToken::new();
    let abandon = CancellationToken::new();

    let sweep_task = tokio::spawn(leases::sweep(
        workflow.clone(),
        settings.tasks.clone(),
        consumers_stop.clone(),
    ));
    let reports = {
        let health = health.clone();
        tokio::spawn(crate::replicas::Replica::this_process("worker").report(
            workflow.clone(),
            settings.ops.replica_report_interval(),
            consumers_stop.clone(),
            move || crate::replicas::Status {
                ready: health.ready(),
                in_flight: health.in_flight(),
                handled: health.handled(),
            },
        ))
    };
    let consumer_context = Arc::new(ConsumerContext {
        workflow,
        settings: settings.amqp.clone(),
        retry: RetryPolicy {
            min_delay: Duration::from_millis(settings.worker.retry_min_delay_ms),
            max_delay: Duration::from_millis(settings.worker.retry_max_delay_ms),
            max_attempts: None,
        },
        health: health.clone(),
        rabbitmq: rabbitmq.clone(),
    });
    let consumers = tokio::spawn(consumer::run(
        consumer_context,
        consumers_stop.clone(),
        abandon.clone(),
    ));
    let relay = Relay {
        pool: pool.clone(),
        amqp: settings.amqp.clone(),
        outbox: settings.outbox.clone(),
        health: health.clone(),
        rabbitmq,
        postgres,
    };
    let relay_task = tokio::spawn(relay.run(relay_stop.clone(), abandon.clone()));

    tokio::select! {
        () = stop.cancelled() => {}
        result = &mut ops_task => {
            // the ops server ended on its own: it could not bind
            stop.cancel();
            consumers.await.ok();
            sweep_task.await.ok();
            reports.await.ok();
            relay_stop.cancel();
            abandon.cancel();
            relay_task.await.ok();
            return match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(error),
                Err(error) => Err(error.into()),
            };
        }
    }

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
    consumers.await.ok();
    sweep_task.await.ok();
    reports.await.ok();
    relay_stop.cancel();
    relay_task.await.ok();
    abandon_timer.abort();
    ops_stop.cancel();
    ops_task.await.ok();
    pool.close().await;
    tracing::info!("phaseflow worker stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn termination_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the worker");
                interrupt.await.ok();
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    interrupt.await.ok();
}
