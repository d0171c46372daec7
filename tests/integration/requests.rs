//! Requests over RabbitMQ, end to end: a request id applied at most once; bodies that are not
//! requests dead-lettered with their reason while the next request is processed; two workers on
//! the same queues applying every request once and numbering every ticket's events without
//! gaps; and the CloudEvent attributes of an outcome and of what it sets off. The rules each
//! request applies are tested in `rules`, without the broker.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::requests::{CREATE, TRANSITION};
use crate::common::{
    count, history_rows, is_outcome_type, phase_of, uuid, Event, Requests, TestApp,
};
use phaseflow::domain::{Phase, Priority};
use phaseflow::protocol::events::{PhaseEntered, PhaseTransitioned, TasksGenerated, TicketCreated};
use phaseflow::protocol::RejectionCode;
use phaseflow_client::OutgoingRequest;
use serde_json::json;
use uuid::Uuid;

/// How long to keep watching after an outcome arrived, for events that must not come.
const SETTLE: Duration = Duration::from_millis(1500);

// ---------------------------------------------------------------------------------------------
// helpers

/// Waits until no new event has arrived for `SETTLE`.
async fn wait_until_quiet(app: &TestApp) {
    let mut seen = app.events.all().len();
    loop {
        tokio::time::sleep(SETTLE).await;
        let now = app.events.all().len();
        if now == seen {
            return;
        }
        seen = now;
    }
}

/// Events caused by `request_id` that are request outcomes.
fn outcomes_of(app: &TestApp, request_id: &str) -> Vec<Event> {
    caused_by(app, request_id)
        .into_iter()
        .filter(|event| is_outcome_type(&event.event_type))
        .collect()
}

/// Every event `request_id` caused.
fn caused_by(app: &TestApp, request_id: &str) -> Vec<Event> {
    app.events
        .typed()
        .into_iter()
        .filter(|event| event.causationid == request_id)
        .collect()
}

/// Every event about the ticket, in arrival order.
fn events_about(app: &TestApp, ticket: &str) -> Vec<Event> {
    app.events
        .typed()
        .into_iter()
        .filter(|event| event.subject.as_deref() == Some(ticket))
        .collect()
}

/// A well-formed create request body with the given id.
fn create_body(id: &str, title: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "specversion": "1.0",
        "id": id,
        "source": "agent/test",
        "type": CREATE,
        "datacontenttype": "application/json",
        "data": {"title": title},
    }))
    .expect("serializable")
}

/// Publishes `body` raw, then a valid create request right after it; asserts that the valid one
/// is processed and that `body` lands in the dead-letter queue, unchanged, with an
/// `x-phaseflow-error` that contains `why` (case-insensitively).
async fn assert_dead_lettered_while_the_next_is_processed(
    app: &TestApp,
    routing_key: &str,
    body: &[u8],
    why: &str,
) {
    app.send_raw(routing_key, body).await;
    app.create(
        None,
        json!({"title": "published right after a bad message"}),
    )
    .await
    .succeeded();
    let (dead_body, error) = app.next_dead_letter().await.unwrap_or_else(|| {
        panic!(
            "nothing reached the dead-letter queue for {}",
            String::from_utf8_lossy(body)
        )
    });
    assert_eq!(
        dead_body, body,
        "the dead letter is the message as published"
    );
    assert!(
        !error.is_empty(),
        "the dead letter carries x-phaseflow-error"
    );
    assert!(
        error.to_lowercase().contains(&why.to_lowercase()),
        "x-phaseflow-error `{error}` should say why ({why})"
    );
}

