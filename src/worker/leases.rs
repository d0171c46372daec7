//! The sweep of leases that ran out: every `tasks.lease_sweep_interval_ms`, this worker ends
//! the leases whose deadline passed (`Workflow::expire_leases`, in transactions of
//! `tasks.lease_sweep_batch`), reports and releases claims that make no progress
//! (`Workflow::sweep_stalls`), sets the live-leases gauges (in all and per agent), and writes
//! when the agents whose requests it applied were last seen. Every replica sweeps; the store's
//! row locks keep two from ending the same lease, so there is no leader to elect.
//!
//! An unavailable database is logged once through the Postgres outage log and tried again at
//! the next tick. On stop, a sweep under way is dropped: each of its transactions commits whole
//! or not at all, and the next sweep (of any replica) takes what it left. No lease rules and no
//! SQL here.

use std::collections::BTreeSet;
use std::time::Instant;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::config::TaskSettings;
use crate::workflow::Workflow;

use super::service::Service;

/// The lease sweep service.
pub struct LeaseSweeper {
    pub workflow: Workflow,
    pub settings: TaskSettings,
}

impl Service for LeaseSweeper {
    fn name(&self) -> &'static str {
        "lease sweep"
    }

    async fn start(self, stop: CancellationToken) -> anyhow::Result<()> {
        sweep(self.workflow, self.settings, stop).await;
        Ok(())
    }
}

/// Sweeps until `stop` is cancelled.
pub async fn sweep(workflow: Workflow, settings: TaskSettings, stop: CancellationToken) {
    let interval = settings.lease_sweep_interval();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let postgres = workflow.postgres_outages().clone();
    let mut agents = BTreeSet::new();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        let started = Instant::now();
        let swept = tokio::select! {
            swept = sweep_once(&workflow, settings.lease_sweep_batch, &mut agents) => swept,
            () = stop.cancelled() => return,
        };
        match swept {
            Ok(()) => postgres.succeeded("lease sweep"),
            Err(error) if error.is_transient() => {
                postgres.failed("lease sweep", started, &error, interval)
            }
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "the lease sweep failed")
            }
        }
    }
}

/// Ends every lease that ran out, then reports and releases stalled claims, a batch per
/// transaction, then counts the live leases, in all and per agent. `agents` holds the agents
/// whose gauge was set before, so that one holding none any more is set to 0.
async fn sweep_once(
    workflow: &Workflow,
    batch: u32,
    agents: &mut BTreeSet<String>,
) -> Result<(), crate::workflow::WorkflowError> {
    loop {
        let swept = workflow.expire_leases(batch).await?;
        if swept.total() < u64::from(batch) {
            break;
        }
    }
    loop {
        let swept = workflow.sweep_stalls(batch).await?;
        if swept.stalled < u64::from(batch) && swept.released < u64::from(batch) {
            break;
        }
    }
    let live = workflow.live_leases().await?;
    metrics::gauge!("phaseflow_task_leases_live").set(live as f64);
    let by_agent = workflow.live_leases_by_agent().await?;
    let holding: BTreeSet<String> = by_agent.iter().map(|(agent, _)| agent.clone()).collect();
    for gone in agents.difference(&holding) {
        metrics::gauge!("phaseflow_agent_live_claims", "agent" => gone.clone()).set(0.0);
    }
    for (agent, claims) in by_agent {
        metrics::gauge!("phaseflow_agent_live_claims", "agent" => agent).set(claims as f64);
    }
    *agents = holding;
    workflow.write_seen_agents().await
}
