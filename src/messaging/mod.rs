//! RabbitMQ: the only module of the service that uses lapin (the client that agents, `publish`,
//! the demo and the review agent use is `phaseflow_client::broker`). The topology the worker
//! declares, the request consumer, the outbox relay, the reconnect loop they share (`session`),
//! dead-lettering and the API's event feed.
//!
//! Nothing here decides workflow outcomes: consumers hand decoded messages to `workflow` and
//! ack, nack or dead-letter according to what comes back.

pub mod consumer;
pub mod dead_letters;
pub mod feed;
pub mod relay;
mod session;
pub mod topology;

use std::time::Duration;

pub use lapin::Error as AmqpError;

pub use phaseflow_client::broker::connect;

/// Whether the broker accepts a connection within `timeout`: connects, then closes the
/// connection again. `name` shows in the management UI meanwhile. The error says why not.
pub async fn broker_reachable(
    url: &str,
    heartbeat_secs: u16,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    match tokio::time::timeout(timeout, connect(url, heartbeat_secs, name)).await {
        Ok(Ok(connection)) => {
            let _ = connection.close(200, "readiness checked".into()).await;
            Ok(())
        }
        Ok(Err(error)) => Err(error),
        Err(_) => Err(anyhow::anyhow!("no answer within {timeout:?}")),
    }
}
