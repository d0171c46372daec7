//! `phaseflow demo` in a short configuration, against a worker on this test's own exchanges: it
//! ends with every ticket DONE, after one crashed agent's lease ran out and one failing test run
//! sent a ticket back to IMPLEMENTATION.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use phaseflow::demo::{DemoOptions, DemoSummary};

use crate::common::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_demo_drives_every_ticket_to_done_through_a_crash_and_a_regression() {
    let app = TestApp::spawn().await;
    let options = DemoOptions {
        agents: 3,
        tickets: 2,
        lease_seconds: 10,
        crashes: 1,
        test_failures: 1,
        timeout: Duration::from_secs(120),
        in_process_worker: false,
    };
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = lines.clone();
    let summary: DemoSummary = phaseflow::demo::run(app.settings.clone(), options, move |line| {
        log.lock().expect("log").push(line.to_owned())
    })
    .await
    .unwrap_or_else(|error| {
        panic!(
            "the demo failed: {error:#}\n{}",
            lines.lock().expect("log").join("\n")
        )
    });
    let log = lines.lock().expect("log").join("\n");
    assert_eq!(summary.tickets_done, 2, "{summary}\n{log}");
    assert!(
        summary.leases_expired >= 1,
        "the crashed agent's lease ran out: {summary}\n{log}"
    );
    assert_eq!(summary.regressions, 1, "{summary}\n{log}");
    assert!(
        summary.tasks_claimed > summary.tasks_completed,
        "the crashed task was claimed again: {summary}"
    );
    assert!(log.contains("crashes holding"), "{log}");
    assert!(log.contains("task.lease.expired"), "{log}");
    assert!(log.contains("TESTING -> IMPLEMENTATION"), "{log}");
    let done: i64 =
        sqlx::query_scalar("select count(*) from tickets where phase_id = 'PHASE_DONE'")
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(done, 2);
    app.shutdown().await;
}
