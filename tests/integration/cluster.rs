//! Several broker addresses (a cluster's nodes): each worker connects to one that answers,
//! whatever its starting point in the list, and an address that cannot work stops the process at
//! start with a message that names it, its password masked.

use std::time::Duration;

use crate::common::process::{probe, WorkerProcess};
use crate::common::{TestApp, AMQP_URL};

/// An address where nothing answers: port 1 of the loopback interface.
const DEAD: &str = "amqp://guest:dead-secret@127.0.0.1:1/%2f";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_given_several_addresses_connect_to_the_one_that_answers() {
    let app = TestApp::without_worker().await;
    let list = format!("{DEAD},{AMQP_URL},{DEAD}");
    // each process starts at a place of its own in the list: three cover more than one
    let workers: Vec<WorkerProcess> = (0..3)
        .map(|index| {
            WorkerProcess::spawn_with(&app, &format!("list-{index}"), &[("AMQP_URL", &list)])
        })
        .collect();
    for worker in &workers {
        worker.wait_until_ready().await;
    }
    for index in 0..6 {
        app.create_ticket(&format!("Through a list {index}")).await;
    }
    for worker in &workers {
        let log = std::fs::read_to_string(worker.log_path()).expect("the worker's log");
        assert!(!log.contains("dead-secret"), "{log}");
        assert!(
            log.contains("amqp://guest:****@127.0.0.1:1/%2f,"),
            "the starting line names every address, each masked:\n{log}"
        );
    }
    drop(workers);
    app.shutdown().await;
}

#[tokio::test]
async fn an_address_that_is_not_an_amqp_url_stops_the_worker_at_start() {
    let app = TestApp::without_worker().await;
    let list = format!("{AMQP_URL}, http://guest:dead-secret@127.0.0.1:5672/");
    let mut worker = WorkerProcess::spawn_with(&app, "malformed", &[("AMQP_URL", &list)]);
    let status = worker.wait_for_exit(Duration::from_secs(20)).await;
    assert!(!status.success(), "{status}");
    let log = std::fs::read_to_string(worker.log_path()).expect("the worker's log");
    assert!(log.contains("broker address 2 of 2"), "{log}");
    assert!(
        log.contains("http://guest:****@127.0.0.1:5672/"),
        "the address is named, its password masked:\n{log}"
    );
    assert!(!log.contains("dead-secret"), "{log}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_worker_that_reaches_no_broker_stops_at_once() {
    let app = TestApp::without_worker().await;
    // its shutdown grace is 15 s (common::process): nothing is in flight to wait for
    let mut worker = WorkerProcess::spawn_with(&app, "unreachable", &[("AMQP_URL", DEAD)]);
    worker.wait_until_live().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // readiness says why, the password masked
    let (status, body) = probe(worker.ops(), "/readyz")
        .await
        .expect("/readyz answers");
    assert_eq!(status, 503, "{body}");
    let why = body["reasons"]["rabbitmq_consumer"]
        .as_str()
        .unwrap_or_default();
    assert!(why.contains("amqp://guest:****@127.0.0.1:1/%2f"), "{body}");
    assert!(!body.to_string().contains("dead-secret"), "{body}");
    let asked = std::time::Instant::now();
    worker.signal("TERM");
    let status = worker.wait_for_exit(Duration::from_secs(5)).await;
    let took = asked.elapsed();
    assert!(status.success(), "{status}\n{}", worker.log_tail());
    eprintln!("stopped {} ms after SIGTERM", took.as_millis());
    app.shutdown().await;
}

#[tokio::test]
async fn a_vhost_that_does_not_exist_is_reported_once_and_readiness_says_so() {
    let app = TestApp::without_worker().await;
    let url = AMQP_URL.replace("/%2f", "/phaseflow-no-such-vhost");
    let worker = WorkerProcess::spawn_with(&app, "vhost", &[("AMQP_URL", &url)]);
    worker.wait_until_live().await;
    // a few attempts to connect, each refused
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, body) = probe(worker.ops(), "/readyz")
        .await
        .expect("/readyz answers");
    assert_eq!(status, 503, "{body}");
    for component in ["rabbitmq_consumer", "rabbitmq_relay"] {
        let why = body["reasons"][component].as_str().unwrap_or_default();
        assert!(
            why.contains("phaseflow-no-such-vhost"),
            "{component}: {body}"
        );
    }
    let log = std::fs::read_to_string(worker.log_path()).expect("the worker's log");
    let warnings = log
        .lines()
        .filter(|line| line.contains("\"WARN\"") && line.contains("phaseflow-no-such-vhost"))
        .count();
    assert_eq!(warnings, 1, "the refusal is logged once:\n{log}");
    drop(worker);
    app.shutdown().await;
}
