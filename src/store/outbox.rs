//! The outbox: events written with the change they describe, published later by the relay,
//! which deletes them once the broker confirmed them. The table holds only what is still to be
//! published, each event as the bytes the relay publishes (without `ticketseq`, which the relay
//! adds from the row); nothing here parses an event.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::domain::TicketId;

/// The Postgres channel the outbox trigger notifies on commit.
pub const NOTIFY_CHANNEL: &str = "phaseflow_outbox";

/// An event to store; its `ticketseq` is assigned as it is appended.
pub struct NewOutboxEvent {
    pub ticket_id: Option<TicketId>,
    pub event_id: Uuid,
    pub event_type: String,
    /// the serialised CloudEvent (a JSON object) without `ticketseq`
    pub body: Vec<u8>,
    pub reply_to: Option<String>,
    pub reply_correlation_id: Option<String>,
    /// the W3C trace context the event was created in
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

/// Appends events in the given order, in one statement: the events of each existing ticket
/// take the ticket's next `ticketseq` values (its counter moves on by as many), stored beside
/// their bodies; events about no existing ticket get none. The caller holds the tickets' row
/// locks, so numbers follow commit order.
pub async fn append_numbered(
    connection: &mut PgConnection,
    events: &[NewOutboxEvent],
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let tickets: Vec<Option<Uuid>> = events
        .iter()
        .map(|event| event.ticket_id.map(|id| id.0))
        .collect();
    let ids: Vec<Uuid> = events.iter().map(|event| event.event_id).collect();
    let types: Vec<&str> = events
        .iter()
        .map(|event| event.event_type.as_str())
        .collect();
    let bodies: Vec<&[u8]> = events.iter().map(|event| event.body.as_slice()).collect();
    let reply_to: Vec<Option<&str>> = events
        .iter()
        .map(|event| event.reply_to.as_deref())
        .collect();
    let reply_correlation: Vec<Option<&str>> = events
        .iter()
        .map(|event| event.reply_correlation_id.as_deref())
        .collect();
    let traceparents: Vec<Option<&str>> = events
        .iter()
        .map(|event| event.traceparent.as_deref())
        .collect();
    let tracestates: Vec<Option<&str>> = events
        .iter()
        .map(|event| event.tracestate.as_deref())
        .collect();
    sqlx::query(
        "with new_events as ( \
             select * from unnest($1::uuid[], $2::uuid[], $3::text[], $4::bytea[], $5::text[], $6::text[], $7::text[], $8::text[]) \
                 with ordinality as e(ticket_id, event_id, event_type, body, reply_to, reply_correlation_id, traceparent, tracestate, position)), \
         counts as ( \
             select ticket_id, count(*) as taken from new_events where ticket_id is not null group by ticket_id), \
         numbered as ( \
             update tickets set event_seq = tickets.event_seq + counts.taken from counts \
             where tickets.id = counts.ticket_id \
             returning tickets.id as ticket_id, tickets.event_seq - counts.taken as before), \
         sequenced as ( \
             select e.*, numbered.before + row_number() over (partition by e.ticket_id order by e.position) as ticket_seq \
             from new_events e left join numbered on numbered.ticket_id = e.ticket_id) \
         insert into outbox (ticket_id, ticket_seq, event_id, event_type, body, reply_to, reply_correlation_id, traceparent, tracestate) \
         select ticket_id, ticket_seq, event_id, event_type, body, reply_to, reply_correlation_id, traceparent, tracestate \
         from sequenced order by position",
    )
    .bind(&tickets)
    .bind(&ids)
    .bind(&types)
    .bind(&bodies)
    .bind(&reply_to)
    .bind(&reply_correlation)
    .bind(&traceparents)
    .bind(&tracestates)
    .execute(connection)
    .await?;
    Ok(())
}

/// An event claimed for publishing.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub id: i64,
    pub event_id: Uuid,
    pub event_type: String,
    /// the event's `ticketseq`, which its body does not hold yet
    pub ticket_seq: Option<i64>,
    /// the serialised CloudEvent without `ticketseq`
    pub body: Vec<u8>,
    pub reply_to: Option<String>,
    pub reply_correlation_id: Option<String>,
    /// the W3C trace context the event was created in (its AMQP headers)
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    /// when the transaction that wrote it began
    pub created_at: DateTime<Utc>,
}

