//! The worker's consumer: requests from `phaseflow.requests`, with manual acks and a prefetch
//! window, reconnecting with backoff when the broker goes away.
//!
//! A delivery is acked only after its transaction committed (or it was a duplicate, or it was
//! dead-lettered with its reason). An infrastructure failure is retried in place and never
//! acked, rejected or dead-lettered; a processing bug is requeued until the delivery limit,
//! then dead-lettered with the error.
//!
//! A lost session is rebuilt at once, then per `amqp.reconnect_*`; the outage is logged through
//! the RabbitMQ outage log the consumer shares with the relay: one warning when it begins, one
//! line when it ends.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use backon::BackoffBuilder;
use std::panic::AssertUnwindSafe;

use futures_lite::{FutureExt, StreamExt};
use lapin::acker::Acker;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, Consumer};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{field, Instrument};

use crate::config::AmqpSettings;
use crate::health::Health;
use crate::protocol::RequestType;
use crate::protocol::{parse_command, CloudEvent, Rejection, RequestEnvelope};
use crate::retry::OutageLog;
use crate::workflow::{
    Message, Origin, Reply, RequestOutcome, RetryPolicy, Workflow, WorkflowError,
};

use super::topology;

/// Header naming why a message was dead-lettered.
pub const ERROR_HEADER: &str = "x-phaseflow-error";

/// The `queue` label of the consumer's metrics and spans, and the `x-phaseflow-queue` header of
/// its dead letters.
const QUEUE_LABEL: &str = "requests";

/// Everything the consumers need; shared by all delivery tasks.
pub struct ConsumerContext {
    pub workflow: Workflow,
    pub settings: AmqpSettings,
    pub retry: RetryPolicy,
    pub health: Health,
    /// RabbitMQ outages, shared with the relay
    pub rabbitmq: OutageLog,
}

struct Session {
    connection: Connection,
    requests: (Channel, Consumer),
    /// confirm-mode channel for dead-lettering
    dead_letters: Channel,
}

/// Consumes until `shutdown` is cancelled, reconnecting whenever the broker connection fails.
/// On shutdown: cancels the consumers, lets in-flight messages finish (until `abandon` is
/// cancelled), then closes the connection; anything unacked returns to its queue.
pub async fn run(
    context: Arc<ConsumerContext>,
    shutdown: CancellationToken,
    abandon: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let backoff = context.settings.reconnect_backoff();
    let mut delays = backoff.build();
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let attempt = Instant::now();
        let session = tokio::select! {
            session = open_session(&context) => session,
            () = shutdown.cancelled() => break,
        };
        let session = match session {
            Ok(session) => {
                delays = backoff.build();
                context.rabbitmq.succeeded("consumer");
                session
            }
            Err(error) => {
                let delay = delays.next().unwrap_or(backoff.max_delay());
                context
                    .rabbitmq
                    .failed("consumer", attempt, &format_args!("{error:#}"), delay);
                tokio::select! {
                    () = tokio::time::sleep(delay) => continue,
                    () = shutdown.cancelled() => break,
                }
            }
        };
        context.health.set_consumer_connected(true);
        tracing::info!("consuming requests");
        let Session {
            connection,
            requests,
            dead_letters,
        } = session;
        let (requests_channel, requests_consumer) = requests;
        let requests_tag = requests_consumer.tag();
        let lost = tokio::select! {
            lost = pump(&context, requests_consumer, &dead_letters, &tracker, &abandon) => Some(lost),
            () = shutdown.cancelled() => None,
        };
        let Some(lost) = lost else {
            let _ = requests_channel
                .basic_cancel(requests_tag.as_str(), BasicCancelOptions::default())
                .await;
            tracker.close();
            tokio::select! {
                () = tracker.wait() => tracing::info!("in-flight messages finished"),
                () = abandon.cancelled() => tracing::warn!("shutdown grace period over; unfinished messages return to their queue"),
            }
            let _ = connection
                .close(200, "phaseflow worker shutting down")
                .await;
            context.health.set_consumer_connected(false);
            break;
        };
        context.health.set_consumer_connected(false);
        metrics::counter!("phaseflow_amqp_reconnects_total", "component" => "consumer")
            .increment(1);
        context.rabbitmq.failed(
            "consumer",
            Instant::now(),
            &format_args!("the consumer stopped: {lost}"),
            Duration::ZERO,
        );
        let _ = connection.close(320, "reconnecting").await;
    }
}

async fn open_session(context: &ConsumerContext) -> anyhow::Result<Session> {
    let settings = &context.settings;
    let connection = super::connect(
        &settings.url,
        settings.heartbeat_secs,
        "phaseflow worker (consumer)",
    )
    .await?;
    let setup = connection.create_channel().await?;
    topology::declare_worker_topology(&setup, settings)
        .await
        .context("declaring the worker's exchanges and queues failed")?;
    let _ = setup.close(200, "topology declared").await;
    let requests = open_consumer(&connection, &settings.requests_queue, settings.prefetch).await?;
    let dead_letters = connection.create_channel().await?;
    dead_letters
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(Session {
        connection,
        requests,
        dead_letters,
    })
}

