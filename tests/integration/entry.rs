//! A `phase.entered` event arriving on the requests exchange (a replay, or another system that
//! moved a ticket): the visit's entry work is done if it was not done yet, with the same events,
//! and never twice; one that cannot be read is dead-lettered with the reason.

use std::time::Duration;

use crate::common::{Event, Requests, TestApp};
use phaseflow::domain::Phase;
use phaseflow::protocol::events::{ContextUpdated, PhaseEntered, TasksGenerated};
use serde_json::{json, Value};
use uuid::Uuid;

fn phase_entered(id: &str, ticket: &str, data: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "specversion": "1.0",
        "id": id,
        "source": "phaseflow",
        "type": "phase.entered",
        "subject": ticket,
        "datacontenttype": "application/json",
        "data": data,
    }))
    .expect("serializable")
}

async fn tasks_of(app: &TestApp, ticket: &str) -> i64 {
    sqlx::query_scalar("select count(*) from tasks where ticket_id = $1")
        .bind(Uuid::parse_str(ticket).expect("ticket id"))
        .fetch_one(&app.pool)
        .await
        .expect("task count")
}

/// Sends a request about the ticket and waits for its outcome: requests about one ticket are
/// applied in order, so whatever was published about it before has been applied by then.
async fn barrier(app: &TestApp, ticket: &str) {
    app.validate_gate(ticket, Some(Phase::Requirements))
        .await
        .succeeded();
}

fn caused_by(app: &TestApp, cause: &str) -> Vec<Event> {
    app.events
        .typed()
        .into_iter()
        .filter(|event| event.causationid == cause)
        .collect()
}

/// Every event about the ticket so far, in arrival order.
fn events_about(app: &TestApp, ticket: &str) -> Vec<Event> {
    app.events
        .typed()
        .into_iter()
        .filter(|event| event.subject.as_deref() == Some(ticket))
        .collect()
}

