//! The worker's consumer: requests from `phaseflow.requests`, with manual acks and a prefetch
//! window, reconnecting with backoff when the broker goes away.
//!
//! A delivery is acked only after its transaction committed (or it was a duplicate, or it was
//! dead-lettered with its reason). An infrastructure failure is retried in place and never
//! acked, rejected or dead-lettered; a processing bug is requeued until the delivery limit,
//! then dead-lettered with the error.
//!
//! A lost session is rebuilt at once, then per `amqp.reconnect_*`, by the reconnect loop the
//! consumer shares with the relay (`messaging::session`); the outage is logged through the
//! RabbitMQ outage log they share: one warning when it begins, one line when it ends.
//!
//! `settle` acks or dead-letters a delivery once its processing ended; `acks` groups the acks
//! of deliveries settled together into one frame where it can.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use std::panic::AssertUnwindSafe;

use futures_lite::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Acker, Channel, Connection, Consumer};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{field, Instrument};
use uuid::Uuid;

use crate::config::AmqpSettings;
use crate::protocol::{Rejection, RequestEnvelope};
use crate::retry::OutageLog;
use crate::telemetry::trace::{self, TraceContext};
use crate::worker::health::Health;
use crate::workflow::{
    Command, Message, Origin, Reply, RequestOutcome, RequestType, RetryPolicy, Workflow,
    WorkflowError,
};

use super::session::{Reconnect, SessionEnd, Sessions};
use super::topology;

mod acks;
mod settle;

use acks::Acks;
use settle::{settle, verdict_of, Verdict};

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

/// What a session consumes with; its connection is kept by [`Reconnect`].
struct Session {
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
    let reconnect = Reconnect {
        component: "consumer",
        backoff: context.settings.reconnect_backoff(),
        outages: &context.rabbitmq,
        stop: &shutdown,
        give_up: None,
        health: &context.health,
        set_connected: Health::set_consumer_connected,
        close_stopped: (200, "phaseflow worker shutting down"),
        close_lost: (320, "reconnecting"),
    };
    let mut consuming = Consuming {
        context: &context,
        tracker: &tracker,
        shutdown: &shutdown,
        abandon: &abandon,
    };
    reconnect.run(&mut consuming).await;
}

/// The consumer's sessions.
struct Consuming<'a> {
    context: &'a Arc<ConsumerContext>,
    tracker: &'a TaskTracker,
    shutdown: &'a CancellationToken,
    abandon: &'a CancellationToken,
}

