//! The services: one async function per request kind, each owning one Postgres transaction that
//! locks the ticket, applies the change, records the inbox row and writes every event it causes
//! to the outbox. The AMQP consumer and the HTTP API both call these, so a change is the same
//! whichever way it arrives.
//!
//! No AMQP types here, and no SQL: statements live in `store`, broker code in `messaging`.
//! Infrastructure failures come back as [`WorkflowError::Transient`] and are retried; a request
//! that cannot be applied is not an error but a [`Rejection`] outcome with its event.

mod automation;
mod context;
mod events;
mod gates;
mod queries;
mod requests;
mod tasks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use serde_json::Value;
use sqlx::PgPool;

use crate::domain::{TicketId, WorkflowDefinition};
use crate::protocol::{Command, Rejection, RequestType};
use crate::retry::{Backoff, OutageLog};
use crate::store;
use crate::store::outbox::NewOutboxEvent;
use crate::store::PgConnection;

pub use events::{Origin, Reply};

/// Inbox handler name of the request consumer.
pub const REQUESTS_HANDLER: &str = "requests";

/// Why processing did not complete. Rejections are not errors: they are outcomes.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// Postgres is unreachable, restarting, or a transaction conflicted: try again later.
    #[error("temporary database failure: {0}")]
    Transient(#[source] sqlx::Error),
    /// Anything else: a bug or a broken invariant. Retrying the same input will fail again.
    #[error("processing failed: {0}")]
    Failed(#[source] anyhow::Error),
    /// Transient failures outlasted the retry policy's attempts.
    #[error("the database stayed unavailable: {0}")]
    Unavailable(String),
}

impl WorkflowError {
    /// An outage rather than a problem with the message: never a reason to reject it.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            WorkflowError::Transient(_) | WorkflowError::Unavailable(_)
        )
    }

    /// A serialization failure or deadlock: concurrent transactions collided, Postgres is fine.
    fn is_conflict(&self) -> bool {
        matches!(self, WorkflowError::Transient(error) if store::is_conflict(error))
    }
}

impl From<sqlx::Error> for WorkflowError {
    fn from(error: sqlx::Error) -> Self {
        if store::is_transient(&error) {
            WorkflowError::Transient(error)
        } else {
            WorkflowError::Failed(error.into())
        }
    }
}

/// What happened to a request.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestOutcome {
    /// Applied now: the outcome event (success or rejection) is in the outbox.
    Applied(OutcomeEvent),
    /// Its id was applied before; nothing changed and no event was written.
    Duplicate,
}

/// The one outcome event of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeEvent {
    pub event_type: String,
    /// the success event's `data`, or the rejection
    pub result: Result<Value, Rejection>,
}

/// How transient failures are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// `None`: until it succeeds (the caller cancels by dropping the future)
    pub max_attempts: Option<usize>,
}

impl RetryPolicy {
    fn backoff(&self) -> Backoff {
        let backoff = Backoff::new(self.min_delay, self.max_delay);
        match self.max_attempts {
            Some(attempts) => backoff.with_max_times(attempts),
            None => backoff,
        }
    }
}

/// The workflow services over one database.
#[derive(Clone)]
pub struct Workflow {
    pool: PgPool,
    definition: Arc<WorkflowDefinition>,
    max_summary_tokens: usize,
    postgres: OutageLog,
}

