//! Order within a ticket: requests about one ticket are applied in the order a worker received
//! them, whatever it batches or runs concurrently; with two workers, each ticket still ends
//! consistent when its requests guard themselves with `expected_from_phase`; and a ticket's
//! history sorted by time is the same chain as sorted by id.

use std::collections::BTreeMap;

use crate::common::{is_outcome_type, Event, Outcome, TestApp};
use phaseflow::protocol::events::PhaseTransitioned;
use phaseflow::protocol::RejectionCode;
use serde_json::{json, Value};
use sqlx::types::chrono::{DateTime, Utc};
use uuid::Uuid;

const CREATE: &str = "ticket.create.requested";
const TRANSITION: &str = "phase.transition.requested";
const TICKETS: usize = 40;

/// One ticket's burst: its creation, then to REQUIREMENTS, to BLOCKED, and an unblock that names
/// no phase, published back to back. Returns the request ids in publishing order.
async fn publish_burst(app: &TestApp, ticket: &str, guarded: bool) -> Vec<String> {
    let guard = |phase: &str| {
        if guarded {
            json!(phase)
        } else {
            Value::Null
        }
    };
    let mut steps = vec![(CREATE, json!({"title": format!("Burst {ticket}")}))];
    steps.push((
        TRANSITION,
        json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "refine", "expected_from_phase": guard("PHASE_BACKLOG")}),
    ));
    steps.push((
        TRANSITION,
        json!({"to_phase": "PHASE_BLOCKED", "reason": "waiting", "expected_from_phase": guard("PHASE_REQUIREMENTS")}),
    ));
    steps.push((
        TRANSITION,
        json!({"reason": "answered", "expected_from_phase": guard("PHASE_BLOCKED")}),
    ));
    let mut ids = Vec::with_capacity(steps.len());
    for (kind, mut data) in steps {
        if let Some(fields) = data.as_object_mut() {
            fields.retain(|_, value| !value.is_null());
        }
        ids.push(app.send(kind, Some(ticket), data).await);
    }
    ids
}

/// The one outcome of each request, waiting until every request has one.
async fn outcomes(app: &TestApp, requests: &[String]) -> BTreeMap<String, Value> {
    let all = app
        .events
        .wait_for_count(requests.len(), |event| {
            is_outcome_type(event["type"].as_str().unwrap_or_default())
                && requests.iter().any(|id| event["causationid"] == json!(id))
        })
        .await;
    let mut by_request = BTreeMap::new();
    for event in all {
        let request = event["causationid"]
            .as_str()
            .expect("causationid")
            .to_owned();
        let previous = by_request.insert(request.clone(), event);
        assert!(previous.is_none(), "request {request} got two outcomes");
    }
    by_request
}

/// A ticket's history rows `(id, from, to, created_at)` sorted by id; asserts they form a chain
/// and that sorting them by time gives the same order.
async fn history_chain(app: &TestApp, ticket: &str) -> Vec<(Option<String>, String)> {
    let rows: Vec<(i64, Option<String>, String, DateTime<Utc>)> = sqlx::query_as(
        "select id, from_phase::text, to_phase::text, created_at from phase_history \
         where ticket_id = $1 order by id",
    )
    .bind(Uuid::parse_str(ticket).expect("ticket id"))
    .fetch_all(&app.pool)
    .await
    .expect("history");
    let mut by_time = rows.clone();
    by_time.sort_by_key(|(id, .., at)| (*at, *id));
    assert_eq!(
        by_time.iter().map(|row| row.0).collect::<Vec<_>>(),
        rows.iter().map(|row| row.0).collect::<Vec<_>>(),
        "history of {ticket} sorted by time is not the order it was written in: {rows:#?}"
    );
    for pair in rows.windows(2) {
        assert!(
            pair[0].3 < pair[1].3,
            "history of {ticket}: row {} is not later than row {}",
            pair[1].0,
            pair[0].0
        );
        assert_eq!(
            pair[1].1.as_deref(),
            Some(pair[0].2.as_str()),
            "history of {ticket} is not a chain: {rows:#?}"
        );
    }
    rows.into_iter()
        .map(|(_, from, to, _)| (from, to))
        .collect()
}

