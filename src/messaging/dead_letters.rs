//! What the HTTP API asks RabbitMQ for the operations page: the depth of the worker's queues,
//! the dead letters, and replaying one of them.
//!
//! - [`Broker::dead_letters`] reads the dead-letter queue the way RabbitMQ's management UI does
//!   ("get messages" with requeue): it takes messages without acknowledging them and closes its
//!   channel, which puts them back in their place. They are counted as delivered once more
//!   (`x-delivery-count`), and while a listing or a replay holds them, other readers of the queue
//!   do not see them.
//! - [`Broker::replay`] takes the dead letter with a given message id off the queue, publishes it
//!   to the requests exchange with its original routing key and properties (its message id, so the
//!   worker's inbox applies it at most once), waits for the broker's confirm and only then
//!   acknowledges it: a crash in between leaves it in both queues, never in neither. Two replays of
//!   one message race for it in the broker: one gets it, the other finds nothing.
//!
//! No workflow decisions and no SQL here; the API decides who may replay.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection};

use super::consumer::ERROR_HEADER;
use crate::config::AmqpSettings;

/// The headers the worker adds when it dead-letters a message (removed again on replay).
const DEAD_LETTER_HEADERS: [&str; 5] = [
    ERROR_HEADER,
    "x-phaseflow-queue",
    "x-phaseflow-routing-key",
    "x-phaseflow-dead-lettered-at",
    // added by the quorum queue to every delivery
    "x-delivery-count",
];

/// A queue's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    pub name: String,
    pub messages: u32,
    pub consumers: u32,
}

/// A message of the dead-letter queue.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub message_id: Option<String>,
    /// the routing key it was published with to the requests exchange
    pub routing_key: String,
    /// why it was dead-lettered (`x-phaseflow-error`)
    pub reason: Option<String>,
    /// the AMQP `type` property
    pub kind: Option<String>,
    /// every header, as text
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    pub message_id: String,
    pub routing_key: String,
    /// why it had been dead-lettered
    pub reason: Option<String>,
}

/// Asks RabbitMQ about the worker's queues, one short connection per question.
#[derive(Clone)]
pub struct Broker {
    settings: AmqpSettings,
}

impl Broker {
    pub fn new(settings: AmqpSettings) -> Self {
        Broker { settings }
    }

    /// A connection and a channel on it, with the address it is connected to.
    async fn channel(&self) -> anyhow::Result<(Connection, Channel, String)> {
        let (connection, address) = tokio::time::timeout(
            Duration::from_secs(5),
            super::connect(&self.settings, "phaseflow api operations"),
        )
        .await
        .context("RabbitMQ did not answer within 5 s")??;
        let channel = connection.create_channel().await?;
        Ok((connection, channel, address))
    }

    /// The requests queue's and the dead-letter queue's depth and consumers (`None` for a queue
    /// not declared yet).
    pub async fn queue_depths(&self) -> anyhow::Result<(Option<QueueDepth>, Option<QueueDepth>)> {
        let (connection, _, _) = self.channel().await?;
        let requests = depth(&connection, &self.settings.requests_queue).await?;
        let dead_letters = depth(&connection, &self.settings.dead_letter_queue).await?;
        let _ = connection.close(200, "asked".into()).await;
        Ok((requests, dead_letters))
    }

    /// Up to `limit` dead letters, oldest first, left in the queue (none while the queue is not
    /// declared yet).
    pub async fn dead_letters(&self, limit: usize) -> anyhow::Result<Vec<DeadLetter>> {
        let (connection, channel, _) = self.channel().await?;
        if depth(&connection, &self.settings.dead_letter_queue)
            .await?
            .is_none()
        {
            let _ = connection.close(200, "no dead-letter queue".into()).await;
            return Ok(Vec::new());
        }
        let mut letters = Vec::new();
        while letters.len() < limit {
            let Some(message) = get(&channel, &self.settings.dead_letter_queue).await? else {
                break;
            };
            letters.push(dead_letter(&message.delivery));
        }
        // closing the channel returns every message it took to its place in the queue
        let _ = connection.close(200, "looked".into()).await;
        Ok(letters)
    }

