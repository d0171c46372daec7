//! A small RabbitMQ client for sending requests and following events: what `phaseflow
//! publish`, `phaseflow demo`, `phaseflow review-agent` and the benchmark use, and what an agent
//! written in Rust uses. Publishes one CloudEvent with confirms and `mandatory`, can wait for its
//! outcome on a private reply queue, and can subscribe to the events exchange, through a private
//! queue or a durable named one. The only module of this crate that uses lapin.

use std::time::Duration;

use anyhow::{bail, Context};
use chrono::Utc;
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Acker, BasicProperties, Channel, Confirmation, Connection};
use lapin::{ConnectionProperties, ExchangeKind};
use serde::Serialize;
use serde_json::{json, Value};

use crate::envelope::Envelope;
use crate::requests::Request;
use crate::TicketId;

/// Where phaseflow's broker is and the names of its two exchanges: what an agent needs to reach
/// it. The names must be the service's (`amqp.requests_exchange`, `amqp.events_exchange`).
#[derive(Clone, PartialEq, Eq)]
pub struct Broker {
    /// `amqp://user:password@host:port/vhost`, or the addresses of a cluster's nodes separated
    /// by commas ([`connect`] takes the first that answers); `heartbeat=<heartbeat_secs>` is added
    /// to each unless it sets one
    pub url: String,
    /// the topic exchange requests are published to
    pub requests_exchange: String,
    /// the topic exchange phaseflow publishes its events to
    pub events_exchange: String,
    /// the AMQP heartbeat, in seconds
    pub heartbeat_secs: u16,
}

impl Broker {
    /// A broker at `url` with the service's default exchange names and heartbeat.
    pub fn new(url: impl Into<String>) -> Self {
        Broker {
            url: url.into(),
            requests_exchange: "phaseflow.requests".to_owned(),
            events_exchange: "phaseflow.events".to_owned(),
            heartbeat_secs: 15,
        }
    }
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("url", &redact_url(&self.url))
            .field("requests_exchange", &self.requests_exchange)
            .field("events_exchange", &self.events_exchange)
            .field("heartbeat_secs", &self.heartbeat_secs)
            .finish()
    }
}

/// How long one address gets to answer before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Opens an AMQP connection on the current tokio runtime to the first address of `url` (one
/// address, or several separated by commas) that answers, trying them in order. `name` shows in
/// the management UI.
pub async fn connect(url: &str, heartbeat_secs: u16, name: &str) -> anyhow::Result<Connection> {
    let addresses = addresses(url);
    connect_any(&addresses, 0, heartbeat_secs, name)
        .await
        .map(|(connection, _)| connection)
}

/// Opens an AMQP connection to the first of `addresses` that answers, trying them in turn from
/// the one at `first` (and around); returns it with the index of its address. When none
/// answers, the error names each address (credentials masked) with its own reason.
pub async fn connect_any(
    addresses: &[String],
    first: usize,
    heartbeat_secs: u16,
    name: &str,
) -> anyhow::Result<(Connection, usize)> {
    if addresses.is_empty() {
        bail!("no RabbitMQ address is configured");
    }
    let mut failures = Vec::with_capacity(addresses.len());
    for offset in 0..addresses.len() {
        let index = (first + offset) % addresses.len();
        match connect_one(&addresses[index], heartbeat_secs, name).await {
            Ok(connection) => return Ok((connection, index)),
            Err(error) => failures.push(format!("{error:#}")),
        }
    }
    bail!("{}", failures.join("; "))
}

/// Opens an AMQP connection to one address.
async fn connect_one(url: &str, heartbeat_secs: u16, name: &str) -> anyhow::Result<Connection> {
    let url = with_heartbeat(url, heartbeat_secs);
    // lapin runs its I/O on the tokio runtime this is called on
    let properties = ConnectionProperties::default()
        .with_connection_name(name.into())
        .with_client_property("product".into(), "phaseflow".into());
    match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(&url, properties)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(anyhow::Error::new(error).context(format!(
            "cannot connect to RabbitMQ at {}",
            redact_url(&url)
        ))),
        Err(_) => bail!(
            "cannot connect to RabbitMQ at {}: no answer within {} s",
            redact_url(&url),
            CONNECT_TIMEOUT.as_secs()
        ),
    }
}

