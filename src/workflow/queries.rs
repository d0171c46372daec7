//! The read side: what the HTTP API's GET endpoints show (a ticket, its phase history, its
//! tasks). Plain reads on the pool: no lock, no transaction, no inbox or outbox row, no event.
//!
//! Statements live in `store`; this only picks them and retries transient failures with the
//! same policy as the writes, logging an outage through the workflow's outage log. `None` means
//! the ticket does not exist.

use std::future::Future;
use std::time::Instant;

use backon::Retryable;

use crate::domain::TicketId;
use crate::store::budgets::TicketUsage;
use crate::store::gate_results::GateResultRecord;
use crate::store::reviews::ReviewRecord;
use crate::store::{self, tasks::TaskRecord, tickets::HistoryRecord, tickets::TicketRecord};

use super::{RetryPolicy, Workflow, WorkflowError};

impl Workflow {
    /// Runs `read`, again per `retry` while it fails for a transient reason.
    pub(super) async fn read_retrying<T, F, Fut>(
        &self,
        retry: RetryPolicy,
        read: F,
    ) -> Result<T, WorkflowError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, WorkflowError>>,
    {
        let mut read = read;
        // each attempt's failure carries when it began, for the outage log
        let attempt = || {
            let started = Instant::now();
            let reading = read();
            async move { reading.await.map_err(|error| (started, error)) }
        };
        let result = attempt
            .retry(retry.backoff())
            .when(|(_, error)| error.is_transient())
            .notify(|(started, error), delay| self.postgres.failed("reads", *started, error, delay))
            .await;
        if result.is_ok() {
            self.postgres.succeeded("reads");
        }
        result.map_err(|(_, error)| error)
    }

    /// A ticket as stored (with its context and summary).
    pub async fn find_ticket(
        &self,
        ticket_id: TicketId,
        retry: RetryPolicy,
    ) -> Result<Option<TicketRecord>, WorkflowError> {
        self.read_retrying(retry, || async {
            let mut connection = self.pool.acquire().await?;
            Ok(store::tickets::find(&mut connection, ticket_id).await?)
        })
        .await
    }

    /// A ticket's gate validations and reviews, oldest first.
    pub async fn ticket_gates(
        &self,
        ticket_id: TicketId,
        retry: RetryPolicy,
    ) -> Result<Option<(Vec<GateResultRecord>, Vec<ReviewRecord>)>, WorkflowError> {
        self.read_retrying(retry, || async {
            let mut connection = self.pool.acquire().await?;
            if !store::tickets::exists(&mut connection, ticket_id).await? {
                return Ok(None);
            }
            let results = store::gate_results::results(&mut connection, ticket_id).await?;
            let reviews = store::reviews::for_ticket(&mut connection, ticket_id).await?;
            Ok(Some((results, reviews)))
        })
        .await
    }

    /// A ticket's budget and what its work cost, in all and by phase, agent and task.
    pub async fn ticket_usage(
        &self,
        ticket_id: TicketId,
        retry: RetryPolicy,
    ) -> Result<Option<TicketUsage>, WorkflowError> {
        self.read_retrying(retry, || async {
            let mut connection = self.pool.acquire().await?;
            Ok(store::budgets::ticket_usage(&mut connection, ticket_id).await?)
        })
        .await
    }

    /// A ticket's phase history, oldest first.
    pub async fn ticket_history(
        &self,
        ticket_id: TicketId,
        retry: RetryPolicy,
    ) -> Result<Option<Vec<HistoryRecord>>, WorkflowError> {
        self.read_retrying(retry, || async {
            let mut connection = self.pool.acquire().await?;
            if !store::tickets::exists(&mut connection, ticket_id).await? {
                return Ok(None);
            }
            Ok(Some(
                store::tickets::history(&mut connection, ticket_id).await?,
            ))
        })
        .await
    }

    /// Every task of a ticket, of every phase and visit, oldest first.
    pub async fn ticket_tasks(
        &self,
        ticket_id: TicketId,
        retry: RetryPolicy,
    ) -> Result<Option<Vec<TaskRecord>>, WorkflowError> {
        self.read_retrying(retry, || async {
            let mut connection = self.pool.acquire().await?;
            if !store::tickets::exists(&mut connection, ticket_id).await? {
                return Ok(None);
            }
            Ok(Some(
                store::tasks::for_ticket(&mut connection, ticket_id).await?,
            ))
        })
        .await
    }
}
