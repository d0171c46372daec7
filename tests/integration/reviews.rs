//! Review gates, one request at a time against Postgres alone: a gate that requires a review
//! waits for one once everything else holds and asks for it once per state of the phase; an
//! author may not review; changes requested fail the gate and generate rework, after which a new
//! review is asked for; an approval moves the ticket on, and one the phase outgrew no longer
//! counts. Operators alone may force a move past a gate.

use std::sync::Arc;

use phaseflow::domain::{GateStatus, Phase};
use phaseflow::protocol::events::{GateReviewRequested, GateValidated, PhaseTransitioned};
use phaseflow::protocol::RejectionCode;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::common::factory::TITLE;
use crate::common::rules::Rules;
use crate::common::{definition_with_reviews, Outcome, Requests};

async fn reviewed_rules() -> Rules {
    let definition = definition_with_reviews(&["PHASE_DESIGN", "PHASE_DEPLOYMENT"]);
    Rules::with_settings(|settings| settings.workflow.definition_path = definition).await
}

/// The open tasks of the ticket's phase: (type, id), oldest first.
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
        rules
            .request_as::<Value>(
                agent,
                crate::common::requests::COMPLETE_TASK,
                Some(ticket),
                json!({"task_id": task, "result": result}),
            )
            .await
            .succeeded();
    }
}

async fn phase_of(rules: &Rules, ticket: &str) -> String {
    crate::common::phase_of(&rules.pool, ticket).await
}

/// The data of the ticket's events of one type, oldest first.
fn data_of<T: serde::de::DeserializeOwned>(
    rules: &Rules,
    event_type: &str,
    ticket: &str,
) -> Vec<T> {
    rules
        .events
        .of_type(event_type, ticket)
        .iter()
        .map(|event| event.data())
        .collect()
}

/// The status of the ticket's latest gate validation.
fn latest_gate(rules: &Rules, ticket: &str) -> GateValidated {
    data_of::<GateValidated>(rules, "gate.validated", ticket)
        .pop()
        .expect("the gate was validated")
}

fn design_document() -> Value {
    json!([{"artifact_type": "design_document", "artifact_path": "docs/design.md",
            "artifact_content": {"sections": ["architecture"]}}])
}

/// A ticket in DESIGN with a requirements document handed in for REQUIREMENTS.
async fn ticket_in_design(rules: &Rules, auto_advance: bool) -> String {
    let placed = if auto_advance {
        rules.ticket_in(Phase::Design).await
    } else {
        rules.manual_ticket_in(Phase::Design).await
    };
    rules
        .submit_artifact(
            &placed.ticket,
            json!({"phase_id": "PHASE_REQUIREMENTS", "artifact_type": "requirements_document",
                   "artifact_content": {"length": 900, "sections": ["scope", "acceptance_criteria"]}}),
        )
        .await
        .succeeded();
    placed.ticket
}

