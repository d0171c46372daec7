//! Declares, idempotently, everything the worker needs on the broker: the two topic exchanges,
//! the workers' quorum queue for requests with its delivery limit and dead-letter exchange, and the
//! dead-letter exchange and queue.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use crate::config::AmqpSettings;

/// Declares the exchanges that agents publish to and consumers bind to.
pub async fn declare_exchanges(
    channel: &Channel,
    settings: &AmqpSettings,
) -> Result<(), lapin::Error> {
    phaseflow_client::broker::declare_exchanges(channel, &settings.broker()).await
}

/// Declares the whole topology of the worker.
pub async fn declare_worker_topology(
    channel: &Channel,
    settings: &AmqpSettings,
) -> Result<(), lapin::Error> {
    declare_exchanges(channel, settings).await?;
    channel
        .exchange_declare(
            settings.dead_letter_exchange.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let mut dead_letter_arguments = FieldTable::default();
    dead_letter_arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            settings.dead_letter_queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            dead_letter_arguments,
        )
        .await?;
    channel
        .queue_bind(
            settings.dead_letter_queue.as_str().into(),
            settings.dead_letter_exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            settings.requests_queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            worker_queue_arguments(settings),
        )
        .await?;
    channel
        .queue_bind(
            settings.requests_queue.as_str().into(),
            settings.requests_exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Quorum queue with the dead-letter exchange and a broker-side delivery limit far above the
/// worker's own: the worker dead-letters a message that keeps coming back itself (with the
/// `x-phaseflow-error` header) before the broker would (without it).
fn worker_queue_arguments(settings: &AmqpSettings) -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    arguments.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(i64::from(settings.delivery_limit) * 10),
    );
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(settings.dead_letter_exchange.as_str().into()),
    );
    arguments
}
