//! The worker's services: maintenance (inbox pruning and outbox vacuum, run on its own against
//! the test's database) and the order in which a stop ends the services (readiness first, the
//! consumer's in-flight work, the relay's drain, the ops server last).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use phaseflow::retry::OutageLog;
use phaseflow::worker::maintenance::Maintenance;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::common::TestApp;

/// Inbox rows: three applied two hours ago, two just now.
async fn seed_inbox(pool: &PgPool) {
    sqlx::query(
        "insert into inbox (handler, message_id, message_type, processed_at) \
         select 'requests', 'old-' || n, 'ticket.create.requested', now() - interval '2 hours' \
         from generate_series(1, 3) as n \
         union all \
         select 'requests', 'recent-' || n, 'ticket.create.requested', now() \
         from generate_series(1, 2) as n",
    )
    .execute(pool)
    .await
    .expect("inbox rows inserted");
}

async fn inbox_ids(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("select message_id from inbox order by message_id")
        .fetch_all(pool)
        .await
        .expect("inbox read")
}

/// Published events leave dead rows: 200 events written, then deleted as the relay deletes
/// what it published. Returns once Postgres counts them.
async fn leave_dead_outbox_rows(pool: &PgPool) {
    let mut connection = pool.acquire().await.expect("a connection");
    sqlx::query(
        "insert into outbox (event_id, event_type, body) \
         select gen_random_uuid(), 'test.event', convert_to('{}', 'UTF8') \
         from generate_series(1, 200)",
    )
    .execute(&mut *connection)
    .await
    .expect("outbox rows inserted");
    sqlx::query("delete from outbox")
        .execute(&mut *connection)
        .await
        .expect("outbox rows deleted");
    // a session reports its statistics when idle, at most once a second unless asked
    sqlx::query("select pg_stat_force_next_flush()")
        .execute(&mut *connection)
        .await
        .expect("statistics flushed");
    drop(connection);
    let counted = wait_until(Duration::from_secs(15), || async {
        outbox_vacuums(pool).await.1 > 0
    })
    .await;
    assert!(counted, "Postgres never counted the dead outbox rows");
}

/// Vacuums of the outbox other than autovacuum's, and its dead rows, as Postgres counts them.
async fn outbox_vacuums(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as(
        "select vacuum_count, n_dead_tup from pg_stat_user_tables where relname = 'outbox'",
    )
    .fetch_one(pool)
    .await
    .expect("outbox statistics")
}

async fn wait_until<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check().await
}