impl PendingEvent {
    /// The body to publish: the stored body with the event's `ticketseq` added as the object's
    /// first member, or as stored for an event without one. A stored body is a serialised JSON
    /// object; anything else is published as stored.
    pub fn body_to_publish(&self) -> Cow<'_, [u8]> {
        let (Some(ticketseq), Some((b'{', members))) = (self.ticket_seq, self.body.split_first())
        else {
            return Cow::Borrowed(&self.body);
        };
        let separator = if members.trim_ascii_start().starts_with(b"}") {
            ""
        } else {
            ","
        };
        let member = format!("{{\"ticketseq\":{ticketseq}{separator}");
        let mut body = Vec::with_capacity(member.len() + members.len());
        body.extend_from_slice(member.as_bytes());
        body.extend_from_slice(members);
        Cow::Owned(body)
    }
}

/// What a claim took, and whether it left events behind that it saw.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// the events claimed (and deleted), oldest first
    pub events: Vec<PendingEvent>,
    /// events were left because an earlier event of their ticket is still being published (by
    /// another relay): they may be claimable as soon as that relay commits
    pub held_back: bool,
}

/// Claims up to `limit` events and deletes them, in the caller's transaction: the caller
/// commits once the broker confirmed them all, or rolls back, which leaves them to publish. The
/// rows stay locked until then and other relays skip them. An event is claimed only when every
/// earlier event of its ticket still in the outbox is claimed with it, so several relays never
/// publish one ticket's events out of order, while one relay takes a ticket's whole run at once.
///
/// The transaction's commit does not wait for its WAL flush (`synchronous_commit` off, for this
/// transaction only): if Postgres loses it in a crash, the events are published again, which
/// at-least-once delivery allows.
pub async fn claim_for_publishing(
    connection: &mut PgConnection,
    limit: i64,
) -> Result<Claimed, sqlx::Error> {
    let rows = sqlx::query(
        "with no_flush_wait as materialized ( \
             select set_config('synchronous_commit', 'off', true)), \
         claimed as ( \
             select id, ticket_id, ticket_seq from outbox \
             order by id limit $1 for update skip locked), \
         ready as ( \
             select c.id from claimed c \
             where c.ticket_id is null or not exists ( \
                 select 1 from outbox earlier where earlier.ticket_id = c.ticket_id \
                   and earlier.ticket_seq < c.ticket_seq \
                   and earlier.id not in (select id from claimed))), \
         taken as ( \
             delete from outbox o using ready, no_flush_wait where o.id = ready.id \
             returning o.id, o.event_id, o.event_type, o.ticket_seq, o.body, o.reply_to, o.reply_correlation_id, \
                       o.traceparent, o.tracestate, o.created_at) \
         select taken.*, (select count(*) from claimed) as examined from taken order by id",
    )
    .bind(limit)
    .fetch_all(connection)
    .await?;
    let examined: i64 = match rows.first() {
        Some(row) => row.try_get("examined")?,
        None => 0,
    };
    let events = rows
        .into_iter()
        .map(|row| {
            Ok(PendingEvent {
                id: row.try_get("id")?,
                event_id: row.try_get("event_id")?,
                event_type: row.try_get("event_type")?,
                ticket_seq: row.try_get("ticket_seq")?,
                body: row.try_get("body")?,
                reply_to: row.try_get("reply_to")?,
                reply_correlation_id: row.try_get("reply_correlation_id")?,
                traceparent: row.try_get("traceparent")?,
                tracestate: row.try_get("tracestate")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Claimed {
        held_back: usize::try_from(examined).unwrap_or_default() > events.len(),
        events,
    })
}

/// The vacuums of the outbox, run by the worker's maintenance. Every published event leaves a
/// dead row and dead index entries that each of the relay's claims would otherwise walk past
/// until the next autovacuum; vacuuming this small table often keeps claims as cheap as the
/// backlog is short.
///
/// They run on a connection of their own, to the pool's database, that asks Postgres for errors
/// only (`client_min_messages = error`, set when connecting): a vacuum that finds another one
/// running (another replica's, or autovacuum) skips the table (`skip_locked`), and Postgres
/// reports that with a WARNING, which sqlx would log as a warning although nothing is wrong. Nothing else runs on this connection, so no other warning is hidden, and a vacuum
/// that fails is still an error.
pub struct OutboxVacuum {
    pool: PgPool,
    /// opened by the first vacuum; dropped after a failure and opened again by the next
    connection: Option<PgConnection>,
}

impl OutboxVacuum {
    /// Opens nothing yet.
    pub fn new(pool: PgPool) -> Self {
        OutboxVacuum {
            pool,
            connection: None,
        }
    }

    /// Vacuums the outbox, unless another session is vacuuming it.
    pub async fn run(&mut self) -> Result<(), sqlx::Error> {
        // idle since the last vacuum, the connection may have been closed by a Postgres
        // restart meanwhile: checked first, as the pool checks the connections it hands out
        let mut open = self.connection.take();
        if let Some(connection) = open.as_mut() {
            if connection.ping().await.is_err() {
                open = None;
            }
        }
        let mut connection = match open {
            Some(connection) => connection,
            None => {
                self.pool
                    .connect_options()
                    .as_ref()
                    .clone()
                    .options([("client_min_messages", "error")])
                    .connect()
                    .await?
            }
        };
        sqlx::query("vacuum (skip_locked) outbox")
            .execute(&mut connection)
            .await?;
        self.connection = Some(connection);
        Ok(())
    }

    /// Closes its connection.
    pub async fn close(self) {
        if let Some(connection) = self.connection {
            let _ = connection.close().await;
        }
    }
}

/// How far the relay is behind: unpublished events and the age of the oldest.
pub async fn backlog(pool: &PgPool) -> Result<(i64, Option<DateTime<Utc>>), sqlx::Error> {
    let row = sqlx::query("select count(*) as pending, min(created_at) as oldest from outbox")
        .fetch_one(pool)
        .await?;
    Ok((row.try_get("pending")?, row.try_get("oldest")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::CloudEvent;

    fn pending(ticket_seq: Option<i64>, body: &[u8]) -> PendingEvent {
        PendingEvent {
            id: 1,
            event_id: Uuid::nil(),
            event_type: "phase.transitioned".into(),
            ticket_seq,
            body: body.to_vec(),
            reply_to: None,
            reply_correlation_id: None,
            traceparent: None,
            tracestate: None,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn ticketseq_is_added_to_a_stored_event_as_if_it_had_been_serialised_with_it() {
        let mut event = CloudEvent {
            specversion: "1.0".into(),
            id: "e-1".into(),
            source: "phaseflow".into(),
            event_type: "phase.transitioned".into(),
            subject: Some("6f1c4c1e-0000-4000-8000-000000000000".into()),
            time: "2026-11-30T12:00:00.000000Z".into(),
            datacontenttype: "application/json".into(),
            actor: "agent \"x\", {\"ticketseq\":1}".into(),
            correlationid: "c-1".into(),
            causationid: "r-1".into(),
            ticketseq: None,
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00".into()),
            tracestate: None,
            data: serde_json::json!({"to_phase": "PHASE_DESIGN", "ticketseq": "data's own"}),
        };
        let stored = serde_json::to_vec(&event).unwrap();
        let published = pending(Some(42), &stored).body_to_publish().into_owned();
        event.ticketseq = Some(42);
        let decoded: CloudEvent = serde_json::from_slice(&published).unwrap();
        assert_eq!(decoded, event);
        assert!(published.starts_with(br#"{"ticketseq":42,"specversion":"1.0","#));
    }

    #[test]
    fn an_event_without_ticketseq_or_not_an_object_is_published_as_stored() {
        assert!(matches!(
            pending(None, b"{\"a\":1}").body_to_publish(),
            Cow::Borrowed(b"{\"a\":1}")
        ));
        assert_eq!(&*pending(Some(7), b"[1]").body_to_publish(), b"[1]");
        assert_eq!(&*pending(Some(7), b"").body_to_publish(), b"");
    }

    #[test]
    fn an_empty_object_gets_ticketseq_as_its_only_member() {
        assert_eq!(
            &*pending(Some(7), b"{ }").body_to_publish(),
            br#"{"ticketseq":7 }"#
        );
    }
}