impl Sessions for Consuming<'_> {
    type Session = Session;

    async fn open(&mut self) -> anyhow::Result<(Connection, Session)> {
        let settings = &self.context.settings;
        let (connection, _) = super::connect(settings, "phaseflow worker (consumer)").await?;
        let setup = connection.create_channel().await?;
        topology::declare_worker_topology(&setup, settings)
            .await
            .context("declaring the worker's exchanges and queues failed")?;
        let _ = setup.close(200, "topology declared".into()).await;
        let requests =
            open_consumer(&connection, &settings.requests_queue, settings.prefetch).await?;
        let dead_letters = connection.create_channel().await?;
        dead_letters
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok((
            connection,
            Session {
                requests,
                dead_letters,
            },
        ))
    }

    /// Consumes until `shutdown` (then lets in-flight messages finish, until `abandon`) or
    /// until the broker ends the session (then logs why).
    async fn run(&mut self, session: &mut Session) -> SessionEnd {
        tracing::info!("consuming requests");
        let (requests_channel, requests_consumer) = &mut session.requests;
        let requests_tag = requests_consumer.tag();
        let (tracker, abandon) = (self.tracker, self.abandon);
        let lost = tokio::select! {
            lost = pump(self.context, requests_consumer, &session.dead_letters, tracker, abandon) => Some(lost),
            () = self.shutdown.cancelled() => None,
        };
        let Some(lost) = lost else {
            let _ = requests_channel
                .basic_cancel(requests_tag, BasicCancelOptions::default())
                .await;
            tracker.close();
            tokio::select! {
                () = tracker.wait() => tracing::info!("in-flight messages finished"),
                () = abandon.cancelled() => tracing::warn!("shutdown grace period over; unfinished messages return to their queue"),
            }
            return SessionEnd::Stop;
        };
        self.context.rabbitmq.failed(
            "consumer",
            Instant::now(),
            &format_args!("the consumer stopped: {lost}"),
            Duration::ZERO,
        );
        SessionEnd::Lost
    }
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
            queue.into(),
            "".into(),
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
///
/// Requests about one ticket are applied in the order they were received: a delivery whose
/// ticket has a request in an unfinished batch waits (with every later one about that ticket)
/// until that batch is settled, while deliveries about other tickets go ahead.
async fn pump(
    context: &Arc<ConsumerContext>,
    consumer: &mut Consumer,
    dead_letters: &Channel,
    tracker: &TaskTracker,
    abandon: &CancellationToken,
) -> String {
    let batch_size = usize::from(context.settings.batch_size.max(1));
    let running_batches = Arc::new(Semaphore::new(usize::from(
        context.settings.concurrent_batches.max(1),
    )));
    // deliveries received and not yet in a batch, in the order received: at most `amqp.prefetch`
    let mut waiting: VecDeque<Received> = VecDeque::new();
    let in_line = Arc::new(InLine::default());
    // this session's channel: its delivery tags start over with the next session's
    let acks = Arc::new(Acks::default());
    loop {
        // take what is ready now, so that it can share the next batch
        while waiting.len() < usize::from(context.settings.prefetch.max(1)) {
            match futures_lite::future::poll_once(consumer.next()).await {
                Some(Some(Ok(delivery))) => waiting.push_back(receive(context, &acks, delivery)),
                Some(Some(Err(error))) => return error.to_string(),
                Some(None) => return CANCELLED.to_owned(),
                None => break,
            }
        }
        // start batches while a slot is free and some delivery may go ahead
        while !waiting.is_empty() {
            let Ok(slot) = running_batches.clone().try_acquire_owned() else {
                break;
            };
            let batch = in_line.take_batch(&mut waiting, batch_size);
            if batch.is_empty() {
                break;
            }
            let keys: Vec<Uuid> = batch.iter().filter_map(|received| received.key).collect();
            let ackers: Vec<(u64, Acker)> = batch
                .iter()
                .map(|received| {
                    let delivery = &received.message.delivery;
                    (delivery.delivery_tag, delivery.acker.clone())
                })
                .collect();
            let work = process_batch(
                context.clone(),
                batch,
                dead_letters.clone(),
                acks.clone(),
                abandon.clone(),
            );
            let in_line = in_line.clone();
            let acks = acks.clone();
            tracker.spawn(async move {
                if AssertUnwindSafe(work).catch_unwind().await.is_err() {
                    // a panic outside the workflow (panics inside it are isolated per message):
                    // requeue what is unsettled rather than leave it unacked on the channel
                    tracing::error!(
                        queue = QUEUE_LABEL,
                        "processing a batch panicked; its messages are requeued"
                    );
                    acks.requeue_unsettled(&ackers).await;
                }
                drop(slot);
                in_line.release(&keys);
            });
        }
        // wait for a delivery, or for a batch to finish (a slot and its tickets are free again)
        tokio::select! {
            next = consumer.next() => match next {
                Some(Ok(delivery)) => waiting.push_back(receive(context, &acks, delivery)),
                Some(Err(error)) => return error.to_string(),
                None => return CANCELLED.to_owned(),
            },
            () = in_line.settled.notified() => {}
        }
    }
}

/// The tickets that have a request in an unfinished batch of this consumer.
///
/// This is one process's view of the deliveries it received; it orders what one replica
/// applies. Across replicas, the ticket's row lock serialises the transactions and
/// `expected_from_phase` lets a client make a request depend on the state it saw.
#[derive(Default)]
struct InLine {
    busy: std::sync::Mutex<HashMap<Uuid, usize>>,
    /// woken whenever a batch is settled
    settled: Notify,
}