/// Runs the maintenance service alone on the test's database until the returned token is
/// cancelled.
fn start_maintenance(
    app: &TestApp,
    retention_hours: u32,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let mut outbox = app.settings.outbox.clone();
    outbox.inbox_retention_hours = retention_hours;
    outbox.vacuum_interval_ms = 100;
    let maintenance = Maintenance {
        pool: app.pool.clone(),
        outbox,
        postgres: OutageLog::new("Postgres"),
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(maintenance.run(stop.clone()));
    (stop, task)
}

async fn stop_maintenance((stop, task): (CancellationToken, tokio::task::JoinHandle<()>)) {
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("maintenance stops at once")
        .expect("maintenance did not panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_prunes_inbox_rows_past_their_retention_and_vacuums_the_dead_outbox_rows() {
    let app = TestApp::without_worker().await;
    seed_inbox(&app.pool).await;
    leave_dead_outbox_rows(&app.pool).await;
    let (vacuums_before, dead_before) = outbox_vacuums(&app.pool).await;

    let maintenance = start_maintenance(&app, 1);
    let pruned = wait_until(Duration::from_secs(10), || async {
        inbox_ids(&app.pool).await.len() == 2
    })
    .await;
    assert!(
        pruned,
        "left in the inbox: {:?}",
        inbox_ids(&app.pool).await
    );
    assert_eq!(inbox_ids(&app.pool).await, ["recent-1", "recent-2"]);
    let vacuumed = wait_until(Duration::from_secs(10), || async {
        let (vacuums, dead) = outbox_vacuums(&app.pool).await;
        vacuums > vacuums_before && dead == 0
    })
    .await;
    assert!(
        vacuumed,
        "the outbox was not vacuumed: (vacuums, dead rows) went from ({vacuums_before}, \
         {dead_before}) to {:?}",
        outbox_vacuums(&app.pool).await
    );
    stop_maintenance(maintenance).await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_retention_maintenance_keeps_every_inbox_row_however_old() {
    let app = TestApp::without_worker().await;
    seed_inbox(&app.pool).await;
    let (vacuums_before, _) = outbox_vacuums(&app.pool).await;

    let maintenance = start_maintenance(&app, 0);
    // a few turns of the vacuum: the service ran, and pruned nothing meanwhile
    let turns = wait_until(Duration::from_secs(10), || async {
        outbox_vacuums(&app.pool).await.0 >= vacuums_before + 3
    })
    .await;
    assert!(turns, "maintenance ran no vacuum");
    stop_maintenance(maintenance).await;
    assert_eq!(
        inbox_ids(&app.pool).await,
        ["old-1", "old-2", "old-3", "recent-1", "recent-2"]
    );
    app.shutdown().await;
}

/// GET `path` on an ops port: (status, JSON body or Null), or `None` when nothing answers.
async fn probe(ops: SocketAddr, path: &str) -> Option<(u16, Value)> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(4))
        .build()
        .expect("an HTTP client");
    let response = client
        .get(format!("http://{ops}{path}"))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let body = response.text().await.ok()?;
    Some((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
}

/// A loopback address with a port nobody listens on right now.
fn free_local_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address")
}

async fn count(pool: &PgPool, statement: &'static str) -> i64 {
    sqlx::query_scalar(statement)
        .fetch_one(pool)
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_turns_readiness_503_then_finishes_in_flight_work_drains_its_events_and_closes_the_ops_port_last(
) {
    let mut app = TestApp::without_worker().await;
    let ops = free_local_addr();
    app.settings.ops.addr = ops;
    app.settings.worker.shutdown_grace_ms = 15_000;
    app.start_worker();
    let ready = wait_until(Duration::from_secs(30), || async {
        matches!(probe(ops, "/readyz").await, Some((200, _)))
    })
    .await;
    assert!(ready, "the worker never became ready");

    // a request whose transaction waits on a lock the test holds: in flight until released
    let mut lock = app.pool.begin().await.expect("a transaction");
    sqlx::query("lock table tickets in access exclusive mode")
        .execute(&mut *lock)
        .await
        .expect("tickets locked");
    let request = app
        .send(
            "ticket.create.requested",
            None,
            json!({ "title": "in flight" }),
        )
        .await;
    let waiting = wait_until(Duration::from_secs(10), || async {
        count(
            &app.pool,
            "select count(*) from pg_locks where not granted and relation = 'tickets'::regclass",
        )
        .await
            > 0
    })
    .await;
    assert!(waiting, "the request never reached the locked table");

    let stopping = tokio::spawn(app.take_worker(0).stop());
    let deadline = Instant::now() + Duration::from_secs(5);
    let during = loop {
        let answer = probe(ops, "/readyz").await;
        if let Some((503, body)) = &answer {
            if body["shutting_down"] == true {
                break body.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "readiness did not turn 503; last answer: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        during["rabbitmq_relay"], true,
        "the relay runs until the consumer's work is done: {during}"
    );
    assert!(
        !stopping.is_finished(),
        "the stop waits for the message in flight"
    );
    let outcome = |event: &Value| event["causationid"] == json!(request);
    assert!(
        app.events
            .try_wait_for(&outcome, Duration::from_millis(300))
            .await
            .is_none(),
        "nothing was applied while the table was locked"
    );

    lock.rollback().await.expect("lock released");
    let stopped = tokio::time::timeout(Duration::from_secs(15), stopping)
        .await
        .expect("the stop ends once the message is applied")
        .expect("the stop task did not panic");
    stopped.expect("the stop returns Ok");
    assert_eq!(
        count(&app.pool, "select count(*) from outbox").await,
        0,
        "the relay published the in-flight message's events before the worker ended"
    );
    let created = app.events.wait_for(outcome).await;
    assert_eq!(created["type"], "ticket.created", "{created}");
    assert_eq!(
        probe(ops, "/healthz").await,
        None,
        "the ops server closed with the worker"
    );
    app.shutdown().await;
}