/// The addresses of a broker URL setting: one URL, or several separated by commas (blanks
/// around them and empty ones left out).
pub fn addresses(url: &str) -> Vec<String> {
    url.split(',')
        .map(str::trim)
        .filter(|address| !address.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Declares the two exchanges (durable topic exchanges), as the service does: declaring them
/// again with the same arguments is harmless, and a client started before any worker finds them.
pub async fn declare_exchanges(channel: &Channel, broker: &Broker) -> Result<(), lapin::Error> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    for exchange in [&broker.requests_exchange, &broker.events_exchange] {
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// The URL with its password masked, for logs and error messages; each address of a list
/// separated by commas is masked on its own.
pub fn redact_url(url: &str) -> String {
    if url.contains(',') {
        return url.split(',').map(redact_one).collect::<Vec<_>>().join(",");
    }
    redact_one(url)
}

fn redact_one(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = credentials.split(':').next().unwrap_or_default();
    if credentials.contains(':') {
        format!("{scheme}://{user}:****@{host}")
    } else {
        format!("{scheme}://{user}@{host}")
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

/// A request to send; serialized as a structured-mode CloudEvent.
#[derive(Debug, Clone)]
pub struct OutgoingRequest {
    pub id: String,
    pub request_type: String,
    pub subject: Option<String>,
    pub source: String,
    pub actor: Option<String>,
    pub correlation_id: Option<String>,
    pub data: Value,
}

impl OutgoingRequest {
    /// A request of `data`'s kind with a fresh id, about `subject` when given. `source` says who
    /// sends it (an agent's name, say); `actor` and `correlation_id` may be set afterwards.
    pub fn new<D: Request + Serialize>(
        source: impl Into<String>,
        subject: Option<TicketId>,
        data: &D,
    ) -> Result<Self, serde_json::Error> {
        Ok(OutgoingRequest {
            id: uuid::Uuid::new_v4().to_string(),
            request_type: D::TYPE.to_owned(),
            subject: subject.map(|ticket| ticket.to_string()),
            source: source.into(),
            actor: None,
            correlation_id: None,
            data: serde_json::to_value(data)?,
        })
    }

    /// The request as a structured-mode CloudEvent.
    pub fn to_cloudevent(&self) -> Value {
        let mut event = json!({
            "specversion": "1.0",
            "id": self.id,
            "source": self.source,
            "type": self.request_type,
            "time": crate::events::time::format(Utc::now()),
            "datacontenttype": "application/json",
            "data": self.data,
        });
        if let Some(subject) = &self.subject {
            event["subject"] = json!(subject);
        }
        if let Some(actor) = &self.actor {
            event["actor"] = json!(actor);
        }
        if let Some(correlation_id) = &self.correlation_id {
            event["correlationid"] = json!(correlation_id);
        }
        event
    }
}

/// A connection to the broker for publishing requests.
pub struct RequestClient {
    connection: Connection,
    channel: Channel,
    exchange: String,
}

impl RequestClient {
    /// Connects, declares the exchanges and turns on publisher confirms. `name` shows in the
    /// management UI.
    pub async fn connect(broker: &Broker, name: &str) -> anyhow::Result<Self> {
        let connection = connect(&broker.url, broker.heartbeat_secs, name).await?;
        let channel = connection.create_channel().await?;
        declare_exchanges(&channel, broker).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(RequestClient {
            connection,
            channel,
            exchange: broker.requests_exchange.clone(),
        })
    }

    /// Publishes a request and waits for the broker to store it.
    pub async fn publish(&self, request: &OutgoingRequest) -> anyhow::Result<()> {
        self.publish_raw(
            &request.request_type,
            &serde_json::to_vec(&request.to_cloudevent())?,
            self.properties(request),
        )
        .await
    }

    /// Publishes any body with a routing key (for tests of bad input, and raw tooling).
    pub async fn publish_raw(
        &self,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> anyhow::Result<()> {
        let confirmation = self
            .channel
            .basic_publish(
                self.exchange.as_str().into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                properties,
            )
            .await?
            .await?;
        match confirmation {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(_)) => bail!(
                "no queue is bound to {} for `{routing_key}`: start a phaseflow worker once so it declares its queues",
                self.exchange
            ),
            Confirmation::Nack(_) => bail!("the broker refused the message"),
        }
    }

    /// Publishes a request with a private reply queue and returns its outcome event. When the
    /// broker stored the request but no outcome arrived within `timeout`, the error is a
    /// [`NoOutcome`] (`anyhow::Error::downcast_ref` finds it).
    pub async fn publish_and_wait(
        &self,
        request: &OutgoingRequest,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let replies = self.connection.create_channel().await?;
        let queue = replies
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let mut consumer = replies
            .basic_consume(
                queue.name().clone(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let properties = self.properties(request).with_reply_to(queue.name().clone());
        self.publish_raw(
            &request.request_type,
            &serde_json::to_vec(&request.to_cloudevent())?,
            properties,
        )
        .await?;
        let wait = async {
            while let Some(delivery) = consumer.next().await {
                let delivery = delivery?;
                delivery.ack(BasicAckOptions::default()).await?;
                let correlates = delivery
                    .properties
                    .correlation_id()
                    .as_ref()
                    .is_none_or(|correlation| correlation.as_str() == request.id);
                if correlates {
                    return serde_json::from_slice::<Value>(&delivery.data)
                        .context("the outcome is not JSON");
                }
            }
            bail!("the reply queue was closed")
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| NoOutcome { timeout })?
    }

    /// [`publish_and_wait`](Self::publish_and_wait), with the outcome read as an [`Envelope`]
    /// ([`Envelope::outcome`] then reads it as the success event or the rejection).
    pub async fn request(
        &self,
        request: &OutgoingRequest,
        timeout: Duration,
    ) -> anyhow::Result<Envelope> {
        let outcome = self.publish_and_wait(request, timeout).await?;
        serde_json::from_value(outcome).context("the outcome is not a CloudEvent")
    }

    fn properties(&self, request: &OutgoingRequest) -> BasicProperties {
        BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/cloudevents+json".into())
            .with_message_id(request.id.as_str().into())
            .with_correlation_id(request.id.as_str().into())
            .with_type(request.request_type.as_str().into())
    }

    /// Closes the connection.
    pub async fn close(self) {
        let _ = self.connection.close(200, "done".into()).await;
    }
}

/// [`RequestClient::publish_and_wait`] published its request (the broker confirmed it) but no
/// outcome came back in time: no worker is running, it is behind, or the request id was
/// applied before (a duplicate gets no second outcome).
#[derive(Debug, Clone, Copy)]
pub struct NoOutcome {
    pub timeout: Duration,
}

impl std::fmt::Display for NoOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no outcome within {}s: is a phaseflow worker running?",
            self.timeout.as_secs()
        )
    }
}

impl std::error::Error for NoOutcome {}

/// A queue bound to the events exchange: what a consumer of phaseflow's events does, for
/// `phaseflow demo` and `phaseflow review-agent`, and as a reference.
///
/// [`start`](Self::start) declares a private queue, exclusive and auto-deleted: it lives as
/// long as the subscription, events published before it existed are not in it, and every
/// event is acknowledged as it is received. [`durable`](Self::durable) consumes from a durable
/// named queue instead, which keeps the events published while nobody consumes; each event is
/// acknowledged only when its [`EventDelivery`] is, so one not acknowledged when the
/// subscription ends (a crash, a lost connection) is delivered again.
pub struct EventSubscription {
    connection: Connection,
    consumer: lapin::Consumer,
    /// whether deliveries wait for [`EventDelivery::ack`] (false: the broker counts them
    /// acknowledged when it sends them)
    acknowledged_by_consumer: bool,
}

/// One event received through an [`EventSubscription`].
pub struct EventDelivery {
    body: Vec<u8>,
    redelivered: bool,
    /// `None` when the subscription does not acknowledge
    acker: Option<Acker>,
}

impl EventDelivery {
    /// The event, a CloudEvent as JSON.
    pub fn event(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body).context("an event that is not JSON")
    }

    /// The event's envelope, its `data` not read yet ([`Envelope::read`] reads it as a type).
    pub fn envelope(&self) -> anyhow::Result<Envelope> {
        serde_json::from_slice(&self.body).context("an event that is not a CloudEvent")
    }

    /// Whether the broker delivered it before, to this consumer or another, without an
    /// acknowledgement.
    pub fn redelivered(&self) -> bool {
        self.redelivered
    }

    /// Acknowledges it: the broker forgets it. Nothing to do on a private subscription.
    pub async fn ack(self) -> anyhow::Result<()> {
        if let Some(acker) = self.acker {
            acker
                .ack(BasicAckOptions::default())
                .await
                .context("cannot acknowledge the event")?;
        }
        Ok(())
    }
}

impl EventSubscription {
    /// Subscribes to the events whose routing key (= type) matches `pattern` (`#`: all), through
    /// a private queue.
    pub async fn start(broker: &Broker, pattern: &str) -> anyhow::Result<Self> {
        let connection = connect(&broker.url, broker.heartbeat_secs, "phaseflow events").await?;
        let channel = connection.create_channel().await?;
        declare_exchanges(&channel, broker).await?;
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                queue.name().clone(),
                broker.events_exchange.as_str().into(),
                pattern.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let consumer = channel
            .basic_consume(
                queue.name().clone(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok(EventSubscription {
            connection,
            consumer,
            acknowledged_by_consumer: false,
        })
    }

    /// Subscribes to the events whose routing key (= type) matches `pattern`, through the
    /// durable queue `queue`, declared (durable, neither exclusive nor auto-deleted) and bound
    /// if it is not yet. The queue outlives the subscription: events published while nobody
    /// consumes wait in it. Consumers of one queue share its events. One event at a time is
    /// delivered: the next comes once the last is acknowledged ([`EventDelivery::ack`]).
    pub async fn durable(broker: &Broker, queue: &str, pattern: &str) -> anyhow::Result<Self> {
        let connection = connect(&broker.url, broker.heartbeat_secs, "phaseflow events").await?;
        let channel = connection.create_channel().await?;
        declare_exchanges(&channel, broker).await?;
        channel.basic_qos(1, BasicQosOptions::default()).await?;
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("cannot declare the queue {queue}"))?;
        channel
            .queue_bind(
                queue.into(),
                broker.events_exchange.as_str().into(),
                pattern.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let consumer = channel
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(EventSubscription {
            connection,
            consumer,
            acknowledged_by_consumer: true,
        })
    }

    /// The next event, acknowledged; `None` when the subscription ended (the connection
    /// closed).
    pub async fn next(&mut self) -> Option<anyhow::Result<Value>> {
        let delivery = match self.next_delivery().await? {
            Ok(delivery) => delivery,
            Err(error) => return Some(Err(error)),
        };
        let event = delivery.event();
        if let Err(error) = delivery.ack().await {
            return Some(Err(error));
        }
        Some(event)
    }

    /// The next delivery, to acknowledge once it is handled; `None` when the subscription
    /// ended (the connection closed).
    pub async fn next_delivery(&mut self) -> Option<anyhow::Result<EventDelivery>> {
        let delivery = match self.consumer.next().await? {
            Ok(delivery) => delivery,
            Err(error) => return Some(Err(error.into())),
        };
        Some(Ok(EventDelivery {
            redelivered: delivery.redelivered,
            acker: self.acknowledged_by_consumer.then_some(delivery.acker),
            body: delivery.data,
        }))
    }

    pub async fn close(self) {
        let _ = self.connection.close(200, "done".into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_password_is_masked_and_nothing_else() {
        assert_eq!(
            redact_url("amqp://u:secret@h:5672/%2f"),
            "amqp://u:****@h:5672/%2f"
        );
        assert_eq!(redact_url("amqp://u@h/%2f"), "amqp://u@h/%2f");
        assert_eq!(redact_url("amqp://h/%2f"), "amqp://h/%2f");
        let broker = Broker::new("amqp://u:secret@h/%2f");
        assert!(!format!("{broker:?}").contains("secret"));
    }

    #[test]
    fn each_address_of_a_list_is_masked_on_its_own() {
        let list = "amqp://u:s1@h1:5701/%2f, amqp://v:s2@h2:5702/%2f,amqp://h3:5703/%2f";
        assert_eq!(
            redact_url(list),
            "amqp://u:****@h1:5701/%2f, amqp://v:****@h2:5702/%2f,amqp://h3:5703/%2f"
        );
        assert_eq!(
            addresses(list),
            [
                "amqp://u:s1@h1:5701/%2f",
                "amqp://v:s2@h2:5702/%2f",
                "amqp://h3:5703/%2f"
            ]
        );
        assert_eq!(addresses(" , "), Vec::<String>::new());
    }

    #[tokio::test]
    async fn an_error_names_every_address_that_did_not_answer() {
        // nothing listens on port 1 of the loopback interface
        let addresses = vec![
            "amqp://u:secret@127.0.0.1:1/%2f".to_owned(),
            "amqp://v:hidden@127.0.0.2:1/%2f".to_owned(),
        ];
        let error = connect_any(&addresses, 1, 5, "test").await.unwrap_err();
        let text = format!("{error:#}");
        assert!(text.contains("amqp://u:****@127.0.0.1:1/%2f"), "{text}");
        assert!(text.contains("amqp://v:****@127.0.0.2:1/%2f"), "{text}");
        assert!(
            !text.contains("secret") && !text.contains("hidden"),
            "{text}"
        );
        // tried from the second
        assert!(text.find("127.0.0.2") < text.find("127.0.0.1"), "{text}");
    }

    #[test]
    fn a_typed_request_names_its_kind_and_ticket() {
        let ticket = TicketId::new();
        let data = crate::requests::claim_task::ClaimTaskData {
            lease_seconds: Some(60),
            ..Default::default()
        };
        let request = OutgoingRequest::new("agent-7", Some(ticket), &data).unwrap();
        let event = request.to_cloudevent();
        assert_eq!(event["type"], "task.claim.requested");
        assert_eq!(event["subject"], ticket.to_string());
        assert_eq!(event["source"], "agent-7");
        assert_eq!(event["data"], json!({"lease_seconds": 60}));
    }
}
