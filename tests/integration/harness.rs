//! The harness itself: a test that panics leaves no database and no broker names behind, what
//! killed runs left is swept, and the factory's tickets are where it says.

use phaseflow::domain::Phase;
use phaseflow::protocol::events::PhaseTransitioned;
use serde_json::json;

use crate::common::cleanup::{self, database_exists, owner_of, TestNames, DATABASE_PREFIX};
use crate::common::factory::task_status;
use crate::common::rules::Rules;
use crate::common::{history_rows, phase_of, Requests, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_that_panics_still_drops_its_database() {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let failing = tokio::spawn(async move {
        let app = Rules::new().await;
        sender.send(app.database.clone()).expect("the name is sent");
        panic!("a failing test");
    });
    let database = receiver.await.expect("the test created its database");

    let ended = failing.await;

    assert!(ended.is_err_and(|error| error.is_panic()));
    assert!(
        !database_exists(&database).await,
        "{database} was dropped during the panic"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_test_that_panics_still_drops_its_database_and_its_queues() {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let failing = tokio::spawn(async move {
        let app = TestApp::spawn().await;
        sender
            .send((
                app.database.clone(),
                app.settings.amqp.requests_queue.clone(),
            ))
            .expect("the names are sent");
        panic!("a failing test");
    });
    let (database, queue) = receiver.await.expect("the test created its names");

    let ended = failing.await;

    assert!(ended.is_err_and(|error| error.is_panic()));
    assert!(!database_exists(&database).await, "{database} was dropped");
    let amqp = phaseflow_client::broker::connect(crate::common::AMQP_URL, 30, "harness test")
        .await
        .expect("RabbitMQ reachable");
    let channel = amqp.create_channel().await.expect("channel");
    let declared = channel
        .queue_declare(
            queue.as_str().into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await;
    assert!(declared.is_err(), "{queue} was deleted");
    let _ = amqp.close(200, "done".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_name_carries_the_creating_process_and_its_time() {
    let gone = format!("{DATABASE_PREFIX}0_1_leftover");
    let names = TestNames::new();

    assert_eq!(owner_of(&gone, DATABASE_PREFIX, '_'), Some((0, 1)));
    let (pid, _) = owner_of(&names.database, DATABASE_PREFIX, '_').expect("a test name");
    assert_eq!(pid, std::process::id());
    assert_eq!(
        owner_of("phaseflow_test_0123abcd", DATABASE_PREFIX, '_'),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_drops_databases_of_processes_that_are_gone_and_keeps_running_ones() {
    let app = Rules::new().await;
    let leftover = format!(
        "{DATABASE_PREFIX}{}_{}_leftover",
        u32::MAX - 1,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a clock")
            .as_secs()
    );
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "create database \"{leftover}\""
    )))
    .execute(&app.pool)
    .await
    .expect("a leftover database");

    cleanup::sweep_stale_now().await;

    assert!(!database_exists(&leftover).await, "{leftover} was swept");
    assert!(
        database_exists(&app.database).await,
        "the running test's database is kept"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_factory_puts_a_ticket_into_a_phase_with_its_pending_tasks_and_history() {
    let app = Rules::new().await;

    let placed = app.ticket_in(Phase::Design).await;

    assert_eq!(phase_of(&app.pool, &placed.ticket).await, "PHASE_DESIGN");
    assert_eq!(
        history_rows(&app.pool, &placed.ticket).await,
        3,
        "BACKLOG, REQUIREMENTS, DESIGN"
    );
    assert_eq!(
        placed.tasks.keys().collect::<Vec<_>>(),
        ["create_design_doc", "design_architecture"]
    );
    for task in placed.tasks.values() {
        assert_eq!(task_status(&app.pool, task).await, "pending");
    }
    assert_eq!(
        app.tasks_of(&placed.ticket, Phase::Design).await,
        placed.tasks
    );
    assert!(app.events.all().is_empty(), "no event was written");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placed_ticket_moves_on_by_requests_like_any_other() {
    let app = Rules::new().await;
    let placed = app.ticket_in(Phase::Design).await;
    app.submit_artifact(
        &placed.ticket,
        json!({"artifact_type": "design_document", "artifact_content": {"sections": ["architecture"]}}),
    )
    .await
    .succeeded();

    for task in ["design_architecture", "create_design_doc"] {
        app.complete_task(&placed.ticket, placed.task(task))
            .await
            .succeeded();
    }

    let moved = app.events.of_type("phase.transitioned", &placed.ticket);
    assert_eq!(
        moved.len(),
        1,
        "the passed gate moved it on: {:#?}",
        app.events.all()
    );
    let moved: PhaseTransitioned = moved[0].data();
    assert_eq!(moved.previous_phase, Phase::Design);
    assert_eq!(moved.current_phase, Phase::Implementation);
    assert_eq!(
        app.tasks_of(&placed.ticket, Phase::Implementation)
            .await
            .len(),
        2
    );
    app.shutdown().await;
}
