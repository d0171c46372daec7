//! Review gates, one request at a time against Postgres alone: a gate that requires a review
//! waits for one once everything else holds and asks for it once per state of the phase; an
//! author may not review; changes requested fail the gate and generate rework, after which a new
//! review is asked for; an approval moves the ticket on, and one the phase outgrew no longer
//! counts.

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::common::definition_with_reviews;
use crate::common::rules::Rules;

const TRANSITION: &str = "phase.transition.requested";
const COMPLETE: &str = "task.complete.requested";
const REVIEW: &str = "gate.review.submit.requested";
const VALIDATE: &str = "gate.validate.requested";
const ARTIFACT: &str = "artifact.submit.requested";

async fn reviewed_rules() -> Rules {
    let definition = definition_with_reviews(&["PHASE_DESIGN", "PHASE_DEPLOYMENT"]);
    Rules::with_settings(|settings| settings.workflow.definition_path = definition).await
}

/// The open tasks of the ticket's phase, by type.
async fn open_tasks(rules: &Rules, ticket: &str, phase: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "select task_type, id::text from tasks where ticket_id = $1::uuid and phase_id = $2::phase \
         and status = 'pending' order by seq",
    )
    .bind(ticket)
    .bind(phase)
    .fetch_all(&rules.pool)
    .await
    .expect("tasks")
}

/// Completes every open task of the phase as `agent`, handing in `artifacts` with the last.
async fn finish_phase(rules: &Rules, ticket: &str, phase: &str, agent: &str, artifacts: Value) {
    let tasks = open_tasks(rules, ticket, phase).await;
    assert!(!tasks.is_empty(), "{phase} has open tasks");
    let last = tasks.len() - 1;
    for (index, (_, task)) in tasks.iter().enumerate() {
        let result = if index == last {
            json!({"artifacts": artifacts})
        } else {
            json!({})
        };
        let done = rules
            .send_as(
                agent,
                COMPLETE,
                Some(ticket),
                json!({"task_id": task, "result": result}),
            )
            .await;
        assert_eq!(done["type"], "task.completed", "{done:#}");
    }
}

async fn phase_of(rules: &Rules, ticket: &str) -> String {
    crate::common::phase_of(&rules.pool, ticket).await
}

fn events_of(rules: &Rules, event_type: &str) -> Vec<Value> {
    rules
        .events
        .all()
        .into_iter()
        .filter(|event| event["type"] == event_type)
        .collect()
}

async fn ticket_in_design(rules: &Rules, auto_advance: bool) -> String {
    let created = rules
        .send_as(
            "agent-1",
            "ticket.create.requested",
            None,
            json!({"title": "Passkeys", "auto_advance": auto_advance}),
        )
        .await;
    let ticket = created["data"]["ticket_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let moved = rules
        .send_as(
            "agent-1",
            TRANSITION,
            Some(&ticket),
            json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "go"}),
        )
        .await;
    assert_eq!(moved["type"], "phase.transitioned");
    finish_phase(
        rules,
        &ticket,
        "PHASE_REQUIREMENTS",
        "agent-1",
        json!([{"artifact_type": "requirements_document",
                "artifact_content": {"length": 900, "sections": ["scope", "acceptance_criteria"]}}]),
    )
    .await;
    if !auto_advance {
        // the outcome found first is the gate's validation, which a forward move begins with
        let checked = rules
            .send_as(
                "agent-1",
                TRANSITION,
                Some(&ticket),
                json!({"to_phase": "PHASE_DESIGN", "reason": "requirements done"}),
            )
            .await;
        assert_eq!(checked["data"]["gate_status"], "passed", "{checked:#}");
    }
    assert_eq!(phase_of(rules, &ticket).await, "PHASE_DESIGN");
    ticket
}

