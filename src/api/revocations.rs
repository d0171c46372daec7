//! Token revocations as they happen: every API process listens on Postgres for the revocations
//! any process made (`store::agents::REVOKED_CHANNEL`), and tells its live streams, each of
//! which checks whether its own token is still live and ends when it is not.
//!
//! A notification can be missed while the listening connection is down: after every
//! (re)connection the streams are told to check whatever agent they serve, and each stream also
//! checks on its own every [`RECHECK_INTERVAL`]. Requests other than streams need none of this:
//! their token is looked up on every request.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::store::agents::REVOKED_CHANNEL;

/// How often a live stream opened with an issued token checks it even without a notification.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(30);

/// How long the listener waits before connecting again after losing Postgres.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// What the live streams are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// the tokens of this agent were revoked
    Agent(Arc<str>),
    /// notifications may have been missed: every stream checks its token
    Unknown,
}

/// The revocations this process hears of.
#[derive(Clone)]
pub struct Revocations {
    sender: broadcast::Sender<Revoked>,
}

impl Default for Revocations {
    fn default() -> Self {
        Revocations {
            sender: broadcast::channel(64).0,
        }
    }
}

impl Revocations {
    pub fn subscribe(&self) -> broadcast::Receiver<Revoked> {
        self.sender.subscribe()
    }

    /// Listens on Postgres until `stop`, passing every revocation on.
    pub async fn listen(self, pool: PgPool, stop: CancellationToken) {
        loop {
            let listened = tokio::select! {
                listened = self.listen_once(&pool) => listened,
                () = stop.cancelled() => return,
            };
            if let Err(error) = listened {
                tracing::debug!(%error, "lost the LISTEN connection for token revocations; connecting again");
            }
            tokio::select! {
                () = tokio::time::sleep(RECONNECT_DELAY) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    async fn listen_once(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(REVOKED_CHANNEL).await?;
        // whatever was revoked while no connection listened
        let _ = self.sender.send(Revoked::Unknown);
        loop {
            let notification = listener.recv().await?;
            let _ = self
                .sender
                .send(Revoked::Agent(Arc::from(notification.payload())));
        }
    }
}