impl InLine {
    /// Takes up to `limit` deliveries that may go ahead, in the order received, and marks their
    /// tickets busy. A delivery stays waiting when its ticket is busy, or when an earlier waiting
    /// delivery about the same ticket stays waiting.
    fn take_batch(&self, waiting: &mut VecDeque<Received>, limit: usize) -> Vec<Received> {
        let mut busy = self
            .busy
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut held_back: HashSet<Uuid> = HashSet::new();
        let mut batch = Vec::new();
        let mut kept = VecDeque::with_capacity(waiting.len());
        while let Some(received) = waiting.pop_front() {
            let goes = batch.len() < limit
                && received
                    .key
                    .is_none_or(|key| !busy.contains_key(&key) && !held_back.contains(&key));
            if goes {
                batch.push(received);
            } else {
                if let Some(key) = received.key {
                    held_back.insert(key);
                }
                kept.push_back(received);
            }
        }
        *waiting = kept;
        for key in batch.iter().filter_map(|received| received.key) {
            *busy.entry(key).or_insert(0) += 1;
        }
        batch
    }

    /// Frees the tickets of a settled batch and wakes the pump.
    fn release(&self, keys: &[Uuid]) {
        {
            let mut busy = self
                .busy
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for key in keys {
                if let Some(count) = busy.get_mut(key) {
                    *count -= 1;
                    if *count == 0 {
                        busy.remove(key);
                    }
                }
            }
        }
        self.settled.notify_one();
    }
}

/// Why a consumer stream ends without an error: the broker cancelled the consumer (its queue
/// was deleted, say), or the channel or connection closed.
const CANCELLED: &str = "the broker cancelled the consumer, or its channel closed";

