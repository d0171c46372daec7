//! The report as types: what `--json` prints and what the table shows. Figures are rounded
//! here, once, to the decimals they are reported with. A stage that did not run leaves its
//! keys out; a figure that could not be measured is `null`.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::load::LoadResult;

/// The whole report of one run.
#[derive(Serialize, Default)]
pub struct Report {
    pub mode: &'static str,
    pub concurrency: usize,
    pub run_id: String,
    pub cores: usize,
    /// `git describe` of the source tree the bench was built from, when it is at hand
    pub source: Option<String>,
    pub config_dir: String,

    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_tps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<BrokerReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerReport>,

    #[serde(skip_serializing_if = "Option::is_none")]
    pub steady_tps: Option<f64>,
    /// steady throughput over the baseline's (when both ran)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_baseline: Option<f64>,
    /// the steady stage's latency
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<Latency>,
    /// the worker's CPU in the steady stage; present (maybe `null`) when that stage ran
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_cpu_percent: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steady: Option<SteadyReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub half_load: Option<HalfLoadReport>,

    #[serde(skip_serializing_if = "Option::is_none")]
    pub saturated_tps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saturated_ratio_to_baseline: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saturation: Option<SaturationReport>,

    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycles_per_s: Option<f64>,
    /// `lifecycles_per_s` of the `--reference` report, and this run's as a multiple of it
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_lifecycles_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycles_vs_reference: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<LifecycleReport>,

    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryReport>,

    /// what the worker exported to `--otlp-sink`, when it ran with one
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_sink: Option<crate::otlp_sink::SinkReport>,
    /// present (maybe `null`) when the worker ran
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_peak_rss_mib: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<Targets>,
    /// no problems found
    pub sane: bool,
    /// what the sanity checks found: failed requests, missing figures
    pub problems: Vec<String>,
}

impl Report {
    /// The report's head: what ran, where, from which source.
    pub fn new(mode: &'static str, concurrency: usize, run_id: &str, config_dir: &Path) -> Report {
        Report {
            mode,
            concurrency,
            run_id: run_id.to_owned(),
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            source: source_version(),
            config_dir: config_dir.display().to_string(),
            ..Report::default()
        }
    }

    /// Records whether the run found no problems.
    pub fn conclude(&mut self) {
        self.sane = self.problems.is_empty();
    }

    /// The report as pretty JSON, keys sorted.
    pub fn to_json(&self) -> serde_json::Result<String> {
        // through a `Value`, whose maps keep their keys sorted
        serde_json::to_string_pretty(&serde_json::to_value(self)?)
    }
}

/// `git describe` of the source tree this binary was built from, when it is at hand.
fn source_version() -> Option<String> {
    std::process::Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "describe",
            "--always",
            "--dirty",
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|text| text.trim().to_owned())
}

/// The targets, reported (never asserted). `None` where the run did not measure what a target
/// is about.
#[derive(Serialize)]
pub struct Targets {
    pub steady_vs_baseline_at_least_1: Option<bool>,
    pub half_load_p99_at_most_25_ms: Option<bool>,
    pub worker_rss_at_most_64_mib: Option<bool>,
    pub history_ratio_at_least_0_9: Option<bool>,
    /// saturation throughput ≥ 0.65 × the baseline's
    pub saturation_vs_baseline_at_least_0_65: Option<bool>,
    /// CPU of all processes per transition at saturation ≤ 1.3 ms
    pub saturation_cpu_per_transition_at_most_1_3_ms: Option<bool>,
    pub saturation_p99_at_most_100_ms: Option<bool>,
    /// no request of the steady, half-load or saturation stage took more than a second
    pub no_request_over_1_s: Option<bool>,
    pub steady_p99_at_most_25_ms: Option<bool>,
    /// lifecycles per second ≥ 1.5 × those of the `--reference` report
    pub lifecycles_vs_reference_at_least_1_5: Option<bool>,
}

