//! Several requests in one transaction (`Workflow::handle_batch`, what the consumer does under
//! load) against the real Postgres: one inbox statement and one outbox statement for the
//! batch, and still one outcome per message.

use crate::common::TestApp;
use phaseflow::protocol::Rejection;
use phaseflow::workflow::{Command, RequestType};
use phaseflow::workflow::{Message, Origin, RequestOutcome, RetryPolicy, Workflow};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

fn workflow(app: &TestApp) -> Workflow {
    let definition = app
        .settings
        .workflow_definition()
        .expect("the default workflow definition loads");
    Workflow::new(
        app.pool.clone(),
        definition,
        app.settings.context.max_tokens,
    )
}

fn origin(id: &str) -> Origin {
    Origin {
        message_id: id.to_owned(),
        correlation_id: id.to_owned(),
        actor: "agent-batch".to_owned(),
        reply: None,
        authenticated: false,
        trace: None,
    }
}

fn command(kind: RequestType, subject: Option<&str>, data: Value) -> Result<Command, Rejection> {
    Command::parse(kind, subject, Some(&data)).map_err(Rejection::from)
}

const RETRY: RetryPolicy = RetryPolicy {
    min_delay: Duration::from_millis(10),
    max_delay: Duration::from_millis(100),
    max_attempts: Some(3),
};

/// The outcome event types of the batch, in message order (`duplicate` for a duplicate).
fn outcome_types(
    outcomes: &[Result<RequestOutcome, phaseflow::workflow::WorkflowError>],
) -> Vec<String> {
    outcomes
        .iter()
        .map(|outcome| match outcome {
            Ok(RequestOutcome::Applied(event)) => event.event_type.to_owned(),
            Ok(RequestOutcome::Duplicate) => "duplicate".to_owned(),
            Ok(RequestOutcome::EventConsumed) => "consumed".to_owned(),
            Ok(RequestOutcome::EventIgnored(why)) => format!("ignored: {why}"),
            Err(error) => format!("error: {error}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_applies_each_id_once_and_numbers_each_tickets_events_in_order() {
    let app = TestApp::without_worker().await;
    let workflow = workflow(&app);
    let ticket = Uuid::new_v4().to_string();
    let create_id = Uuid::new_v4().to_string();
    let move_id = Uuid::new_v4().to_string();
    let missing_id = Uuid::new_v4().to_string();
    let (create_origin, move_origin, missing_origin) =
        (origin(&create_id), origin(&move_id), origin(&missing_id));
    let create = command(
        RequestType::CreateTicket,
        Some(&ticket),
        json!({"title": "Batched"}),
    );
    let transition = command(
        RequestType::Transition,
        Some(&ticket),
        json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "go"}),
    );
    let missing = command(
        RequestType::Transition,
        Some(&Uuid::new_v4().to_string()),
        json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "go"}),
    );
    let message = |origin, kind, command| Message {
        origin,
        kind,
        command,
        dedupe: true,
    };
    let batch = [
        message(&create_origin, RequestType::CreateTicket, &create),
        // the same id again in the same batch: a duplicate, not a second ticket
        message(&create_origin, RequestType::CreateTicket, &create),
        message(&move_origin, RequestType::Transition, &transition),
        message(&missing_origin, RequestType::Transition, &missing),
    ];

    let outcomes = workflow.handle_batch(&batch, RETRY).await;
    assert_eq!(
        outcome_types(&outcomes),
        [
            "ticket.created",
            "duplicate",
            "phase.transitioned",
            "phase.transition.rejected"
        ]
    );
    // the whole batch again, as after a redelivery: nothing is applied twice
    let again = workflow.handle_batch(&batch, RETRY).await;
    assert_eq!(outcome_types(&again), ["duplicate"; 4]);

    let inbox: i64 = sqlx::query_scalar("select count(*) from inbox")
        .fetch_one(&app.pool)
        .await
        .expect("inbox count");
    assert_eq!(inbox, 3, "one inbox row per id");
    let events: Vec<(String, Option<i64>, Value)> = sqlx::query_as(
        "select event_type, ticket_seq, convert_from(body, 'UTF8')::jsonb from outbox order by id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("outbox rows");
    let of_ticket: Vec<(&str, i64)> = events
        .iter()
        .filter(|(_, _, payload)| payload["subject"] == json!(ticket))
        .map(|(kind, seq, payload)| {
            // stored without its number, which the relay adds from the row as it publishes
            assert!(payload.get("ticketseq").is_none(), "{payload}");
            (kind.as_str(), seq.expect("numbered"))
        })
        .collect();
    assert_eq!(
        of_ticket,
        [
            ("ticket.created", 1),
            ("phase.entered", 2),
            ("phase.transitioned", 3),
            ("phase.entered", 4),
            ("tasks.generated", 5),
            ("context.updated", 6)
        ]
    );
    let rejection = events
        .iter()
        .find(|(kind, ..)| kind == "phase.transition.rejected")
        .expect("the rejection is in the outbox");
    assert_eq!(
        rejection.1, None,
        "no ticketseq for a ticket that does not exist"
    );
    assert_eq!(rejection.2["causationid"], json!(missing_id));
    app.shutdown().await;
}
