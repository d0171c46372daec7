//! The consumer's grouped acknowledgements, through the real broker: a burst that the worker
//! applies in concurrent batches, with undecodable messages among it that are dead-lettered one
//! by one, is acknowledged exactly once per delivery. A delivery acked twice would make the
//! broker close the channel and redeliver what was unacknowledged on it; a delivery never acked
//! would come back when the worker's connection closes. Either shows as more deliveries handled
//! than were published, or as messages left in the queue.

use std::time::{Duration, Instant};

use crate::common::{is_outcome_type, TestApp, WAIT};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::json;
use uuid::Uuid;

const TICKETS: usize = 60;
const UNDECODABLE: usize = 6;

/// Deliveries the worker finished handling, from its replica reports.
async fn handled(app: &TestApp) -> i64 {
    sqlx::query_scalar("select coalesce(sum(handled), 0)::int8 from replicas where kind = 'worker'")
        .fetch_one(&app.pool)
        .await
        .expect("replica reports read")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_in_concurrent_batches_is_acknowledged_once_per_delivery() {
    let mut app = TestApp::without_worker().await;
    app.settings.amqp.batch_size = 8;
    app.settings.amqp.concurrent_batches = 4;
    app.settings.ops.replica_report_ms = 100;
    // published before the worker starts, so that it receives them together and batches them
    let mut requests = Vec::new();
    for index in 0..TICKETS {
        let ticket = Uuid::new_v4().to_string();
        requests.push(
            app.send(
                "ticket.create.requested",
                Some(&ticket),
                json!({"title": format!("Acked {index}")}),
            )
            .await,
        );
        requests.push(
            app.send(
                "phase.transition.requested",
                Some(&ticket),
                json!({"to_phase": "PHASE_REQUIREMENTS", "reason": "refine"}),
            )
            .await,
        );
        if index % (TICKETS / UNDECODABLE) == 0 {
            app.send_raw("phase.transition.requested", b"{ not json")
                .await;
        }
    }
    let published = (requests.len() + UNDECODABLE) as i64;
    app.start_worker();

    let outcomes = app
        .events
        .wait_for_count(requests.len(), |event| {
            is_outcome_type(event["type"].as_str().unwrap_or_default())
                && requests.iter().any(|id| event["causationid"] == json!(id))
        })
        .await;
    assert_eq!(outcomes.len(), requests.len(), "one outcome per request");
    for _ in 0..UNDECODABLE {
        assert!(
            app.next_dead_letter().await.is_some(),
            "every undecodable message is dead-lettered"
        );
    }

    // every delivery handled once: the count reaches what was published and stays there
    let deadline = Instant::now() + WAIT;
    while handled(&app).await < published && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        handled(&app).await,
        published,
        "each published message was delivered and handled exactly once"
    );

    // and acknowledged: nothing comes back to the queue when the worker's connection closes
    app.take_worker(0)
        .stop()
        .await
        .expect("the worker stops cleanly");
    let channel = app.amqp.create_channel().await.expect("channel");
    let queue = channel
        .queue_declare(
            app.settings.amqp.requests_queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("the requests queue exists");
    assert_eq!(
        queue.message_count(),
        0,
        "no delivery was left unacknowledged"
    );
    app.shutdown().await;
}
