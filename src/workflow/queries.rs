//! The read side: what the HTTP API's GET endpoints show (a ticket, its phase history, its
//! tasks). Plain reads on the pool: no lock, no transaction, no inbox or outbox row, no event.
//!
//! Statements live in `store`; this only picks them and retries transient failures with the
//! same policy as the writes. `None` means the ticket does not exist.

use backon::Retryable;

use crate::domain::TicketId;
use crate::store::{self, tasks::TaskRecord, tickets::HistoryRecord, tickets::TicketRecord};

use super::{RetryPolicy, Workflow, WorkflowError};

impl Workflow {
    /// A ticket as stored (with its context and summary).
    pub async fn find_ticket(
        &self,
        ticket_id: TicketId,
        retry: RetryPolicy,
    ) -> Result<Option<TicketRecord>, WorkflowError> {
        (|| async {
            let mut connection = self.pool.acquire().await?;
            Ok(store::tickets::find(&mut connection, ticket_id).await?)
        })
        .retry(retry.backoff())
        .when(WorkflowError::is_transient)
        .await
    }

    /// A ticket's phase history, oldest first.
    pub async fn ticket_history(
        &self,
        ticket_id: TicketId,
        retry: RetryPolicy,
    ) -> Result<Option<Vec<HistoryRecord>>, WorkflowError> {
        (|| async {
            let mut connection = self.pool.acquire().await?;
            if !store::tickets::exists(&mut connection, ticket_id).await? {
                return Ok(None);
            }
            Ok(Some(
                store::tickets::history(&mut connection, ticket_id).await?,
            ))
        })
        .retry(retry.backoff())
        .when(WorkflowError::is_transient)
        .await
    }

    /// Every task of a ticket, of every phase and visit, oldest first.
    pub async fn ticket_tasks(
        &self,
        ticket_id: TicketId,
        retry: RetryPolicy,
    ) -> Result<Option<Vec<TaskRecord>>, WorkflowError> {
        (|| async {
            let mut connection = self.pool.acquire().await?;
            if !store::tickets::exists(&mut connection, ticket_id).await? {
                return Ok(None);
            }
            Ok(Some(
                store::tasks::for_ticket(&mut connection, ticket_id).await?,
            ))
        })
        .retry(retry.backoff())
        .when(WorkflowError::is_transient)
        .await
    }
}