async fn open_consumer(
    connection: &Connection,
    queue: &str,
    prefetch: u16,
) -> anyhow::Result<(Channel, Consumer)> {
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let consumer = channel
        .basic_consume(
            queue,
            "",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("cannot consume from {queue}"))?;
    Ok((channel, consumer))
}

/// Hands the consumer's deliveries, in batches of what is ready at once, to their own
/// tasks until the consumer ends; returns why it ended. Under light load a batch is one message
/// (no added latency); under load up to `amqp.batch_size` messages share one transaction and
/// one commit, and at most `amqp.concurrent_batches` batches run at once, so waiting deliveries
/// form larger ones.
async fn pump(
    context: &Arc<ConsumerContext>,
    mut consumer: Consumer,
    dead_letters: &Channel,
    tracker: &TaskTracker,
    abandon: &CancellationToken,
) -> String {
    let batch_size = usize::from(context.settings.batch_size.max(1));
    let running_batches = Arc::new(Semaphore::new(usize::from(
        context.settings.concurrent_batches.max(1),
    )));
    // deliveries received and not yet in a batch: at most `amqp.prefetch`
    let mut waiting: VecDeque<Delivery> = VecDeque::new();
    let mut ended = None;
    while ended.is_none() {
        if waiting.is_empty() {
            match consumer.next().await {
                Some(Ok(delivery)) => waiting.push_back(delivery),
                Some(Err(error)) => return error.to_string(),
                None => return CANCELLED.to_owned(),
            }
        }
        // While every batch slot is taken, deliveries keep arriving and wait for the next
        // batch; the consumer is still polled, so a lost channel is noticed at once.
        let slot = loop {
            tokio::select! {
                biased;
                slot = running_batches.clone().acquire_owned() => match slot {
                    Ok(slot) => break slot,
                    Err(_) => return "the batch slots were closed".to_owned(),
                },
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => waiting.push_back(delivery),
                    Some(Err(error)) => return error.to_string(),
                    None => return CANCELLED.to_owned(),
                },
            }
        };
        while waiting.len() < batch_size {
            match futures_lite::future::poll_once(consumer.next()).await {
                Some(Some(Ok(delivery))) => waiting.push_back(delivery),
                Some(Some(Err(error))) => {
                    ended = Some(error.to_string());
                    break;
                }
                Some(None) => {
                    ended = Some(CANCELLED.to_owned());
                    break;
                }
                None => break,
            }
        }
        let take = waiting.len().min(batch_size);
        let deliveries: Vec<Delivery> = waiting.drain(..take).collect();
        let ackers: Vec<Acker> = deliveries
            .iter()
            .map(|delivery| delivery.acker.clone())
            .collect();
        let batch = process_batch(
            context.clone(),
            deliveries,
            dead_letters.clone(),
            abandon.clone(),
        );
        tracker.spawn(async move {
            let _slot = slot;
            if AssertUnwindSafe(batch).catch_unwind().await.is_err() {
                // a panic outside the workflow (panics inside it are isolated per message):
                // requeue what is unsettled rather than leave it unacked on the channel
                tracing::error!(
                    queue = QUEUE_LABEL,
                    "processing a batch panicked; its messages are requeued"
                );
                for acker in ackers {
                    let _ = acker
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..Default::default()
                        })
                        .await;
                }
            }
        });
    }
    ended.unwrap_or_default()
}

/// Why a consumer stream ends without an error: the broker cancelled the consumer (its queue
/// was deleted, say), or the channel or connection closed.
const CANCELLED: &str = "the broker cancelled the consumer, or its channel closed";

/// A delivery decoded into what the workflow applies.
struct Prepared {
    origin: Origin,
    kind: RequestType,
    command: Result<crate::protocol::Command, Rejection>,
}

impl Prepared {
    fn as_message(&self) -> Message<'_> {
        Message {
            origin: &self.origin,
            kind: self.kind,
            command: &self.command,
            dedupe: true,
        }
    }
}

/// One delivery of a batch with its span.
struct InFlight {
    delivery: Delivery,
    span: tracing::Span,
}

