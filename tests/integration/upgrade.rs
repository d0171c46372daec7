//! Upgrading a database in place: what an earlier schema stored is still there, and still right,
//! after the migrations that follow it. Against Postgres alone, each test in its own database.

use phaseflow::store::{self, MIGRATOR};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::common::cleanup::{self, Cleanup, TestNames};
use crate::common::POSTGRES_URL;

/// The last migration of the schema that stored events as `jsonb` with `ticketseq` inside.
const JSONB_OUTBOX_SCHEMA: i64 = 20261130000006;

#[tokio::test]
async fn events_waiting_in_a_jsonb_outbox_are_published_unchanged_after_the_upgrade() {
    cleanup::sweep_stale_once().await;
    let guard = Cleanup::database(TestNames::new());
    let database = guard.names().database.clone();
    let url = format!("{POSTGRES_URL}/{database}");
    let mut admin = PgConnection::connect(&format!("{POSTGRES_URL}/postgres"))
        .await
        .unwrap_or_else(|error| {
            panic!(
                "cannot reach Postgres at {POSTGRES_URL} ({error}). Start it with: \
                 pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
            )
        });
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "create database \"{database}\""
    )))
    .execute(&mut admin)
    .await
    .expect("test database created");
    let pool = PgPool::connect(&url)
        .await
        .expect("test database reachable");
    MIGRATOR
        .run_to(JSONB_OUTBOX_SCHEMA, &pool)
        .await
        .expect("the earlier schema applies");

    let ticket = Uuid::new_v4();
    let numbered = json!({
        "specversion": "1.0", "id": Uuid::new_v4(), "source": "phaseflow",
        "type": "phase.transitioned", "subject": ticket, "time": "2026-11-30T12:00:00.000000Z",
        "datacontenttype": "application/json", "actor": "agent \"ä\" <b>",
        "correlationid": "c-1", "causationid": "r-1", "ticketseq": 7,
        "data": {"current_phase": "PHASE_DESIGN", "reason": "naïve \u{1F680} \\ \"quoted\""}
    });
    let unnumbered = json!({
        "specversion": "1.0", "id": Uuid::new_v4(), "source": "phaseflow",
        "type": "ticket.create.rejected", "time": "2026-11-30T12:00:00.000000Z",
        "datacontenttype": "application/json", "actor": "agent-1",
        "correlationid": "c-2", "causationid": "r-2", "data": {"reason": "no title"}
    });
    for (ticket_id, seq, event) in [
        (Some(ticket), Some(7_i64), &numbered),
        (None, None, &unnumbered),
    ] {
        sqlx::query(
            "insert into outbox (ticket_id, ticket_seq, event_id, event_type, payload) \
             values ($1, $2, $3::uuid, $4, $5)",
        )
        .bind(ticket_id)
        .bind(seq)
        .bind(event["id"].as_str().expect("id"))
        .bind(event["type"].as_str().expect("type"))
        .bind(event)
        .execute(&pool)
        .await
        .expect("an event stored by the earlier schema");
    }

    MIGRATOR.run(&pool).await.expect("the upgrade applies");

    let mut transaction = pool.begin().await.expect("begin");
    let claimed = store::outbox::claim_for_publishing(&mut transaction, 10)
        .await
        .expect("the relay's claim");
    transaction.rollback().await.expect("rollback");
    for event in &claimed.events {
        let stored: Value = serde_json::from_slice(&event.body).expect("a JSON body");
        assert!(
            stored.get("ticketseq").is_none(),
            "stored without: {stored}"
        );
    }
    let published: Vec<Value> = claimed
        .events
        .iter()
        .map(|event| serde_json::from_slice(&event.body_to_publish()).expect("a JSON body"))
        .collect();
    assert_eq!(published, [numbered, unnumbered]);

    pool.close().await;
    admin.close().await.ok();
    guard.run().await;
}
