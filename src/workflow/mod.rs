//! The workflow services: requests applied in Postgres transactions that lock the ticket, apply
//! the change, record the inbox row and write every event it causes to the outbox. Each request
//! kind lives in its own module under [`requests`]; this module runs them in batches, with
//! retries and one outcome per request. The AMQP consumer and the HTTP API both call these, so a
//! change is the same whichever way it arrives.
//!
//! No AMQP types here, and no SQL: statements live in `store`, broker code in `messaging`.
//! Infrastructure failures come back as [`WorkflowError::Transient`] and are retried; a request
//! that cannot be applied is not an error but a [`Rejection`] outcome with its event.

mod agents;
mod automation;
pub mod board;
mod budgets;
mod context;
pub mod discovery;
mod events;
mod gates;
mod leases;
pub mod listings;
mod queries;
pub mod requests;
mod reviews;
mod tasks;
mod usage;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use sqlx::PgPool;
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::{AgentProfile, LeasePolicy, TicketId, WorkflowDefinition};
use crate::protocol::{Event, Rejection, RejectionCode, SYSTEM_ACTOR};
use crate::retry::{Backoff, OutageLog};
use crate::store;
use crate::store::outbox::NewOutboxEvent;
use crate::store::PgConnection;
use crate::telemetry::trace;

pub use agents::{
    AgentPolicy, IssuedToken, ListedAgent, Registration, RegistryError, Unregistered,
    MAX_DAILY_COST_USD, MAX_ROLES,
};
pub use budgets::BudgetPolicy;
pub use events::{Origin, Reply};
pub use leases::{LeaseSweep, StallSweep};
pub use requests::{Command, RequestType};

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
    /// Not attempted: an earlier request about the same ticket in the batch failed, and the
    /// requests about one ticket are applied in the order they were received. Apply it once
    /// the earlier one is settled.
    #[error("not applied yet: an earlier request about the same ticket failed")]
    Deferred,
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
    /// Its id was applied before (or, for a consumed event, its work was done before);
    /// nothing changed and no event was written.
    Duplicate,
    /// A consumed event (not a request), which has no outcome event of its own: its work was
    /// done now, and the events it set off are in the outbox.
    EventConsumed,
    /// A consumed event that names nothing to act on (why): nothing changed.
    EventIgnored(String),
}

/// The one outcome event of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeEvent {
    /// its `type`
    pub event_type: &'static str,
    /// the success event, or the rejection
    pub result: Result<Event, Rejection>,
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
    leases: LeasePolicy,
    budgets: BudgetPolicy,
    /// who is known without a record, and what agents without one may do
    agents: Arc<AgentPolicy>,
    /// the agents whose requests were applied since their `last_seen_at` was last written
    seen: Arc<agents::SeenAgents>,
    postgres: OutageLog,
}

impl Workflow {
    /// A workflow with the default lease policy ([`Workflow::with_leases`] sets another).
    pub fn new(pool: PgPool, definition: WorkflowDefinition, max_summary_tokens: usize) -> Self {
        Workflow {
            pool,
            definition: Arc::new(definition),
            max_summary_tokens,
            leases: LeasePolicy::default(),
            budgets: BudgetPolicy::default(),
            agents: Arc::new(AgentPolicy::default()),
            seen: Arc::default(),
            postgres: OutageLog::new("Postgres"),
        }
    }

    /// How long leases last and how often one may run out (`tasks.*`).
    pub fn with_leases(mut self, leases: LeasePolicy) -> Self {
        self.leases = leases;
        self
    }

    /// What budgets are when nobody says (`budgets.*`).
    pub fn with_budgets(mut self, budgets: BudgetPolicy) -> Self {
        self.budgets = budgets;
        self
    }

    /// Who is known without a record and what an agent without one may do (`auth.operators`,
    /// the configured tokens, `agents.*`).
    pub fn with_agents(mut self, agents: AgentPolicy) -> Self {
        self.agents = Arc::new(agents);
        self
    }

    /// Keeps the agents whose requests it applies, for [`Workflow::write_seen_agents`] (the
    /// worker's lease sweep writes them every round); without this, nothing is kept.
    pub fn with_seen_agents(mut self) -> Self {
        self.seen = Arc::new(agents::SeenAgents::kept());
        self
    }

