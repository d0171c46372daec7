//! The workflow's rules, one request at a time against Postgres alone (`common::rules`): every
//! rejection code on its rejection event with nothing changed in the database, task reports,
//! gate validation on request, and the gates that guard every way out of PHASE_BLOCKED. What
//! needs the broker (delivery, ids applied once, dead letters, replicas, envelopes) is tested in
//! `requests`. Tickets start in the phase a rule is about (`common::factory`).

use phaseflow::domain::{GateStatus, Phase, Priority};
use phaseflow::protocol::events::ValidationResult;
use phaseflow::protocol::RejectionCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

use crate::common::factory::task_status;
use crate::common::requests::TRANSITION;
use crate::common::rules::Rules;
use crate::common::{count, history_rows, phase_of, uuid, Rejected, Requests};

const TRANSITION_REJECTED: &str = "phase.transition.rejected";

/// Asserts a `phase.transition.rejected`: its code and ticket, and the phases it names.
fn assert_transition_rejected(
    rejection: &Rejected,
    code: RejectionCode,
    ticket: Option<&str>,
    from: Option<Phase>,
    to: Option<Phase>,
) {
    rejection.assert(TRANSITION_REJECTED, code, ticket);
    assert!(rejection.has_member("from_phase"), "{rejection}");
    assert!(rejection.has_member("to_phase"), "{rejection}");
    assert_eq!(
        rejection.data.from_phase.flatten(),
        from,
        "from_phase: {rejection}"
    );
    assert_eq!(
        rejection.data.to_phase.flatten(),
        to,
        "to_phase: {rejection}"
    );
}

async fn table_rows(pool: &PgPool, table: &'static str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select count(*) from {table}")))
        .fetch_one(pool)
        .await
        .expect("count")
}

/// The `completed_at` and `result` of a task as stored.
async fn completion_of(
    pool: &PgPool,
    task: &str,
) -> (Option<chrono::DateTime<chrono::Utc>>, Option<Value>) {
    sqlx::query_as("select completed_at, result from tasks where id = $1")
        .bind(uuid(task))
        .fetch_one(pool)
        .await
        .expect("the task")
}