async fn process_batch(
    context: Arc<ConsumerContext>,
    deliveries: Vec<Delivery>,
    dead_letters: Channel,
    abandon: CancellationToken,
) {
    let started = Instant::now();
    let in_flight_gauge = metrics::gauge!("phaseflow_messages_in_flight");
    let count = deliveries.len() as f64;
    in_flight_gauge.increment(count);
    let mut prepared: Vec<(InFlight, Prepared)> = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let span = tracing::info_span!(
            "message",
            queue = QUEUE_LABEL,
            message_id = field::Empty,
            correlation_id = field::Empty,
            causation_id = field::Empty,
            ticket_id = field::Empty,
            message_type = field::Empty,
        );
        let decoded = prepare_request(&context, &delivery, &span);
        let message = InFlight { delivery, span };
        match decoded {
            Ok(decoded) => prepared.push((message, decoded)),
            Err(undecodable) => {
                let outcome = settle(
                    &context,
                    &message.delivery,
                    undecodable.message_id.as_deref(),
                    &dead_letters,
                    Verdict::DeadLetter(undecodable.reason),
                )
                .instrument(message.span.clone())
                .await;
                record("undecodable", outcome, started);
            }
        }
    }
    // concurrent batches lock tickets in one order: no deadlocks between them
    prepared.sort_by_key(|(_, decoded)| decoded.as_message().ticket_id());
    let messages: Vec<Message<'_>> = prepared
        .iter()
        .map(|(_, decoded)| decoded.as_message())
        .collect();
    let results = tokio::select! {
        results = apply_isolating_panics(&context.workflow, &messages, context.retry) => Some(results),
        () = abandon.cancelled() => None,
    };
    in_flight_gauge.decrement(count);
    let Some(results) = results else {
        // left unacked: they return to the queue when the connection closes
        return;
    };
    for ((message, decoded), result) in prepared.iter().zip(results) {
        let mut verdict = message.span.in_scope(|| verdict_of(result));
        if let Verdict::Failed(error) = verdict {
            verdict = count_failure(&context, decoded, error)
                .instrument(message.span.clone())
                .await;
        }
        let outcome = settle(
            &context,
            &message.delivery,
            Some(&decoded.origin.message_id),
            &dead_letters,
            verdict,
        )
        .instrument(message.span.clone())
        .await;
        record(decoded.kind.as_str(), outcome, started);
    }
}

