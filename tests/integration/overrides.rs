//! Operator overrides over RabbitMQ: a `force` counts only from an operator named by the
//! message's `user_id`, which the broker checks against the connection's user. An `actor`
//! attribute naming an operator is not enough, and a `user_id` that is not the connection's
//! user never reaches the worker.

use lapin::BasicProperties;
use phaseflow_client::{OutgoingRequest, RequestClient};
use serde_json::json;
use uuid::Uuid;

use crate::common::requests::TRANSITION;
use crate::common::{phase_of, Requests, TestApp};
use phaseflow::domain::{GateStatus, Phase};
use phaseflow::protocol::events::{GateValidated, PhaseTransitioned};
use phaseflow::protocol::RejectionCode;

fn force(ticket: &str, actor: Option<&str>) -> OutgoingRequest {
    OutgoingRequest {
        id: Uuid::new_v4().to_string(),
        request_type: TRANSITION.to_owned(),
        subject: Some(ticket.to_owned()),
        source: "operator/console".to_owned(),
        actor: actor.map(str::to_owned),
        correlation_id: None,
        data: json!({"to_phase": "PHASE_DESIGN", "reason": "the gate is wrong", "force": true}),
    }
}

fn properties(request: &OutgoingRequest, user_id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/cloudevents+json".into())
        .with_message_id(request.id.as_str().into())
        .with_user_id(user_id.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_amqp_only_a_broker_validated_user_id_makes_an_operator() {
    let mut app = TestApp::without_worker().await;
    // the tests connect as RabbitMQ's `guest`: that user is the operator here
    app.settings.auth.operators = vec!["guest".to_owned()];
    app.start_worker();
    let ticket = app.create_ticket("Forced past its gate").await;
    app.transition(&ticket, Phase::Requirements, "go")
        .await
        .succeeded();

    // an actor attribute is only a claim
    let claimed = force(&ticket, Some("guest"));
    app.client.publish(&claimed).await.expect("published");
    let refused = app
        .outcome_of_request::<PhaseTransitioned>(&claimed.id, TRANSITION)
        .await
        .rejected();
    assert_eq!(refused.data.code, RejectionCode::Forbidden, "{refused}");
    assert_eq!(phase_of(&app.pool, &ticket).await, "PHASE_REQUIREMENTS");

    // a user_id that is not the connection's user is refused by the broker itself
    let spoofer = RequestClient::connect(&app.settings.amqp.broker(), "phaseflow tests")
        .await
        .expect("a second client");
    let spoofed = force(&ticket, None);
    let published = spoofer
        .publish_raw(
            TRANSITION,
            &serde_json::to_vec(&spoofed.to_cloudevent()).expect("json"),
            properties(&spoofed, "op-mallory"),
        )
        .await;
    assert!(
        published.is_err(),
        "the broker must refuse a forged user_id"
    );
    spoofer.close().await;

    // the broker-validated user_id of an operator forces the move
    let genuine = force(&ticket, None);
    app.client
        .publish_raw(
            TRANSITION,
            &serde_json::to_vec(&genuine.to_cloudevent()).expect("json"),
            properties(&genuine, "guest"),
        )
        .await
        .expect("published");
    let transitioned = app
        .outcome_of_request::<PhaseTransitioned>(&genuine.id, TRANSITION)
        .await
        .succeeded();
    let validated = app
        .events
        .wait_for_event(|event| {
            event.is_about("gate.validated", &ticket) && event.causationid == genuine.id
        })
        .await
        .typed::<GateValidated>();
    assert_eq!(
        validated.data.gate_status,
        GateStatus::Overridden,
        "{validated}"
    );
    assert!(transitioned.data.forced);
    assert_eq!(transitioned.actor, "guest");
    assert_eq!(phase_of(&app.pool, &ticket).await, "PHASE_DESIGN");
    assert!(
        app.events
            .typed()
            .iter()
            .all(|event| event.causationid != spoofed.id),
        "the forged request was never applied"
    );
    app.shutdown().await;
}