    /// Moves the dead letter whose message id is `message_id` (among the first `limit`) back to
    /// the requests exchange; `None` when no such message is there. `replayed_by` is recorded in
    /// the header `x-phaseflow-replayed-by`. The message keeps its `user_id` only when it is the
    /// user this connection logs in as (RabbitMQ refuses any other).
    pub async fn replay(
        &self,
        message_id: &str,
        replayed_by: &str,
        limit: usize,
    ) -> anyhow::Result<Option<Replayed>> {
        let (connection, channel, address) = self.channel().await?;
        if depth(&connection, &self.settings.dead_letter_queue)
            .await?
            .is_none()
        {
            let _ = connection.close(200, "no dead-letter queue".into()).await;
            return Ok(None);
        }
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let mut found = None;
        for _ in 0..limit {
            let Some(message) = get(&channel, &self.settings.dead_letter_queue).await? else {
                break;
            };
            let id = message.delivery.properties.message_id().as_ref();
            if id.map(ShortString::as_str) == Some(message_id) {
                found = Some(message.delivery);
                break;
            }
        }
        let Some(delivery) = found else {
            let _ = connection.close(200, "not found".into()).await;
            return Ok(None);
        };
        let letter = dead_letter(&delivery);
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        let mut kept = FieldTable::default();
        for (name, value) in headers.inner() {
            if !DEAD_LETTER_HEADERS.contains(&name.as_str()) {
                kept.insert(name.clone(), value.clone());
            }
        }
        headers = kept;
        headers.insert(
            "x-phaseflow-replayed-by".into(),
            AMQPValue::LongString(replayed_by.into()),
        );
        let mut properties: BasicProperties = delivery.properties.clone().with_headers(headers);
        let login = login_user(&address);
        if let Some(user) = delivery.properties.user_id() {
            if Some(user.as_str()) != login.as_deref() {
                properties = strip_user_id(properties);
            }
        }
        let confirm = channel
            .basic_publish(
                self.settings.requests_exchange.as_str().into(),
                letter.routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &delivery.data,
                properties,
            )
            .await?
            .await?;
        match confirm {
            Confirmation::Ack(None) | Confirmation::NotRequested => {}
            Confirmation::Ack(Some(_)) => {
                let _ = connection.close(200, "unroutable".into()).await;
                anyhow::bail!(
                    "no queue is bound to {} for `{}`: is a worker's topology declared?",
                    self.settings.requests_exchange,
                    letter.routing_key
                )
            }
            Confirmation::Nack(_) => {
                let _ = connection.close(200, "refused".into()).await;
                anyhow::bail!("the broker refused the replayed message")
            }
        }
        delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .context("the message was replayed but could not be removed from the dead letters")?;
        let _ = connection.close(200, "replayed".into()).await;
        Ok(Some(Replayed {
            message_id: message_id.to_owned(),
            routing_key: letter.routing_key,
            reason: letter.reason,
        }))
    }
}