fn record(message_type: &'static str, outcome: &'static str, started: Instant) {
    metrics::counter!("phaseflow_messages_total", "queue" => QUEUE_LABEL, "type" => message_type, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("phaseflow_handler_duration_seconds", "queue" => QUEUE_LABEL)
        .record(started.elapsed().as_secs_f64());
}

/// Applies a batch; when it panics, applies its messages one by one so that only the message
/// that panics fails.
async fn apply_isolating_panics(
    workflow: &Workflow,
    messages: &[Message<'_>],
    retry: RetryPolicy,
) -> Vec<Result<RequestOutcome, WorkflowError>> {
    if let Ok(results) = AssertUnwindSafe(workflow.handle_batch(messages, retry))
        .catch_unwind()
        .await
    {
        return results;
    }
    tracing::error!(
        messages = messages.len(),
        "processing a batch panicked; applying its messages one by one"
    );
    let mut results = Vec::with_capacity(messages.len());
    for message in messages {
        let single = AssertUnwindSafe(workflow.handle_batch(std::slice::from_ref(message), retry))
            .catch_unwind()
            .await;
        results.push(match single {
            Ok(mut outcome) => outcome.pop().unwrap_or_else(|| {
                Err(WorkflowError::Failed(anyhow::anyhow!(
                    "no outcome for the message"
                )))
            }),
            Err(_) => Err(WorkflowError::Failed(anyhow::anyhow!(
                "processing the message panicked"
            ))),
        });
    }
    results
}

/// Counts a failed processing attempt in Postgres and decides: requeue, or dead-letter once
/// `amqp.delivery_limit` attempts failed. Redeliveries after a stop or a lost connection are
/// not attempts that failed, so an outage never leads to a dead letter.
async fn count_failure(
    context: &ConsumerContext,
    decoded: &Prepared,
    error: WorkflowError,
) -> Verdict {
    match context
        .workflow
        .record_failure(
            crate::workflow::REQUESTS_HANDLER,
            &decoded.origin.message_id,
            &error,
        )
        .await
    {
        Ok(failures) if failures >= context.settings.delivery_limit as i32 => Verdict::DeadLetter(
            format!("processing failed {failures} times; last error: {error:#}"),
        ),
        Ok(failures) => {
            tracing::error!(
                error = format!("{error:#}"),
                failures,
                "processing failed; the message is requeued"
            );
            Verdict::Failed(error)
        }
        Err(record_error) => {
            tracing::error!(error = format!("{error:#}"), %record_error, "processing failed and the failure could not be counted; the message is requeued");
            Verdict::Failed(error)
        }
    }
}

/// What to do with a delivery once its processing ended.
enum Verdict {
    /// committed (or found in the inbox): ack
    Done(&'static str),
    /// never processable: dead-letter with the reason, then ack
    DeadLetter(String),
    /// processing failed for a reason other than an outage: requeue (after counting it)
    Failed(WorkflowError),
}

fn verdict_of(result: Result<RequestOutcome, WorkflowError>) -> Verdict {
    match result {
        Ok(RequestOutcome::Duplicate) => {
            tracing::info!("duplicate: already applied");
            Verdict::Done("duplicate")
        }
        Ok(RequestOutcome::Applied(outcome)) => match outcome.result {
            Ok(_) => {
                tracing::info!(outcome = outcome.event_type, "request applied");
                Verdict::Done("applied")
            }
            Err(rejection) => {
                tracing::info!(
                    outcome = outcome.event_type,
                    code = rejection.code.as_str(),
                    "request rejected"
                );
                Verdict::Done("rejected")
            }
        },
        Err(error) => Verdict::Failed(error),
    }
}

/// A delivery that is not a request: dead-lettered at once.
struct Undecodable {
    reason: String,
    /// the body's `id` when it has a usable one, else the AMQP `message_id` property
    message_id: Option<String>,
}

/// Decodes a request; `Err` says why to dead-letter it.
fn prepare_request(
    context: &ConsumerContext,
    delivery: &Delivery,
    span: &tracing::Span,
) -> Result<Prepared, Undecodable> {
    let max_bytes = context.settings.max_message_bytes;
    let envelope = match RequestEnvelope::decode(&delivery.data, max_bytes) {
        Ok(envelope) => envelope,
        Err(error) => {
            // best effort, so that the dead letter's log line names the id it may carry
            let message_id =
                RequestEnvelope::id_of_undecodable(&delivery.data, max_bytes).or_else(|| {
                    delivery
                        .properties
                        .message_id()
                        .as_ref()
                        .map(|id| id.to_string())
                });
            if let Some(id) = &message_id {
                span.record("message_id", id.as_str());
            }
            return Err(Undecodable {
                reason: error.to_string(),
                message_id,
            });
        }
    };
    let properties = &delivery.properties;
    let actor = properties
        .user_id()
        .as_ref()
        .map(|user| user.to_string())
        .unwrap_or_else(|| envelope.requester().to_owned());
    let correlation_id = envelope
        .correlation_id
        .clone()
        .unwrap_or_else(|| envelope.id.clone());
    let reply = properties.reply_to().as_ref().map(|reply_to| Reply {
        routing_key: reply_to.to_string(),
        correlation_id: properties
            .correlation_id()
            .as_ref()
            .map(|id| id.to_string())
            .unwrap_or_else(|| correlation_id.clone()),
    });
    span.record("message_id", envelope.id.as_str());
    span.record("correlation_id", correlation_id.as_str());
    span.record("message_type", envelope.kind.as_str());
    if let Some(subject) = &envelope.subject {
        span.record("ticket_id", subject.as_str());
    }
    let command = parse_command(
        envelope.kind,
        envelope.subject.as_deref(),
        envelope.data.as_ref(),
    )
    .map_err(Rejection::from);
    Ok(Prepared {
        origin: Origin {
            message_id: envelope.id,
            correlation_id,
            actor,
            reply,
        },
        kind: envelope.kind,
        command,
    })
}

/// Acks, dead-letters or requeues; returns the outcome label for metrics. `message_id` (when
/// the delivery has one) goes into the dead-letter log lines, to match them to the dead letter.
async fn settle(
    context: &ConsumerContext,
    delivery: &Delivery,
    message_id: Option<&str>,
    dead_letters: &Channel,
    verdict: Verdict,
) -> &'static str {
    let (label, reason) = match verdict {
        Verdict::Done(label) => {
            ack(delivery).await;
            return label;
        }
        Verdict::DeadLetter(reason) => ("dead_lettered", reason),
        Verdict::Failed(_) => {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await;
            return "retried";
        }
    };
    tracing::warn!(
        message_id,
        reason = reason.as_str(),
        "dead-lettering the message"
    );
    match dead_letter(context, delivery, dead_letters, &reason).await {
        Ok(()) => {
            ack(delivery).await;
            label
        }
        Err(error) => {
            tracing::error!(
                message_id,
                error = format!("{error:#}"),
                "dead-lettering failed; the message is requeued"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            let _ = delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await;
            "retried"
        }
    }
}

async fn ack(delivery: &Delivery) {
    if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
        // the channel is gone (the session's loss is logged where it is noticed): the broker
        // redelivers the message and the inbox absorbs it
        tracing::info!(%error, "ack failed; the message will be redelivered and recognised as a duplicate");
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
        AMQPValue::LongString(CloudEvent::format_time(chrono::Utc::now()).into()),
    );
    let properties: BasicProperties = delivery
        .properties
        .clone()
        .with_headers(headers)
        .with_delivery_mode(2);
    let confirm = channel
        .basic_publish(
            &context.settings.dead_letter_exchange,
            "",
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
