//! The benchmark works: `phaseflow-bench --mode short` runs every stage against the local
//! Postgres and RabbitMQ, with the worker as a child process, exits 0 and prints sane figures.
//! Timings are never asserted here; the performance targets are checked by running the
//! benchmark in full.
//!
//! The worker binary must sit next to the bench's (`cargo build --workspace` puts both in
//! `target/debug`): `.ci/run` builds it before running this test.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[test]
fn the_short_benchmark_runs_every_stage_and_reports_positive_throughput() {
    let bench = Path::new(env!("CARGO_BIN_EXE_phaseflow-bench"));
    let worker = bench.with_file_name("phaseflow");
    assert!(
        worker.is_file(),
        "no worker binary at {}: build it first with `cargo build --workspace`",
        worker.display()
    );
    let repository = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ sits in the repository");
    let output = Command::new(bench)
        .args(["--mode", "short", "--json", "--concurrency", "2"])
        .arg("--worker-binary")
        .arg(&worker)
        .current_dir(repository)
        .output()
        .expect("the bench binary starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "phaseflow-bench --mode short failed ({}); it needs Postgres on 127.0.0.1:5432 \
         (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) and RabbitMQ \
         on 127.0.0.1:5672 (rabbitmq-server -detached)\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|error| {
        panic!("--json prints one JSON object ({error}):\n{stdout}\nstderr:\n{stderr}")
    });

    assert_eq!(report["worker"]["mode"], "process", "{report:#}");
    let positive = |key: &str| {
        let value = report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing: {report:#}"));
        assert!(value > 0.0, "{key} = {value}: {report:#}");
    };
    positive("baseline_tps");
    positive("steady_tps");
    positive("saturated_tps");
    positive("ratio_to_baseline");
    positive("lifecycles_per_s");
    positive("worker_peak_rss_mib");
    positive("history_ratio");
    for key in ["p50", "p95", "p99"] {
        assert!(
            report["latency_ms"][key]
                .as_f64()
                .is_some_and(|ms| ms > 0.0),
            "latency_ms.{key}: {report:#}"
        );
    }
    assert!(
        report["broker"]["messages_per_s"]
            .as_f64()
            .is_some_and(|rate| rate > 0.0),
        "{report:#}"
    );
    assert!(
        report["half_load"]["p99_ms"]
            .as_f64()
            .is_some_and(|ms| ms > 0.0),
        "{report:#}"
    );
    assert_eq!(report["steady"]["failed"], 0, "{report:#}");
    assert_eq!(
        report["lifecycle"]["completed"], report["lifecycle"]["tickets"],
        "{report:#}"
    );
    assert_eq!(report["sane"], true, "{report:#}");
}