async fn phase_of(app: &TestApp, ticket: &str) -> String {
    sqlx::query_scalar("select phase_id::text from tickets where id = $1")
        .bind(Uuid::parse_str(ticket).expect("ticket id"))
        .fetch_one(&app.pool)
        .await
        .expect("the ticket's phase")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_applies_each_tickets_burst_in_the_order_it_was_received() {
    let mut app = TestApp::without_worker().await;
    // published before the worker starts, so that it receives them together and batches them
    let mut bursts = Vec::with_capacity(TICKETS);
    for _ in 0..TICKETS {
        let ticket = Uuid::new_v4().to_string();
        let requests = publish_burst(&app, &ticket, false).await;
        bursts.push((ticket, requests));
    }
    app.start_worker();

    let all: Vec<String> = bursts.iter().flat_map(|(_, ids)| ids.clone()).collect();
    let outcomes = outcomes(&app, &all).await;
    for (ticket, requests) in &bursts {
        let types: Vec<&str> = requests
            .iter()
            .map(|id| outcomes[id]["type"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            types,
            [
                "ticket.created",
                "phase.transitioned",
                "phase.transitioned",
                "phase.transitioned"
            ],
            "ticket {ticket}: {:#?}",
            requests.iter().map(|id| &outcomes[id]).collect::<Vec<_>>()
        );
        let moves: Vec<(Option<String>, String)> = history_chain(&app, ticket).await;
        assert_eq!(
            moves,
            [
                (None, "PHASE_BACKLOG".to_owned()),
                (
                    Some("PHASE_BACKLOG".to_owned()),
                    "PHASE_REQUIREMENTS".to_owned()
                ),
                (
                    Some("PHASE_REQUIREMENTS".to_owned()),
                    "PHASE_BLOCKED".to_owned()
                ),
                (
                    Some("PHASE_BLOCKED".to_owned()),
                    "PHASE_REQUIREMENTS".to_owned()
                ),
            ]
        );
        assert_eq!(phase_of(&app, ticket).await, "PHASE_REQUIREMENTS");
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_workers_every_guarded_burst_ends_consistent() {
    let mut app = TestApp::without_worker().await;
    let mut bursts = Vec::with_capacity(TICKETS);
    for _ in 0..TICKETS {
        let ticket = Uuid::new_v4().to_string();
        let requests = publish_burst(&app, &ticket, true).await;
        bursts.push((ticket, requests));
    }
    app.start_worker();
    app.start_worker();

    let all: Vec<String> = bursts.iter().flat_map(|(_, ids)| ids.clone()).collect();
    let outcomes = outcomes(&app, &all).await;
    for (ticket, requests) in &bursts {
        assert_eq!(
            outcomes[&requests[0]]["type"], "ticket.created",
            "{:#}",
            outcomes[&requests[0]]
        );
        // a step either moved the ticket from the phase it expected, or was refused because
        // the ticket was elsewhere (or not created yet); never anything else
        let mut applied = vec![(None, "PHASE_BACKLOG".to_owned())];
        for id in &requests[1..] {
            let outcome = Event::from_json(outcomes[id].clone());
            assert!(
                outcome.is("phase.transitioned") || outcome.is("phase.transition.rejected"),
                "ticket {ticket}: unexpected outcome {outcome}"
            );
            match outcome.outcome::<PhaseTransitioned>() {
                Outcome::Succeeded(moved) => applied.push((
                    Some(moved.data.previous_phase.as_str().to_owned()),
                    moved.data.current_phase.as_str().to_owned(),
                )),
                Outcome::Rejected(rejected) => {
                    assert!(
                        matches!(
                            rejected.data.code,
                            RejectionCode::PhaseMismatch | RejectionCode::TicketNotFound
                        ),
                        "ticket {ticket}: unexpected rejection {rejected}"
                    );
                }
            }
        }
        let history = history_chain(&app, ticket).await;
        assert_eq!(
            history.len(),
            applied.len(),
            "ticket {ticket}: one history row per applied step: {history:#?}"
        );
        for step in &applied {
            assert!(
                history.contains(step),
                "ticket {ticket}: {step:?} not in {history:#?}"
            );
        }
        let last = history.last().map(|(_, to)| to.clone()).unwrap_or_default();
        assert_eq!(phase_of(&app, ticket).await, last, "ticket {ticket}");
    }
    app.shutdown().await;
}
