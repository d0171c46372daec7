//! What a waiting `claim_task` waits on. A task becomes claimable only through a transaction
//! that writes events (a task created, released, expired or completed, a ticket moved or
//! unblocked, a budget raised), and every such transaction notifies the outbox's channel. One
//! listener per process turns those notifications into a counter that waiters watch, so a
//! thousand waiting agents cost one database connection, and a waiter looks again only when
//! something happened (or, should notifications be lost while the listener reconnects, after
//! `mcp.recheck_ms`).
//!
//! The listener starts with the first claim that may wait, and stops with the process; it holds
//! one connection of the pool meanwhile. Nothing here decides
//! whether a task is claimable: waiters ask the workflow.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::{watch, OnceCell};
use tokio_util::sync::CancellationToken;

use crate::store;

/// How long the listener waits before connecting again after losing its connection.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// The process's notifications of new events, for waiters.
#[derive(Clone)]
pub struct Wakeups {
    pool: PgPool,
    stop: CancellationToken,
    /// the counter of notifications, once the listener runs
    counter: Arc<OnceCell<watch::Receiver<u64>>>,
}

impl Wakeups {
    /// Wakeups from `pool`'s database; the listener (started by the first waiter) ends with
    /// `stop`.
    pub fn new(pool: PgPool, stop: CancellationToken) -> Self {
        Wakeups {
            pool,
            stop,
            counter: Arc::new(OnceCell::new()),
        }
    }

    /// A watch on the counter, which changes with every notification (several at once count
    /// as one change).
    pub async fn subscribe(&self) -> watch::Receiver<u64> {
        self.counter
            .get_or_init(|| async {
                let (sender, receiver) = watch::channel(0);
                tokio::spawn(listen(self.pool.clone(), sender, self.stop.clone()));
                receiver
            })
            .await
            .clone()
    }
}

/// Counts the outbox's notifications until `stop`, connecting again after a failure.
async fn listen(pool: PgPool, counter: watch::Sender<u64>, stop: CancellationToken) {
    loop {
        let connected = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(store::outbox::NOTIFY_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            result = connected => match result {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for new events; claim_task waiters look again every mcp.recheck_ms");
                    tokio::select! {
                        () = tokio::time::sleep(RECONNECT_DELAY) => continue,
                        () = stop.cancelled() => return,
                    }
                }
            },
            () = stop.cancelled() => return,
        };
        loop {
            tokio::select! {
                received = listener.recv() => match received {
                    Ok(_) => {
                        counter.send_modify(|count| *count = count.wrapping_add(1));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "lost the connection listening for new events");
                        // whatever happened meanwhile: every waiter looks again
                        counter.send_modify(|count| *count = count.wrapping_add(1));
                        break;
                    }
                },
                () = stop.cancelled() => return,
            }
        }
    }
}
