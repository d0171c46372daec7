//! What the board reads: columns of ticket cards, one card, everything about one ticket that
//! its page shows, and the figures of the operations page; and the report each process makes
//! about itself for that page.
//!
//! Reads go through [`Workflow::read_retrying`] like every read of the API; what belongs
//! together is read in one snapshot. Nothing here changes the workflow's state, and nothing
//! here publishes an event.

use crate::domain::{Phase, TicketId};
use crate::store;
use crate::store::board::{
    CardFilter, CardRecord, ExpiryRecord, ReplayRecord, ReplicaRecord, ReplicaReport,
    TicketArtifact,
};
use crate::store::gate_results::GateResultRecord;
use crate::store::reviews::ReviewRecord;
use crate::store::tasks::TaskRecord;
use crate::store::tickets::{HistoryRecord, TicketRecord};

use super::listings::{fetch_limit, next_page, Page, TicketCursor};
use super::{RetryPolicy, Workflow, WorkflowError};

pub use crate::store::board::CardFilter as BoardFilter;

/// One column of the board: the tickets of a phase that match the filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub phase: Phase,
    /// how many tickets of the phase match the filter
    pub total: i64,
    pub cards: Page<CardRecord>,
}

/// Everything stored about one ticket, read in one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketFile {
    pub ticket: TicketRecord,
    pub history: Vec<HistoryRecord>,
    pub tasks: Vec<TaskRecord>,
    pub artifacts: Vec<TicketArtifact>,
    pub gate_results: Vec<GateResultRecord>,
    pub reviews: Vec<ReviewRecord>,
}

/// What the database knows of the running system.
#[derive(Debug, Clone, PartialEq)]
pub struct Operations {
    pub replicas: Vec<ReplicaRecord>,
    pub outbox_backlog: i64,
    pub outbox_oldest_seconds: Option<f64>,
    pub live_leases: i64,
    pub recent_expiries: Vec<ExpiryRecord>,
    pub recent_replays: Vec<ReplayRecord>,
}

/// Lease expiries (and replays of dead letters) the operations page lists.
const RECENT_EXPIRIES: i64 = 20;

impl Workflow {
    /// Every column (the normal sequence, then PHASE_BLOCKED), each with its first `limit`
    /// cards.
    pub async fn board(
        &self,
        filter: &CardFilter,
        limit: usize,
        retry: RetryPolicy,
    ) -> Result<Vec<Column>, WorkflowError> {
        self.read_retrying(retry, || async {
            let mut snapshot = store::listings::begin_snapshot(&self.pool).await?;
            let totals = store::board::column_totals(&mut snapshot, filter).await?;
            let mut columns = Vec::with_capacity(Phase::ALL.len());
            for phase in Phase::SEQUENCE.into_iter().chain([Phase::Blocked]) {
                let total = totals
                    .iter()
                    .find(|(counted, _)| *counted == phase)
                    .map_or(0, |(_, total)| *total);
                let cards = if total == 0 {
                    Page {
                        items: Vec::new(),
                        next_cursor: None,
                    }
                } else {
                    column_page(&mut snapshot, phase, filter, None, limit).await?
                };
                columns.push(Column {
                    phase,
                    total,
                    cards,
                });
            }
            snapshot.rollback().await?;
            Ok(columns)
        })
        .await
    }

    /// One column's page of at most `limit` cards after `after`.
    pub async fn board_column(
        &self,
        phase: Phase,
        filter: &CardFilter,
        after: Option<TicketCursor>,
        limit: usize,
        retry: RetryPolicy,
    ) -> Result<Column, WorkflowError> {
        self.read_retrying(retry, || async {
            let mut snapshot = store::listings::begin_snapshot(&self.pool).await?;
            let total = store::board::column_totals(&mut snapshot, filter)
                .await?
                .into_iter()
                .find(|(counted, _)| *counted == phase)
                .map_or(0, |(_, total)| total);
            let cards = column_page(&mut snapshot, phase, filter, after, limit).await?;
            snapshot.rollback().await?;
            Ok(Column {
                phase,
                total,
                cards,
            })
        })
        .await
    }