impl Targets {
    pub fn of(report: &Report) -> Targets {
        let saturation = report.saturation.as_ref();
        let maxima: Vec<f64> = [
            report
                .steady
                .as_ref()
                .map(|steady| steady.load.latency_ms.max),
            report
                .half_load
                .as_ref()
                .map(|half| half.load.latency_ms.max),
            saturation.map(|saturation| saturation.load.latency_ms.max),
        ]
        .into_iter()
        .flatten()
        .collect();
        Targets {
            steady_vs_baseline_at_least_1: report.ratio_to_baseline.map(|ratio| ratio >= 1.0),
            half_load_p99_at_most_25_ms: report.half_load.as_ref().map(|half| half.p99_ms <= 25.0),
            worker_rss_at_most_64_mib: report.worker_peak_rss_mib.flatten().map(|rss| rss <= 64.0),
            history_ratio_at_least_0_9: report.history_ratio.map(|ratio| ratio >= 0.9),
            saturation_vs_baseline_at_least_0_65: report
                .saturated_ratio_to_baseline
                .map(|ratio| ratio >= 0.65),
            saturation_cpu_per_transition_at_most_1_3_ms: saturation
                .map(|saturation| saturation.usage.cpu_ms_per_unit.total <= 1.3),
            saturation_p99_at_most_100_ms: saturation
                .map(|saturation| saturation.load.latency_ms.p99 <= 100.0),
            no_request_over_1_s: (!maxima.is_empty())
                .then(|| maxima.iter().all(|&max| max <= 1000.0)),
            steady_p99_at_most_25_ms: report
                .latency_ms
                .as_ref()
                .map(|latency| latency.p99 <= 25.0),
            lifecycles_vs_reference_at_least_1_5: report
                .lifecycles_vs_reference
                .map(|ratio| ratio >= 1.5),
        }
    }
}

/// Latency percentiles of a set of samples, in milliseconds.
#[derive(Serialize, Clone, Copy, Default)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub mean: f64,
    pub max: f64,
    pub samples: usize,
}

impl Latency {
    pub fn of(latencies_ms: &[f64]) -> Latency {
        let mut sorted = latencies_ms.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mean = if sorted.is_empty() {
            0.0
        } else {
            sorted.iter().sum::<f64>() / sorted.len() as f64
        };
        Latency {
            p50: round(percentile(&sorted, 50.0), 2),
            p95: round(percentile(&sorted, 95.0), 2),
            p99: round(percentile(&sorted, 99.0), 2),
            mean: round(mean, 2),
            max: round(sorted.last().copied().unwrap_or(0.0), 2),
            samples: sorted.len(),
        }
    }
}

/// The baseline stage.
#[derive(Serialize)]
pub struct BaselineReport {
    pub tps: f64,
    pub transactions: u64,
    pub seconds: f64,
    pub clients: usize,
    pub tickets_per_client: usize,
    pub latency_ms: Latency,
    pub usage: UsageReport,
    pub shape: &'static str,
}

/// The broker stage: messages through a quorum queue, no worker.
#[derive(Serialize)]
pub struct BrokerReport {
    pub messages: u64,
    pub messages_per_s: f64,
    pub failed: u64,
    pub seconds: f64,
    /// publish to delivery
    pub latency_ms: Latency,
    /// publish to the broker's confirm
    pub confirm_ms: Latency,
    pub late_sends: u64,
    pub errors: Vec<String>,
}

impl BrokerReport {
    /// `hop` holds the confirm times where a transition holds the time to the worker.
    pub fn of(hop: &LoadResult) -> BrokerReport {
        BrokerReport {
            messages: hop.completed,
            messages_per_s: round(hop.throughput(), 1),
            failed: hop.failed,
            seconds: round(hop.elapsed.as_secs_f64(), 2),
            latency_ms: Latency::of(&hop.latencies_ms),
            confirm_ms: Latency::of(&hop.to_worker_ms),
            late_sends: hop.late_sends,
            errors: hop.errors.clone(),
        }
    }
}

