//! The report as a table for people (without `--json`): one row per figure, with the stage's
//! context beside it. It shows what the report holds and computes nothing new.

use crate::report::{Report, UsageReport};

/// Prints the table on stdout.
pub fn print(report: &Report) {
    let targets = report.targets.as_ref();
    let yes_no = |value: Option<bool>| match value {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "-",
    };
    println!(
        "phaseflow benchmark: mode {}, concurrency {}, worker {}",
        report.mode,
        report.concurrency,
        report.worker.as_ref().map_or("-", |worker| worker.mode)
    );
    println!("{:-<96}", "");
    let row = |stage: &str, metric: &str, value: String, note: String| {
        println!("{stage:<12} {metric:<38} {value:>16}  {note}");
    };
    if let Some(baseline) = &report.baseline {
        row(
            "baseline",
            "tps (same-shape tx, Postgres only)",
            number(report.baseline_tps, 1),
            format!(
                "{} conns; tx p50/p99 {}/{} ms",
                report.concurrency,
                number(baseline.latency_ms.p50, 2),
                number(baseline.latency_ms.p99, 2)
            ),
        );
        row(
            "",
            "WAL syncs per tx (cluster-wide)",
            number(baseline.usage.wal_syncs_per_unit, 3),
            String::new(),
        );
        cpu_rows(&row, &baseline.usage, "tx");
    }
    if let Some(broker) = &report.broker {
        row(
            "broker",
            "messages/s (quorum queue, confirm + ack)",
            number(broker.messages_per_s, 0),
            format!(
                "publish->deliver p50/p99 {}/{} ms; confirm p50 {} ms",
                number(broker.latency_ms.p50, 1),
                number(broker.latency_ms.p99, 1),
                number(broker.confirm_ms.p50, 1)
            ),
        );
    }
    if let Some(steady) = &report.steady {
        row(
            "steady",
            "transitions/s (worker, end to end)",
            number(report.steady_tps, 1),
            format!(
                "{} transitions, {} failed",
                steady.load.transitions, steady.load.failed
            ),
        );
        row(
            "",
            "ratio to baseline",
            number(report.ratio_to_baseline, 3),
            format!(
                "target >= 1.0: {}",
                yes_no(targets.and_then(|targets| targets.steady_vs_baseline_at_least_1))
            ),
        );
        let latency = report.latency_ms.as_ref();
        row(
            "",
            "latency p50 / p95 / p99 ms",
            format!(
                "{} / {} / {}",
                number(latency.map(|latency| latency.p50), 1),
                number(latency.map(|latency| latency.p95), 1),
                number(latency.map(|latency| latency.p99), 1)
            ),
            "publish -> phase.transitioned".to_owned(),
        );
        let usage = &steady.usage;
        cpu_rows(&row, usage, "transition");
        row(
            "",
            "worker CPU % of one core",
            number(report.worker_cpu_percent.flatten(), 1),
            format!(
                "{} ms CPU per transition",
                number(usage.worker_cpu_ms_per_unit, 3)
            ),
        );
        row(
            "",
            "Postgres / RabbitMQ CPU %",
            format!(
                "{} / {}",
                number(usage.postgres_cpu_percent, 0),
                number(usage.rabbitmq_cpu_percent, 0)
            ),
            format!(
                "machine busy {}%, iowait {}%",
                number(usage.machine_busy_percent, 0),
                number(usage.machine_iowait_percent, 0)
            ),
        );
        row(
            "",
            "commits / WAL syncs per transition",
            format!(
                "{} / {}",
                number(usage.commits_per_unit, 2),
                number(usage.wal_syncs_per_unit, 2)
            ),
            "approximate (pg_stat_*)".to_owned(),
        );
        let relay = steady.relay.as_ref();
        row(
            "",
            "relay rounds per transition",
            number(relay.map(|relay| relay.rounds_per_transition), 3),
            format!(
                "{} events per round",
                number(relay.map(|relay| relay.events_per_round), 1)
            ),
        );
        let breakdown = &steady.load.latency_breakdown_ms;
        row(
            "",
            "p50 ms: publish->worker tx / tx->event",
            format!(
                "{} / {}",
                number(breakdown.publish_to_worker_transaction.p50, 1),
                number(breakdown.worker_transaction_to_event.p50, 1)
            ),
            format!(
                "events wait in the outbox {} ms (mean)",
                number(relay.map(|relay| relay.outbox_wait_mean_ms), 1)
            ),
        );
        row(
            "",
            "handler mean ms (requests)",
            number(
                steady
                    .worker_metrics
                    .as_ref()
                    .map(|metrics| metrics.requests_handler.mean_ms),
                2,
            ),
            "delivery -> ack, from the worker's /metrics".to_owned(),
        );
    }
    if let Some(half) = &report.half_load {
        row(
            "half-load",
            "rate / p99 ms",
            format!("{} / {}", number(half.rate, 1), number(half.p99_ms, 1)),
            format!(
                "p50 {} ms; target p99 <= 25 ms: {}",
                number(half.load.latency_ms.p50, 1),
                yes_no(targets.and_then(|targets| targets.half_load_p99_at_most_25_ms))
            ),
        );
    }
    if let Some(saturation) = &report.saturation {
        row(
            "saturation",
            "transitions/s, many in flight",
            number(report.saturated_tps, 1),
            format!(
                "{} in flight; ratio to baseline {}; p50/p99 {}/{} ms",
                saturation.in_flight,
                number(report.saturated_ratio_to_baseline, 3),
                number(saturation.load.latency_ms.p50, 1),
                number(saturation.load.latency_ms.p99, 1)
            ),
        );
        cpu_rows(&row, &saturation.usage, "transition");
        row(
            "",
            "targets: ratio / CPU / p99",
            format!(
                "{} / {} / {}",
                yes_no(targets.and_then(|targets| targets.saturation_vs_baseline_at_least_0_65)),
                yes_no(
                    targets
                        .and_then(|targets| targets.saturation_cpu_per_transition_at_most_1_3_ms)
                ),
                yes_no(targets.and_then(|targets| targets.saturation_p99_at_most_100_ms))
            ),
            "ratio >= 0.65; CPU <= 1.3 ms per transition; p99 <= 100 ms".to_owned(),
        );
    }
    if report.steady.is_some() || report.half_load.is_some() || report.saturation.is_some() {
        row(
            "load",
            "targets: steady p99 / no request > 1 s",
            format!(
                "{} / {}",
                yes_no(targets.and_then(|targets| targets.steady_p99_at_most_25_ms)),
                yes_no(targets.and_then(|targets| targets.no_request_over_1_s))
            ),
            "steady p99 <= 25 ms; max of steady, half-load and saturation <= 1 s".to_owned(),
        );
    }
    if let Some(lifecycle) = &report.lifecycle {
        row(
            "lifecycle",
            "lifecycles/s",
            number(report.lifecycles_per_s, 2),
            format!(
                "{}/{} to DONE; mean {} ms; {} requests/s",
                lifecycle.completed,
                lifecycle.tickets,
                number(lifecycle.mean_latency_ms, 0),
                number(lifecycle.requests_per_second, 0)
            ),
        );
        if let Some(reference) = report.reference_lifecycles_per_s {
            row(
                "",
                "vs --reference",
                number(report.lifecycles_vs_reference, 3),
                format!(
                    "reference {}/s; target >= 1.5: {}",
                    number(reference, 2),
                    yes_no(
                        targets.and_then(|targets| targets.lifecycles_vs_reference_at_least_1_5)
                    )
                ),
            );
        }
    }
    if let Some(history) = &report.history {
        row(
            "history",
            "grown / fresh throughput",
            number(report.history_ratio, 3),
            format!(
                "{} vs {} tps; {} rows + {} artifacts per ticket",
                number(history.grown_tps, 1),
                number(history.fresh_tps, 1),
                history.history_rows_per_ticket,
                history.artifacts_per_ticket
            ),
        );
    }
    if let Some(peak) = report.worker_peak_rss_mib {
        let in_process = report
            .worker
            .as_ref()
            .is_some_and(|worker| worker.rss_includes_bench_driver);
        let note = if in_process {
            "in-process: includes the bench driver"
        } else {
            "child process"
        };
        row(
            "worker",
            "peak RSS MiB (VmHWM)",
            number(peak, 1),
            format!(
                "{note}; target <= 64: {}",
                yes_no(targets.and_then(|targets| targets.worker_rss_at_most_64_mib))
            ),
        );
    }
    println!("{:-<96}", "");
    for problem in &report.problems {
        println!("PROBLEM: {problem}");
    }
}

/// A figure with `decimals` decimals, or `-` when it is missing.
fn number(value: impl Into<Option<f64>>, decimals: usize) -> String {
    match value.into().filter(|value| value.is_finite()) {
        Some(value) => format!("{value:.decimals$}"),
        None => "-".to_owned(),
    }
}

/// The CPU each process spent per unit of work, and the throughput that CPU allows on this
/// machine's cores.
fn cpu_rows(row: &impl Fn(&str, &str, String, String), usage: &UsageReport, unit: &str) {
    let cpu = &usage.cpu_ms_per_unit;
    row(
        "",
        &format!("CPU ms per {unit}: pg/rmq/worker/driver"),
        format!(
            "{}/{}/{}/{}",
            number(cpu.postgres, 2),
            number(cpu.rabbitmq, 2),
            number(cpu.worker, 2),
            number(cpu.bench_driver, 2)
        ),
        format!(
            "total {} ms: all cores allow {}/s",
            number(cpu.total, 2),
            number(usage.cpu_ceiling_per_second, 0)
        ),
    );
}