    /// One ticket's card; `None` when there is no such ticket.
    pub async fn board_card(
        &self,
        ticket_id: TicketId,
        retry: RetryPolicy,
    ) -> Result<Option<CardRecord>, WorkflowError> {
        self.read_retrying(retry, || async {
            let mut connection = self.pool.acquire().await?;
            Ok(store::board::card(&mut connection, ticket_id).await?)
        })
        .await
    }

    /// Everything stored about a ticket; `None` when there is no such ticket.
    pub async fn ticket_file(
        &self,
        ticket_id: TicketId,
        retry: RetryPolicy,
    ) -> Result<Option<TicketFile>, WorkflowError> {
        self.read_retrying(retry, || async {
            let mut snapshot = store::listings::begin_snapshot(&self.pool).await?;
            let Some(ticket) = store::tickets::find(&mut snapshot, ticket_id).await? else {
                return Ok(None);
            };
            let file = TicketFile {
                history: store::tickets::history(&mut snapshot, ticket_id).await?,
                tasks: store::tasks::for_ticket(&mut snapshot, ticket_id).await?,
                artifacts: store::board::artifacts(&mut snapshot, ticket_id).await?,
                gate_results: store::gate_results::results(&mut snapshot, ticket_id).await?,
                reviews: store::reviews::for_ticket(&mut snapshot, ticket_id).await?,
                ticket,
            };
            snapshot.rollback().await?;
            Ok(Some(file))
        })
        .await
    }

    /// The outbox backlog, the leases and the processes, as Postgres knows them.
    pub async fn operations(&self, retry: RetryPolicy) -> Result<Operations, WorkflowError> {
        self.read_retrying(retry, || async {
            let mut snapshot = store::listings::begin_snapshot(&self.pool).await?;
            let (outbox_backlog, outbox_oldest_seconds) =
                store::board::outbox_backlog(&mut snapshot).await?;
            let operations = Operations {
                replicas: store::board::replicas(&mut snapshot).await?,
                outbox_backlog,
                outbox_oldest_seconds,
                live_leases: store::claims::live_leases_on(&mut snapshot).await?,
                recent_expiries: store::board::recent_expiries(&mut snapshot, RECENT_EXPIRIES)
                    .await?,
                recent_replays: store::board::recent_replays(&mut snapshot, RECENT_EXPIRIES)
                    .await?,
            };
            snapshot.rollback().await?;
            Ok(operations)
        })
        .await
    }

    /// Records that `operator` replayed a dead letter, retrying per `retry`.
    pub async fn record_replay(
        &self,
        message_id: &str,
        routing_key: &str,
        reason: Option<&str>,
        operator: &str,
        retry: RetryPolicy,
    ) -> Result<(), WorkflowError> {
        self.read_retrying(retry, || async {
            let mut connection = self.pool.acquire().await?;
            store::board::record_replay(&mut connection, message_id, routing_key, reason, operator)
                .await?;
            Ok(())
        })
        .await
    }

    /// Records what a process says about itself (one attempt: the next report comes soon).
    pub async fn report_replica(&self, report: &ReplicaReport<'_>) -> Result<(), WorkflowError> {
        let mut connection = self.pool.acquire().await?;
        store::board::report_replica(&mut connection, report).await?;
        Ok(())
    }
}

async fn column_page(
    snapshot: &mut store::PgConnection,
    phase: Phase,
    filter: &CardFilter,
    after: Option<TicketCursor>,
    limit: usize,
) -> Result<Page<CardRecord>, WorkflowError> {
    let mut cards = store::board::column(
        snapshot,
        phase,
        filter,
        after.map(|cursor| (cursor.updated_at, cursor.id)),
        fetch_limit(limit),
    )
    .await?;
    let next_cursor = next_page(&mut cards, limit).map(|last| {
        TicketCursor {
            updated_at: last.updated_at,
            id: last.ticket_id,
        }
        .encode()
    });
    Ok(Page {
        items: cards,
        next_cursor,
    })
}