/// The worker under test.
#[derive(Serialize)]
pub struct WorkerReport {
    /// `process` or `in-process`
    pub mode: &'static str,
    pub binary: Option<String>,
    pub pid: u32,
    pub prefetch: u16,
    pub max_connections: u32,
    pub outbox_batch_size: u32,
    /// from the start to the first ticket ready
    pub ready_ms: f64,
    pub rss_mib_after_first_ticket: Option<f64>,
    pub rss_mib_at_end: Option<f64>,
    pub rss_includes_bench_driver: bool,
}

/// One load run of transitions.
#[derive(Serialize)]
pub struct LoadReport {
    pub transitions: u64,
    pub failed: u64,
    pub seconds: f64,
    pub tps: f64,
    pub latency_ms: Latency,
    pub latency_breakdown_ms: LatencyBreakdown,
    pub late_sends: u64,
    pub errors: Vec<String>,
}

/// Where a transition's latency went.
#[derive(Serialize)]
pub struct LatencyBreakdown {
    /// from the publish to the start of the worker's transaction
    pub publish_to_worker_transaction: Latency,
    /// from there to the event's arrival: transaction, commit, outbox relay, delivery
    pub worker_transaction_to_event: Latency,
}

impl LoadReport {
    pub fn of(load: &LoadResult) -> LoadReport {
        LoadReport {
            transitions: load.completed,
            failed: load.failed,
            seconds: round(load.elapsed.as_secs_f64(), 2),
            tps: round(load.throughput(), 1),
            latency_ms: Latency::of(&load.latencies_ms),
            latency_breakdown_ms: LatencyBreakdown {
                publish_to_worker_transaction: Latency::of(&load.to_worker_ms),
                worker_transaction_to_event: Latency::of(&load.after_worker_ms),
            },
            late_sends: load.late_sends,
            errors: load.errors.clone(),
        }
    }
}

/// The steady stage.
#[derive(Serialize)]
pub struct SteadyReport {
    #[serde(flatten)]
    pub load: LoadReport,
    pub usage: UsageReport,
    pub worker_metrics: Option<WorkerMetricsReport>,
    pub relay: Option<RelayReport>,
}

/// The half-load stage.
#[derive(Serialize)]
pub struct HalfLoadReport {
    #[serde(flatten)]
    pub load: LoadReport,
    /// requests per second, open loop
    pub rate: f64,
    pub p99_ms: f64,
}

/// The saturation stage.
#[derive(Serialize)]
pub struct SaturationReport {
    #[serde(flatten)]
    pub load: LoadReport,
    pub in_flight: usize,
    pub usage: UsageReport,
    pub worker_metrics: Option<WorkerMetricsReport>,
}

/// The lifecycle stage.
#[derive(Serialize)]
pub struct LifecycleReport {
    pub tickets: usize,
    pub completed: usize,
    pub seconds: f64,
    pub per_second: f64,
    pub mean_latency_ms: f64,
    pub latency_ms: Latency,
    pub requests: u64,
    pub requests_per_second: f64,
    pub errors: Vec<String>,
    pub usage: UsageReport,
}

/// The history stage: grown tickets against fresh ones.
#[derive(Serialize)]
pub struct HistoryReport {
    /// grown throughput over fresh
    pub ratio: f64,
    pub fresh_tps: f64,
    pub grown_tps: f64,
    pub fresh_latency_ms: Latency,
    pub grown_latency_ms: Latency,
    pub history_rows_per_ticket: i64,
    pub artifacts_per_ticket: i64,
    pub tickets_per_set: usize,
    pub order: &'static str,
    pub inflate_seconds: f64,
    pub fresh: LoadReport,
    pub grown: LoadReport,
}