    /// Whether the message being applied comes from an operator: an authenticated actor that is
    /// registered as one or listed in `auth.operators`.
    pub(crate) fn is_operator(&self, log: &events::EventLog<'_>) -> bool {
        log.origin().authenticated && log.agent().is_some_and(|agent| agent.operator)
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
    ) -> Result<i32, WorkflowError> {
        Ok(
            store::inbox::record_failure(&self.pool, handler, message_id, &format!("{error:#}"))
                .await?,
        )
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
        let mut attempts = 0_u32;
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
            attempts += 1;
            let span = trace::transaction_span(
                attempts,
                pending
                    .iter()
                    .filter_map(|&index| messages[index].origin.trace.as_ref()),
                pending.len(),
            );
            let tried = self
                .try_batch(messages, &pending)
                .instrument(span.clone())
                .await;
            span.record(
                "phaseflow.transaction.outcome",
                match &tried {
                    Ok(_) => "committed",
                    Err(BatchFailure::Batch(error)) if error.is_transient() => "retried",
                    Err(_) => "rolled back",
                },
            );
            drop(span);
            match tried {
                Ok(outcomes) => {
                    self.postgres.succeeded("transactions");
                    for (index, outcome) in pending.into_iter().zip(outcomes) {
                        results[index] = Some(Ok(outcome));
                    }
                }
                Err(BatchFailure::Message(index, error)) => {
                    results[index] = Some(Err(error));
                    defer_after(messages, &mut results, index);
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
                        defer_after(messages, &mut results, index);
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
        let mut actors: Vec<&str> = pending
            .iter()
            .map(|&index| messages[index].origin.actor.as_str())
            .filter(|actor| *actor != SYSTEM_ACTOR)
            .collect();
        actors.sort_unstable();
        actors.dedup();
        self.seen.note(&actors);
        // what an agent may do is read only when something in the batch depends on it: most
        // requests are the same whoever sends them
        let needs_profiles = self.agents.unregistered == Unregistered::Refuse
            || pending
                .iter()
                .any(|&index| messages[index].depends_on_the_agent());
        let profiles = if actors.is_empty() || !needs_profiles {
            HashMap::new()
        } else {
            self.profiles(&mut transaction, &actors)
                .await
                .map_err(BatchFailure::Batch)?
        };
        let mut outcomes = Vec::with_capacity(pending.len());
        let mut events = Vec::new();
        for &index in pending {
            let message = &messages[index];
            // applied before, or earlier in this batch under the same id
            if message.dedupe && !first_time.remove(&message.origin.message_id) {
                outcomes.push(RequestOutcome::Duplicate);
                continue;
            }
            let profile = profiles.get(&message.origin.actor);
            let applied = self
                .apply_request(&mut transaction, message, profile, &mut events)
                .await;
            match applied {
                Ok(outcome) => outcomes.push(outcome),
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

    /// Applies one request (or consumed event) whose id is new, adding the events it causes to
    /// `events`.
    async fn apply_request(
        &self,
        connection: &mut PgConnection,
        message: &Message<'_>,
        profile: Option<&AgentProfile>,
        events: &mut Vec<NewOutboxEvent>,
    ) -> Result<RequestOutcome, WorkflowError> {
        let Message {
            origin,
            kind,
            command,
            ..
        } = *message;
        let unread;
        let profile = match profile {
            Some(profile) => Some(profile),
            None if origin.actor == SYSTEM_ACTOR => None,
            // not needed by this request: as an agent without a record would act
            None => {
                unread = self.agents.profile(&origin.actor, None);
                Some(&unread)
            }
        };
        let mut log = events::EventLog::new(origin).with_agent(profile);
        let refusal = match (profile, kind.rejection_type()) {
            (Some(profile), Some(_)) => self.agents.refusal(origin, profile),
            _ => None,
        };
        let applied = match (refusal, command) {
            (Some(reason), command) => {
                let mut refused = match command {
                    Ok(command) => {
                        Rejection::new(RejectionCode::Forbidden, command.ticket_id(), reason)
                    }
                    Err(rejection) => {
                        Rejection::new(RejectionCode::Forbidden, rejection.ticket_id, reason)
                    }
                };
                if let Ok(Command::Transition(transition)) = command {
                    refused = refused.with_detail(
                        "to_phase",
                        transition
                            .to_phase
                            .map_or(serde_json::Value::Null, |phase| phase.as_str().into()),
                    );
                }
                requests::Applied::Rejected(
                    self.describe_invalid_request(connection, kind, &refused)
                        .await?,
                )
            }
            (None, Ok(command)) => command.apply(self, connection, &mut log).await?,
            (None, Err(rejection)) => requests::Applied::Rejected(
                self.describe_invalid_request(connection, kind, rejection)
                    .await?,
            ),
        };
        let outcome = match applied {
            requests::Applied::Consumed(outcome) => {
                log.append_to(events)
                    .map_err(|error| WorkflowError::Failed(error.into()))?;
                return Ok(outcome);
            }
            requests::Applied::Succeeded(event) => OutcomeEvent {
                event_type: event.event_type(),
                result: Ok(event),
            },
            requests::Applied::Rejected(rejection) => {
                let Some(event_type) = kind.rejection_type() else {
                    return Err(WorkflowError::Failed(anyhow::anyhow!(
                        "{} cannot be rejected; an invalid one is dead-lettered",
                        kind.as_str()
                    )));
                };
                OutcomeEvent {
                    event_type,
                    result: Err(rejection),
                }
            }
        };
        let event = match &outcome.result {
            Ok(event) => event.clone(),
            Err(rejection) => Event::Rejected {
                event_type: outcome.event_type,
                rejection: rejection.clone(),
            },
        };
        log.emit_outcome(&origin.actor, event);
        log.append_to(events)
            .map_err(|error| WorkflowError::Failed(error.into()))?;
        Ok(RequestOutcome::Applied(outcome))
    }

    /// A request rejected before it reached its service: a transition's rejection still names
    /// `from_phase` (the ticket's phase when it exists) and `to_phase` (null when unknown).
    async fn describe_invalid_request(
        &self,
        connection: &mut PgConnection,
        kind: RequestType,
        rejection: &Rejection,
    ) -> Result<Rejection, WorkflowError> {
        let mut rejection = rejection.clone();
        if kind == RequestType::Transition {
            let from_phase = match rejection.ticket_id {
                Some(ticket_id) => store::tickets::lock(connection, ticket_id)
                    .await?
                    .map(|ticket| ticket.phase),
                None => None,
            };
            let from_phase =
                from_phase.map_or(serde_json::Value::Null, |phase| phase.as_str().into());
            rejection.details.insert("from_phase".into(), from_phase);
            rejection
                .details
                .entry("to_phase")
                .or_insert(serde_json::Value::Null);
        }
        Ok(rejection)
    }
}

/// Marks the requests after `failed` that are about the same ticket as deferred, so that none
/// of them is applied before the one that failed.
fn defer_after(
    messages: &[Message<'_>],
    results: &mut [Option<Result<RequestOutcome, WorkflowError>>],
    failed: usize,
) {
    let Some(key) = messages[failed].order_key() else {
        return;
    };
    for (index, message) in messages.iter().enumerate().skip(failed + 1) {
        if results[index].is_none() && message.order_key() == Some(key) {
            results[index] = Some(Err(WorkflowError::Deferred));
        }
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
    /// Whether applying it depends on what its agent may do: a claim (roles, limit, daily
    /// budget), a forced move or release or a change of budget (operators only).
    fn depends_on_the_agent(&self) -> bool {
        match self.command {
            Ok(Command::ClaimTask(_)) => true,
            Ok(Command::Transition(transition)) => transition.force,
            Ok(Command::ReleaseTask(release)) => release.force,
            Ok(Command::SetTicketBudget(_)) => true,
            _ => false,
        }
    }

    /// The ticket whose row the message locks: batches are ordered by it.
    pub fn ticket_id(&self) -> Option<TicketId> {
        match self.command {
            Ok(command) => command.ticket_id(),
            Err(rejection) => rejection.ticket_id,
        }
    }

    /// What the message must keep its place in line with: the ticket it is about, or, for a
    /// task report that names no ticket, the task. Requests with the same key are applied in the
    /// order they were received; `None` (a new ticket with no id chosen) waits for nothing.
    pub fn order_key(&self) -> Option<Uuid> {
        match self.command {
            Ok(Command::CompleteTask(report)) if report.ticket_id.is_none() => {
                Some(report.task_id.0)
            }
            _ => self.ticket_id().map(|ticket| ticket.0),
        }
    }
}

enum BatchFailure {
    /// this message failed for a reason other than an outage: apply the others without it
    Message(usize, WorkflowError),
    /// the transaction as a whole failed
    Batch(WorkflowError),
}
