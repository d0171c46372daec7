//! Listings of tickets and tasks across tickets, one page at a time, with opaque cursors.
//!
//! Tickets come most recently updated first, paged on (`updated_at`, id): a page starts right
//! after the last ticket of the previous one. A ticket's `updated_at` only grows, so a ticket
//! changed while a client pages moves to the front, before the pages already read: it is not
//! shown twice, and may not be shown at all in that pass; every ticket not changed meanwhile is
//! shown exactly once. Tasks come in the order they were created (`seq`, which never changes),
//! so their pages have no gaps or repeats, and tasks created meanwhile come on later pages.
//!
//! Each listed ticket carries its checked moves, as [`Workflow::ticket_overview`] shows them,
//! judged with the tasks and artifacts read in the same snapshot. Reads only: nothing here
//! writes.

use chrono::{DateTime, Utc};

use crate::domain::{Phase, PhaseRules, TicketId};
use crate::store::{self, tasks::TaskRecord};

use super::discovery::{self, GateInputs, TicketOverview};
use super::{RetryPolicy, Workflow, WorkflowError};

pub use crate::store::listings::{TaskFilter, TicketFilter};

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A cursor that is not one this listing handed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a cursor of this listing; pass next_cursor of the previous page as it is")]
pub struct InvalidCursor(pub String);

/// Where a page of tickets starts: after this ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketCursor {
    pub updated_at: DateTime<Utc>,
    pub id: TicketId,
}

/// Where a page of tasks starts: after the task created as `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskCursor {
    pub seq: i64,
}

/// The first byte of an encoded cursor: which listing it belongs to.
const TICKETS: u8 = 1;
const TASKS: u8 = 2;

/// The time range a ticket cursor stands for: a decoded time outside it is taken as its nearer
/// end, which pages alike (no ticket is updated before year 1 or after year 9999) and which
/// both chrono and Postgres represent.
const EARLIEST_MICROS: i64 = -62_135_596_800_000_000;
const LATEST_MICROS: i64 = 253_402_300_799_999_999;

impl TicketCursor {
    /// What every ticket cursor looks like, as a JSON Schema `pattern`: `01` and 48 hex digits.
    /// [`TicketCursor::decode`] accepts every text that matches it.
    pub const PATTERN: &str = "^01[0-9a-fA-F]{48}$";

    /// The cursor as clients see it: lowercase hex, meaningless to them.
    pub fn encode(&self) -> String {
        let mut bytes = vec![TICKETS];
        bytes.extend_from_slice(&self.updated_at.timestamp_micros().to_be_bytes());
        bytes.extend_from_slice(self.id.0.as_bytes());
        hex(&bytes)
    }

    pub fn decode(text: &str) -> Result<Self, InvalidCursor> {
        let invalid = || InvalidCursor(text.to_owned());
        let bytes = unhex(text).ok_or_else(invalid)?;
        let [TICKETS, rest @ ..] = bytes.as_slice() else {
            return Err(invalid());
        };
        let (micros, id) = rest.split_at_checked(8).ok_or_else(invalid)?;
        let micros = i64::from_be_bytes(micros.try_into().map_err(|_| invalid())?)
            .clamp(EARLIEST_MICROS, LATEST_MICROS);
        let id = uuid::Uuid::from_slice(id).map_err(|_| invalid())?;
        let updated_at = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
        Ok(TicketCursor {
            updated_at,
            id: TicketId(id),
        })
    }
}

impl TaskCursor {
    /// What every task cursor looks like, as a JSON Schema `pattern`: `02` and 16 hex digits.
    /// [`TaskCursor::decode`] accepts every text that matches it.
    pub const PATTERN: &str = "^02[0-9a-fA-F]{16}$";

    /// The cursor as clients see it: lowercase hex, meaningless to them.
    pub fn encode(&self) -> String {
        let mut bytes = vec![TASKS];
        bytes.extend_from_slice(&self.seq.to_be_bytes());
        hex(&bytes)
    }