impl Workflow {
    pub fn new(pool: PgPool, definition: WorkflowDefinition, max_summary_tokens: usize) -> Self {
        Workflow {
            pool,
            definition: Arc::new(definition),
            max_summary_tokens,
            postgres: OutageLog::new("Postgres"),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The log of Postgres outages its retries meet; share it with the process's other loops
    /// that retry against the same database, so that an outage is logged once.
    pub fn postgres_outages(&self) -> &OutageLog {
        &self.postgres
    }

    pub fn definition(&self) -> &WorkflowDefinition {
        &self.definition
    }

    /// Applies a request in one transaction, retrying transient failures per `retry`.
    /// `dedupe`: record `origin.message_id` in the inbox so the same id is applied at most once.
    pub async fn handle_request(
        &self,
        origin: &Origin,
        kind: RequestType,
        command: &Result<Command, Rejection>,
        dedupe: bool,
        retry: RetryPolicy,
    ) -> Result<RequestOutcome, WorkflowError> {
        let message = Message {
            origin,
            kind,
            command,
            dedupe,
        };
        match self
            .handle_batch(std::slice::from_ref(&message), retry)
            .await
            .pop()
        {
            Some(Ok(outcome)) => Ok(outcome),
            Some(Err(error)) => Err(error),
            None => Err(WorkflowError::Failed(anyhow::anyhow!(
                "a batch of one returned no outcome"
            ))),
        }
    }

    /// Records a failed attempt at processing a message (not an outage) and returns how many
    /// attempts failed so far: the consumer dead-letters the message at its delivery limit.
    pub async fn record_failure(
        &self,
        handler: &str,
        message_id: &str,
        error: &WorkflowError,
    ) -> Result<i32, sqlx::Error> {
        store::inbox::record_failure(&self.pool, handler, message_id, &format!("{error:#}")).await
    }

    /// Applies several messages in one transaction, so they share one commit (one WAL flush),
    /// one inbox statement and one outbox statement.
    ///
    /// Each message still gets its own outcome: a message that fails for a reason other than
    /// an outage is taken out and the rest are applied again without it, so one bad message
    /// never fails its neighbours; when the batch fails as a whole for such a reason, its
    /// messages are applied one at a time. A transient failure retries per `retry`.
    /// Messages are applied in the order given; callers order them by ticket so that
    /// concurrent batches lock tickets in the same order.
    pub async fn handle_batch(
        &self,
        messages: &[Message<'_>],
        retry: RetryPolicy,
    ) -> Vec<Result<RequestOutcome, WorkflowError>> {
        let mut results: Vec<Option<Result<RequestOutcome, WorkflowError>>> =
            messages.iter().map(|_| None).collect();
        let mut delays = retry.backoff().build();
        let mut one_at_a_time = false;
        loop {
            let mut pending: Vec<usize> = (0..messages.len())
                .filter(|index| results[*index].is_none())
                .collect();
            if pending.is_empty() {
                break;
            }
            if one_at_a_time {
                pending.truncate(1);
            }
            let attempt = Instant::now();
            match self.try_batch(messages, &pending).await {
                Ok(outcomes) => {
                    self.postgres.succeeded("transactions");
                    for (index, outcome) in pending.into_iter().zip(outcomes) {
                        results[index] = Some(Ok(outcome));
                    }
                }
                Err(BatchFailure::Message(index, error)) => {
                    results[index] = Some(Err(error));
                }
                Err(BatchFailure::Batch(error)) if error.is_transient() => match delays.next() {
                    Some(delay) => {
                        metrics::counter!("phaseflow_transaction_retries_total").increment(1);
                        if error.is_conflict() {
                            tracing::debug!(%error, retry_in_ms = delay.as_millis() as u64, messages = pending.len(), "transaction conflicted; retrying");
                        } else {
                            self.postgres.failed("transactions", attempt, &error, delay);
                        }
                        tokio::time::sleep(delay).await;
                    }
                    None => {
                        let text = error.to_string();
                        for index in pending {
                            results[index] = Some(Err(WorkflowError::Unavailable(text.clone())));
                        }
                    }
                },
                Err(BatchFailure::Batch(error)) if pending.len() > 1 => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        messages = pending.len(),
                        "a batch failed as a whole; applying its messages one at a time"
                    );
                    one_at_a_time = true;
                }
                Err(BatchFailure::Batch(error)) => {
                    let text = format!("{error:#}");
                    for index in pending {
                        results[index] =
                            Some(Err(WorkflowError::Failed(anyhow::anyhow!("{text}"))));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| {
                    Err(WorkflowError::Failed(anyhow::anyhow!(
                        "message left unprocessed"
                    )))
                })
            })
            .collect()
    }

    async fn try_batch(
        &self,
        messages: &[Message<'_>],
        pending: &[usize],
    ) -> Result<Vec<RequestOutcome>, BatchFailure> {
        let mut transaction = self
            .pool
            .begin()
            .await
            .map_err(|error| BatchFailure::Batch(error.into()))?;
        let batch_error = |error: sqlx::Error| BatchFailure::Batch(error.into());
        let to_record: Vec<(&str, &str)> = pending
            .iter()
            .map(|&index| &messages[index])
            .filter(|message| message.dedupe)
            .map(|message| (message.origin.message_id.as_str(), message.kind.as_str()))
            .collect();
        let mut first_time =
            store::inbox::record_all(&mut transaction, REQUESTS_HANDLER, &to_record)
                .await
                .map_err(batch_error)?;
        let mut outcomes = Vec::with_capacity(pending.len());
        let mut events = Vec::new();
        for &index in pending {
            let message = &messages[index];
            // applied before, or earlier in this batch under the same id
            if message.dedupe && !first_time.remove(&message.origin.message_id) {
                outcomes.push(RequestOutcome::Duplicate);
                continue;
            }
            let applied = self
                .apply_request(&mut transaction, message, &mut events)
                .await;
            match applied {
                Ok(outcome) => outcomes.push(RequestOutcome::Applied(outcome)),
                // the transaction is rolled back when dropped
                Err(error) if error.is_transient() => return Err(BatchFailure::Batch(error)),
                Err(error) => return Err(BatchFailure::Message(index, error)),
            }
        }
        store::outbox::append_numbered(&mut transaction, &events)
            .await
            .map_err(batch_error)?;
        transaction.commit().await.map_err(batch_error)?;
        Ok(outcomes)
    }

    /// Applies one request whose id is new, adding the events it causes to `events`.
    async fn apply_request(
        &self,
        connection: &mut PgConnection,
        message: &Message<'_>,
        events: &mut Vec<NewOutboxEvent>,
    ) -> Result<OutcomeEvent, WorkflowError> {
        let Message {
            origin,
            kind,
            command,
            ..
        } = *message;
        let mut log = events::EventLog::new(origin);
        let result = match command {
            Ok(command) => requests::apply(self, connection, &mut log, command).await?,
            Err(rejection) => Err(self
                .describe_invalid_request(connection, kind, rejection)
                .await?),
        };
        let outcome = match result {
            Ok((event_type, ticket_id, data)) => {
                log.emit_outcome(event_type, Some(ticket_id), &origin.actor, data.clone());
                OutcomeEvent {
                    event_type: event_type.to_owned(),
                    result: Ok(data),
                }
            }
            Err(rejection) => {
                log.emit_outcome(
                    kind.rejection_type(),
                    rejection.ticket_id,
                    &origin.actor,
                    rejection.to_data(),
                );
                OutcomeEvent {
                    event_type: kind.rejection_type().to_owned(),
                    result: Err(rejection),
                }
            }
        };
        log.append_to(events)
            .map_err(|error| WorkflowError::Failed(error.into()))?;
        Ok(outcome)
    }

    /// A request rejected before it reached its service: a transition's rejection still names
    /// `from_phase` (the ticket's phase when it exists) and `to_phase` (null when unknown).
    async fn describe_invalid_request(
        &self,
        connection: &mut PgConnection,
        kind: RequestType,
        rejection: &Rejection,
    ) -> Result<Rejection, sqlx::Error> {
        let mut rejection = rejection.clone();
        if kind == RequestType::Transition {
            let from_phase = match rejection.ticket_id {
                Some(ticket_id) => store::tickets::lock(connection, ticket_id)
                    .await?
                    .map(|ticket| ticket.phase),
                None => None,
            };
            rejection
                .details
                .insert("from_phase".into(), serde_json::json!(from_phase));
            rejection.details.entry("to_phase").or_insert(Value::Null);
        }
        Ok(rejection)
    }
}

/// One request of a batch, already decoded.
pub struct Message<'a> {
    pub origin: &'a Origin,
    pub kind: RequestType,
    pub command: &'a Result<Command, Rejection>,
    /// record the id in the inbox (always, for messages from the broker)
    pub dedupe: bool,
}

impl Message<'_> {
    /// The ticket whose row the message locks: batches are ordered by it.
    pub fn ticket_id(&self) -> Option<TicketId> {
        match self.command {
            Ok(command) => command.ticket_id(),
            Err(rejection) => rejection.ticket_id,
        }
    }
}

enum BatchFailure {
    /// this message failed for a reason other than an outage: apply the others without it
    Message(usize, WorkflowError),
    /// the transaction as a whole failed
    Batch(WorkflowError),
}
