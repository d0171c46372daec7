//! RabbitMQ: the only module that uses lapin. Connections, the topology the worker declares,
//! the request consumer, the outbox relay, the reconnect loop they share (`session`),
//! dead-lettering and the `publish` command's client.
//!
//! Nothing here decides workflow outcomes: consumers hand decoded messages to `workflow` and
//! ack, nack or dead-letter according to what comes back.

pub mod client;
pub mod consumer;
pub mod dead_letters;
pub mod feed;
pub mod relay;
mod session;
pub mod topology;

use std::time::Duration;

use anyhow::Context;
use lapin::{Connection, ConnectionProperties};

pub use lapin::Error as AmqpError;

/// Opens an AMQP connection on the current tokio runtime. `name` shows in the management UI.
pub async fn connect(url: &str, heartbeat_secs: u16, name: &str) -> anyhow::Result<Connection> {
    let url = with_heartbeat(url, heartbeat_secs);
    // lapin runs its I/O on the tokio runtime this is called on
    let properties = ConnectionProperties::default()
        .with_connection_name(name.into())
        .with_client_property("product".into(), "phaseflow".into());
    let connection = tokio::time::timeout(
        Duration::from_secs(15),
        Connection::connect(&url, properties),
    )
    .await
    .context("timed out connecting to RabbitMQ")?
    .with_context(|| {
        format!(
            "cannot connect to RabbitMQ at {}",
            crate::config::redact_url(&url)
        )
    })?;
    Ok(connection)
}

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

/// Adds `heartbeat=<secs>` to the URL unless it sets one.
fn with_heartbeat(url: &str, heartbeat_secs: u16) -> String {
    if url.contains("heartbeat=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}heartbeat={heartbeat_secs}")
}

#[cfg(test)]
mod tests {
    use super::with_heartbeat;

    #[test]
    fn the_heartbeat_is_added_once() {
        assert_eq!(
            with_heartbeat("amqp://h/%2f", 15),
            "amqp://h/%2f?heartbeat=15"
        );
        assert_eq!(
            with_heartbeat("amqp://h/%2f?x=1", 5),
            "amqp://h/%2f?x=1&heartbeat=5"
        );
        assert_eq!(
            with_heartbeat("amqp://h/?heartbeat=3", 5),
            "amqp://h/?heartbeat=3"
        );
    }
}