// ---------------------------------------------------------------------------------------------
// ticket.create.rejected

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_request_naming_an_existing_ticket_is_rejected_as_already_exists() {
    let app = Rules::new().await;
    let ticket = app.create_ticket("The original").await;

    let rejected = app
        .create(Some(&ticket), json!({"title": "An impostor"}))
        .await
        .rejected();

    rejected.assert(
        "ticket.create.rejected",
        RejectionCode::AlreadyExists,
        Some(&ticket),
    );
    assert_eq!(rejected.subject.as_deref(), Some(ticket.as_str()));
    let title: String = sqlx::query_scalar("select title from tickets where id = $1")
        .bind(uuid(&ticket))
        .fetch_one(&app.pool)
        .await
        .expect("title");
    assert_eq!(title, "The original", "the existing ticket is unchanged");
    assert_eq!(
        history_rows(&app.pool, &ticket).await,
        1,
        "no history row was added"
    );
    assert_eq!(table_rows(&app.pool, "tickets").await, 1);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_request_with_an_invalid_title_or_priority_is_rejected_as_invalid_request() {
    let app = Rules::new().await;
    let cases = [
        (json!({"title": ""}), "title"),
        (json!({"title": "x".repeat(501)}), "title"),
        (
            json!({"title": "Fine title", "priority": "URGENT"}),
            "priority",
        ),
        (json!({"description": "no title at all"}), "title"),
    ];

    for (data, field) in cases {
        let rejected = app.create(None, data.clone()).await.rejected();

        rejected.assert(
            "ticket.create.rejected",
            RejectionCode::InvalidRequest,
            None,
        );
        assert!(
            rejected.reasons().contains(field),
            "the reasons for {data} should name `{field}`: {rejected}"
        );
    }
    assert_eq!(
        table_rows(&app.pool, "tickets").await,
        0,
        "no rejected request created a ticket"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_title_of_the_longest_length_allowed_is_accepted() {
    let app = Rules::new().await;

    let created = app
        .create(
            None,
            json!({"title": "y".repeat(500), "priority": "CRITICAL"}),
        )
        .await
        .succeeded();

    assert_eq!(created.data.priority, Priority::Critical);
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// phase.transition.rejected

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transition_of_an_unknown_ticket_is_rejected_as_ticket_not_found() {
    let app = Rules::new().await;
    let unknown = Uuid::new_v4().to_string();

    let rejected = app
        .transition(&unknown, Phase::Requirements, "go")
        .await
        .rejected();

    assert_transition_rejected(
        &rejected,
        RejectionCode::TicketNotFound,
        Some(&unknown),
        None,
        Some(Phase::Requirements),
    );
    assert_eq!(
        rejected.ticketseq, None,
        "no ticketseq on an event about a ticket that does not exist: {rejected}"
    );
    assert_eq!(table_rows(&app.pool, "tickets").await, 0);
    assert_eq!(history_rows(&app.pool, &unknown).await, 0);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transition_the_phase_does_not_allow_is_rejected_as_invalid_transition() {
    let app = Rules::new().await;
    let ticket = app.create_ticket("Skipping ahead").await;

    let rejected = app
        .transition(&ticket, Phase::Design, "skip")
        .await
        .rejected();

    assert_transition_rejected(
        &rejected,
        RejectionCode::InvalidTransition,
        Some(&ticket),
        Some(Phase::Backlog),
        Some(Phase::Design),
    );
    assert_eq!(phase_of(&app.pool, &ticket).await, "PHASE_BACKLOG");
    assert_eq!(
        history_rows(&app.pool, &ticket).await,
        1,
        "a rejection adds no history row"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_transition_with_open_tasks_is_rejected_as_gate_not_met() {
    let app = Rules::new().await;
    let placed = app.ticket_in(Phase::Requirements).await;
    let ticket = &placed.ticket;
    let history_before = history_rows(&app.pool, ticket).await;

    let rejected = app
        .transition(ticket, Phase::Design, "hurry")
        .await
        .rejected();

    assert_transition_rejected(
        &rejected,
        RejectionCode::GateNotMet,
        Some(ticket),
        Some(Phase::Requirements),
        Some(Phase::Design),
    );
    for named in [
        "analyze_requirements",
        "create_requirements_doc",
        "requirements_document",
    ] {
        assert!(
            rejected.reasons().contains(named),
            "the reasons should name {named}: {rejected}"
        );
    }
    assert_eq!(phase_of(&app.pool, ticket).await, "PHASE_REQUIREMENTS");
    assert_eq!(
        history_rows(&app.pool, ticket).await,
        history_before,
        "a rejection adds no history row"
    );
    for task in placed.tasks.values() {
        assert_eq!(task_status(&app.pool, task).await, "pending");
    }
    assert!(app.tasks_of(ticket, Phase::Design).await.is_empty());
    let caused: Vec<_> = app
        .events
        .typed()
        .into_iter()
        .filter(|event| event.causationid == rejected.causationid)
        .collect();
    assert!(
        caused
            .iter()
            .all(|event| !event.is("phase.transitioned") && !event.is("phase.entered")),
        "a rejected transition moves nothing: {caused:#?}"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transition_expecting_another_phase_is_rejected_as_phase_mismatch() {
    let app = Rules::new().await;
    let ticket = app.create_ticket("Stale view").await;

    let rejected = app
        .transition_with(
            &ticket,
            json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "go", "expected_from_phase": "PHASE_DESIGN"}),
        )
        .await
        .rejected();

    assert_transition_rejected(
        &rejected,
        RejectionCode::PhaseMismatch,
        Some(&ticket),
        Some(Phase::Backlog),
        Some(Phase::Requirements),
    );
    assert_eq!(phase_of(&app.pool, &ticket).await, "PHASE_BACKLOG");
    assert_eq!(
        history_rows(&app.pool, &ticket).await,
        1,
        "a rejection adds no history row"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transition_expecting_the_ticket_s_phase_goes_through() {
    let app = Rules::new().await;
    let ticket = app.create_ticket("Fresh view").await;

    app.transition_with(
        &ticket,
        json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "go", "expected_from_phase": "PHASE_BACKLOG"}),
    )
    .await
    .succeeded();

    assert_eq!(history_rows(&app.pool, &ticket).await, 2);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transition_without_a_reason_is_rejected_as_invalid_request() {
    let app = Rules::new().await;
    let ticket = app.create_ticket("No reason given").await;

    let rejected = app
        .transition_with(&ticket, json!({"to_phase": "PHASE_REQUIREMENTS"}))
        .await
        .rejected();

    rejected.assert(
        TRANSITION_REJECTED,
        RejectionCode::InvalidRequest,
        Some(&ticket),
    );
    assert!(rejected.reasons().contains("reason"), "{rejected}");
    assert_eq!(phase_of(&app.pool, &ticket).await, "PHASE_BACKLOG");
    assert_eq!(
        history_rows(&app.pool, &ticket).await,
        1,
        "a rejection adds no history row"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transition_whose_subject_is_not_a_uuid_is_rejected_as_invalid_request() {
    let app = Rules::new().await;

    let rejected = app
        .transition("ticket-42", Phase::Requirements, "go")
        .await
        .rejected();

    rejected.assert(TRANSITION_REJECTED, RejectionCode::InvalidRequest, None);
    assert!(rejected.reasons().contains("subject"), "{rejected}");
    assert_eq!(table_rows(&app.pool, "phase_history").await, 0);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transition_to_an_unknown_phase_is_rejected_as_invalid_request() {
    let app = Rules::new().await;
    let ticket = app.create_ticket("Typo in the phase").await;

    let rejected = app
        .transition_with(
            &ticket,
            json!({"to_phase": "PHASE_REQUIRMENTS", "reason": "go"}),
        )
        .await
        .rejected();

    rejected.assert(
        TRANSITION_REJECTED,
        RejectionCode::InvalidRequest,
        Some(&ticket),
    );
    assert!(rejected.reasons().contains("to_phase"), "{rejected}");
    assert_eq!(phase_of(&app.pool, &ticket).await, "PHASE_BACKLOG");
    assert_eq!(
        history_rows(&app.pool, &ticket).await,
        1,
        "a rejection adds no history row"
    );
    app.shutdown().await;
}

/// `phase.transition.rejected` carries `from_phase` and `to_phase` besides
/// `ticket_id`, `code` and `reasons`, whatever the code (null where unknown).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_transition_request_is_rejected_with_from_phase_and_to_phase() {
    let app = Rules::new().await;
    let ticket = app.create_ticket("Malformed transitions").await;
    let cases = [
        (ticket.clone(), json!({"to_phase": "PHASE_REQUIREMENTS"})),
        (
            "ticket-42".to_owned(),
            json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "go"}),
        ),
        (
            ticket.clone(),
            json!({"to_phase": "PHASE_REQUIRMENTS", "reason": "go"}),
        ),
    ];

    for (subject, data) in cases {
        let rejected = app.transition_with(&subject, data).await.rejected();

        let expected_ticket = (subject == ticket).then_some(ticket.as_str());
        rejected.assert(
            TRANSITION_REJECTED,
            RejectionCode::InvalidRequest,
            expected_ticket,
        );
        assert!(
            rejected.has_member("from_phase"),
            "from_phase is present: {rejected}"
        );
        assert!(
            rejected.has_member("to_phase"),
            "to_phase is present: {rejected}"
        );
    }
    assert_eq!(
        history_rows(&app.pool, &ticket).await,
        1,
        "a rejection adds no history row"
    );
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// gate.validate.rejected, tasks.generate.rejected

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_validation_of_an_unknown_ticket_is_rejected_as_ticket_not_found() {
    let app = Rules::new().await;
    let unknown = Uuid::new_v4().to_string();

    let rejected = app.validate_gate(&unknown, None).await.rejected();

    rejected.assert(
        "gate.validate.rejected",
        RejectionCode::TicketNotFound,
        Some(&unknown),
    );
    assert_eq!(
        table_rows(&app.pool, "phase_gate_results").await,
        0,
        "nothing was validated"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_generation_for_an_unknown_ticket_is_rejected_as_ticket_not_found() {
    let app = Rules::new().await;
    let unknown = Uuid::new_v4().to_string();

    let rejected = app
        .generate_tasks(&unknown, Some(Phase::Design))
        .await
        .rejected();

    rejected.assert(
        "tasks.generate.rejected",
        RejectionCode::TicketNotFound,
        Some(&unknown),
    );
    assert_eq!(
        table_rows(&app.pool, "tasks").await,
        0,
        "no task was generated"
    );
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// task.complete.rejected

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_an_unknown_task_is_rejected_as_task_not_found() {
    let app = Rules::new().await;
    let placed = app.ticket_in(Phase::Requirements).await;

    let rejected = app
        .report_task(
            &placed.ticket,
            json!({"task_id": Uuid::new_v4(), "status": "completed", "result": {"summary": "?"}}),
        )
        .await
        .rejected();

    rejected.assert(
        "task.complete.rejected",
        RejectionCode::TaskNotFound,
        Some(&placed.ticket),
    );
    for task in placed.tasks.values() {
        assert_eq!(
            task_status(&app.pool, task).await,
            "pending",
            "the ticket's own tasks are untouched"
        );
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_a_task_of_another_ticket_is_rejected_as_task_not_found() {
    let app = Rules::new().await;
    let owner = app.ticket_in(Phase::Requirements).await;
    let other = app.create_ticket("Someone else").await;
    let task = owner.task("analyze_requirements");

    let rejected = app.complete_task(&other, task).await.rejected();

    rejected.assert(
        "task.complete.rejected",
        RejectionCode::TaskNotFound,
        Some(&other),
    );
    assert_eq!(task_status(&app.pool, task).await, "pending");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_a_task_twice_is_rejected_as_task_already_finished() {
    let app = Rules::new().await;
    let placed = app.ticket_in(Phase::Requirements).await;
    let task = placed.task("analyze_requirements");
    let report = |summary: &str| json!({"task_id": task, "status": "completed", "result": {"summary": summary}});
    app.report_task(&placed.ticket, report("first"))
        .await
        .succeeded();
    let first_completion = completion_of(&app.pool, task).await;

    let rejected = app
        .report_task(&placed.ticket, report("second"))
        .await
        .rejected();

    rejected.assert(
        "task.complete.rejected",
        RejectionCode::TaskAlreadyFinished,
        Some(&placed.ticket),
    );
    assert_eq!(task_status(&app.pool, task).await, "completed");
    assert_eq!(
        completion_of(&app.pool, task).await,
        first_completion,
        "the first completion and its result stand"
    );
    assert_eq!(
        task_status(&app.pool, placed.task("create_requirements_doc")).await,
        "pending"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_may_be_reported_failed_again_and_then_completed() {
    let app = Rules::new().await;
    let placed = app.ticket_in(Phase::Requirements).await;
    let ticket = &placed.ticket;
    let task = placed.task("analyze_requirements");

    let failed = app
        .report_task(
            ticket,
            json!({"task_id": task, "status": "failed", "error": "timeout"}),
        )
        .await
        .succeeded();
    assert_eq!(failed.event_type, "task.failed");
    assert_eq!(task_status(&app.pool, task).await, "failed");
    let failed_again = app
        .report_task(
            ticket,
            json!({"task_id": task, "status": "failed", "error": "timeout again"}),
        )
        .await
        .succeeded();
    assert_eq!(
        failed_again.event_type, "task.failed",
        "a failed task may be reported again"
    );
    let completed = app
        .report_task(
            ticket,
            json!({"task_id": task, "status": "completed", "result": {"summary": "ok now"}}),
        )
        .await
        .succeeded();

    assert_eq!(
        completed.event_type, "task.completed",
        "a failed task may then complete"
    );
    assert_eq!(completed.data.task_id.to_string(), task);
    assert_eq!(task_status(&app.pool, task).await, "completed");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_task_reported_failed_is_rejected_as_task_already_finished() {
    let app = Rules::new().await;
    let placed = app.ticket_in(Phase::Requirements).await;
    let task = placed.task("analyze_requirements");
    app.report_task(
        &placed.ticket,
        json!({"task_id": task, "status": "failed", "error": "timeout"}),
    )
    .await
    .succeeded();
    app.complete_task(&placed.ticket, task).await.succeeded();

    let rejected = app
        .report_task(&placed.ticket, json!({"task_id": task, "status": "failed"}))
        .await
        .rejected();

    rejected.assert(
        "task.complete.rejected",
        RejectionCode::TaskAlreadyFinished,
        Some(&placed.ticket),
    );
    assert_eq!(task_status(&app.pool, task).await, "completed");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_task_report_is_rejected_as_invalid_request() {
    let app = Rules::new().await;
    let placed = app.ticket_in(Phase::Requirements).await;
    let task = placed.task("analyze_requirements");
    let cases = [
        (json!({"status": "completed"}), "task_id"),
        (
            json!({"task_id": "task-1", "status": "completed"}),
            "task_id",
        ),
        (json!({"task_id": task, "status": "done"}), "status"),
        (
            json!({"task_id": task, "result": "not an object"}),
            "result",
        ),
    ];

    for (data, field) in cases {
        let rejected = app
            .report_task(&placed.ticket, data.clone())
            .await
            .rejected();

        rejected.assert(
            "task.complete.rejected",
            RejectionCode::InvalidRequest,
            Some(&placed.ticket),
        );
        assert!(
            rejected.reasons().contains(field),
            "the reasons for {data} should name `{field}`: {rejected}"
        );
    }
    for task in placed.tasks.values() {
        assert_eq!(
            task_status(&app.pool, task).await,
            "pending",
            "no report was applied"
        );
    }
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// artifact.submit.rejected

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_for_an_unknown_ticket_is_rejected_as_ticket_not_found() {
    let app = Rules::new().await;
    let unknown = Uuid::new_v4().to_string();

    let rejected = app
        .submit_artifact(
            &unknown,
            json!({"artifact_type": "requirements_document", "artifact_content": {"length": 900}}),
        )
        .await
        .rejected();

    rejected.assert(
        "artifact.submit.rejected",
        RejectionCode::TicketNotFound,
        Some(&unknown),
    );
    assert_eq!(table_rows(&app.pool, "phase_gate_artifacts").await, 0);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_without_a_type_is_rejected_as_invalid_request() {
    let app = Rules::new().await;
    let placed = app.ticket_in(Phase::Requirements).await;

    let rejected = app
        .submit_artifact(
            &placed.ticket,
            json!({"artifact_path": "docs/req.md", "artifact_content": {"length": 900}}),
        )
        .await
        .rejected();

    rejected.assert(
        "artifact.submit.rejected",
        RejectionCode::InvalidRequest,
        Some(&placed.ticket),
    );
    assert!(rejected.reasons().contains("artifact_type"), "{rejected}");
    let artifacts = count(
        &app.pool,
        "select count(*) from phase_gate_artifacts where ticket_id = $1",
        &placed.ticket,
    )
    .await;
    assert_eq!(artifacts, 0, "nothing was collected");
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// gate validation on request

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_validation_with_open_tasks_is_pending() {
    let app = Rules::new().await;
    let placed = app.ticket_in(Phase::Requirements).await;

    let validated = app
        .validate_gate(&placed.ticket, None)
        .await
        .succeeded()
        .data;

    assert_eq!(validated.ticket_id.to_string(), placed.ticket);
    assert_eq!(
        validated.phase_id,
        Phase::Requirements,
        "the default is the current phase"
    );
    assert_eq!(validated.gate_status, GateStatus::Pending);
    assert!(!validated.requirements_met);
    assert_eq!(validated.missing_artifacts, ["requirements_document"]);
    assert!(!validated.blocking_reasons.is_empty(), "{validated:#?}");
    assert_eq!(
        validated.validation_result,
        ValidationResult {
            artifacts_checked: 0,
            artifacts_passed: 0,
            tasks_completed: false,
            tasks_total: 2,
            tasks_done: 0
        },
        "tasks_completed is a boolean, with the counts beside it"
    );
    assert_eq!(
        phase_of(&app.pool, &placed.ticket).await,
        "PHASE_REQUIREMENTS",
        "validating moves nothing"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_gate_validation_on_request_is_stored_with_who_asked() {
    let app = Rules::new().await;
    let placed = app.ticket_in(Phase::Requirements).await;

    app.validate_gate(&placed.ticket, None).await.succeeded();
    app.validate_gate(&placed.ticket, None).await.succeeded();

    let stored: Vec<(String, bool, String)> = sqlx::query_as(
        "select gate_status::text, requirements_met, validated_by from phase_gate_results \
         where ticket_id = $1 and phase_id = 'PHASE_REQUIREMENTS' order by seq",
    )
    .bind(uuid(&placed.ticket))
    .fetch_all(&app.pool)
    .await
    .expect("gate results");
    let pending = ("pending".to_owned(), false, "agent-test".to_owned());
    assert_eq!(
        stored,
        [pending.clone(), pending],
        "one phase_gate_results row per validation"
    );
    app.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// gates cannot be skipped through BLOCKED

/// A ticket in REQUIREMENTS with its gate unmet, then blocked.
async fn blocked_in_requirements(app: &Rules) -> String {
    let placed = app.ticket_in(Phase::Requirements).await;
    app.transition(&placed.ticket, Phase::Blocked, "waiting for the customer")
        .await
        .succeeded();
    placed.ticket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_ticket_cannot_move_further_than_the_phase_after_the_one_it_was_blocked_from() {
    let app = Rules::new().await;
    let ticket = blocked_in_requirements(&app).await;

    for to in [Phase::Implementation, Phase::Testing] {
        let rejected = app.transition(&ticket, to, "skip ahead").await.rejected();

        assert_transition_rejected(
            &rejected,
            RejectionCode::InvalidTransition,
            Some(&ticket),
            Some(Phase::Blocked),
            Some(to),
        );
        let reasons = rejected.reasons();
        assert!(
            reasons.contains("blocked from PHASE_REQUIREMENTS") && reasons.contains("skip"),
            "the reason says why: {reasons}"
        );
    }
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_ticket_moving_to_the_next_phase_meets_the_gate_it_was_blocked_before() {
    let app = Rules::new().await;
    let ticket = blocked_in_requirements(&app).await;

    let rejected = app
        .transition(&ticket, Phase::Design, "skip the gate")
        .await
        .rejected();

    rejected.assert(
        TRANSITION_REJECTED,
        RejectionCode::GateNotMet,
        Some(&ticket),
    );
    assert!(
        rejected.reasons().contains("requirements_document"),
        "the reasons are the REQUIREMENTS gate's: {rejected}"
    );
    assert_eq!(phase_of(&app.pool, &ticket).await, "PHASE_BLOCKED");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_move_that_meets_a_block_published_just_before_it_is_still_gated() {
    let app = Rules::new().await;
    let ticket = blocked_in_requirements(&app).await;
    let unblocked = app
        .transition_with(&ticket, json!({"reason": "customer answered"}))
        .await
        .succeeded();
    assert_eq!(unblocked.data.current_phase, Phase::Requirements);

    app.send(
        TRANSITION,
        Some(&ticket),
        json!({"to_phase": "PHASE_BLOCKED", "reason": "blocked again"}),
    )
    .await;
    let raced = app
        .transition(&ticket, Phase::Design, "meant as a forward move")
        .await
        .rejected();

    raced.assert(
        TRANSITION_REJECTED,
        RejectionCode::GateNotMet,
        Some(&ticket),
    );
    let entered: Vec<String> = sqlx::query_scalar(
        "select to_phase::text from phase_history where ticket_id = $1 order by created_at, id",
    )
    .bind(uuid(&ticket))
    .fetch_all(&app.pool)
    .await
    .expect("history");
    assert_eq!(
        entered,
        [
            "PHASE_BACKLOG",
            "PHASE_REQUIREMENTS",
            "PHASE_BLOCKED",
            "PHASE_REQUIREMENTS",
            "PHASE_BLOCKED"
        ],
        "the ticket never got past REQUIREMENTS"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_ticket_whose_gate_passes_may_go_on_to_the_next_phase_through_that_gate() {
    let app = Rules::new().await;
    let created = app
        .create(
            None,
            json!({"title": "Moves only when asked", "auto_advance": false}),
        )
        .await
        .succeeded();
    let ticket = created.data.ticket_id.to_string();
    let placed_tasks = {
        app.transition(&ticket, Phase::Requirements, "ready")
            .await
            .succeeded();
        app.tasks_of(&ticket, Phase::Requirements).await
    };
    let document = json!({"length": 800, "sections": ["scope", "acceptance_criteria"]});
    for task in placed_tasks.values() {
        app.report_task(
            &ticket,
            json!({
                "task_id": task,
                "result": {"artifacts": [{"artifact_type": "requirements_document", "artifact_content": document}]},
            }),
        )
        .await
        .succeeded();
    }
    app.transition(&ticket, Phase::Blocked, "waiting")
        .await
        .succeeded();

    // a gated move publishes gate.validated before its outcome
    let moved = app
        .transition(&ticket, Phase::Design, "requirements were done")
        .await
        .succeeded();

    assert_eq!(moved.data.previous_phase, Phase::Blocked);
    assert_eq!(moved.data.current_phase, Phase::Design);
    let gates = app.events.of_type("gate.validated", &ticket);
    let gate = gates
        .iter()
        .find(|gate| gate.causationid == moved.causationid)
        .expect("the move validated the gate")
        .data::<phaseflow::protocol::events::GateValidated>();
    assert_eq!(gate.phase_id, Phase::Requirements);
    assert_eq!(gate.gate_status, GateStatus::Passed);
    assert!(gate.validation_result.tasks_completed);
    assert_eq!(gate.validation_result.tasks_total, 2);
    assert_eq!(gate.validation_result.tasks_done, 2);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_into_requirements_generates_its_two_tasks_in_order() {
    let app = Rules::new().await;
    let ticket = app.create_ticket("Ready for analysis").await;

    app.transition(&ticket, Phase::Requirements, "ready for analysis")
        .await
        .succeeded();

    let generated = app.events.of_type("tasks.generated", &ticket);
    let generated: phaseflow::protocol::events::TasksGenerated = generated[0].data();
    let types: Vec<&str> = generated
        .generated_tasks
        .iter()
        .map(|task| task.task_type.as_str())
        .collect();
    assert_eq!(types, ["analyze_requirements", "create_requirements_doc"]);
    app.shutdown().await;
}
