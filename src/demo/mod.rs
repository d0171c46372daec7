//! `phaseflow demo`: a team of simulated agents (`phaseflow_agents::demo`) drives a few tickets
//! from BACKLOG to DONE through a running worker, or one this command starts in its own process.
//! The team is a client like any other; this module only starts and stops the worker around it.

use std::time::Instant;

use anyhow::{bail, Context};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;

pub use phaseflow_agents::demo::{DemoOptions, DemoSummary};

/// Runs the demo, writing each line of its log to `print`. Fails when not every ticket is DONE
/// within `options.timeout`.
pub async fn run(
    settings: Settings,
    options: DemoOptions,
    print: impl FnMut(&str) + Send,
) -> anyhow::Result<DemoSummary> {
    run_until(settings, options, CancellationToken::new(), print).await
}

/// [`run`], ended early when `stop` is cancelled: the demo then fails, after stopping its
/// in-process worker gracefully.
pub async fn run_until(
    settings: Settings,
    options: DemoOptions,
    stop: CancellationToken,
    mut print: impl FnMut(&str) + Send,
) -> anyhow::Result<DemoSummary> {
    if !crate::domain::LEASE_SECONDS.contains(&options.lease_seconds) {
        bail!("--lease-seconds must be between 10 and 86400");
    }
    let started = Instant::now();
    let worker_stop = CancellationToken::new();
    let worker = options
        .in_process_worker
        .then(|| tokio::spawn(crate::worker::run(settings.clone(), worker_stop.clone())));
    let broker = settings.amqp.broker();
    let outcome = tokio::select! {
        outcome = phaseflow_agents::demo::drive(&broker, &options, started, &mut print) => outcome,
        () = stop.cancelled() => Err(anyhow::anyhow!("the demo was stopped")),
    };
    if let Some(worker) = worker {
        worker_stop.cancel();
        worker.await.context("the in-process worker panicked")??;
    }
    outcome
}
