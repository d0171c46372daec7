//! The worker's upkeep of its own tables, each on its own schedule:
//!
//! - inbox pruning: every [`PRUNE_INTERVAL`] (and at start), applied message ids older than
//!   `outbox.inbox_retention_hours` are deleted; with the default retention, 0, ids are kept
//!   for ever and nothing is deleted;
//! - outbox vacuum: every `outbox.vacuum_interval_ms` (0: never, autovacuum alone), the outbox
//!   is vacuumed, so that the dead rows every published event leaves do not slow down the
//!   relay's claims. A vacuum that finds another one running (another replica's, autovacuum)
//!   skips the table.
//!
//! Every replica runs both; they need no coordination, since a prune deletes what any replica
//! may delete and a vacuum skips while another runs. An unavailable database is logged through
//! the Postgres outage log and tried again at the next turn. No SQL here: the statements live in
//! `store::inbox` and `store::outbox`.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::time::Instant as Deadline;
use tokio_util::sync::CancellationToken;

use crate::config::OutboxSettings;
use crate::retry::OutageLog;
use crate::store;
use crate::store::outbox::OutboxVacuum;

use super::service::Service;

/// How often inbox rows older than `outbox.inbox_retention_hours` are deleted.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(600);

/// The maintenance service.
pub struct Maintenance {
    pub pool: PgPool,
    /// `inbox_retention_hours` and `vacuum_interval_ms`
    pub outbox: OutboxSettings,
    /// Postgres outages, shared with the rest of the worker
    pub postgres: OutageLog,
}

impl Service for Maintenance {
    fn name(&self) -> &'static str {
        "maintenance"
    }

    async fn start(self, stop: CancellationToken) -> anyhow::Result<()> {
        self.run(stop).await;
        Ok(())
    }
}

impl Maintenance {
    /// Prunes and vacuums on their schedules until `stop`. A turn under way when `stop` comes
    /// is dropped: a prune is one statement, committed whole or not at all, and a vacuum leaves
    /// nothing half done.
    pub async fn run(self, stop: CancellationToken) {
        let vacuum_interval = Duration::from_millis(self.outbox.vacuum_interval_ms);
        let prune = self.outbox.inbox_retention_hours > 0;
        let mut vacuum = OutboxVacuum::new(self.pool.clone());
        let mut next_prune = Deadline::now();
        let mut next_vacuum = Deadline::now() + vacuum_interval;
        loop {
            let wake = match (prune, vacuum_interval.is_zero()) {
                (false, true) => None,
                (false, false) => Some(next_vacuum),
                (true, true) => Some(next_prune),
                (true, false) => Some(next_prune.min(next_vacuum)),
            };
            let Some(wake) = wake else {
                // nothing to maintain: wait for the stop
                stop.cancelled().await;
                break;
            };
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                () = stop.cancelled() => break,
            }
            if prune && Deadline::now() >= next_prune {
                tokio::select! {
                    () = self.prune_inbox() => {}
                    () = stop.cancelled() => break,
                }
                next_prune = Deadline::now() + PRUNE_INTERVAL;
            }
            if !vacuum_interval.is_zero() && Deadline::now() >= next_vacuum {
                tokio::select! {
                    () = self.vacuum_outbox(&mut vacuum, vacuum_interval) => {}
                    () = stop.cancelled() => break,
                }
                next_vacuum = Deadline::now() + vacuum_interval;
            }
        }
        vacuum.close().await;
    }

    /// Deletes the inbox rows past their retention, a batch per statement until none is left.
    async fn prune_inbox(&self) {
        let started = Instant::now();
        let mut deleted = 0;
        let outcome = loop {
            match store::inbox::prune(&self.pool, self.outbox.inbox_retention_hours).await {
                Ok(batch) => {
                    deleted += batch;
                    if batch < store::inbox::PRUNE_BATCH {
                        break Ok(());
                    }
                }
                Err(error) => break Err(error),
            }
        };
        if deleted > 0 {
            tracing::info!(deleted, "pruned old inbox rows");
        }
        match outcome {
            Ok(()) => self.postgres.succeeded("inbox pruning"),
            Err(error) if store::is_transient(&error) => {
                self.postgres
                    .failed("inbox pruning", started, &error, PRUNE_INTERVAL)
            }
            Err(error) => tracing::warn!(%error, "pruning the inbox failed"),
        }
    }

    /// Vacuums the outbox, unless another vacuum runs.
    async fn vacuum_outbox(&self, vacuum: &mut OutboxVacuum, interval: Duration) {
        let started = Instant::now();
        match vacuum.run().await {
            Ok(()) => self.postgres.succeeded("outbox vacuum"),
            Err(error) if store::is_transient(&error) => {
                self.postgres
                    .failed("outbox vacuum", started, &error, interval)
            }
            Err(error) => tracing::warn!(%error, "vacuuming the outbox failed"),
        }
    }
}