// ---------------------------------------------------------------------------------------------
// at most once per request id

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_request_id_is_applied_once() {
    let app = TestApp::spawn().await;
    let ticket = app.create_ticket("Said twice").await;
    let request = Uuid::new_v4().to_string();
    let data = json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "go"});

    app.send_with_id(&request, TRANSITION, Some(&ticket), data.clone())
        .await;
    app.send_with_id(&request, TRANSITION, Some(&ticket), data.clone())
        .await;
    app.outcome_of_request::<PhaseTransitioned>(&request, TRANSITION)
        .await
        .succeeded();
    tokio::time::sleep(SETTLE).await;
    app.send_with_id(&request, TRANSITION, Some(&ticket), data)
        .await;
    tokio::time::sleep(SETTLE).await;

    let outcomes = outcomes_of(&app, &request);
    assert_eq!(
        outcomes.len(),
        1,
        "exactly one outcome for one request id: {outcomes:#?}"
    );
    let inbox: i64 = sqlx::query_scalar("select count(*) from inbox where message_id = $1")
        .bind(&request)
        .fetch_one(&app.pool)
        .await
        .expect("inbox count");
    assert_eq!(inbox, 1, "one inbox row");
    let transitions = count(
        &app.pool,
        "select count(*) from phase_history where ticket_id = $1 and to_phase = 'PHASE_REQUIREMENTS'",
        &ticket,
    )
    .await;
    assert_eq!(transitions, 1, "one phase_history row for the transition");
    let entered = app
        .events
        .of_type("phase.entered", &ticket)
        .into_iter()
        .filter(|event| event.data::<PhaseEntered>().phase_id == Phase::Requirements)
        .count();
    assert_eq!(entered, 1, "REQUIREMENTS was entered once");
    let tasks = count(
        &app.pool,
        "select count(*) from tasks where ticket_id = $1",
        &ticket,
    )
    .await;
    assert_eq!(tasks, 2, "one visit, one set of tasks");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_create_request_id_creates_one_ticket() {
    let app = TestApp::spawn().await;
    let request = Uuid::new_v4().to_string();

    app.send_with_id(&request, CREATE, None, json!({"title": "Only one of me"}))
        .await;
    app.send_with_id(&request, CREATE, None, json!({"title": "Only one of me"}))
        .await;
    app.outcome_of_request::<TicketCreated>(&request, CREATE)
        .await
        .succeeded();
    tokio::time::sleep(SETTLE).await;
    app.send_with_id(&request, CREATE, None, json!({"title": "Only one of me"}))
        .await;
    tokio::time::sleep(SETTLE).await;

    assert_eq!(
        outcomes_of(&app, &request).len(),
        1,
        "exactly one outcome for one request id"
    );
    let tickets: i64 = sqlx::query_scalar("select count(*) from tickets")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(tickets, 1, "one ticket");
    let inbox: i64 = sqlx::query_scalar("select count(*) from inbox where message_id = $1")
        .bind(&request)
        .fetch_one(&app.pool)
        .await
        .expect("inbox count");
    assert_eq!(inbox, 1);
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// bodies that are not requests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_json_is_dead_lettered_and_the_next_request_is_processed() {
    let app = TestApp::spawn().await;

    assert_dead_lettered_while_the_next_is_processed(&app, CREATE, b"this is { not json", "JSON")
        .await;

    assert!(
        app.next_dead_letter().await.is_none(),
        "dead-lettered once, never retried"
    );
    let tickets: i64 = sqlx::query_scalar("select count(*) from tickets")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(tickets, 1, "only the valid request created a ticket");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_that_is_not_a_cloudevent_is_dead_lettered_and_the_next_request_is_processed() {
    let app = TestApp::spawn().await;
    let body = serde_json::to_vec(&json!({"title": "I forgot the envelope", "type": CREATE}))
        .expect("json");

    assert_dead_lettered_while_the_next_is_processed(&app, CREATE, &body, "specversion").await;

    assert!(
        app.next_dead_letter().await.is_none(),
        "dead-lettered once, never retried"
    );
    let tickets: i64 = sqlx::query_scalar("select count(*) from tickets")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(tickets, 1, "only the valid request created a ticket");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloudevent_of_an_unknown_type_is_dead_lettered_and_the_next_request_is_processed() {
    let app = TestApp::spawn().await;
    let id = Uuid::new_v4().to_string();
    let body = serde_json::to_vec(&json!({
        "specversion": "1.0",
        "id": id,
        "source": "agent/test",
        "type": "ticket.delete.requested",
        "subject": Uuid::new_v4().to_string(),
        "data": {},
    }))
    .expect("json");

    assert_dead_lettered_while_the_next_is_processed(
        &app,
        "ticket.delete.requested",
        &body,
        "ticket.delete.requested",
    )
    .await;

    assert!(
        app.next_dead_letter().await.is_none(),
        "dead-lettered once, never retried"
    );
    assert!(
        caused_by(&app, &id).is_empty(),
        "an undecodable request gets no outcome event"
    );
    let inbox: i64 = sqlx::query_scalar("select count(*) from inbox where message_id = $1")
        .bind(&id)
        .fetch_one(&app.pool)
        .await
        .expect("inbox count");
    assert_eq!(inbox, 0);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_size_limit_is_dead_lettered_and_the_next_request_is_processed() {
    let mut app = TestApp::without_worker().await;
    app.settings.amqp.max_message_bytes = 2048;
    app.start_worker();
    let id = Uuid::new_v4().to_string();
    let body = create_body(&id, &"z".repeat(3000));
    assert!(body.len() > 2048);

    assert_dead_lettered_while_the_next_is_processed(&app, CREATE, &body, "2048").await;

    assert!(
        app.next_dead_letter().await.is_none(),
        "dead-lettered once, never retried"
    );
    assert!(
        caused_by(&app, &id).is_empty(),
        "an oversized request gets no outcome event"
    );
    let tickets: i64 = sqlx::query_scalar("select count(*) from tickets")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(tickets, 1, "only the valid request created a ticket");
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// two workers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_apply_every_request_once_and_number_each_tickets_events_without_gaps() {
    let mut app = TestApp::spawn().await;
    app.start_worker();
    const TICKETS: usize = 20;
    const DUPLICATED: usize = 5;
    let tickets: Vec<String> = (0..TICKETS).map(|_| Uuid::new_v4().to_string()).collect();

    // create them all, some requests delivered twice
    let mut requests = Vec::new();
    for (index, ticket) in tickets.iter().enumerate() {
        let id = Uuid::new_v4().to_string();
        let data = json!({"title": format!("Concurrent ticket {index}")});
        app.send_with_id(&id, CREATE, Some(ticket), data.clone())
            .await;
        if index < DUPLICATED {
            app.send_with_id(&id, CREATE, Some(ticket), data).await;
        }
        requests.push(id);
    }
    app.events
        .wait_for_count(TICKETS, |event| event["type"] == "ticket.created")
        .await;
    // then move each to REQUIREMENTS, again some twice
    for (index, ticket) in tickets.iter().enumerate() {
        let id = Uuid::new_v4().to_string();
        let data = json!({"to_phase": "PHASE_REQUIREMENTS", "reason": format!("start {index}")});
        app.send_with_id(&id, TRANSITION, Some(ticket), data.clone())
            .await;
        if index % 4 == 0 {
            app.send_with_id(&id, TRANSITION, Some(ticket), data).await;
        }
        requests.push(id);
    }
    app.events
        .wait_for_count(TICKETS, |event| event["type"] == "tasks.generated")
        .await;
    app.events
        .wait_for_count(TICKETS, |event| event["type"] == "context.updated")
        .await;
    wait_until_quiet(&app).await;

    for request in &requests {
        let outcomes = outcomes_of(&app, request);
        assert_eq!(
            outcomes.len(),
            1,
            "request {request}: exactly one outcome, got {outcomes:#?}"
        );
        assert!(
            outcomes[0].is("ticket.created") || outcomes[0].is("phase.transitioned"),
            "request {request} succeeded: {}",
            outcomes[0]
        );
    }
    for ticket in &tickets {
        let events = events_about(&app, ticket);
        let of_type = |event_type: &str| events.iter().filter(|event| event.is(event_type)).count();
        assert_eq!(of_type("ticket.created"), 1, "ticket {ticket}: {events:#?}");
        assert_eq!(
            of_type("phase.transitioned"),
            1,
            "ticket {ticket}: {events:#?}"
        );
        assert_eq!(of_type("phase.entered"), 2, "ticket {ticket}: {events:#?}");
        assert_eq!(
            of_type("tasks.generated"),
            1,
            "one tasks.generated per REQUIREMENTS visit: {events:#?}"
        );
        let generated = events
            .iter()
            .find(|event| event.is("tasks.generated"))
            .expect("tasks.generated");
        let tasks = generated.data::<TasksGenerated>().generated_tasks;
        assert_eq!(tasks.len(), 2, "{generated}");

        let mut seqs: Vec<i64> = events
            .iter()
            .map(|event| {
                event
                    .ticketseq
                    .unwrap_or_else(|| panic!("no ticketseq on {event}"))
            })
            .collect();
        seqs.sort_unstable();
        let expected: Vec<i64> = (1..=events.len() as i64).collect();
        assert_eq!(
            seqs, expected,
            "ticket {ticket}: ticketseq must be 1..=n without gaps or repeats"
        );

        let tasks = count(
            &app.pool,
            "select count(*) from tasks where ticket_id = $1",
            ticket,
        )
        .await;
        assert_eq!(tasks, 2, "ticket {ticket}: two tasks");
        let history = history_rows(&app.pool, ticket).await;
        assert_eq!(history, 2, "ticket {ticket}: created, then moved once");
    }
    let all_tasks: i64 = sqlx::query_scalar("select count(*) from tasks")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(all_tasks, (2 * TICKETS) as i64);
    let distinct_ids: HashSet<String> = app
        .events
        .typed()
        .into_iter()
        .map(|event| event.id)
        .collect();
    assert_eq!(
        distinct_ids.len(),
        app.events.all().len(),
        "every event was published once"
    );
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// the attributes of an outcome

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_request_naming_an_id_gets_that_id_and_its_outcome_names_actor_correlation_and_cause(
) {
    let app = TestApp::spawn().await;
    let chosen = Uuid::new_v4().to_string();

    let data = json!({"title": "Chosen id", "priority": "HIGH"});
    let outcome = app.create(Some(&chosen), data).await.succeeded();
    let request = outcome.causationid.clone();

    assert_eq!(outcome.data.ticket_id.to_string(), chosen);
    assert_eq!(outcome.subject.as_deref(), Some(chosen.as_str()));
    assert_eq!(outcome.actor, "agent-test");
    assert_eq!(
        outcome.correlationid, request,
        "no correlationid given: the request id"
    );
    assert_eq!(outcome.raw["specversion"], "1.0");
    assert_eq!(outcome.raw["source"], "phaseflow");
    assert_eq!(outcome.ticketseq, Some(1));
    assert_eq!(outcome.data.phase_id, Phase::Backlog);
    assert_eq!(outcome.data.priority, Priority::High);
    assert_eq!(phase_of(&app.pool, &chosen).await, "PHASE_BACKLOG");
    let history: Vec<(Option<String>, String, String)> = sqlx::query_as(
        "select from_phase::text, to_phase::text, transitioned_by from phase_history where ticket_id = $1",
    )
    .bind(uuid(&chosen))
    .fetch_all(&app.pool)
    .await
    .expect("history");
    assert_eq!(
        history,
        vec![(None, "PHASE_BACKLOG".to_owned(), "agent-test".to_owned())]
    );
    let entered = app
        .events
        .wait_for_typed::<PhaseEntered>("phase.entered", &chosen)
        .await;
    assert_eq!(entered.causationid, request);
    assert_eq!(entered.correlationid, request);
    assert_eq!(
        entered.ticketseq,
        Some(2),
        "phase.entered follows ticket.created"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_correlation_id_is_carried_through_the_automatic_steps() {
    let app = TestApp::spawn().await;
    let ticket = app.create_ticket("Follow the thread").await;
    let request = OutgoingRequest {
        id: Uuid::new_v4().to_string(),
        request_type: TRANSITION.to_owned(),
        subject: Some(ticket.clone()),
        source: "agent/test".to_owned(),
        actor: Some("agent-7".to_owned()),
        correlation_id: Some("thread-1234".to_owned()),
        data: json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "go"}),
    };

    app.client.publish(&request).await.expect("published");
    let outcome = app
        .outcome_of_request::<PhaseTransitioned>(&request.id, TRANSITION)
        .await
        .succeeded();

    assert_eq!(outcome.actor, "agent-7");
    assert_eq!(outcome.data.transitioned_by, "agent-7");
    assert_eq!(outcome.correlationid, "thread-1234");
    assert_eq!(outcome.causationid, request.id);
    let generated = app
        .events
        .wait_for_typed::<TasksGenerated>("tasks.generated", &ticket)
        .await;
    assert_eq!(
        generated.correlationid, "thread-1234",
        "automatic steps keep the correlation id"
    );
    assert_eq!(generated.actor, "system");
    let transitioned_by: String = sqlx::query_scalar(
        "select transitioned_by from phase_history where ticket_id = $1 and to_phase = 'PHASE_REQUIREMENTS'",
    )
    .bind(uuid(&ticket))
    .fetch_one(&app.pool)
    .await
    .expect("history row");
    assert_eq!(transitioned_by, "agent-7");
    app.shutdown().await;
}

/// A request with AMQP `reply_to` also gets its outcome on that queue, with the
/// request's `correlation_id`; rejections are outcomes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_reply_to_gets_its_outcome_on_the_reply_queue() {
    let app = TestApp::spawn().await;
    let request = OutgoingRequest {
        id: Uuid::new_v4().to_string(),
        request_type: "ticket.create.requested".to_owned(),
        subject: None,
        source: "agent/test".to_owned(),
        actor: Some("agent-reply".to_owned()),
        correlation_id: None,
        data: json!({"title": "Answer me"}),
    };
    let reply = app
        .client
        .publish_and_wait(&request, Duration::from_secs(20))
        .await
        .expect("the outcome arrives on the reply queue");
    let created = Event::from_json(reply)
        .outcome::<TicketCreated>()
        .succeeded();
    assert_eq!(created.causationid, request.id);
    assert_eq!(created.actor, "agent-reply");

    let rejected = OutgoingRequest {
        id: Uuid::new_v4().to_string(),
        request_type: "phase.transition.requested".to_owned(),
        subject: Some(Uuid::new_v4().to_string()),
        data: json!({"to_phase": "PHASE_DESIGN", "reason": "nope"}),
        ..request
    };
    let reply = app
        .client
        .publish_and_wait(&rejected, Duration::from_secs(20))
        .await
        .expect("the rejection arrives on the reply queue");
    Event::from_json(reply)
        .outcome::<PhaseTransitioned>()
        .rejected()
        .assert(
            "phase.transition.rejected",
            RejectionCode::TicketNotFound,
            rejected.subject.as_deref(),
        );
    app.shutdown().await;
}
