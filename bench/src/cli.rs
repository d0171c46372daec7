//! The command line, and the plan it gives: how long each stage runs and how large it is.
//! Nothing here connects to anything.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432";
const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

#[derive(Parser)]
#[command(
    name = "phaseflow-bench",
    about = "Benchmarks the phaseflow worker against a same-shape Postgres baseline, in one run"
)]
pub struct Cli {
    /// `short`: a few seconds per stage, sanity only (CI); `full`: 20-30 s stages.
    #[arg(long, value_enum, default_value_t = Mode::Full)]
    pub mode: Mode,
    /// Requests in flight (and baseline connections).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Print only the JSON object on stdout (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Run the worker as a child `phaseflow worker` process (the default when the binary sits
    /// next to this one).
    #[arg(long, conflicts_with = "in_process")]
    pub worker_process: bool,
    /// Run the worker inside this process (RSS and CPU then include the bench driver).
    #[arg(long)]
    pub in_process: bool,
    /// The `phaseflow` binary for `--worker-process` (default: next to this binary).
    #[arg(long)]
    pub worker_binary: Option<PathBuf>,
    /// Configuration directory of the worker (default: $PHASEFLOW_CONFIG_DIR, ./config, or the
    /// repository's config/).
    #[arg(long)]
    pub config_dir: Option<PathBuf>,
    /// Postgres server URL; a database path in it is ignored (databases are created per run).
    #[arg(long, env = "PHASEFLOW_BENCH_POSTGRES_URL", default_value = DEFAULT_POSTGRES_URL)]
    pub postgres_url: String,
    /// RabbitMQ URL.
    #[arg(long, env = "PHASEFLOW_BENCH_AMQP_URL", default_value = DEFAULT_AMQP_URL)]
    pub amqp_url: String,
    /// Stages to run, comma-separated (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub stages: Vec<Stage>,
    /// Tickets taken from creation to DONE (default: 10 short, 50 full).
    #[arg(long)]
    pub lifecycles: Option<usize>,
    /// Requests in flight in the saturation stage (default: 16 x --concurrency).
    #[arg(long)]
    pub saturation_in_flight: Option<usize>,
    /// History rows given to each ticket of the history stage's grown set.
    #[arg(long, default_value_t = 1000)]
    pub history_rows: i64,
    /// REQUIREMENTS artifacts given to each ticket of the history stage's grown set.
    #[arg(long, default_value_t = 300)]
    pub history_artifacts: i64,
    /// Length of the baseline and steady stages in seconds (overrides the mode's).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Export the worker's spans (`telemetry.otlp_endpoint`) to an OTLP receiver this process
    /// runs, which counts and drops them: what tracing costs with export on. Needs the worker
    /// as a child process.
    #[arg(long, conflicts_with = "in_process")]
    pub otlp_sink: bool,
    /// Keep the child worker's log file even when the run succeeds.
    #[arg(long)]
    pub keep_worker_log: bool,
    /// The JSON report (`--json`) of an earlier run, in the same session, to compare whole
    /// lifecycles per second with: the lifecycle target is 1.5 × its figure.
    #[arg(long)]
    pub reference: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
/// How long the stages run.
pub enum Mode {
    Short,
    Full,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
/// A stage of the run (`--stages`).
pub enum Stage {
    Baseline,
    /// a persistent message through a quorum queue like the worker's, with confirms and acks
    Broker,
    Steady,
    HalfLoad,
    /// many more requests in flight than `--concurrency`, so the worker can batch
    Saturation,
    Lifecycle,
    History,
}

/// Stage lengths and sizes for a mode.
#[derive(Debug, Clone)]
pub struct Plan {
    pub concurrency: usize,
    pub warmup: Duration,
    pub baseline: Duration,
    pub broker: Duration,
    pub steady: Duration,
    pub half_load: Duration,
    /// one of the four fresh/grown/grown/fresh segments (two in short mode)
    pub history_segment: Duration,
    pub history_interleaved: bool,
    pub history_rows: i64,
    pub history_artifacts: i64,
    pub lifecycles: usize,
    /// tickets cycling in the steady and half-load stages (and per set in the history stage)
    pub tickets: usize,
    /// longest wait for any one event
    pub event_timeout: Duration,
    /// requests in flight in the saturation stage
    pub saturation_in_flight: usize,
}

impl Plan {
    /// The plan of `cli`'s mode, with its overrides.
    pub fn new(cli: &Cli) -> Plan {
        let concurrency = usize::from(cli.concurrency);
        let mut plan = match cli.mode {
            Mode::Short => Plan {
                concurrency,
                warmup: Duration::from_millis(500),
                baseline: Duration::from_secs(2),
                broker: Duration::from_secs(1),
                steady: Duration::from_secs(3),
                half_load: Duration::from_secs(2),
                history_segment: Duration::from_millis(1500),
                history_interleaved: false,
                history_rows: 1000,
                history_artifacts: 300,
                lifecycles: 10,
                tickets: (8 * concurrency).max(16),
                event_timeout: Duration::from_secs(60),
                saturation_in_flight: 16 * concurrency,
            },
            Mode::Full => Plan {
                concurrency,
                warmup: Duration::from_secs(3),
                baseline: Duration::from_secs(20),
                broker: Duration::from_secs(5),
                steady: Duration::from_secs(30),
                half_load: Duration::from_secs(20),
                history_segment: Duration::from_secs(8),
                history_interleaved: true,
                history_rows: 1000,
                history_artifacts: 300,
                lifecycles: 50,
                tickets: (8 * concurrency).max(32),
                event_timeout: Duration::from_secs(60),
                saturation_in_flight: 16 * concurrency,
            },
        };
        if let Some(lifecycles) = cli.lifecycles {
            plan.lifecycles = lifecycles;
        }
        if let Some(in_flight) = cli.saturation_in_flight.filter(|n| *n > 0) {
            plan.saturation_in_flight = in_flight;
        }
        plan.history_rows = cli.history_rows.max(0);
        plan.history_artifacts = cli.history_artifacts.max(0);
        if let Some(seconds) = cli.seconds.filter(|seconds| *seconds > 0.0) {
            plan.baseline = Duration::from_secs_f64(seconds);
            plan.steady = Duration::from_secs_f64(seconds);
            plan.half_load = Duration::from_secs_f64(seconds);
        }
        plan
    }
}

impl Mode {
    /// The mode as `--mode` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Short => "short",
            Mode::Full => "full",
        }
    }
}

impl Stage {
    /// Every stage, in the order a run without `--stages` takes them.
    pub const ALL: [Stage; 7] = [
        Stage::Baseline,
        Stage::Broker,
        Stage::Steady,
        Stage::HalfLoad,
        Stage::Saturation,
        Stage::Lifecycle,
        Stage::History,
    ];

    /// The stages that need the worker running.
    pub const WITH_WORKER: [Stage; 5] = [
        Stage::Steady,
        Stage::HalfLoad,
        Stage::Saturation,
        Stage::Lifecycle,
        Stage::History,
    ];
}