/// A ticket whose DESIGN `agent-1` finished: its gate waits for a review.
async fn design_awaiting_review(rules: &Rules) -> String {
    let ticket = ticket_in_design(rules, true).await;
    finish_phase(rules, &ticket, "PHASE_DESIGN", "agent-1", design_document()).await;
    ticket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_without_a_review_lets_the_ticket_move_on_without_asking_for_one() {
    let rules = reviewed_rules().await;
    let placed = rules.ticket_in(Phase::Requirements).await;

    finish_phase(
        &rules,
        &placed.ticket,
        "PHASE_REQUIREMENTS",
        "agent-1",
        json!([{"artifact_type": "requirements_document",
                "artifact_content": {"length": 900, "sections": ["scope", "acceptance_criteria"]}}]),
    )
    .await;

    assert_eq!(phase_of(&rules, &placed.ticket).await, "PHASE_DESIGN");
    assert!(
        rules
            .events
            .of_type("gate.review.requested", &placed.ticket)
            .is_empty(),
        "REQUIREMENTS is not reviewed"
    );
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewed_gate_with_everything_else_done_waits_and_asks_for_one_review() {
    let rules = reviewed_rules().await;

    let ticket = design_awaiting_review(&rules).await;

    assert_eq!(
        phase_of(&rules, &ticket).await,
        "PHASE_DESIGN",
        "waits for its review"
    );
    let last = latest_gate(&rules, &ticket);
    assert_eq!(last.gate_status, GateStatus::Pending, "{last:#?}");
    assert_eq!(last.blocking_reasons, ["awaiting review"]);
    let requested: Vec<GateReviewRequested> = data_of(&rules, "gate.review.requested", &ticket);
    assert_eq!(requested.len(), 1);
    let request = &requested[0];
    assert_eq!(request.phase_id, Phase::Design);
    assert_eq!(request.authors, ["agent-1"]);
    assert_eq!(request.artifacts[0].artifact_type, "design_document");
    assert_eq!(
        request.earlier_artifacts[0].artifact_type,
        "requirements_document"
    );
    assert!(request.summary.contains(TITLE), "{request:#?}");
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_the_gate_again_asks_for_no_second_review_of_the_same_state() {
    let rules = reviewed_rules().await;
    let ticket = design_awaiting_review(&rules).await;

    let again = rules.validate_gate(&ticket, None).await.succeeded();

    assert_eq!(again.data.gate_status, GateStatus::Pending);
    assert_eq!(
        rules.events.of_type("gate.review.requested", &ticket).len(),
        1
    );
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_author_of_the_phase_may_not_review_it() {
    let rules = reviewed_rules().await;
    let ticket = design_awaiting_review(&rules).await;

    let own = rules
        .review("agent-1", &ticket, json!({"verdict": "approved"}))
        .await
        .rejected();

    assert_eq!(own.event_type, "gate.review.submit.rejected", "{own}");
    assert_eq!(own.data.code, RejectionCode::ReviewerNotIndependent);
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_requested_fail_the_gate_with_the_reasons_and_generate_rework() {
    let rules = reviewed_rules().await;
    let ticket = design_awaiting_review(&rules).await;

    let changes = rules
        .review(
            "reviewer",
            &ticket,
            json!({"verdict": "changes_requested", "reasons": ["name the data model"]}),
        )
        .await
        .succeeded();

    assert_eq!(changes.data.reviewer, "reviewer");
    let failed = latest_gate(&rules, &ticket);
    assert_eq!(failed.gate_status, GateStatus::Failed);
    assert_eq!(
        failed.blocking_reasons,
        ["review by reviewer: name the data model"]
    );
    let rework = open_tasks(&rules, &ticket, "PHASE_DESIGN").await;
    assert_eq!(rework.len(), 1);
    assert_eq!(rework[0].0, "address_review_feedback");
    let stale = rules
        .review("reviewer", &ticket, json!({"verdict": "approved"}))
        .await
        .rejected();
    assert_eq!(
        stale.data.code,
        RejectionCode::ReviewNotRequested,
        "{stale}"
    );
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_rework_a_new_review_of_both_authors_is_asked_for_and_an_approval_moves_on() {
    let rules = reviewed_rules().await;
    let ticket = design_awaiting_review(&rules).await;
    rules
        .review(
            "reviewer",
            &ticket,
            json!({"verdict": "changes_requested", "reasons": ["name the data model"]}),
        )
        .await
        .succeeded();

    finish_phase(
        &rules,
        &ticket,
        "PHASE_DESIGN",
        "agent-2",
        design_document(),
    )
    .await;
    let requested: Vec<GateReviewRequested> = data_of(&rules, "gate.review.requested", &ticket);
    assert_eq!(requested.len(), 2);
    assert_eq!(requested[1].authors, ["agent-1", "agent-2"]);
    rules
        .review(
            "reviewer",
            &ticket,
            json!({"verdict": "approved", "reasons": ["the data model is there"]}),
        )
        .await
        .succeeded();

    assert_eq!(latest_gate(&rules, &ticket).gate_status, GateStatus::Passed);
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
    rules
        .review("reviewer", &ticket, json!({"verdict": "approved"}))
        .await
        .succeeded();
    let check = rules.validate_gate(&ticket, None).await.succeeded();
    assert_eq!(check.data.gate_status, GateStatus::Passed);

    // a new artifact after the approval: the gate waits for a new review
    rules
        .submit_artifact(
            &ticket,
            json!({"artifact_type": "design_document", "artifact_content": {"sections": ["architecture", "api"]}}),
        )
        .await
        .succeeded();
    let check = rules.validate_gate(&ticket, None).await.succeeded();

    assert_eq!(check.data.gate_status, GateStatus::Pending, "{check}");
    assert_eq!(
        rules.events.of_type("gate.review.requested", &ticket).len(),
        2
    );
    let moved = rules
        .transition_as(
            "agent-1",
            &ticket,
            json!({"to_phase": "PHASE_IMPLEMENTATION", "reason": "approved before"}),
        )
        .await
        .rejected();
    assert_eq!(moved.data.code, RejectionCode::GateNotMet, "{moved}");
    assert_eq!(moved.data.reasons, ["awaiting review"]);
    rules.shutdown().await;
}

async fn operator_rules() -> Rules {
    Rules::with_settings(|settings| settings.auth.operators = vec!["op-1".to_owned()]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_is_no_operator_may_not_force_a_transition() {
    let rules = operator_rules().await;
    let placed = rules.ticket_in(Phase::Requirements).await;

    let refused = rules
        .transition_as(
            "agent-1",
            &placed.ticket,
            json!({"to_phase": "PHASE_DESIGN", "reason": "skip it", "force": true}),
        )
        .await
        .rejected();

    assert_eq!(refused.event_type, "phase.transition.rejected", "{refused}");
    assert_eq!(refused.data.code, RejectionCode::Forbidden);
    assert_eq!(phase_of(&rules, &placed.ticket).await, "PHASE_REQUIREMENTS");
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_move_still_follows_the_transition_table() {
    let rules = operator_rules().await;
    let placed = rules.ticket_in(Phase::Requirements).await;

    let beyond = rules
        .transition_as(
            "op-1",
            &placed.ticket,
            json!({"to_phase": "PHASE_TESTING", "reason": "jump", "force": true}),
        )
        .await
        .rejected();

    assert_eq!(
        beyond.data.code,
        RejectionCode::InvalidTransition,
        "the table still holds"
    );
    rules.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_forces_a_move_past_a_refusing_gate_and_the_move_and_gate_say_so() {
    let rules = operator_rules().await;
    let ticket = rules.create_ticket("Stuck behind a wrong gate").await;
    rules
        .transition_as(
            "agent-1",
            &ticket,
            json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "go"}),
        )
        .await
        .succeeded();

    let forced = rules
        .transition_as(
            "op-1",
            &ticket,
            json!({"to_phase": "PHASE_DESIGN", "reason": "the gate is wrong", "force": true}),
        )
        .await
        .succeeded();

    assert!(forced.data.forced);
    assert_eq!(forced.data.transitioned_by, "op-1");
    let gate = latest_gate(&rules, &ticket);
    assert_eq!(gate.gate_status, GateStatus::Overridden);
    assert!(!gate.blocking_reasons.is_empty());
    let gates = rules.events.of_type("gate.validated", &ticket);
    assert_eq!(
        gates.last().expect("a gate").causationid,
        forced.causationid,
        "the forced move validated the gate"
    );
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
    let moves: Vec<PhaseTransitioned> = data_of(&rules, "phase.transitioned", &ticket);
    assert!(!moves[0].forced, "an ordinary move says so too");
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
                .review(
                    reviewer,
                    &ticket,
                    json!({"verdict": verdict, "reasons": ["seen"]}),
                )
                .await
        });
    }
    let outcomes = reviews.join_all().await;
    let reviewed = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Outcome::Succeeded(_)))
        .count();
    assert_eq!(reviewed, 1, "one verdict per state: {outcomes:#?}");
    assert!(outcomes.iter().any(|outcome| matches!(
        outcome,
        Outcome::Rejected(rejected) if rejected.data.code == RejectionCode::ReviewNotRequested
    )));
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
                .transition_as(
                    operator,
                    &ticket,
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
        outcomes.iter().any(|outcome| matches!(
            outcome,
            Outcome::Rejected(rejected) if rejected.data.code == RejectionCode::PhaseMismatch
        )),
        "{outcomes:#?}"
    );
    Arc::into_inner(rules)
        .expect("no request left")
        .shutdown()
        .await;
}