/// What the processes spent over a stage.
#[derive(Serialize)]
pub struct UsageReport {
    pub cpu_ms_per_unit: CpuPerUnit,
    /// what this machine could do if every core did nothing but this work
    pub cpu_ceiling_per_second: Option<f64>,
    pub seconds: f64,
    pub worker_cpu_percent: Option<f64>,
    pub worker_cpu_ms_per_unit: Option<f64>,
    pub bench_driver_cpu_percent: Option<f64>,
    pub postgres_cpu_percent: f64,
    pub rabbitmq_cpu_percent: f64,
    pub machine_busy_percent: Option<f64>,
    pub machine_iowait_percent: Option<f64>,
    pub commits: Option<i64>,
    pub commits_per_unit: Option<f64>,
    pub wal_syncs: Option<i64>,
    pub wal_syncs_per_unit: Option<f64>,
    pub wal_bytes_per_unit: Option<f64>,
    pub note: &'static str,
}

/// CPU milliseconds per unit of work, by process.
#[derive(Serialize)]
pub struct CpuPerUnit {
    pub postgres: Option<f64>,
    pub rabbitmq: Option<f64>,
    pub worker: Option<f64>,
    pub bench_driver: Option<f64>,
    pub total: f64,
}

/// From two scrapes of the worker's `/metrics`.
#[derive(Serialize)]
pub struct WorkerMetricsReport {
    pub requests_handler: HandlerReport,
    pub events_published: f64,
    pub transaction_retries: f64,
    pub note: &'static str,
}

/// The request handler's time.
#[derive(Serialize)]
pub struct HandlerReport {
    pub messages: f64,
    pub messages_per_transition: f64,
    pub mean_ms: f64,
}

/// The outbox relay's rounds over a stage.
#[derive(Serialize)]
pub struct RelayReport {
    pub rounds: f64,
    pub events: f64,
    pub events_per_round: f64,
    pub rounds_per_transition: f64,
    pub outbox_wait_mean_ms: f64,
}

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

pub fn round(value: f64, decimals: i32) -> f64 {
    let factor = 10f64.powi(decimals);
    (value * factor).round() / factor
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], percent: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((percent / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::{percentile, Latency, Report, Targets};

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 50.0), 50.0);
        assert_eq!(percentile(&sorted, 99.0), 99.0);
        assert_eq!(percentile(&sorted, 0.0), 1.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
        let latency = Latency::of(&[3.0, 1.0, 2.0]);
        assert_eq!((latency.p50, latency.max, latency.samples), (2.0, 3.0, 3));
    }

    #[test]
    fn targets_are_judged_only_on_what_the_run_measured() {
        let mut report = Report::new("full", 4, "id", std::path::Path::new("config"));
        report.saturated_ratio_to_baseline = Some(0.66);
        report.latency_ms = Some(Latency::of(&[10.0, 30.0]));
        report.lifecycles_vs_reference = Some(1.49);
        let targets = Targets::of(&report);
        assert_eq!(targets.saturation_vs_baseline_at_least_0_65, Some(true));
        assert_eq!(targets.steady_p99_at_most_25_ms, Some(false));
        assert_eq!(targets.lifecycles_vs_reference_at_least_1_5, Some(false));
        assert_eq!(targets.saturation_cpu_per_transition_at_most_1_3_ms, None);
        assert_eq!(targets.saturation_p99_at_most_100_ms, None);
        assert_eq!(targets.no_request_over_1_s, None);
    }

    #[test]
    fn a_stage_that_did_not_run_leaves_its_keys_out() {
        let mut report = Report::new("short", 2, "id", std::path::Path::new("config"));
        report.worker_peak_rss_mib = Some(None);
        report.conclude();
        let json: serde_json::Value =
            serde_json::from_str(&report.to_json().expect("a report renders")).expect("JSON");
        assert!(json.get("steady").is_none());
        assert!(json.get("baseline_tps").is_none());
        assert!(json["worker_peak_rss_mib"].is_null());
        assert_eq!(json["sane"], true);
        assert_eq!(json["mode"], "short");
    }
}