    pub fn decode(text: &str) -> Result<Self, InvalidCursor> {
        let invalid = || InvalidCursor(text.to_owned());
        let bytes = unhex(text).ok_or_else(invalid)?;
        let [TASKS, rest @ ..] = bytes.as_slice() else {
            return Err(invalid());
        };
        let seq: [u8; 8] = rest.try_into().map_err(|_| invalid())?;
        Ok(TaskCursor {
            seq: i64::from_be_bytes(seq),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).ok())
        .collect()
}

impl Workflow {
    /// A page of at most `limit` tickets that match `filter`, most recently updated first,
    /// starting after `after`; each with its moves checked as
    /// [`Workflow::ticket_overview`] checks them.
    pub async fn list_tickets(
        &self,
        filter: &TicketFilter,
        after: Option<TicketCursor>,
        limit: usize,
        retry: RetryPolicy,
    ) -> Result<Page<TicketOverview>, WorkflowError> {
        let definition = self.definition();
        self.read_retrying(retry, || async {
            let mut snapshot = store::listings::begin_snapshot(&self.pool).await?;
            let mut tickets = store::listings::tickets(
                &mut snapshot,
                filter,
                after.map(|cursor| (cursor.updated_at, cursor.id)),
                fetch_limit(limit),
            )
            .await?;
            let next_cursor = next_page(&mut tickets, limit).map(|last| {
                TicketCursor {
                    updated_at: last.updated_at,
                    id: last.id,
                }
                .encode()
            });
            let gates: Vec<(TicketId, Phase)> = tickets
                .iter()
                .flat_map(|ticket| {
                    let targets = ticket.phase.allowed_targets();
                    discovery::gates_to_check(definition, ticket, targets)
                        .into_iter()
                        .map(|phase| (ticket.id, phase))
                })
                .collect();
            let mut inputs = GateInputs::default();
            if !gates.is_empty() {
                inputs.add_tasks(store::listings::tasks_of_phases(&mut snapshot, &gates).await?);
                inputs.add_artifacts(
                    store::listings::artifacts_of_phases(&mut snapshot, &gates).await?,
                );
                inputs
                    .add_reviews(definition, &mut snapshot, &gates)
                    .await?;
            }
            snapshot.rollback().await?;
            Ok(Page {
                items: tickets
                    .into_iter()
                    .map(|ticket| discovery::overview(definition, ticket, &inputs))
                    .collect(),
                next_cursor,
            })
        })
        .await
    }

    /// A page of at most `limit` tasks that match `filter`, of any ticket, in the order they
    /// were created, starting after `after`.
    pub async fn list_tasks(
        &self,
        filter: &TaskFilter,
        after: Option<TaskCursor>,
        limit: usize,
        retry: RetryPolicy,
    ) -> Result<Page<TaskRecord>, WorkflowError> {
        self.read_retrying(retry, || async {
            let mut snapshot = store::listings::begin_snapshot(&self.pool).await?;
            let mut tasks = store::listings::tasks(
                &mut snapshot,
                filter,
                after.map(|cursor| cursor.seq),
                fetch_limit(limit),
            )
            .await?;
            let next_cursor =
                next_page(&mut tasks, limit).map(|(seq, _)| TaskCursor { seq: *seq }.encode());
            snapshot.rollback().await?;
            Ok(Page {
                items: tasks.into_iter().map(|(_, task)| task).collect(),
                next_cursor,
            })
        })
        .await
    }
}

/// One row more than a page holds: its presence says that there is a next page.
pub(super) fn fetch_limit(limit: usize) -> i64 {
    i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX)
}

/// Cuts `rows` to `limit` and, when rows were left over, returns the last one kept: the next
/// page starts after it.
pub(super) fn next_page<T>(rows: &mut Vec<T>, limit: usize) -> Option<&T> {
    if rows.len() > limit {
        rows.truncate(limit);
        rows.last()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_belong_to_one_listing() {
        let ticket = TicketCursor {
            updated_at: DateTime::from_timestamp_micros(1_795_000_000_123_456).unwrap(),
            id: TicketId(uuid::Uuid::new_v4()),
        };
        let text = ticket.encode();
        assert_eq!(TicketCursor::decode(&text), Ok(ticket));
        let task = TaskCursor { seq: 4711 };
        assert_eq!(TaskCursor::decode(&task.encode()), Ok(task));
        assert!(TaskCursor::decode(&text).is_err());
        assert!(TicketCursor::decode(&task.encode()).is_err());
        for junk in [
            "",
            "zz",
            "0",
            "01",
            &text[..text.len() - 2],
            "02ffffffffffffffff00",
        ] {
            assert!(TicketCursor::decode(junk).is_err(), "{junk}");
            assert!(TaskCursor::decode(junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn every_text_of_a_cursors_pattern_decodes() {
        let ticket = TicketCursor {
            updated_at: DateTime::from_timestamp_micros(1_795_000_000_123_456).unwrap(),
            id: TicketId(uuid::Uuid::new_v4()),
        };
        assert_eq!(&ticket.encode()[..2], "01");
        assert_eq!(ticket.encode().len(), 50);
        assert_eq!(TaskCursor { seq: 7 }.encode().len(), 18);
        for digit in ["0", "7", "8", "f", "F"] {
            let ticket = format!("01{}", digit.repeat(48));
            assert!(TicketCursor::decode(&ticket).is_ok(), "{ticket}");
            let task = format!("02{}", digit.repeat(16));
            assert!(TaskCursor::decode(&task).is_ok(), "{task}");
        }
        let earliest = TicketCursor::decode(&format!("01{}{}", "8".repeat(16), "0".repeat(32)));
        assert_eq!(
            earliest.unwrap().updated_at.timestamp_micros(),
            EARLIEST_MICROS
        );
    }

    #[test]
    fn a_page_has_a_next_cursor_only_when_rows_were_left_over() {
        let mut rows = vec![1, 2, 3];
        assert_eq!(next_page(&mut rows, 3), None);
        let mut rows = vec![1, 2, 3, 4];
        assert_eq!(next_page(&mut rows, 3), Some(&3));
        assert_eq!(rows, [1, 2, 3]);
    }
}