/// The first event of `event_type` that `cause` set off, its data read as `T`.
async fn set_off_by<T: serde::de::DeserializeOwned>(
    app: &TestApp,
    cause: &str,
    event_type: &str,
) -> crate::common::Envelope<T> {
    app.events
        .wait_for_event(|event| event.is(event_type) && event.causationid == cause)
        .await
        .typed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_phase_entered_of_a_visit_whose_work_was_done_changes_nothing() {
    let app = TestApp::spawn().await;
    let ticket = app.create_ticket("Replayed").await;
    app.transition(&ticket, Phase::Requirements, "ready")
        .await
        .succeeded();
    let entered = app
        .events
        .wait_for_data("phase.entered", &ticket, |data: &PhaseEntered| {
            data.phase_id == Phase::Requirements
        })
        .await;
    app.events
        .wait_for_typed::<TasksGenerated>("tasks.generated", &ticket)
        .await;
    assert_eq!(tasks_of(&app, &ticket).await, 2);
    // every event of the entry (`context.updated` follows `tasks.generated`) has arrived
    barrier(&app, &ticket).await;
    let events_before = events_about(&app, &ticket).len();

    // the event as published, and the same fact under a new id
    let new_id = Uuid::new_v4().to_string();
    for id in [&entered.id, &new_id] {
        let data = serde_json::to_value(&entered.data).expect("serializable");
        app.send_raw("phase.entered", &phase_entered(id, &ticket, data))
            .await;
    }
    barrier(&app, &ticket).await;

    assert_eq!(tasks_of(&app, &ticket).await, 2, "no task generated twice");
    assert!(
        caused_by(&app, &new_id).is_empty(),
        "a visit whose work was done sets nothing off"
    );
    let new_events: Vec<Event> = events_about(&app, &ticket)
        .into_iter()
        .skip(events_before)
        .filter(|event| !event.is("gate.validated"))
        .collect();
    assert!(new_events.is_empty(), "{new_events:#?}");
    assert!(
        app.next_dead_letter().await.is_none(),
        "a duplicate is acknowledged, not dead-lettered"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phase_entered_of_a_visit_whose_work_never_ran_does_it_once() {
    let app = TestApp::spawn().await;
    let ticket = app.create_ticket("Moved by another system").await;
    let ticket_uuid = Uuid::parse_str(&ticket).expect("ticket id");
    // another system moves the ticket and records the visit without doing its entry work
    let mut transaction = app.pool.begin().await.expect("transaction");
    sqlx::query(
        "update tickets set phase_id = 'PHASE_REQUIREMENTS', previous_phase_id = 'PHASE_BACKLOG' \
         where id = $1",
    )
    .bind(ticket_uuid)
    .execute(&mut *transaction)
    .await
    .expect("ticket moved");
    let history_id: i64 = sqlx::query_scalar(
        "insert into phase_history (ticket_id, from_phase, to_phase, transition_reason, \
         transitioned_by, entry_work_done) \
         values ($1, 'PHASE_BACKLOG', 'PHASE_REQUIREMENTS', 'moved elsewhere', 'other-system', false) \
         returning id",
    )
    .bind(ticket_uuid)
    .fetch_one(&mut *transaction)
    .await
    .expect("history row");
    transaction.commit().await.expect("commit");
    assert_eq!(tasks_of(&app, &ticket).await, 0);

    let data = json!({
        "ticket_id": ticket,
        "phase_id": "PHASE_REQUIREMENTS",
        "previous_phase": "PHASE_BACKLOG",
        "history_id": history_id,
        "regression": false,
        "entered_at": "2026-11-30T10:00:00Z",
    });
    let first = Uuid::new_v4().to_string();
    app.send_raw(
        "phase.entered",
        &phase_entered(&first, &ticket, data.clone()),
    )
    .await;
    let generated = set_off_by::<TasksGenerated>(&app, &first, "tasks.generated").await;
    assert_eq!(generated.actor, "system");
    assert_eq!(generated.data.phase_id, Phase::Requirements);
    assert_eq!(generated.data.generated_tasks.len(), 2, "{generated}");
    let context = set_off_by::<ContextUpdated>(&app, &first, "context.updated").await;
    assert_eq!(context.data.phase_id, Phase::Backlog);
    assert!(
        generated.ticketseq.is_some() && generated.ticketseq < context.ticketseq,
        "the same events in the same order as when the work is done on entering"
    );

    // once more, under another id: done already
    let second = Uuid::new_v4().to_string();
    app.send_raw("phase.entered", &phase_entered(&second, &ticket, data))
        .await;
    barrier(&app, &ticket).await;
    assert_eq!(tasks_of(&app, &ticket).await, 2, "its tasks appear once");
    assert!(caused_by(&app, &second).is_empty());
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phase_entered_that_cannot_be_read_is_dead_lettered_with_the_reason() {
    let app = TestApp::spawn().await;
    let ticket = app.create_ticket("Unreadable fact").await;
    let body = phase_entered(
        &Uuid::new_v4().to_string(),
        &ticket,
        json!({"phase_id": "PHASE_DESIGN"}),
    );
    app.send_raw("phase.entered", &body).await;
    let (dead, reason) = tokio::time::timeout(Duration::from_secs(20), app.next_dead_letter())
        .await
        .expect("in time")
        .expect("a dead letter");
    assert_eq!(dead, body);
    assert!(reason.contains("history_id"), "{reason}");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phase_entered_naming_a_visit_that_does_not_exist_changes_nothing() {
    let app = TestApp::spawn().await;
    let ticket = app.create_ticket("No such visit").await;
    let id = Uuid::new_v4().to_string();
    app.send_raw(
        "phase.entered",
        &phase_entered(
            &id,
            &ticket,
            json!({"phase_id": "PHASE_REQUIREMENTS", "history_id": 999_999_999}),
        ),
    )
    .await;
    barrier(&app, &ticket).await;
    assert!(caused_by(&app, &id).is_empty());
    assert_eq!(tasks_of(&app, &ticket).await, 0);
    assert!(
        app.next_dead_letter().await.is_none(),
        "acknowledged with a warning, not dead-lettered"
    );
    app.shutdown().await;
}