async fn depth(connection: &Connection, queue: &str) -> anyhow::Result<Option<QueueDepth>> {
    // a passive declaration of a missing queue closes its channel: one channel per question
    let channel = connection.create_channel().await?;
    match channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
    {
        Ok(declared) => {
            let _ = channel.close(200, "asked".into()).await;
            Ok(Some(QueueDepth {
                name: queue.to_owned(),
                messages: declared.message_count(),
                consumers: declared.consumer_count(),
            }))
        }
        Err(error) if is_not_found(&error) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

fn is_not_found(error: &lapin::Error) -> bool {
    error.to_string().contains("NOT_FOUND")
}

async fn get(
    channel: &Channel,
    queue: &str,
) -> anyhow::Result<Option<lapin::message::BasicGetMessage>> {
    Ok(channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await?)
}

fn dead_letter(delivery: &lapin::message::Delivery) -> DeadLetter {
    let properties = &delivery.properties;
    let headers: BTreeMap<String, String> = properties
        .headers()
        .as_ref()
        .map(|table| {
            table
                .inner()
                .iter()
                .map(|(name, value)| (name.to_string(), value_text(value)))
                .collect()
        })
        .unwrap_or_default();
    DeadLetter {
        message_id: properties.message_id().as_ref().map(ToString::to_string),
        routing_key: headers
            .get("x-phaseflow-routing-key")
            .cloned()
            .unwrap_or_else(|| delivery.routing_key.to_string()),
        reason: headers.get(ERROR_HEADER).cloned(),
        kind: properties.kind().as_ref().map(ToString::to_string),
        headers,
        body: delivery.data.clone(),
    }
}

/// A header value as text (strings as they are, the rest in their usual notation).
fn value_text(value: &AMQPValue) -> String {
    match value {
        AMQPValue::LongString(text) => String::from_utf8_lossy(text.as_bytes()).into_owned(),
        AMQPValue::ShortString(text) => text.to_string(),
        AMQPValue::Boolean(value) => value.to_string(),
        AMQPValue::ShortShortInt(value) => value.to_string(),
        AMQPValue::ShortShortUInt(value) => value.to_string(),
        AMQPValue::ShortInt(value) => value.to_string(),
        AMQPValue::ShortUInt(value) => value.to_string(),
        AMQPValue::LongInt(value) => value.to_string(),
        AMQPValue::LongUInt(value) => value.to_string(),
        AMQPValue::LongLongInt(value) => value.to_string(),
        AMQPValue::Float(value) => value.to_string(),
        AMQPValue::Double(value) => value.to_string(),
        AMQPValue::Timestamp(value) => value.to_string(),
        AMQPValue::FieldArray(items) => format!(
            "[{}]",
            items
                .as_slice()
                .iter()
                .map(value_text)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => format!("{other:?}"),
    }
}

/// The user an AMQP URL logs in as (`guest` when it names none, as RabbitMQ's clients assume).
fn login_user(url: &str) -> Option<String> {
    lapin::uri::AMQPUri::from_str(url)
        .ok()
        .map(|uri| uri.authority.userinfo.username)
}

/// The same properties without `user_id`.
fn strip_user_id(properties: BasicProperties) -> BasicProperties {
    let mut stripped = BasicProperties::default();
    if let Some(value) = properties.content_type() {
        stripped = stripped.with_content_type(value.clone());
    }
    if let Some(value) = properties.content_encoding() {
        stripped = stripped.with_content_encoding(value.clone());
    }
    if let Some(value) = properties.headers() {
        stripped = stripped.with_headers(value.clone());
    }
    if let Some(value) = properties.delivery_mode() {
        stripped = stripped.with_delivery_mode(*value);
    }
    if let Some(value) = properties.priority() {
        stripped = stripped.with_priority(*value);
    }
    if let Some(value) = properties.correlation_id() {
        stripped = stripped.with_correlation_id(value.clone());
    }
    if let Some(value) = properties.reply_to() {
        stripped = stripped.with_reply_to(value.clone());
    }
    if let Some(value) = properties.expiration() {
        stripped = stripped.with_expiration(value.clone());
    }
    if let Some(value) = properties.message_id() {
        stripped = stripped.with_message_id(value.clone());
    }
    if let Some(value) = properties.timestamp() {
        stripped = stripped.with_timestamp(*value);
    }
    if let Some(value) = properties.kind() {
        stripped = stripped.with_type(value.clone());
    }
    if let Some(value) = properties.app_id() {
        stripped = stripped.with_app_id(value.clone());
    }
    if let Some(value) = properties.cluster_id() {
        stripped = stripped.with_cluster_id(value.clone());
    }
    stripped
}
