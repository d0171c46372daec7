//! What becomes of a delivery once its processing ended: acked when its transaction committed
//! (or it was a duplicate, or an event with nothing to act on), or dead-lettered with its reason
//! and then acked; requeued when even dead-lettering fails. Acks and requeues go through the
//! channel's [`Acks`], which groups them. The verdict comes from the
//! workflow's outcome; nothing here applies or retries a request.

use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::BasicPublishOptions;
use lapin::types::AMQPValue;
use lapin::{BasicProperties, Channel, Confirmation};

use crate::workflow::RequestOutcome;

use super::acks::Acks;
use super::{ConsumerContext, ERROR_HEADER, QUEUE_LABEL};

/// What to do with a delivery once its processing ended.
pub(super) enum Verdict {
    /// committed (or found in the inbox): ack
    Done(&'static str),
    /// never processable: dead-letter with the reason, then ack
    DeadLetter(String),
}

pub(super) fn verdict_of(outcome: RequestOutcome) -> Verdict {
    match outcome {
        RequestOutcome::Duplicate => {
            tracing::info!("duplicate: already applied");
            Verdict::Done("duplicate")
        }
        RequestOutcome::EventConsumed => {
            tracing::info!("event consumed: its work was done");
            Verdict::Done("applied")
        }
        RequestOutcome::EventIgnored(why) => {
            tracing::warn!(
                reason = why.as_str(),
                "event names nothing to act on; acknowledged without effect"
            );
            Verdict::Done("ignored")
        }
        RequestOutcome::Applied(outcome) => match outcome.result {
            Ok(_) => {
                tracing::Span::current().record("phaseflow.outcome", outcome.event_type);
                tracing::info!(outcome = outcome.event_type, "request applied");
                Verdict::Done("applied")
            }
            Err(rejection) => {
                let span = tracing::Span::current();
                span.record("phaseflow.outcome", outcome.event_type);
                span.record("phaseflow.rejection_code", rejection.code.as_str());
                tracing::info!(
                    outcome = outcome.event_type,
                    code = rejection.code.as_str(),
                    "request rejected"
                );
                Verdict::Done("rejected")
            }
        },
    }
}

/// Acks, dead-letters or requeues; returns the outcome label for metrics. `message_id` (when
/// the delivery has one) goes into the dead-letter log lines, to match them to the dead letter.
pub(super) async fn settle(
    context: &ConsumerContext,
    delivery: &Delivery,
    message_id: Option<&str>,
    dead_letters: &Channel,
    acks: &Acks,
    verdict: Verdict,
) -> &'static str {
    let reason = match verdict {
        Verdict::Done(label) => {
            acks.ack(&[delivery]).await;
            return label;
        }
        Verdict::DeadLetter(reason) => reason,
    };
    let label = "dead_lettered";
    tracing::warn!(
        message_id,
        reason = reason.as_str(),
        "dead-lettering the message"
    );
    match dead_letter(context, delivery, dead_letters, &reason).await {
        Ok(()) => {
            acks.ack(&[delivery]).await;
            label
        }
        Err(error) => {
            tracing::error!(
                message_id,
                error = format!("{error:#}"),
                "dead-lettering failed; the message is requeued"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            acks.requeue(delivery).await;
            "retried"
        }
    }
}

/// Publishes the delivery, unchanged but for headers naming why and where from, to the
/// dead-letter exchange, and waits for the broker's confirm.
async fn dead_letter(
    context: &ConsumerContext,
    delivery: &Delivery,
    channel: &Channel,
    reason: &str,
) -> anyhow::Result<()> {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(ERROR_HEADER.into(), AMQPValue::LongString(reason.into()));
    headers.insert(
        "x-phaseflow-queue".into(),
        AMQPValue::LongString(QUEUE_LABEL.into()),
    );
    headers.insert(
        "x-phaseflow-routing-key".into(),
        AMQPValue::LongString(delivery.routing_key.as_str().into()),
    );
    headers.insert(
        "x-phaseflow-dead-lettered-at".into(),
        AMQPValue::LongString(crate::protocol::events::time::format(chrono::Utc::now()).into()),
    );
    let properties: BasicProperties = delivery
        .properties
        .clone()
        .with_headers(headers)
        .with_delivery_mode(2);
    let confirm = channel
        .basic_publish(
            context.settings.dead_letter_exchange.as_str().into(),
            "".into(),
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
        Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
        Confirmation::Ack(Some(_)) => {
            anyhow::bail!("the dead-letter queue is not bound to its exchange")
        }
        Confirmation::Nack(_) => anyhow::bail!("the broker refused the dead letter"),
    }
}
