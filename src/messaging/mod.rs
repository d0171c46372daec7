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

use std::sync::OnceLock;
use std::time::Duration;

use lapin::Connection;

use crate::config::AmqpSettings;

pub use lapin::Error as AmqpError;

/// Where this process starts looking among the broker's addresses: chosen once, at random, so
/// that the replicas of a cluster's clients spread over its nodes rather than all taking the
/// first.
static FIRST_ADDRESS: OnceLock<usize> = OnceLock::new();

/// Opens a connection to the broker: to the first of its addresses (`amqp.urls`) that answers,
/// from this process's own starting point around the list. Returns it with the address it is
/// connected to. `name` shows in the management UI. When no address answers, the error names
/// each with its reason (credentials masked).
pub async fn connect(settings: &AmqpSettings, name: &str) -> anyhow::Result<(Connection, String)> {
    let addresses = settings.addresses();
    let first = *FIRST_ADDRESS.get_or_init(|| uuid::Uuid::new_v4().as_u128() as usize);
    let (connection, index) = phaseflow_client::broker::connect_any(
        &addresses,
        first % addresses.len().max(1),
        settings.heartbeat_secs,
        name,
    )
    .await?;
    Ok((connection, addresses[index].clone()))
}

/// Whether the broker accepts a connection within `timeout`: connects, then closes the
/// connection again. `name` shows in the management UI meanwhile. The error says why not.
pub async fn broker_reachable(
    settings: &AmqpSettings,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    match tokio::time::timeout(timeout, connect(settings, name)).await {
        Ok(Ok((connection, _))) => {
            let _ = connection.close(200, "readiness checked".into()).await;
            Ok(())
        }
        Ok(Err(error)) => Err(error),
        Err(_) => Err(anyhow::anyhow!("no answer within {timeout:?}")),
    }
}