fn design_document() -> Value {
    json!([{"artifact_type": "design_document", "artifact_path": "docs/design.md",
            "artifact_content": {"sections": ["architecture"]}}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewed_gate_waits_for_an_independent_approval_through_a_round_of_changes() {
    let rules = reviewed_rules().await;
    let ticket = ticket_in_design(&rules, true).await;
    assert!(
        events_of(&rules, "gate.review.requested").is_empty(),
        "REQUIREMENTS is not reviewed"
    );

    finish_phase(
        &rules,
        &ticket,
        "PHASE_DESIGN",
        "agent-1",
        design_document(),
    )
    .await;
    assert_eq!(
        phase_of(&rules, &ticket).await,
        "PHASE_DESIGN",
        "waits for its review"
    );
    let validated = events_of(&rules, "gate.validated");
    let last = validated.last().expect("the gate was validated");
    assert_eq!(last["data"]["gate_status"], "pending", "{last:#}");
    assert_eq!(last["data"]["blocking_reasons"], json!(["awaiting review"]));
    let requested = events_of(&rules, "gate.review.requested");
    assert_eq!(requested.len(), 1);
    let request = &requested[0]["data"];
    assert_eq!(request["phase_id"], "PHASE_DESIGN");
    assert_eq!(request["authors"], json!(["agent-1"]));
    assert_eq!(request["artifacts"][0]["artifact_type"], "design_document");
    assert_eq!(
        request["earlier_artifacts"][0]["artifact_type"],
        "requirements_document"
    );
    assert!(
        request["summary"].as_str().unwrap().contains("Passkeys"),
        "{request:#}"
    );

    // asking the gate again asks for no second review of the same state
    let again = rules.send(VALIDATE, Some(&ticket), json!({})).await;
    assert_eq!(
        rules.outcome_of(&again).await["data"]["gate_status"],
        "pending"
    );
    assert_eq!(events_of(&rules, "gate.review.requested").len(), 1);

    // an author may not review
    let own = rules
        .send_as(
            "agent-1",
            REVIEW,
            Some(&ticket),
            json!({"verdict": "approved"}),
        )
        .await;
    assert_eq!(own["type"], "gate.review.submit.rejected", "{own:#}");
    assert_eq!(own["data"]["code"], "reviewer_not_independent");

    // changes requested: the gate fails with the reasons and rework is generated
    let changes = rules
        .send_as(
            "reviewer",
            REVIEW,
            Some(&ticket),
            json!({"verdict": "changes_requested", "reasons": ["name the data model"]}),
        )
        .await;
    assert_eq!(changes["type"], "gate.reviewed", "{changes:#}");
    assert_eq!(changes["data"]["reviewer"], "reviewer");
    let failed = events_of(&rules, "gate.validated").pop().unwrap();
    assert_eq!(failed["data"]["gate_status"], "failed");
    assert_eq!(
        failed["data"]["blocking_reasons"],
        json!(["review by reviewer: name the data model"])
    );
    let rework = open_tasks(&rules, &ticket, "PHASE_DESIGN").await;
    assert_eq!(rework.len(), 1);
    assert_eq!(rework[0].0, "address_review_feedback");
    let stale = rules
        .send_as(
            "reviewer",
            REVIEW,
            Some(&ticket),
            json!({"verdict": "approved"}),
        )
        .await;
    assert_eq!(stale["data"]["code"], "review_not_requested", "{stale:#}");

    // the rework done, a new review is asked for, now of two authors' work
    finish_phase(
        &rules,
        &ticket,
        "PHASE_DESIGN",
        "agent-2",
        design_document(),
    )
    .await;
    let requested = events_of(&rules, "gate.review.requested");
    assert_eq!(requested.len(), 2);
    assert_eq!(
        requested[1]["data"]["authors"],
        json!(["agent-1", "agent-2"])
    );
    let approved = rules
        .send_as(
            "reviewer",
            REVIEW,
            Some(&ticket),
            json!({"verdict": "approved", "reasons": ["the data model is there"]}),
        )
        .await;
    assert_eq!(approved["type"], "gate.reviewed", "{approved:#}");
    assert_eq!(
        events_of(&rules, "gate.validated").pop().unwrap()["data"]["gate_status"],
        "passed"
    );
    assert_eq!(phase_of(&rules, &ticket).await, "PHASE_IMPLEMENTATION");
    let reviews: i64 = sqlx::query_scalar("select count(*) from gate_reviews")
        .fetch_one(&rules.pool)
        .await
        .expect("reviews");
    assert_eq!(reviews, 2, "both verdicts are stored");
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_the_phase_outgrew_no_longer_counts() {
    let rules = reviewed_rules().await;
    let ticket = ticket_in_design(&rules, false).await;
    finish_phase(
        &rules,
        &ticket,
        "PHASE_DESIGN",
        "agent-1",
        design_document(),
    )
    .await;
    let approved = rules
        .send_as(
            "reviewer",
            REVIEW,
            Some(&ticket),
            json!({"verdict": "approved"}),
        )
        .await;
    assert_eq!(approved["type"], "gate.reviewed", "{approved:#}");
    let check = rules.send(VALIDATE, Some(&ticket), json!({})).await;
    assert_eq!(
        rules.outcome_of(&check).await["data"]["gate_status"],
        "passed"
    );

    // a new artifact after the approval: the gate waits for a new review
    let submitted = rules
        .send_as(
            "agent-1",
            ARTIFACT,
            Some(&ticket),
            json!({"artifact_type": "design_document", "artifact_content": {"sections": ["architecture", "api"]}}),
        )
        .await;
    assert_eq!(submitted["type"], "artifact.collected");
    let check = rules.send(VALIDATE, Some(&ticket), json!({})).await;
    let outcome = rules.outcome_of(&check).await;
    assert_eq!(outcome["data"]["gate_status"], "pending", "{outcome:#}");
    assert_eq!(events_of(&rules, "gate.review.requested").len(), 2);
    let moved = rules
        .send_as(
            "agent-1",
            TRANSITION,
            Some(&ticket),
            json!({"to_phase": "PHASE_IMPLEMENTATION", "reason": "approved before"}),
        )
        .await;
    assert_eq!(moved["data"]["code"], "gate_not_met", "{moved:#}");
    assert_eq!(moved["data"]["reasons"], json!(["awaiting review"]));
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_operator_may_force_a_transition_and_the_move_and_gate_say_so() {
    let rules =
        Rules::with_settings(|settings| settings.auth.operators = vec!["op-1".to_owned()]).await;
    let ticket = rules.create_ticket("Stuck behind a wrong gate").await;
    let moved = rules
        .send_as(
            "agent-1",
            TRANSITION,
            Some(&ticket),
            json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "go"}),
        )
        .await;
    assert_eq!(moved["type"], "phase.transitioned");

    let refused = rules
        .send_as(
            "agent-1",
            TRANSITION,
            Some(&ticket),
            json!({"to_phase": "PHASE_DESIGN", "reason": "skip it", "force": true}),
        )
        .await;
    assert_eq!(refused["type"], "phase.transition.rejected", "{refused:#}");
    assert_eq!(refused["data"]["code"], "forbidden");
    assert_eq!(phase_of(&rules, &ticket).await, "PHASE_REQUIREMENTS");

    let beyond = rules
        .send_as(
            "op-1",
            TRANSITION,
            Some(&ticket),
            json!({"to_phase": "PHASE_TESTING", "reason": "jump", "force": true}),
        )
        .await;
    assert_eq!(
        beyond["data"]["code"], "invalid_transition",
        "the table still holds"
    );

    let forced = rules
        .send_as(
            "op-1",
            TRANSITION,
            Some(&ticket),
            json!({"to_phase": "PHASE_DESIGN", "reason": "the gate is wrong", "force": true}),
        )
        .await;
    assert_eq!(forced["type"], "gate.validated", "{forced:#}");
    assert_eq!(forced["data"]["gate_status"], "overridden");
    assert!(!forced["data"]["blocking_reasons"]
        .as_array()
        .unwrap()
        .is_empty());
    let transitioned = events_of(&rules, "phase.transitioned").pop().unwrap();
    assert_eq!(transitioned["data"]["forced"], true);
    assert_eq!(transitioned["data"]["transitioned_by"], "op-1");
    assert_eq!(phase_of(&rules, &ticket).await, "PHASE_DESIGN");
    let (forced_rows, overridden): (i64, i64) = sqlx::query_as(
        "select (select count(*) from phase_history where ticket_id = $1::uuid and forced), \
                (select count(*) from phase_gate_results where ticket_id = $1::uuid \
                   and gate_status = 'overridden')",
    )
    .bind(&ticket)
    .fetch_one(&rules.pool)
    .await
    .expect("counts");
    assert_eq!((forced_rows, overridden), (1, 1));
    let unforced = events_of(&rules, "phase.transitioned");
    assert_eq!(
        unforced[0]["data"]["forced"], false,
        "an ordinary move says so too"
    );
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_reviewers_and_racing_operators_get_one_verdict_and_one_move() {
    let definition = definition_with_reviews(&["PHASE_DESIGN", "PHASE_DEPLOYMENT"]);
    let rules = Arc::new(
        Rules::with_settings(|settings| {
            settings.workflow.definition_path = definition;
            settings.auth.operators = vec!["op-1".to_owned(), "op-2".to_owned()];
        })
        .await,
    );
    let ticket = ticket_in_design(&rules, false).await;
    finish_phase(
        &rules,
        &ticket,
        "PHASE_DESIGN",
        "agent-1",
        design_document(),
    )
    .await;

    let mut reviews = JoinSet::new();
    for (reviewer, verdict) in [
        ("reviewer-a", "approved"),
        ("reviewer-b", "changes_requested"),
    ] {
        let (rules, ticket) = (rules.clone(), ticket.clone());
        reviews.spawn(async move {
            rules
                .send_as(
                    reviewer,
                    REVIEW,
                    Some(&ticket),
                    json!({"verdict": verdict, "reasons": ["seen"]}),
                )
                .await
        });
    }
    let outcomes = reviews.join_all().await;
    let reviewed = outcomes
        .iter()
        .filter(|o| o["type"] == "gate.reviewed")
        .count();
    assert_eq!(reviewed, 1, "one verdict per state: {outcomes:#?}");
    assert!(outcomes
        .iter()
        .any(|o| o["data"]["code"] == "review_not_requested"));
    let stored: i64 = sqlx::query_scalar("select count(*) from gate_reviews")
        .fetch_one(&rules.pool)
        .await
        .expect("reviews");
    assert_eq!(stored, 1);

    let mut forces = JoinSet::new();
    for operator in ["op-1", "op-2"] {
        let (rules, ticket) = (rules.clone(), ticket.clone());
        forces.spawn(async move {
            rules
                .send_as(
                    operator,
                    TRANSITION,
                    Some(&ticket),
                    json!({"to_phase": "PHASE_IMPLEMENTATION", "reason": "ship it", "force": true,
                           "expected_from_phase": "PHASE_DESIGN"}),
                )
                .await
        });
    }
    let outcomes = forces.join_all().await;
    let moves: i64 = sqlx::query_scalar(
        "select count(*) from phase_history where ticket_id = $1::uuid and to_phase = 'PHASE_IMPLEMENTATION'",
    )
    .bind(&ticket)
    .fetch_one(&rules.pool)
    .await
    .expect("history");
    assert_eq!(moves, 1, "one forced move: {outcomes:#?}");
    assert!(
        outcomes
            .iter()
            .any(|o| o["data"]["code"] == "phase_mismatch"),
        "{outcomes:#?}"
    );
    Arc::into_inner(rules)
        .expect("no request left")
        .shutdown()
        .await;
}
