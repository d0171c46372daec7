//! Each worker and API process reports itself to Postgres every `ops.replica_report_ms` (its
//! kind, host, readiness, in-flight and handled work), so that the board's Operations page can
//! list the replicas of a deployment without reaching into each one. A process that stops
//! reporting is shown as stale; its row is deleted after a day.
//!
//! A failed report is logged at debug and tried at the next interval: the reports are for people,
//! and the components that need Postgres log its outages themselves.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::store::board::ReplicaReport;
use crate::workflow::Workflow;

/// What a process is, for its reports.
#[derive(Debug, Clone)]
pub struct Replica {
    /// unique per process: kind, host, pid and a random part
    pub id: String,
    /// `worker` or `api`
    pub kind: &'static str,
    pub host: String,
    pub pid: u32,
    pub started_at: DateTime<Utc>,
}

/// What a process says about its work at a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub ready: bool,
    pub in_flight: u64,
    pub handled: u64,
}

impl Replica {
    /// This process, as a `kind` (`worker` or `api`).
    pub fn this_process(kind: &'static str) -> Self {
        let host = host_name();
        let pid = std::process::id();
        let random = uuid::Uuid::new_v4().simple().to_string();
        Replica {
            id: format!("{kind}-{host}-{pid}-{}", &random[..8]),
            kind,
            host,
            pid,
            started_at: Utc::now(),
        }
    }

    /// Reports `status()` now and every `interval` until `stop` is cancelled.
    pub async fn report(
        self,
        workflow: Workflow,
        interval: Duration,
        stop: CancellationToken,
        status: impl Fn() -> Status + Send,
    ) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = stop.cancelled() => return,
            }
            let now = status();
            let report = ReplicaReport {
                replica_id: &self.id,
                kind: self.kind,
                host: &self.host,
                pid: i32::try_from(self.pid).unwrap_or(i32::MAX),
                started_at: self.started_at,
                ready: now.ready,
                in_flight: i64::try_from(now.in_flight).unwrap_or(i64::MAX),
                handled: i64::try_from(now.handled).unwrap_or(i64::MAX),
            };
            // a report under way when `stop` comes is dropped: the next process reports anew
            let reported = tokio::select! {
                reported = workflow.report_replica(&report) => reported,
                () = stop.cancelled() => return,
            };
            if let Err(error) = reported {
                tracing::debug!(%error, replica = %self.id, "the replica report failed; trying at the next interval");
            }
        }
    }
}

/// The host name: `HOSTNAME` when set (containers set it), else the kernel's.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|name| name.trim().to_owned())
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}