/// A delivery decoded into what the workflow applies.
struct Prepared {
    origin: Origin,
    kind: RequestType,
    command: Result<Command, Rejection>,
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

/// A delivery as received: decoded (or the reason it cannot be), and the key it keeps its
/// place in line by.
struct Received {
    message: InFlight,
    decoded: Result<Prepared, Undecodable>,
    key: Option<Uuid>,
}

fn receive(context: &ConsumerContext, acks: &Acks, delivery: Delivery) -> Received {
    acks.received(delivery.delivery_tag);
    // attribute names of the OpenTelemetry messaging and CloudEvents conventions
    let span = tracing::info_span!(
        "message",
        otel.name = "process requests",
        otel.kind = "consumer",
        messaging.system = "rabbitmq",
        messaging.operation.type = "process",
        messaging.destination.name = QUEUE_LABEL,
        messaging.message.id = field::Empty,
        messaging.rabbitmq.message.redelivered = delivery.redelivered,
        phaseflow.attempt = delivery_attempt(&delivery),
        phaseflow.queue_wait_ms = field::Empty,
        cloudevents.event_id = field::Empty,
        cloudevents.event_type = field::Empty,
        phaseflow.outcome = field::Empty,
        phaseflow.rejection_code = field::Empty,
        queue = QUEUE_LABEL,
        message_id = field::Empty,
        correlation_id = field::Empty,
        causation_id = field::Empty,
        ticket_id = field::Empty,
        message_type = field::Empty,
        trace_id = field::Empty,
    );
    let decoded = prepare_request(context, &delivery, &span);
    let key = decoded
        .as_ref()
        .ok()
        .and_then(|decoded| decoded.as_message().order_key());
    Received {
        message: InFlight { delivery, span },
        decoded,
        key,
    }
}

async fn process_batch(
    context: Arc<ConsumerContext>,
    batch: Vec<Received>,
    dead_letters: Channel,
    acks: Arc<Acks>,
    abandon: CancellationToken,
) {
    let started = Instant::now();
    let in_flight_gauge = metrics::gauge!("phaseflow_messages_in_flight");
    let count = batch.len() as f64;
    in_flight_gauge.increment(count);
    context.health.started(batch.len() as u64);
    let mut prepared: Vec<(InFlight, Prepared)> = Vec::with_capacity(batch.len());
    for Received {
        message, decoded, ..
    } in batch
    {
        match decoded {
            Ok(decoded) => prepared.push((message, decoded)),
            Err(undecodable) => {
                let outcome = settle(
                    &context,
                    &message.delivery,
                    undecodable.message_id.as_deref(),
                    &dead_letters,
                    &acks,
                    Verdict::DeadLetter(undecodable.reason),
                )
                .instrument(message.span.clone())
                .await;
                record("undecodable", outcome, started);
            }
        }
    }
    // concurrent batches lock tickets in one order: no deadlocks between them; the sort is
    // stable, so the requests about one ticket keep the order they were received in
    prepared.sort_by_key(|(_, decoded)| decoded.as_message().ticket_id());
    let messages: Vec<Message<'_>> = prepared
        .iter()
        .map(|(_, decoded)| decoded.as_message())
        .collect();
    let settled = async {
        let results = apply_isolating_panics(&context.workflow, &messages, context.retry).await;
        // the deliveries whose transaction committed are acked together, in as few frames as
        // the channel allows; before a retry in place, those so far are acked first
        let mut done: Vec<&Delivery> = Vec::with_capacity(prepared.len());
        for ((message, decoded), result) in prepared.iter().zip(results) {
            let verdict = match result {
                Ok(outcome) => message.span.in_scope(|| verdict_of(outcome)),
                Err(error) => {
                    acks.ack(&done).await;
                    done.clear();
                    retry_in_place(&context, decoded, error)
                        .instrument(message.span.clone())
                        .await
                }
            };
            let outcome = match verdict {
                Verdict::Done(label) => {
                    done.push(&message.delivery);
                    label
                }
                verdict => {
                    settle(
                        &context,
                        &message.delivery,
                        Some(&decoded.origin.message_id),
                        &dead_letters,
                        &acks,
                        verdict,
                    )
                    .instrument(message.span.clone())
                    .await
                }
            };
            record(decoded.kind.as_str(), outcome, started);
        }
        acks.ack(&done).await;
    };
    tokio::select! {
        () = settled => {}
        // left unacked: they return to the queue when the connection closes
        () = abandon.cancelled() => {}
    }
    in_flight_gauge.decrement(count);
    context.health.finished(count as u64);
}

/// A request whose processing failed (or waited behind one about the same ticket that failed)
/// is applied again here, in its place, rather than requeued behind later requests about its
/// ticket: failed attempts are counted in Postgres, and at `amqp.delivery_limit` it is
/// dead-lettered with the error.
async fn retry_in_place(
    context: &ConsumerContext,
    decoded: &Prepared,
    mut error: WorkflowError,
) -> Verdict {
    loop {
        if !matches!(error, WorkflowError::Deferred) {
            if let Some(reason) = count_failure(context, decoded, error).await {
                return Verdict::DeadLetter(reason);
            }
            tokio::time::sleep(FAILED_ATTEMPT_PAUSE).await;
        }
        let message = decoded.as_message();
        let result = apply_isolating_panics(
            &context.workflow,
            std::slice::from_ref(&message),
            context.retry,
        )
        .await
        .pop()
        .unwrap_or_else(|| {
            Err(WorkflowError::Failed(anyhow::anyhow!(
                "no outcome for the message"
            )))
        });
        match result {
            Ok(outcome) => return verdict_of(outcome),
            Err(next) => error = next,
        }
    }
}

/// How long a request whose processing failed waits before it is applied again.
const FAILED_ATTEMPT_PAUSE: Duration = Duration::from_millis(200);

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
    let mut failed: HashSet<Uuid> = HashSet::new();
    for message in messages {
        if message.order_key().is_some_and(|key| failed.contains(&key)) {
            results.push(Err(WorkflowError::Deferred));
            continue;
        }
        let single = AssertUnwindSafe(workflow.handle_batch(std::slice::from_ref(message), retry))
            .catch_unwind()
            .await;
        let succeeded = matches!(single, Ok(ref outcomes) if outcomes.iter().all(Result::is_ok));
        if !succeeded {
            failed.extend(message.order_key());
        }
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

/// Counts a failed processing attempt in Postgres and returns the reason to dead-letter the
/// request once `amqp.delivery_limit` attempts failed. Redeliveries after a stop or a lost
/// connection are not attempts that failed, so an outage never leads to a dead letter.
async fn count_failure(
    context: &ConsumerContext,
    decoded: &Prepared,
    error: WorkflowError,
) -> Option<String> {
    match context
        .workflow
        .record_failure(
            crate::workflow::REQUESTS_HANDLER,
            &decoded.origin.message_id,
            &error,
        )
        .await
    {
        Ok(failures) if failures >= context.settings.delivery_limit as i32 => Some(format!(
            "processing failed {failures} times; last error: {error:#}"
        )),
        Ok(failures) => {
            tracing::error!(
                error = format!("{error:#}"),
                failures,
                "processing failed; the request is applied again"
            );
            None
        }
        Err(record_error) => {
            tracing::error!(error = format!("{error:#}"), %record_error, "processing failed and the failure could not be counted; the request is applied again");
            None
        }
    }
}

/// A delivery that is not a request: dead-lettered at once.
struct Undecodable {
    reason: String,
    /// the body's `id` when it has a usable one, else the AMQP `message_id` property
    message_id: Option<String>,
}

/// Which delivery of its message this is: 1, plus the deliveries before it that the quorum
/// queue counted (`x-delivery-count`: returned to the queue unacknowledged, by a replica that
/// stopped or lost its connection).
fn delivery_attempt(delivery: &Delivery) -> i64 {
    let earlier = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get("x-delivery-count"))
        .and_then(|count| match count {
            AMQPValue::LongLongInt(count) => Some(*count),
            AMQPValue::LongInt(count) => Some(i64::from(*count)),
            AMQPValue::ShortInt(count) => Some(i64::from(*count)),
            AMQPValue::LongUInt(count) => Some(i64::from(*count)),
            _ => None,
        })
        .unwrap_or(0);
    earlier.saturating_add(1)
}

/// How long the request waited between its sending and now, in milliseconds: from its
/// CloudEvents `time`, else its AMQP `timestamp` (whole seconds). A sender's clock that runs
/// ahead makes it 0.
fn queue_wait(time: Option<DateTime<Utc>>, properties: &lapin::BasicProperties) -> Option<f64> {
    let sent = time.or_else(|| {
        properties
            .timestamp()
            .and_then(|seconds| DateTime::from_timestamp(i64::try_from(seconds).ok()?, 0))
    })?;
    let waited = Utc::now().signed_duration_since(sent).num_microseconds()?;
    Some(waited.max(0) as f64 / 1000.0)
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
    // the broker checks `user_id` against the connection's user; `actor` is only claimed
    let verified_user = properties.user_id().as_ref().map(|user| user.to_string());
    let authenticated = verified_user.is_some();
    let actor = verified_user.unwrap_or_else(|| envelope.requester().to_owned());
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
    span.record("messaging.message.id", envelope.id.as_str());
    span.record("cloudevents.event_id", envelope.id.as_str());
    span.record("cloudevents.event_type", envelope.type_name.as_str());
    span.record("correlation_id", correlation_id.as_str());
    if let Some(waited) = queue_wait(envelope.time, properties) {
        span.record("phaseflow.queue_wait_ms", waited);
    }
    // the caller's trace: the CloudEvent's attributes, else the message's AMQP headers
    let caller_trace = envelope.trace.clone().or_else(|| trace_headers(properties));
    trace::continue_trace(span, caller_trace.as_ref());
    if let Some(trace_id) = trace::trace_id_of(span) {
        span.record("trace_id", trace_id.as_str());
    }
    let kind = RequestType::parse(&envelope.type_name).map_err(|error| Undecodable {
        reason: error.to_string(),
        message_id: Some(envelope.id.clone()),
    })?;
    span.record("message_type", kind.as_str());
    if let Some(subject) = &envelope.subject {
        span.record("ticket_id", subject.as_str());
    }
    let command = Command::parse(kind, envelope.subject.as_deref(), envelope.data.as_ref());
    // an event has no rejection to answer with: one that cannot be read is a dead letter
    let command = match command {
        Err(invalid) if !kind.is_request() => {
            return Err(Undecodable {
                reason: format!(
                    "{} cannot be acted on: {}",
                    kind.as_str(),
                    invalid.reasons.join("; ")
                ),
                message_id: Some(envelope.id.clone()),
            })
        }
        command => command.map_err(Rejection::from),
    };
    Ok(Prepared {
        origin: Origin {
            message_id: envelope.id,
            correlation_id,
            actor,
            reply,
            authenticated,
            trace: trace::context_of(span),
        },
        kind,
        command,
    })
}

/// The W3C trace context of a message's AMQP headers `traceparent` and `tracestate`.
fn trace_headers(properties: &lapin::BasicProperties) -> Option<TraceContext> {
    let headers = properties.headers().as_ref()?;
    let text = |name: &str| match headers.inner().get(name) {
        Some(AMQPValue::LongString(text)) => Some(text.to_string()),
        Some(AMQPValue::ShortString(text)) => Some(text.to_string()),
        _ => None,
    };
    TraceContext::read(
        text(trace::TRACEPARENT).as_deref(),
        text(trace::TRACESTATE).as_deref(),
    )
}
