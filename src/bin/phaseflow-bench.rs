//! `phaseflow-bench`: measures the worker against its own Postgres baseline, in one run on one
//! machine, and prints a table and a JSON object.
//!
//! ```sh
//! cargo build --release --bins
//! ./target/release/phaseflow-bench --mode full            # about 4 minutes
//! ./target/release/phaseflow-bench --mode short --json    # seconds; what CI runs
//! ```
//!
//! Stages (each can be chosen with `--stages`):
//!
//! 0. **broker**: persistent messages through a quorum queue like the worker's, with confirms
//!    and acks, `--concurrency` in flight: the broker's share of the latency.
//! 1. **baseline**: the transaction a transition is at heart (lock the ticket row, update it,
//!    insert a history row, two outbox rows and an inbox row, commit) run straight against
//!    Postgres by `--concurrency` connections with prepared statements, in a database of its own
//!    with the real schema (minus the outbox NOTIFY trigger, as in the pgbench script the issue
//!    quotes). Each connection cycles over its own 100 tickets.
//! 2. **steady**: the real worker (a child `phaseflow worker` process by default, in-process with
//!    `--in-process`) with its own database and broker names. Tickets cycle REQUIREMENTS →
//!    BLOCKED → REQUIREMENTS with exactly `--concurrency` requests in flight; a request is done
//!    when the `phase.transitioned` event it caused arrives on the events exchange. A ticket is
//!    used again only after the `context.updated` event caused by its `phase.entered` arrived,
//!    and the throughput counts the time until all of that work is done, so the automatic
//!    `phase.entered` work (task generation, context aggregation) is part of what is measured.
//! 3. **half-load**: the same workload published open loop at half the steady throughput;
//!    latency counts from the scheduled send time (no coordinated omission).
//! 4. **saturation**: the steady workload with 16 × `--concurrency` requests in flight. With only
//!    `--concurrency` in flight, throughput is bounded by in-flight / latency (Little's law) and
//!    the end-to-end latency holds the baseline's transaction plus two broker hops, so that
//!    ratio can never reach 1.0; this stage shows what the worker does when it can batch.
//! 5. **lifecycle**: tickets from creation to DONE with simulated agents completing every task
//!    (in dependency order) with artifacts that pass the default gates; `--concurrency` tickets at
//!    a time.
//! 6. **history**: the steady workload on tickets given 1,000 history rows and a few hundred
//!    REQUIREMENTS artifacts (inserted with SQL) against fresh tickets, interleaved
//!    fresh/grown/grown/fresh to cancel drift; the ratio of their throughputs.
//!
//! The worker's peak RSS (VmHWM) and CPU come from `/proc/<pid>`; in-process they are the bench
//! process's own and include the driver. Everything the run creates (two databases, the
//! worker's exchanges and queues) is removed at the end. The machine is shared: compare ratios
//! taken in one run, not absolute numbers across runs.
//!
//! Exit status: 0 when every request completed and every figure is positive; 1 otherwise.
//! Performance targets are reported, never asserted.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::{Parser, ValueEnum};
use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use phaseflow::config::Settings;
use phaseflow::messaging::client::{OutgoingRequest, RequestClient};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool, Row};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432";
const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

const REQUIREMENTS: &str = "PHASE_REQUIREMENTS";
const BLOCKED: &str = "PHASE_BLOCKED";
const DONE: &str = "PHASE_DONE";

const TRANSITION_OUTCOMES: EventTypes = &["phase.transitioned", "phase.transition.rejected"];
const CREATE_OUTCOMES: EventTypes = &["ticket.created", "ticket.create.rejected"];
const TASK_OUTCOMES: EventTypes = &["task.completed", "task.failed", "task.complete.rejected"];
const PHASE_ENTERED: EventTypes = &["phase.entered"];
const PHASE_TRANSITIONED: EventTypes = &["phase.transitioned"];
const TASKS_GENERATED: EventTypes = &["tasks.generated"];
const CONTEXT_UPDATED: EventTypes = &["context.updated"];
const GATE_VALIDATED: EventTypes = &["gate.validated"];

/// The tickets each baseline connection cycles over.
const BASELINE_TICKETS_PER_CLIENT: usize = 100;

#[derive(Parser)]
#[command(
    name = "phaseflow-bench",
    about = "Benchmarks the phaseflow worker against a same-shape Postgres baseline, in one run"
)]
struct Cli {
    /// `short`: a few seconds per stage, sanity only (CI); `full`: 20-30 s stages.
    #[arg(long, value_enum, default_value_t = Mode::Full)]
    mode: Mode,
    /// Requests in flight (and baseline connections).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// Print only the JSON object on stdout (progress still goes to stderr).
    #[arg(long)]
    json: bool,
    /// Run the worker as a child `phaseflow worker` process (the default when the binary sits
    /// next to this one).
    #[arg(long, conflicts_with = "in_process")]
    worker_process: bool,
    /// Run the worker inside this process (RSS and CPU then include the bench driver).
    #[arg(long)]
    in_process: bool,
    /// The `phaseflow` binary for `--worker-process` (default: next to this binary).
    #[arg(long)]
    worker_binary: Option<PathBuf>,
    /// Configuration directory of the worker (default: $PHASEFLOW_CONFIG_DIR, ./config, or the
    /// repository's config/).
    #[arg(long)]
    config_dir: Option<PathBuf>,
    /// Postgres server URL; a database path in it is ignored (databases are created per run).
    #[arg(long, env = "PHASEFLOW_BENCH_POSTGRES_URL", default_value = DEFAULT_POSTGRES_URL)]
    postgres_url: String,
    /// RabbitMQ URL.
    #[arg(long, env = "PHASEFLOW_BENCH_AMQP_URL", default_value = DEFAULT_AMQP_URL)]
    amqp_url: String,
    /// Stages to run, comma-separated (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    stages: Vec<Stage>,
    /// Tickets taken from creation to DONE (default: 10 short, 50 full).
    #[arg(long)]
    lifecycles: Option<usize>,
    /// Requests in flight in the saturation stage (default: 16 x --concurrency).
    #[arg(long)]
    saturation_in_flight: Option<usize>,
    /// History rows given to each ticket of the history stage's grown set.
    #[arg(long, default_value_t = 1000)]
    history_rows: i64,
    /// REQUIREMENTS artifacts given to each ticket of the history stage's grown set.
    #[arg(long, default_value_t = 300)]
    history_artifacts: i64,
    /// Length of the baseline and steady stages in seconds (overrides the mode's).
    #[arg(long)]
    seconds: Option<f64>,
    /// Keep the child worker's log file even when the run succeeds.
    #[arg(long)]
    keep_worker_log: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Short,
    Full,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Stage {
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
struct Plan {
    concurrency: usize,
    warmup: Duration,
    baseline: Duration,
    broker: Duration,
    steady: Duration,
    half_load: Duration,
    /// one of the four fresh/grown/grown/fresh segments (two in short mode)
    history_segment: Duration,
    history_interleaved: bool,
    history_rows: i64,
    history_artifacts: i64,
    lifecycles: usize,
    /// tickets cycling in the steady and half-load stages (and per set in the history stage)
    tickets: usize,
    /// longest wait for any one event
    event_timeout: Duration,
    /// requests in flight in the saturation stage
    saturation_in_flight: usize,
}

impl Plan {
    fn new(cli: &Cli) -> Plan {
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

/// Names and places of one run.
struct BenchEnv {
    id: String,
    server_url: String,
    server_query: String,
    amqp_url: String,
    config_dir: PathBuf,
    baseline_db: String,
    worker_db: String,
    prefix: String,
    worker_log: PathBuf,
}

impl BenchEnv {
    fn new(cli: &Cli) -> BenchEnv {
        let id = Uuid::new_v4().simple().to_string();
        let (server_url, server_query) = server_url(&cli.postgres_url);
        BenchEnv {
            server_url,
            server_query,
            amqp_url: cli.amqp_url.clone(),
            config_dir: config_dir(cli.config_dir.as_deref()),
            baseline_db: format!("phaseflow_bench_{id}_baseline"),
            worker_db: format!("phaseflow_bench_{id}"),
            prefix: format!("bench-{id}"),
            worker_log: std::env::temp_dir().join(format!("phaseflow-bench-{id}-worker.log")),
            id,
        }
    }

    fn database_url(&self, database: &str) -> String {
        format!("{}/{database}{}", self.server_url, self.server_query)
    }

    /// The worker's settings: the configuration directory's, with this run's database, broker
    /// names and an ephemeral ops port.
    fn worker_settings(&self) -> anyhow::Result<Settings> {
        let mut settings = Settings::load_from(&self.config_dir).with_context(|| {
            format!(
                "cannot load the configuration in {}",
                self.config_dir.display()
            )
        })?;
        settings.database.url = self.database_url(&self.worker_db);
        settings.amqp.url = self.amqp_url.clone();
        let prefix = &self.prefix;
        settings.amqp.requests_exchange = format!("{prefix}.requests");
        settings.amqp.events_exchange = format!("{prefix}.events");
        settings.amqp.requests_queue = format!("{prefix}.worker.requests");
        settings.amqp.dead_letter_exchange = format!("{prefix}.dead-letter");
        settings.amqp.dead_letter_queue = format!("{prefix}.dead-letter");
        // a free port, so the bench can read the worker's /metrics
        let probe = std::net::TcpListener::bind("127.0.0.1:0").context("no free local port")?;
        settings.ops.addr = probe.local_addr()?;
        drop(probe);
        settings.worker.migrate_on_start = true;
        Ok(settings)
    }
}

/// `postgres://user@host:port/db?x=y` → (`postgres://user@host:port`, `?x=y`).
fn server_url(url: &str) -> (String, String) {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |index| index + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    (server.trim_end_matches('/').to_owned(), query)
}

fn config_dir(chosen: Option<&Path>) -> PathBuf {
    let candidates = [
        chosen.map(Path::to_path_buf),
        std::env::var_os("PHASEFLOW_CONFIG_DIR").map(PathBuf::from),
        Some(PathBuf::from("config")),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("config")),
    ];
    let found = candidates.into_iter().flatten().find(|dir| dir.is_dir());
    let dir = found.unwrap_or_else(|| PathBuf::from("/nonexistent"));
    std::fs::canonicalize(&dir).unwrap_or(dir)
}

// ---------------------------------------------------------------------------------------------
// main

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(bench(cli))
}

async fn bench(cli: Cli) -> ExitCode {
    let env = BenchEnv::new(&cli);
    let plan = Plan::new(&cli);
    let stages: Vec<Stage> = if cli.stages.is_empty() {
        vec![
            Stage::Baseline,
            Stage::Broker,
            Stage::Steady,
            Stage::HalfLoad,
            Stage::Saturation,
            Stage::Lifecycle,
            Stage::History,
        ]
    } else {
        cli.stages.clone()
    };
    let worker_binary = cli.worker_binary.clone().or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("phaseflow")))
    });
    let launch = if cli.in_process {
        Launch::InProcess
    } else {
        match worker_binary.filter(|path| path.is_file()) {
            Some(path) => Launch::Process(path),
            None if cli.worker_process => {
                eprintln!("error: --worker-process: no phaseflow binary next to phaseflow-bench (build it with `cargo build --release --bins`, or pass --worker-binary)");
                return ExitCode::FAILURE;
            }
            None => Launch::InProcess,
        }
    };

    let mut state = RunState::default();
    let outcome = tokio::select! {
        outcome = run(&cli, &env, &plan, &stages, &launch, &mut state) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    let worker_ok = cleanup(&env, &mut state).await;
    match outcome {
        Ok(report) => {
            if !cli.json {
                print_table(&report);
                println!();
            }
            match serde_json::to_string_pretty(&report.json) {
                Ok(text) => println!("{text}"),
                Err(error) => eprintln!("error: cannot render the JSON: {error}"),
            }
            let mut problems = report.problems.clone();
            if !worker_ok {
                problems.push("the worker did not stop cleanly".to_owned());
            }
            if problems.is_empty() {
                if !cli.keep_worker_log {
                    let _ = std::fs::remove_file(&env.worker_log);
                }
                ExitCode::SUCCESS
            } else {
                for problem in &problems {
                    eprintln!("sanity check failed: {problem}");
                }
                if env.worker_log.exists() {
                    eprintln!("worker log: {}", env.worker_log.display());
                }
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            if env.worker_log.exists() {
                eprintln!("worker log: {}", env.worker_log.display());
            }
            ExitCode::FAILURE
        }
    }
}

/// `git describe` of the source tree this binary was built from, when it is at hand.
fn source_version() -> Value {
    Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "describe",
            "--always",
            "--dirty",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map_or(Value::Null, |text| json!(text.trim()))
}

fn progress(message: impl AsRef<str>) {
    eprintln!("[phaseflow-bench] {}", message.as_ref());
}

/// How the worker runs.
enum Launch {
    Process(PathBuf),
    InProcess,
}

/// What must be torn down whatever happens.
#[derive(Default)]
struct RunState {
    worker: Option<WorkerHandle>,
    world: Option<Arc<World>>,
    created_databases: Vec<String>,
    broker_declared: bool,
}

/// The running worker.
enum WorkerHandle {
    Process(ChildWorker),
    InProcess {
        stop: CancellationToken,
        handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    },
}

impl WorkerHandle {
    /// The process whose RSS and CPU are the worker's.
    fn pid(&self) -> u32 {
        match self {
            WorkerHandle::Process(child) => child.child.id(),
            WorkerHandle::InProcess { .. } => std::process::id(),
        }
    }

    fn includes_driver(&self) -> bool {
        matches!(self, WorkerHandle::InProcess { .. })
    }

    /// Fails when the worker already ended.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        match self {
            WorkerHandle::Process(child) => {
                if let Some(status) = child.child.try_wait()? {
                    bail!("the worker process exited early ({status})");
                }
            }
            WorkerHandle::InProcess { handle, .. } => {
                if handle.is_finished() {
                    bail!("the in-process worker stopped early");
                }
            }
        }
        Ok(())
    }

    /// Stops the worker gracefully; `false` if it had to be killed or failed.
    async fn stop(self) -> bool {
        match self {
            WorkerHandle::Process(mut child) => child.terminate().await,
            WorkerHandle::InProcess { stop, handle } => {
                stop.cancel();
                match tokio::time::timeout(Duration::from_secs(30), handle).await {
                    Ok(Ok(Ok(()))) => true,
                    Ok(Ok(Err(error))) => {
                        eprintln!("worker failed: {error:#}");
                        false
                    }
                    Ok(Err(error)) => {
                        eprintln!("worker task failed: {error}");
                        false
                    }
                    Err(_) => false,
                }
            }
        }
    }
}

/// A `phaseflow worker` child process; killed if dropped while running.
struct ChildWorker {
    child: Child,
}

impl ChildWorker {
    fn spawn(binary: &Path, env: &BenchEnv, settings: &Settings) -> anyhow::Result<ChildWorker> {
        let log = File::create(&env.worker_log)
            .with_context(|| format!("cannot create {}", env.worker_log.display()))?;
        let amqp = &settings.amqp;
        let child = Command::new(binary)
            .arg("worker")
            .env("PHASEFLOW_CONFIG_DIR", &env.config_dir)
            .env("DATABASE_URL", &settings.database.url)
            .env("AMQP_URL", &amqp.url)
            .env("PHASEFLOW_AMQP__REQUESTS_EXCHANGE", &amqp.requests_exchange)
            .env("PHASEFLOW_AMQP__EVENTS_EXCHANGE", &amqp.events_exchange)
            .env("PHASEFLOW_AMQP__REQUESTS_QUEUE", &amqp.requests_queue)
            .env(
                "PHASEFLOW_AMQP__DEAD_LETTER_EXCHANGE",
                &amqp.dead_letter_exchange,
            )
            .env("PHASEFLOW_AMQP__DEAD_LETTER_QUEUE", &amqp.dead_letter_queue)
            .env("PHASEFLOW_OPS_ADDR", settings.ops.addr.to_string())
            .env("PHASEFLOW_WORKER__MIGRATE_ON_START", "true")
            .env("PHASEFLOW_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        Ok(ChildWorker { child })
    }

    /// SIGTERM, then up to 30 s for a graceful stop, then SIGKILL.
    async fn terminate(&mut self) -> bool {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status.success();
        }
        let pid = self.child.id().to_string();
        let signalled = Command::new("kill")
            .args(["-TERM", &pid])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if signalled {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                match self.child.try_wait() {
                    Ok(Some(status)) => return status.success(),
                    Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
                    Err(_) => break,
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for ChildWorker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Stops the worker, deletes the run's exchanges and queues and drops its databases.
async fn cleanup(env: &BenchEnv, state: &mut RunState) -> bool {
    let mut worker_ok = true;
    if let Some(worker) = state.worker.take() {
        progress("stopping the worker");
        worker_ok = worker.stop().await;
    }
    if let Some(world) = state.world.take() {
        world.pool.close().await;
        let _ = world.amqp.close(200, "benchmark done").await;
        if let Ok(world) = Arc::try_unwrap(world) {
            world.client.close().await;
        }
    }
    if state.broker_declared {
        if let Ok(connection) =
            phaseflow::messaging::connect(&env.amqp_url, 30, "phaseflow-bench cleanup").await
        {
            if let Ok(channel) = connection.create_channel().await {
                let prefix = &env.prefix;
                for queue in [
                    format!("{prefix}.worker.requests"),
                    format!("{prefix}.dead-letter"),
                    format!("{prefix}.hop"),
                ] {
                    let _ = channel
                        .queue_delete(&queue, QueueDeleteOptions::default())
                        .await;
                }
                for exchange in [
                    format!("{prefix}.requests"),
                    format!("{prefix}.events"),
                    format!("{prefix}.dead-letter"),
                ] {
                    let _ = channel
                        .exchange_delete(&exchange, ExchangeDeleteOptions::default())
                        .await;
                }
            }
            let _ = connection.close(200, "cleaned up").await;
        }
    }
    if !state.created_databases.is_empty() {
        match PgConnection::connect(&env.database_url("postgres")).await {
            Ok(mut admin) => {
                for database in state.created_databases.drain(..) {
                    let statement = format!("drop database if exists \"{database}\" with (force)");
                    if let Err(error) = sqlx::query(&statement).execute(&mut admin).await {
                        eprintln!("warning: cannot drop database {database}: {error}");
                    }
                }
                let _ = admin.close().await;
            }
            Err(error) => {
                eprintln!("warning: cannot reach Postgres to drop the bench databases: {error}")
            }
        }
    }
    worker_ok
}

// ---------------------------------------------------------------------------------------------
// the run

/// The result: JSON, and the sanity problems found.
struct Report {
    json: Value,
    problems: Vec<String>,
}

async fn run(
    cli: &Cli,
    env: &BenchEnv,
    plan: &Plan,
    stages: &[Stage],
    launch: &Launch,
    state: &mut RunState,
) -> anyhow::Result<Report> {
    let wants = |stage: Stage| stages.contains(&stage);
    let meter = Meter::new(env).await?;
    let mut problems = Vec::new();
    let mut json = json!({
        "mode": match cli.mode { Mode::Short => "short", Mode::Full => "full" },
        "concurrency": plan.concurrency,
        "run_id": env.id,
        "cores": std::thread::available_parallelism().map_or(0, usize::from),
        "source": source_version(),
        "config_dir": env.config_dir.display().to_string(),
    });

    // 1. baseline, before the worker exists
    let mut baseline_tps = None;
    if wants(Stage::Baseline) {
        progress(format!(
            "baseline: {} connections, {:.0} s, same-shape transaction straight against Postgres",
            plan.concurrency,
            plan.baseline.as_secs_f64()
        ));
        state.created_databases.push(env.baseline_db.clone());
        let baseline = run_baseline(env, plan, &meter)
            .await
            .context("baseline stage")?;
        if baseline.tps <= 0.0 {
            problems.push("baseline tps is not positive".to_owned());
        }
        baseline_tps = Some(baseline.tps);
        json["baseline_tps"] = json!(round(baseline.tps, 1));
        json["baseline"] = baseline.to_json();
    }

    let needs_worker = [
        Stage::Broker,
        Stage::Steady,
        Stage::HalfLoad,
        Stage::Saturation,
        Stage::Lifecycle,
        Stage::History,
    ]
    .iter()
    .any(|stage| wants(*stage));
    if !needs_worker {
        return Ok(Report { json, problems });
    }

    // the worker and the driver's connections
    let settings = env.worker_settings()?;
    state.created_databases.push(env.worker_db.clone());
    phaseflow::store::migrate(&settings.database.url)
        .await
        .context("cannot create and migrate the worker's database")?;
    let world = Arc::new(World::connect(settings.clone(), plan.event_timeout).await?);
    state.broker_declared = true;
    state.world = Some(world.clone());

    // the broker hop on its own, before the worker runs
    if wants(Stage::Broker) {
        progress(format!(
            "broker: persistent messages through a quorum queue, {} in flight, {:.0} s",
            plan.concurrency,
            plan.broker.as_secs_f64()
        ));
        let hop = run_broker_hop(&world, env, plan)
            .await
            .context("broker stage")?;
        check_load("broker", &hop, &mut problems);
        let mut hop_json = hop.to_json();
        hop_json["messages"] = json!(hop.completed);
        hop_json["messages_per_s"] = json!(round(hop.throughput(), 1));
        hop_json["confirm_ms"] = latency_json(&hop.to_worker_ms);
        if let Some(object) = hop_json.as_object_mut() {
            object.remove("transitions");
            object.remove("tps");
            object.remove("latency_breakdown_ms");
        }
        json["broker"] = hop_json;
    }
    let worker_stages = [
        Stage::Steady,
        Stage::HalfLoad,
        Stage::Saturation,
        Stage::Lifecycle,
        Stage::History,
    ];
    if !worker_stages.iter().any(|stage| wants(*stage)) {
        json["sane"] = json!(problems.is_empty());
        json["problems"] = json!(problems);
        return Ok(Report { json, problems });
    }
    let worker = match launch {
        Launch::Process(binary) => {
            progress(format!("starting the worker process {}", binary.display()));
            WorkerHandle::Process(ChildWorker::spawn(binary, env, &settings)?)
        }
        Launch::InProcess => {
            progress("starting the worker in-process");
            let stop = CancellationToken::new();
            let handle = tokio::spawn(phaseflow::worker::run(settings.clone(), stop.clone()));
            WorkerHandle::InProcess { stop, handle }
        }
    };
    let worker_pid = worker.pid();
    let includes_driver = worker.includes_driver();
    state.worker = Some(worker);
    json["worker"] = json!({
        "mode": if includes_driver { "in-process" } else { "process" },
        "binary": match launch { Launch::Process(path) => json!(path.display().to_string()), Launch::InProcess => Value::Null },
        "pid": worker_pid,
        "prefetch": settings.amqp.prefetch,
        "max_connections": settings.database.max_connections,
        "outbox_batch_size": settings.outbox.batch_size,
    });
    let meter = meter.with_worker(worker_pid, includes_driver);

    // the first ticket doubles as the readiness check (the request waits in its queue)
    progress(format!(
        "preparing {} tickets in PHASE_REQUIREMENTS",
        plan.tickets
    ));
    let started = Instant::now();
    let first = prepare_tickets(&world, 1, "steady").await;
    if let Some(worker) = state.worker.as_mut() {
        worker.check_alive()?;
    }
    let mut tickets = first.context("the worker did not process the first request")?;
    json["worker"]["ready_ms"] = json!(round(ms(started.elapsed()), 0));
    json["worker"]["rss_mib_after_first_ticket"] =
        json!(read_memory(worker_pid).map(|(_, now)| round(now, 1)));
    tickets.extend(prepare_tickets(&world, plan.tickets - 1, "steady").await?);
    world.tap.reset();

    // 2. steady transitions
    let mut steady_tps = None;
    if wants(Stage::Steady) || wants(Stage::HalfLoad) {
        progress(format!(
            "steady: warming up {:.1} s",
            plan.warmup.as_secs_f64()
        ));
        let (warmup, returned) = closed_loop(&world, tickets, plan.concurrency, plan.warmup).await;
        tickets = returned;
        check_load("steady warm-up", &warmup, &mut problems);
        progress(format!(
            "steady: {} in flight for {:.0} s over {} tickets",
            plan.concurrency,
            plan.steady.as_secs_f64(),
            tickets.len()
        ));
        let metrics_before = scrape_metrics(settings.ops.addr).await;
        let before = meter.sample().await;
        let (steady, returned) = closed_loop(&world, tickets, plan.concurrency, plan.steady).await;
        let after = meter.sample().await;
        let metrics_after = scrape_metrics(settings.ops.addr).await;
        let usage = meter.usage(&before, &after);
        tickets = returned;
        world.tap.reset();
        check_load("steady", &steady, &mut problems);
        let tps = steady.throughput();
        steady_tps = Some(tps);
        json["steady_tps"] = json!(round(tps, 1));
        if let Some(baseline) = baseline_tps.filter(|tps| *tps > 0.0) {
            json["ratio_to_baseline"] = json!(round(tps / baseline, 3));
        }
        json["latency_ms"] = steady.latency_json();
        json["worker_cpu_percent"] = json!(usage.worker_cpu_percent.map(|value| round(value, 1)));
        let mut steady_json = steady.to_json();
        steady_json["usage"] = usage.to_json(steady.completed);
        steady_json["worker_metrics"] = worker_metrics_json(
            metrics_before.as_ref(),
            metrics_after.as_ref(),
            steady.completed,
        );
        steady_json["relay"] = relay_json(
            metrics_before.as_ref(),
            metrics_after.as_ref(),
            steady.completed,
        );
        json["steady"] = steady_json;
    }

    // 3. half load, open loop
    if wants(Stage::HalfLoad) {
        let rate = steady_tps.unwrap_or(0.0) / 2.0;
        if rate > 0.0 {
            progress(format!(
                "half-load: {rate:.1} requests/s open loop for {:.0} s",
                plan.half_load.as_secs_f64()
            ));
            let (half, returned) = open_loop(&world, tickets, rate, plan.half_load).await;
            tickets = returned;
            world.tap.reset();
            check_load("half-load", &half, &mut problems);
            let mut half_json = half.to_json();
            half_json["rate"] = json!(round(rate, 1));
            half_json["p99_ms"] = json!(round(half.percentile(99.0), 2));
            json["half_load"] = half_json;
        } else {
            problems.push("half-load: no steady throughput to halve".to_owned());
        }
    }

    // 3b. saturation: enough requests in flight for the worker to batch
    if wants(Stage::Saturation) {
        let in_flight = plan.saturation_in_flight;
        let wanted = 2 * in_flight;
        if tickets.len() < wanted {
            progress(format!(
                "saturation: preparing {} more tickets",
                wanted - tickets.len()
            ));
            tickets.extend(prepare_tickets(&world, wanted - tickets.len(), "saturation").await?);
            world.tap.reset();
        }
        progress(format!(
            "saturation: {in_flight} in flight for {:.0} s over {} tickets",
            plan.half_load.as_secs_f64(),
            tickets.len()
        ));
        let (_, returned) = closed_loop(&world, tickets, in_flight, plan.warmup).await;
        let metrics_before = scrape_metrics(settings.ops.addr).await;
        let before = meter.sample().await;
        let (saturated, returned) = closed_loop(&world, returned, in_flight, plan.half_load).await;
        let after = meter.sample().await;
        let metrics_after = scrape_metrics(settings.ops.addr).await;
        tickets = returned;
        world.tap.reset();
        check_load("saturation", &saturated, &mut problems);
        let tps = saturated.throughput();
        json["saturated_tps"] = json!(round(tps, 1));
        if let Some(baseline) = baseline_tps.filter(|tps| *tps > 0.0) {
            json["saturated_ratio_to_baseline"] = json!(round(tps / baseline, 3));
        }
        let mut saturated_json = saturated.to_json();
        saturated_json["in_flight"] = json!(in_flight);
        saturated_json["usage"] = meter.usage(&before, &after).to_json(saturated.completed);
        saturated_json["worker_metrics"] = worker_metrics_json(
            metrics_before.as_ref(),
            metrics_after.as_ref(),
            saturated.completed,
        );
        json["saturation"] = saturated_json;
    }
    drop(tickets);

    // 4. lifecycles
    if wants(Stage::Lifecycle) {
        progress(format!(
            "lifecycle: {} tickets from creation to DONE, {} at a time",
            plan.lifecycles, plan.concurrency
        ));
        let before = meter.sample().await;
        let lifecycles = run_lifecycles(&world, plan).await;
        let after = meter.sample().await;
        world.tap.reset();
        if lifecycles.completed < plan.lifecycles {
            problems.push(format!(
                "lifecycle: {} of {} tickets reached DONE; first error: {}",
                lifecycles.completed,
                plan.lifecycles,
                lifecycles.errors.first().map_or("none", String::as_str)
            ));
        }
        json["lifecycles_per_s"] = json!(round(lifecycles.per_second(), 2));
        let mut lifecycle_json = lifecycles.to_json();
        lifecycle_json["usage"] = meter.usage(&before, &after).to_json(0);
        json["lifecycle"] = lifecycle_json;
    }

    // 5. history and context growth
    if wants(Stage::History) {
        progress(format!(
            "history: {} fresh tickets vs {} with {} history rows and {} artifacts each",
            plan.tickets, plan.tickets, plan.history_rows, plan.history_artifacts
        ));
        let history = run_history(&world, plan).await.context("history stage")?;
        world.tap.reset();
        check_load("history (fresh)", &history.fresh, &mut problems);
        check_load("history (grown)", &history.grown, &mut problems);
        json["history_ratio"] = json!(round(history.ratio(), 3));
        json["history"] = history.to_json(plan);
    }

    // worker memory, read before it stops
    if let Some(worker) = state.worker.as_mut() {
        worker.check_alive()?;
    }
    let memory = read_memory(worker_pid);
    json["worker_peak_rss_mib"] = json!(memory.map(|(peak, _)| round(peak, 1)));
    json["worker"]["rss_mib_at_end"] = json!(memory.map(|(_, now)| round(now, 1)));
    json["worker"]["rss_includes_bench_driver"] = json!(includes_driver);
    if memory.is_none_or(|(peak, _)| peak <= 0.0) {
        problems.push("cannot read the worker's peak RSS".to_owned());
    }

    json["targets"] = targets_json(&json);
    json["sane"] = json!(problems.is_empty());
    json["problems"] = json!(problems);
    Ok(Report { json, problems })
}

fn check_load(stage: &str, load: &LoadResult, problems: &mut Vec<String>) {
    if load.failed > 0 {
        problems.push(format!(
            "{stage}: {} of {} requests did not complete; first error: {}",
            load.failed,
            load.failed + load.completed,
            load.errors.first().map_or("none", String::as_str)
        ));
    }
    if load.completed == 0 {
        problems.push(format!("{stage}: no request completed"));
    }
}

/// The issue's targets, reported (never asserted).
fn targets_json(report: &Value) -> Value {
    let ratio = report["ratio_to_baseline"].as_f64();
    let p99 = report["half_load"]["p99_ms"].as_f64();
    let rss = report["worker_peak_rss_mib"].as_f64();
    let history = report["history_ratio"].as_f64();
    json!({
        "steady_vs_baseline_at_least_1": ratio.map(|ratio| ratio >= 1.0),
        "half_load_p99_at_most_25_ms": p99.map(|p99| p99 <= 25.0),
        "worker_rss_at_most_64_mib": rss.map(|rss| rss <= 64.0),
        "history_ratio_at_least_0_9": history.map(|ratio| ratio >= 0.9),
    })
}

// ---------------------------------------------------------------------------------------------
// 1. baseline

struct BaselineResult {
    tps: f64,
    transactions: u64,
    seconds: f64,
    latencies_ms: Vec<f64>,
    usage: Usage,
}

impl BaselineResult {
    fn to_json(&self) -> Value {
        json!({
            "tps": round(self.tps, 1),
            "transactions": self.transactions,
            "seconds": round(self.seconds, 2),
            "clients": self.usage.clients,
            "tickets_per_client": BASELINE_TICKETS_PER_CLIENT,
            "latency_ms": latency_json(&self.latencies_ms),
            "usage": self.usage.to_json(self.transactions),
            "shape": "select ... for update; update tickets; insert phase_history; insert outbox (2 rows); insert inbox; commit (prepared; no NOTIFY trigger)",
        })
    }
}

/// The worker's ticket columns: the baseline reads the same row the worker locks.
const BASELINE_LOCK: &str =
    "select id, title, description, priority::text as priority, phase_id::text as phase_id, \
     previous_phase_id::text as previous_phase_id, context, context_summary, context_updated_at, \
     auto_advance, created_at, updated_at from tickets where id = $1 for update";
const BASELINE_UPDATE: &str =
    "update tickets set phase_id = $2::phase, previous_phase_id = $3::phase, \
     event_seq = event_seq + 2, updated_at = now() where id = $1 returning event_seq";
const BASELINE_HISTORY: &str = "insert into phase_history (ticket_id, from_phase, to_phase, transition_reason, \
     transitioned_by, artifacts, regression) values ($1, $2::phase, $3::phase, $4, $5, $6, false) returning id";
const BASELINE_OUTBOX: &str =
    "insert into outbox (ticket_id, ticket_seq, event_id, event_type, payload) \
     values ($1, $2, $3, 'phase.transitioned', $4), ($1, $5, $6, 'phase.entered', $7)";
const BASELINE_INBOX: &str = "insert into inbox (handler, message_id, message_type) \
     values ('requests', $1, 'phase.transition.requested') on conflict do nothing";

async fn run_baseline(
    env: &BenchEnv,
    plan: &Plan,
    meter: &Meter,
) -> anyhow::Result<BaselineResult> {
    let url = env.database_url(&env.baseline_db);
    phaseflow::store::migrate(&url)
        .await
        .context("cannot create the baseline database")?;
    let mut setup = PgConnection::connect(&url).await?;
    sqlx::query("drop trigger if exists outbox_notify_after_insert on outbox")
        .execute(&mut setup)
        .await?;
    let count = (plan.concurrency * BASELINE_TICKETS_PER_CLIENT) as i64;
    sqlx::query(
        "insert into tickets (id, title, phase_id, previous_phase_id) \
         select gen_random_uuid(), 'baseline ticket ' || g, 'PHASE_REQUIREMENTS', 'PHASE_BACKLOG' \
         from generate_series(1, $1) as g",
    )
    .bind(count)
    .execute(&mut setup)
    .await?;
    let ids: Vec<Uuid> = sqlx::query_scalar("select id from tickets order by id")
        .fetch_all(&mut setup)
        .await?;
    sqlx::query("analyze").execute(&mut setup).await?;
    setup.close().await?;

    let mut connections = Vec::with_capacity(plan.concurrency);
    for _ in 0..plan.concurrency {
        connections.push(PgConnection::connect(&url).await?);
    }
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.baseline;
    let mut clients = JoinSet::new();
    for (connection, tickets) in connections
        .into_iter()
        .zip(ids.chunks(BASELINE_TICKETS_PER_CLIENT))
    {
        let tickets = tickets.to_vec();
        clients.spawn(baseline_client(
            connection,
            tickets,
            start,
            measure_from,
            end,
        ));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let before = meter.sample_database(&env.baseline_db).await;
    tokio::time::sleep_until(end.into()).await;
    let after = meter.sample_database(&env.baseline_db).await;
    let mut latencies_ms = Vec::new();
    while let Some(joined) = clients.join_next().await {
        let (connection, client) = joined.context("a baseline client panicked")??;
        latencies_ms.extend(client);
        // closed only now: a backend that exits takes its CPU time out of the sample
        connection.close().await.ok();
    }
    let transactions = latencies_ms.len() as u64;
    let seconds = plan.baseline.as_secs_f64();
    let mut usage = meter.usage(&before, &after);
    usage.clients = plan.concurrency;
    Ok(BaselineResult {
        tps: transactions as f64 / seconds,
        transactions,
        seconds,
        latencies_ms,
        usage,
    })
}

/// One baseline connection: transactions until `end`; returns the connection and the latencies
/// of those that started after `measure_from`.
async fn baseline_client(
    mut connection: PgConnection,
    tickets: Vec<Uuid>,
    start: Instant,
    measure_from: Instant,
    end: Instant,
) -> anyhow::Result<(PgConnection, Vec<f64>)> {
    tokio::time::sleep_until(start.into()).await;
    let mut latencies = Vec::new();
    let mut next = 0usize;
    loop {
        let began = Instant::now();
        if began >= end {
            break;
        }
        let ticket = tickets[next % tickets.len()];
        next += 1;
        baseline_transaction(&mut connection, ticket).await?;
        if began >= measure_from {
            latencies.push(ms(began.elapsed()));
        }
    }
    Ok((connection, latencies))
}

async fn baseline_transaction(connection: &mut PgConnection, ticket: Uuid) -> anyhow::Result<()> {
    let mut transaction = connection.begin().await?;
    let row = sqlx::query(BASELINE_LOCK)
        .bind(ticket)
        .fetch_one(&mut *transaction)
        .await?;
    let from: String = row.try_get("phase_id")?;
    let to = if from == REQUIREMENTS {
        BLOCKED
    } else {
        REQUIREMENTS
    };
    let last_seq: i64 = sqlx::query_scalar(BASELINE_UPDATE)
        .bind(ticket)
        .bind(to)
        .bind(&from)
        .fetch_one(&mut *transaction)
        .await?;
    let history_id: i64 = sqlx::query_scalar(BASELINE_HISTORY)
        .bind(ticket)
        .bind(&from)
        .bind(to)
        .bind("bench: baseline cycle")
        .bind("agent-bench")
        .bind(json!({}))
        .fetch_one(&mut *transaction)
        .await?;
    let request_id = Uuid::new_v4().to_string();
    let (transitioned_id, entered_id) = (Uuid::new_v4(), Uuid::new_v4());
    let now = Utc::now().to_rfc3339();
    let event = |id: Uuid, kind: &str, seq: i64, data: Value| {
        json!({
            "specversion": "1.0", "id": id, "source": "phaseflow", "type": kind,
            "subject": ticket, "time": now, "datacontenttype": "application/json",
            "actor": "agent-bench", "correlationid": request_id, "causationid": request_id,
            "ticketseq": seq, "data": data,
        })
    };
    let transitioned = event(
        transitioned_id,
        "phase.transitioned",
        last_seq - 1,
        json!({"ticket_id": ticket, "previous_phase": from, "current_phase": to, "transitioned_at": now,
               "transitioned_by": "agent-bench", "reason": "bench: baseline cycle", "history_id": history_id}),
    );
    let entered = event(
        entered_id,
        "phase.entered",
        last_seq,
        json!({"ticket_id": ticket, "phase_id": to, "previous_phase": from, "history_id": history_id,
               "regression": false, "entered_at": now}),
    );
    sqlx::query(BASELINE_OUTBOX)
        .bind(ticket)
        .bind(last_seq - 1)
        .bind(transitioned_id)
        .bind(transitioned)
        .bind(last_seq)
        .bind(entered_id)
        .bind(entered)
        .execute(&mut *transaction)
        .await?;
    sqlx::query(BASELINE_INBOX)
        .bind(&request_id)
        .execute(&mut *transaction)
        .await?;
    transaction.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// the driver's view of the broker: a request client and a tap on the events exchange

/// The bench side: publishes requests, receives every event.
struct World {
    client: RequestClient,
    tap: Tap,
    amqp: lapin::Connection,
    /// the worker's database, for setting up the history stage
    pool: PgPool,
    timeout: Duration,
}

impl World {
    async fn connect(settings: Settings, timeout: Duration) -> anyhow::Result<World> {
        let amqp = phaseflow::messaging::connect(&settings.amqp.url, 30, "phaseflow-bench").await?;
        let channel = amqp.create_channel().await?;
        // declared up front so requests published before the worker is up wait in its queue
        phaseflow::messaging::topology::declare_worker_topology(&channel, &settings.amqp)
            .await
            .context("cannot declare the worker's topology")?;
        let tap_queue = format!("{}.tap", settings.amqp.events_exchange);
        let tap = Tap::start(&amqp, &settings.amqp.events_exchange, &tap_queue).await?;
        let client = RequestClient::connect(&settings.amqp).await?;
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(&settings.database.url)
            .await
            .context("cannot connect to the worker's database")?;
        Ok(World {
            client,
            tap,
            amqp,
            pool,
            timeout,
        })
    }

    fn request(&self, request_type: &str, subject: Option<&str>, data: Value) -> OutgoingRequest {
        OutgoingRequest {
            id: Uuid::new_v4().to_string(),
            request_type: request_type.to_owned(),
            subject: subject.map(str::to_owned),
            source: "agent/phaseflow-bench".to_owned(),
            actor: Some("agent-bench".to_owned()),
            correlation_id: None,
            data,
        }
    }

    async fn wait(
        &self,
        receiver: oneshot::Receiver<Arrived>,
        what: &str,
    ) -> anyhow::Result<Arrived> {
        match tokio::time::timeout(self.timeout, receiver).await {
            Ok(Ok(arrived)) => Ok(arrived),
            Ok(Err(_)) => bail!("the event tap stopped while waiting for {what}"),
            Err(_) => bail!("no {what} within {} s", self.timeout.as_secs()),
        }
    }
}

type EventTypes = &'static [&'static str];

/// An event as it arrived.
struct Arrived {
    event: Value,
    at: Instant,
    wall: DateTime<Utc>,
}

impl Arrived {
    fn kind(&self) -> &str {
        self.event["type"].as_str().unwrap_or_default()
    }

    fn id(&self) -> String {
        self.event["id"].as_str().unwrap_or_default().to_owned()
    }

    fn data(&self) -> &Value {
        &self.event["data"]
    }
}

struct Waiter {
    types: EventTypes,
    reply: oneshot::Sender<Arrived>,
}

#[derive(Default)]
struct TapState {
    /// by causation id
    waiters: HashMap<String, Vec<Waiter>>,
    /// events nobody waited for yet, by causation id
    early: HashMap<String, Vec<Arrived>>,
}

/// Routes every event on the events exchange to whoever waits for it, by `causationid` and type.
#[derive(Clone)]
struct Tap {
    state: Arc<Mutex<TapState>>,
}

impl Tap {
    async fn start(
        connection: &lapin::Connection,
        exchange: &str,
        queue: &str,
    ) -> anyhow::Result<Tap> {
        let channel = connection.create_channel().await?;
        channel
            .queue_declare(
                queue,
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                queue,
                exchange,
                "#",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut consumer = channel
            .basic_consume(
                queue,
                "phaseflow-bench-tap",
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let tap = Tap {
            state: Arc::default(),
        };
        let router = tap.clone();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let at = Instant::now();
                if let Ok(event) = serde_json::from_slice::<Value>(&delivery.data) {
                    router.dispatch(event, at, Utc::now());
                }
            }
            // the tap is gone: fail every waiter at once
            router.lock().waiters.clear();
        });
        Ok(tap)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TapState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The first event caused by `causation` whose type is one of `types`.
    fn expect(&self, causation: &str, types: EventTypes) -> oneshot::Receiver<Arrived> {
        let (reply, receiver) = oneshot::channel();
        let mut state = self.lock();
        if let Some(early) = state.early.get_mut(causation) {
            if let Some(position) = early
                .iter()
                .position(|arrived| types.contains(&arrived.kind()))
            {
                let arrived = early.remove(position);
                if early.is_empty() {
                    state.early.remove(causation);
                }
                let _ = reply.send(arrived);
                return receiver;
            }
        }
        state
            .waiters
            .entry(causation.to_owned())
            .or_default()
            .push(Waiter { types, reply });
        receiver
    }

    /// Drops whatever is kept for `causation`.
    fn forget(&self, causation: &str) {
        let mut state = self.lock();
        state.early.remove(causation);
        state.waiters.remove(causation);
    }

    /// Drops events nobody waited for (between stages).
    fn reset(&self) {
        self.lock().early.clear();
    }

    fn dispatch(&self, event: Value, at: Instant, wall: DateTime<Utc>) {
        let Some(causation) = event["causationid"].as_str().map(str::to_owned) else {
            return;
        };
        let kind = event["type"].as_str().unwrap_or_default().to_owned();
        let mut state = self.lock();
        if let Some(waiters) = state.waiters.get_mut(&causation) {
            if let Some(position) = waiters
                .iter()
                .position(|waiter| waiter.types.contains(&kind.as_str()))
            {
                let waiter = waiters.remove(position);
                if waiters.is_empty() {
                    state.waiters.remove(&causation);
                }
                let _ = waiter.reply.send(Arrived { event, at, wall });
                return;
            }
        }
        state
            .early
            .entry(causation)
            .or_default()
            .push(Arrived { event, at, wall });
    }
}

// ---------------------------------------------------------------------------------------------
// tickets cycling REQUIREMENTS <-> BLOCKED

/// A ticket of the steady workload and the phase it is in.
#[derive(Debug, Clone)]
struct CyclingTicket {
    id: String,
    phase: &'static str,
}

impl CyclingTicket {
    fn next_phase(&self) -> &'static str {
        if self.phase == REQUIREMENTS {
            BLOCKED
        } else {
            REQUIREMENTS
        }
    }
}

/// Creates `count` tickets and moves each to REQUIREMENTS, waiting for all follow-up work.
async fn prepare_tickets(
    world: &Arc<World>,
    count: usize,
    label: &str,
) -> anyhow::Result<Vec<CyclingTicket>> {
    let gate = Arc::new(Semaphore::new(16));
    let mut set = JoinSet::new();
    for index in 0..count {
        let world = world.clone();
        let gate = gate.clone();
        let title = format!("bench {label} ticket {index}");
        set.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            prepare_ticket(&world, &title).await
        });
    }
    let mut tickets = Vec::with_capacity(count);
    while let Some(joined) = set.join_next().await {
        tickets.push(joined.context("preparing a ticket panicked")??);
    }
    Ok(tickets)
}

async fn prepare_ticket(world: &World, title: &str) -> anyhow::Result<CyclingTicket> {
    let ticket = Uuid::new_v4().to_string();
    let create = world.request(
        "ticket.create.requested",
        Some(&ticket),
        json!({"title": title}),
    );
    let created = world.tap.expect(&create.id, CREATE_OUTCOMES);
    let entered = world.tap.expect(&create.id, PHASE_ENTERED);
    world.client.publish(&create).await?;
    let created = world.wait(created, "ticket.created").await?;
    if created.kind() != "ticket.created" {
        bail!("ticket creation rejected: {}", created.data());
    }
    world.wait(entered, "phase.entered (BACKLOG)").await?;
    world.tap.forget(&create.id);

    let pending = publish_transition(world, &ticket, REQUIREMENTS, "bench: ready").await?;
    finish_transition(world, pending, None).await?;
    Ok(CyclingTicket {
        id: ticket,
        phase: REQUIREMENTS,
    })
}

/// A published transition request and the receivers of what it causes.
struct PendingTransition {
    id: String,
    sent: Instant,
    sent_wall: DateTime<Utc>,
    outcome: oneshot::Receiver<Arrived>,
    entered: oneshot::Receiver<Arrived>,
}

async fn publish_transition(
    world: &World,
    ticket: &str,
    to: &str,
    reason: &str,
) -> anyhow::Result<PendingTransition> {
    let request = world.request(
        "phase.transition.requested",
        Some(ticket),
        json!({"to_phase": to, "reason": reason}),
    );
    let outcome = world.tap.expect(&request.id, TRANSITION_OUTCOMES);
    let entered = world.tap.expect(&request.id, PHASE_ENTERED);
    let sent = Instant::now();
    let sent_wall = Utc::now();
    world.client.publish(&request).await?;
    Ok(PendingTransition {
        id: request.id,
        sent,
        sent_wall,
        outcome,
        entered,
    })
}

/// Waits for the outcome (returns its latency from `since`, default the publish), releases
/// `permit`, then waits for the `phase.entered` work to finish (its `context.updated`).
async fn finish_transition(
    world: &World,
    pending: PendingTransition,
    since: Option<Instant>,
) -> anyhow::Result<Timing> {
    finish_transition_releasing(world, pending, since, None).await
}

/// How long one transition took, and where: `to_worker` runs from the publish to the start of
/// the worker's transaction (`transitioned_at` is the transaction's `now()`), `after_worker`
/// from there to the event's arrival (transaction, commit, outbox relay, delivery).
struct Timing {
    latency: Duration,
    to_worker: Option<f64>,
    after_worker: Option<f64>,
}

async fn finish_transition_releasing(
    world: &World,
    pending: PendingTransition,
    since: Option<Instant>,
    permit: Option<OwnedSemaphorePermit>,
) -> anyhow::Result<Timing> {
    let PendingTransition {
        id,
        sent,
        sent_wall,
        outcome,
        entered,
    } = pending;
    let result = async {
        let outcome = world.wait(outcome, "phase.transitioned").await?;
        let latency = outcome.at.saturating_duration_since(since.unwrap_or(sent));
        drop(permit);
        if outcome.kind() != "phase.transitioned" {
            bail!("transition rejected: {}", outcome.data());
        }
        let began = outcome.data()["transitioned_at"]
            .as_str()
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|time| time.with_timezone(&Utc));
        let millis =
            |delta: chrono::TimeDelta| delta.num_microseconds().map(|us| us as f64 / 1000.0);
        let timing = Timing {
            latency,
            to_worker: began.and_then(|began| millis(began - sent_wall)),
            after_worker: began.and_then(|began| millis(outcome.wall - began)),
        };
        let entered = world.wait(entered, "phase.entered").await?;
        let entered_id = entered.id();
        let updated = world.tap.expect(&entered_id, CONTEXT_UPDATED);
        let updated = world
            .wait(updated, "context.updated (phase.entered work)")
            .await;
        world.tap.forget(&entered_id);
        updated?;
        Ok(timing)
    }
    .await;
    world.tap.forget(&id);
    result
}

/// Requests completed in one load run.
#[derive(Default)]
struct LoadResult {
    completed: u64,
    failed: u64,
    latencies_ms: Vec<f64>,
    to_worker_ms: Vec<f64>,
    after_worker_ms: Vec<f64>,
    /// until the last request's follow-up work finished
    elapsed: Duration,
    /// sends that started more than 5 ms after their scheduled time (open loop)
    late_sends: u64,
    errors: Vec<String>,
}

impl LoadResult {
    fn record(&mut self, result: anyhow::Result<Timing>) {
        match result {
            Ok(timing) => {
                self.completed += 1;
                self.latencies_ms.push(ms(timing.latency));
                self.to_worker_ms.extend(timing.to_worker);
                self.after_worker_ms.extend(timing.after_worker);
            }
            Err(error) => {
                self.failed += 1;
                if self.errors.len() < 5 {
                    self.errors.push(format!("{error:#}"));
                }
            }
        }
    }

    fn throughput(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.completed as f64 / seconds
        } else {
            0.0
        }
    }

    fn percentile(&self, percent: f64) -> f64 {
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        percentile(&sorted, percent)
    }

    fn latency_json(&self) -> Value {
        latency_json(&self.latencies_ms)
    }

    fn to_json(&self) -> Value {
        json!({
            "transitions": self.completed,
            "failed": self.failed,
            "seconds": round(self.elapsed.as_secs_f64(), 2),
            "tps": round(self.throughput(), 1),
            "latency_ms": self.latency_json(),
            "latency_breakdown_ms": {
                "publish_to_worker_transaction": latency_json(&self.to_worker_ms),
                "worker_transaction_to_event": latency_json(&self.after_worker_ms),
            },
            "late_sends": self.late_sends,
            "errors": self.errors,
        })
    }
}

/// Keeps exactly `concurrency` transitions in flight for `duration`, then waits for every
/// request and its follow-up work. Returns the tickets for the next run.
async fn closed_loop(
    world: &Arc<World>,
    tickets: Vec<CyclingTicket>,
    concurrency: usize,
    duration: Duration,
) -> (LoadResult, Vec<CyclingTicket>) {
    let (ready, mut idle) = mpsc::unbounded_channel();
    for ticket in tickets {
        let _ = ready.send(ticket);
    }
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut result = LoadResult::default();
    let mut running = JoinSet::new();
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + duration);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit { Ok(permit) => permit, Err(_) => break },
            () = tokio::time::sleep_until(deadline) => break,
        };
        let ticket = tokio::select! {
            ticket = idle.recv() => match ticket { Some(ticket) => ticket, None => break },
            () = tokio::time::sleep_until(deadline) => break,
        };
        while let Some(joined) = running.try_join_next() {
            result.record(joined.unwrap_or_else(|error| Err(error.into())));
        }
        running.spawn(cycle(
            world.clone(),
            ticket,
            ready.clone(),
            Some(permit),
            None,
        ));
    }
    while let Some(joined) = running.join_next().await {
        result.record(joined.unwrap_or_else(|error| Err(error.into())));
    }
    result.elapsed = start.elapsed();
    drop(ready);
    let mut tickets = Vec::new();
    while let Ok(ticket) = idle.try_recv() {
        tickets.push(ticket);
    }
    (result, tickets)
}

/// Publishes transitions at `rate` per second on a fixed schedule for `duration`.
async fn open_loop(
    world: &Arc<World>,
    tickets: Vec<CyclingTicket>,
    rate: f64,
    duration: Duration,
) -> (LoadResult, Vec<CyclingTicket>) {
    let (ready, mut idle) = mpsc::unbounded_channel();
    for ticket in tickets {
        let _ = ready.send(ticket);
    }
    let mut result = LoadResult::default();
    let mut running = JoinSet::new();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let deadline = start + duration;
    for index in 0u32.. {
        let scheduled = start + interval * index;
        if scheduled >= deadline {
            break;
        }
        tokio::time::sleep_until(scheduled.into()).await;
        let ticket = tokio::select! {
            ticket = idle.recv() => match ticket { Some(ticket) => ticket, None => break },
            () = tokio::time::sleep_until(deadline.into()) => break,
        };
        if Instant::now() > scheduled + Duration::from_millis(5) {
            result.late_sends += 1;
        }
        while let Some(joined) = running.try_join_next() {
            result.record(joined.unwrap_or_else(|error| Err(error.into())));
        }
        running.spawn(cycle(
            world.clone(),
            ticket,
            ready.clone(),
            None,
            Some(scheduled),
        ));
    }
    while let Some(joined) = running.join_next().await {
        result.record(joined.unwrap_or_else(|error| Err(error.into())));
    }
    result.elapsed = start.elapsed();
    drop(ready);
    let mut tickets = Vec::new();
    while let Ok(ticket) = idle.try_recv() {
        tickets.push(ticket);
    }
    (result, tickets)
}

/// One transition of one ticket; the ticket goes back to `ready` once its follow-up work is done.
async fn cycle(
    world: Arc<World>,
    ticket: CyclingTicket,
    ready: mpsc::UnboundedSender<CyclingTicket>,
    permit: Option<OwnedSemaphorePermit>,
    since: Option<Instant>,
) -> anyhow::Result<Timing> {
    let to = ticket.next_phase();
    let pending = publish_transition(&world, &ticket.id, to, "bench: steady cycle").await?;
    let timing = finish_transition_releasing(&world, pending, since, permit).await?;
    let _ = ready.send(CyclingTicket {
        id: ticket.id,
        phase: to,
    });
    Ok(timing)
}

// ---------------------------------------------------------------------------------------------
// 4. whole lifecycles

struct LifecycleResult {
    completed: usize,
    requested: usize,
    elapsed: Duration,
    latencies_ms: Vec<f64>,
    requests: u64,
    errors: Vec<String>,
}

impl LifecycleResult {
    fn per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.completed as f64 / seconds
        } else {
            0.0
        }
    }

    fn to_json(&self) -> Value {
        let mean = if self.latencies_ms.is_empty() {
            0.0
        } else {
            self.latencies_ms.iter().sum::<f64>() / self.latencies_ms.len() as f64
        };
        json!({
            "tickets": self.requested,
            "completed": self.completed,
            "seconds": round(self.elapsed.as_secs_f64(), 2),
            "per_second": round(self.per_second(), 2),
            "mean_latency_ms": round(mean, 1),
            "latency_ms": latency_json(&self.latencies_ms),
            "requests": self.requests,
            "requests_per_second": round(self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9), 1),
            "errors": self.errors,
        })
    }
}

async fn run_lifecycles(world: &Arc<World>, plan: &Plan) -> LifecycleResult {
    let gate = Arc::new(Semaphore::new(plan.concurrency));
    let mut set = JoinSet::new();
    let start = Instant::now();
    for index in 0..plan.lifecycles {
        let world = world.clone();
        let gate = gate.clone();
        set.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            lifecycle(&world, index).await
        });
    }
    let mut result = LifecycleResult {
        completed: 0,
        requested: plan.lifecycles,
        elapsed: Duration::ZERO,
        latencies_ms: Vec::new(),
        requests: 0,
        errors: Vec::new(),
    };
    while let Some(joined) = set.join_next().await {
        match joined.unwrap_or_else(|error| Err(error.into())) {
            Ok((latency, requests)) => {
                result.completed += 1;
                result.latencies_ms.push(ms(latency));
                result.requests += requests;
            }
            Err(error) => {
                if result.errors.len() < 5 {
                    result.errors.push(format!("{error:#}"));
                }
            }
        }
    }
    result.elapsed = start.elapsed();
    result
}

/// The artifacts that pass the default gate of `phase` (config/workflow.toml).
fn gate_artifacts(phase: &str) -> Vec<Value> {
    match phase {
        "PHASE_REQUIREMENTS" => vec![json!({
            "artifact_type": "requirements_document", "artifact_path": "docs/requirements.md",
            "artifact_content": {"length": 1200, "sections": ["scope", "acceptance_criteria"]},
        })],
        "PHASE_DESIGN" => vec![json!({
            "artifact_type": "design_document", "artifact_path": "docs/design.md",
            "artifact_content": {"sections": ["architecture"]},
        })],
        "PHASE_IMPLEMENTATION" => vec![
            json!({"artifact_type": "code_changes", "artifact_path": "src/feature.rs", "artifact_content": {"has_tests": true}}),
            json!({"artifact_type": "test_coverage", "artifact_content": {"percentage": 90}}),
        ],
        "PHASE_TESTING" => {
            vec![json!({"artifact_type": "test_results", "artifact_content": {"all_passed": true}})]
        }
        "PHASE_DEPLOYMENT" => vec![
            json!({"artifact_type": "deployment_record", "artifact_content": {"status": "succeeded"}}),
        ],
        _ => Vec::new(),
    }
}

/// Generated tasks in an order that respects their dependencies: (id, task_type).
fn tasks_in_order(generated: &Value) -> anyhow::Result<Vec<(String, String)>> {
    let tasks = generated["generated_tasks"]
        .as_array()
        .context("tasks.generated without generated_tasks")?;
    let mut pending: Vec<(String, String, Vec<String>)> = tasks
        .iter()
        .map(|task| {
            let id = task["id"].as_str().unwrap_or_default().to_owned();
            let kind = task["task_type"].as_str().unwrap_or_default().to_owned();
            let dependencies = task["dependencies"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(|dep| dep.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            (id, kind, dependencies)
        })
        .collect();
    let mut done: HashSet<String> = HashSet::new();
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let Some(position) = pending
            .iter()
            .position(|(_, _, dependencies)| dependencies.iter().all(|dep| done.contains(dep)))
        else {
            bail!("generated tasks have a dependency cycle or a foreign dependency: {generated}");
        };
        let (id, kind, _) = pending.remove(position);
        done.insert(id.clone());
        ordered.push((id, kind));
    }
    Ok(ordered)
}

/// One ticket from creation to DONE; returns its latency and the requests it took.
async fn lifecycle(world: &World, index: usize) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    let ticket = Uuid::new_v4().to_string();
    let mut requests = 0u64;
    let create = world.request(
        "ticket.create.requested",
        Some(&ticket),
        json!({"title": format!("bench lifecycle {index}"), "description": "a feature", "priority": "HIGH"}),
    );
    let created = world.tap.expect(&create.id, CREATE_OUTCOMES);
    world.client.publish(&create).await?;
    requests += 1;
    let created = world.wait(created, "ticket.created").await?;
    world.tap.forget(&create.id);
    if created.kind() != "ticket.created" {
        bail!("ticket creation rejected: {}", created.data());
    }

    let start = world.request(
        "phase.transition.requested",
        Some(&ticket),
        json!({"to_phase": REQUIREMENTS, "reason": "groomed"}),
    );
    let moved = world.tap.expect(&start.id, TRANSITION_OUTCOMES);
    let mut entered = world.tap.expect(&start.id, PHASE_ENTERED);
    let mut entered_by = start.id.clone();
    world.client.publish(&start).await?;
    requests += 1;
    let moved = world
        .wait(moved, "phase.transitioned to REQUIREMENTS")
        .await?;
    if moved.kind() != "phase.transitioned" {
        bail!("moving to REQUIREMENTS was rejected: {}", moved.data());
    }

    loop {
        let entry = world.wait(entered, "phase.entered").await?;
        world.tap.forget(&entered_by);
        let phase = entry.data()["phase_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let entry_id = entry.id();
        let generated = world.tap.expect(&entry_id, TASKS_GENERATED);
        let updated = world.tap.expect(&entry_id, CONTEXT_UPDATED);
        if phase == DONE {
            world.wait(updated, "context.updated on DONE").await?;
            world.tap.forget(&entry_id);
            return Ok((started.elapsed(), requests));
        }
        let generated = world
            .wait(generated, &format!("tasks.generated for {phase}"))
            .await?;
        world
            .wait(updated, &format!("context.updated on entering {phase}"))
            .await?;
        world.tap.forget(&entry_id);
        let tasks = tasks_in_order(generated.data())?;
        if tasks.is_empty() {
            bail!("{phase} generated no tasks: {}", generated.data());
        }
        let last = tasks.len() - 1;
        let mut next_entered = None;
        for (position, (task_id, task_type)) in tasks.iter().enumerate() {
            let artifacts = if position == last {
                gate_artifacts(&phase)
            } else {
                Vec::new()
            };
            let request = world.request(
                "task.complete.requested",
                Some(&ticket),
                json!({
                    "task_id": task_id,
                    "status": "completed",
                    "result": {
                        "summary": format!("{task_type} done by the bench agent"),
                        "outputs": {"files": ["src/feature.rs"]},
                        "context": {"decisions": [format!("{task_type}: keep it simple")], "risks": ["none known"], "notes": []},
                        "artifacts": artifacts,
                    }
                }),
            );
            let outcome = world.tap.expect(&request.id, TASK_OUTCOMES);
            let gate = (position == last).then(|| world.tap.expect(&request.id, GATE_VALIDATED));
            let advanced =
                (position == last).then(|| world.tap.expect(&request.id, PHASE_TRANSITIONED));
            let entered_next =
                (position == last).then(|| world.tap.expect(&request.id, PHASE_ENTERED));
            world.client.publish(&request).await?;
            requests += 1;
            let outcome = world
                .wait(outcome, &format!("task.completed for {task_type}"))
                .await?;
            if outcome.kind() != "task.completed" {
                bail!(
                    "completing {task_type} in {phase} failed: {}",
                    outcome.event
                );
            }
            if let (Some(gate), Some(advanced), Some(entered_next)) = (gate, advanced, entered_next)
            {
                let gate = world
                    .wait(gate, &format!("gate.validated of {phase}"))
                    .await?;
                if gate.data()["gate_status"] != "passed" {
                    bail!("the gate of {phase} did not pass: {}", gate.data());
                }
                world
                    .wait(advanced, &format!("phase.transitioned out of {phase}"))
                    .await?;
                next_entered = Some((request.id.clone(), entered_next));
            } else {
                world.tap.forget(&request.id);
            }
        }
        let (cause, receiver) = next_entered.context("no request advanced the ticket")?;
        entered_by = cause;
        entered = receiver;
    }
}

// ---------------------------------------------------------------------------------------------
// 5. history and context growth

struct HistoryResult {
    fresh: LoadResult,
    grown: LoadResult,
    inflate_seconds: f64,
}

impl HistoryResult {
    fn ratio(&self) -> f64 {
        let fresh = self.fresh.throughput();
        if fresh > 0.0 {
            self.grown.throughput() / fresh
        } else {
            0.0
        }
    }

    fn to_json(&self, plan: &Plan) -> Value {
        json!({
            "ratio": round(self.ratio(), 3),
            "fresh_tps": round(self.fresh.throughput(), 1),
            "grown_tps": round(self.grown.throughput(), 1),
            "fresh_latency_ms": self.fresh.latency_json(),
            "grown_latency_ms": self.grown.latency_json(),
            "history_rows_per_ticket": plan.history_rows,
            "artifacts_per_ticket": plan.history_artifacts,
            "tickets_per_set": plan.tickets,
            "order": if plan.history_interleaved { "fresh, grown, grown, fresh" } else { "fresh, grown" },
            "inflate_seconds": round(self.inflate_seconds, 2),
            "fresh": self.fresh.to_json(),
            "grown": self.grown.to_json(),
        })
    }
}

async fn run_history(world: &Arc<World>, plan: &Plan) -> anyhow::Result<HistoryResult> {
    let mut fresh = prepare_tickets(world, plan.tickets, "fresh").await?;
    let mut grown = prepare_tickets(world, plan.tickets, "grown").await?;
    world.tap.reset();
    let started = Instant::now();
    inflate(
        &world.pool,
        &grown,
        plan.history_rows,
        plan.history_artifacts,
    )
    .await?;
    let inflate_seconds = started.elapsed().as_secs_f64();

    // warm both sets: the first cycle of a grown ticket aggregates its artifacts into its context
    let (_, returned) = closed_loop(world, fresh, plan.concurrency, plan.warmup).await;
    fresh = returned;
    let (_, returned) = closed_loop(world, grown, plan.concurrency, plan.warmup).await;
    grown = returned;

    let order: &[bool] = if plan.history_interleaved {
        &[false, true, true, false]
    } else {
        &[false, true]
    };
    let mut fresh_total = LoadResult::default();
    let mut grown_total = LoadResult::default();
    for &is_grown in order {
        let tickets = if is_grown {
            std::mem::take(&mut grown)
        } else {
            std::mem::take(&mut fresh)
        };
        let (segment, returned) =
            closed_loop(world, tickets, plan.concurrency, plan.history_segment).await;
        let total = if is_grown {
            &mut grown_total
        } else {
            &mut fresh_total
        };
        merge(total, segment);
        if is_grown {
            grown = returned;
        } else {
            fresh = returned;
        }
        world.tap.reset();
    }
    Ok(HistoryResult {
        fresh: fresh_total,
        grown: grown_total,
        inflate_seconds,
    })
}

fn merge(total: &mut LoadResult, segment: LoadResult) {
    total.completed += segment.completed;
    total.failed += segment.failed;
    total.latencies_ms.extend(segment.latencies_ms);
    total.to_worker_ms.extend(segment.to_worker_ms);
    total.after_worker_ms.extend(segment.after_worker_ms);
    total.elapsed += segment.elapsed;
    total.late_sends += segment.late_sends;
    for error in segment.errors {
        if total.errors.len() < 5 {
            total.errors.push(error);
        }
    }
}

/// Gives each ticket `rows` more history rows (a valid chain of REQUIREMENTS <-> BLOCKED that
/// ends in REQUIREMENTS) and `artifacts` REQUIREMENTS artifacts, straight in SQL.
async fn inflate(
    pool: &PgPool,
    tickets: &[CyclingTicket],
    rows: i64,
    artifacts: i64,
) -> anyhow::Result<()> {
    let ids: Vec<Uuid> = tickets
        .iter()
        .map(|ticket| Uuid::from_str(&ticket.id))
        .collect::<Result<_, _>>()?;
    let rows = rows + rows % 2;
    let mut transaction = pool.begin().await?;
    sqlx::query(
        "insert into phase_history (ticket_id, from_phase, to_phase, transition_reason, transitioned_by, artifacts, regression) \
         select t.id, \
                case when g % 2 = 1 then 'PHASE_REQUIREMENTS'::phase else 'PHASE_BLOCKED'::phase end, \
                case when g % 2 = 1 then 'PHASE_BLOCKED'::phase else 'PHASE_REQUIREMENTS'::phase end, \
                'bench: grown history ' || g, 'agent-bench', '{}'::jsonb, false \
         from unnest($1::uuid[]) as t(id) cross join generate_series(1, $2) as g \
         order by t.id, g",
    )
    .bind(&ids)
    .bind(rows)
    .execute(&mut *transaction)
    .await?;
    sqlx::query(
        "insert into phase_gate_artifacts (id, ticket_id, phase_id, artifact_type, artifact_path, artifact_content, collected_by) \
         select gen_random_uuid(), t.id, 'PHASE_REQUIREMENTS', 'research_note_' || (g % 12), 'docs/notes/note-' || g || '.md', \
                jsonb_build_object('length', 800 + g, 'sections', jsonb_build_array('scope', 'acceptance_criteria'), \
                                   'summary', repeat('finding ' || g || ' ', 12)), \
                'agent-bench' \
         from unnest($1::uuid[]) as t(id) cross join generate_series(1, $2) as g \
         order by t.id, g",
    )
    .bind(&ids)
    .bind(artifacts)
    .execute(&mut *transaction)
    .await?;
    sqlx::query("update tickets set previous_phase_id = 'PHASE_BLOCKED' where id = any($1)")
        .bind(&ids)
        .execute(&mut *transaction)
        .await?;
    transaction.commit().await?;
    sqlx::query("analyze phase_history").execute(pool).await?;
    sqlx::query("analyze phase_gate_artifacts")
        .execute(pool)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// measuring: /proc and Postgres statistics

/// CPU and Postgres counters at one moment.
struct Sample {
    at: Instant,
    worker_ticks: Option<u64>,
    driver_ticks: Option<u64>,
    postgres_ticks: u64,
    rabbitmq_ticks: u64,
    machine: Option<MachineCpu>,
    commits: Option<i64>,
    wal_syncs: Option<i64>,
    wal_bytes: Option<i64>,
}

#[derive(Clone, Copy)]
struct MachineCpu {
    busy: u64,
    iowait: u64,
    total: u64,
}

/// Differences between two samples.
#[derive(Default)]
struct Usage {
    seconds: f64,
    clients: usize,
    worker_cpu_percent: Option<f64>,
    worker_cpu_seconds: Option<f64>,
    driver_cpu_percent: Option<f64>,
    postgres_cpu_percent: f64,
    rabbitmq_cpu_percent: f64,
    machine_busy_percent: Option<f64>,
    machine_iowait_percent: Option<f64>,
    commits: Option<i64>,
    wal_syncs: Option<i64>,
    wal_bytes: Option<i64>,
}

impl Usage {
    /// `units`: transitions (or transactions) in the interval, for per-unit figures.
    fn to_json(&self, units: u64) -> Value {
        let per = |value: Option<f64>| {
            value.and_then(|value| (units > 0).then(|| round(value / units as f64, 3)))
        };
        // CPU milliseconds per unit, by process: percent of one core x seconds x 10 = ms
        let cpu_ms = |percent: f64| per(Some(percent * self.seconds * 10.0));
        let parts = [
            cpu_ms(self.postgres_cpu_percent),
            cpu_ms(self.rabbitmq_cpu_percent),
            self.worker_cpu_percent.and_then(cpu_ms),
            self.driver_cpu_percent.and_then(cpu_ms),
        ];
        let total_cpu_ms: f64 = parts.iter().flatten().sum();
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get()) as f64;
        json!({
            "cpu_ms_per_unit": {
                "postgres": parts[0],
                "rabbitmq": parts[1],
                "worker": parts[2],
                "bench_driver": parts[3],
                "total": round(total_cpu_ms, 3),
            },
            // what this machine could do if every core did nothing but this work
            "cpu_ceiling_per_second": (total_cpu_ms > 0.0).then(|| round(cores * 1000.0 / total_cpu_ms, 0)),
            "seconds": round(self.seconds, 2),
            "worker_cpu_percent": self.worker_cpu_percent.map(|value| round(value, 1)),
            "worker_cpu_ms_per_unit": per(self.worker_cpu_seconds.map(|seconds| seconds * 1000.0)),
            "bench_driver_cpu_percent": self.driver_cpu_percent.map(|value| round(value, 1)),
            "postgres_cpu_percent": round(self.postgres_cpu_percent, 1),
            "rabbitmq_cpu_percent": round(self.rabbitmq_cpu_percent, 1),
            "machine_busy_percent": self.machine_busy_percent.map(|value| round(value, 1)),
            "machine_iowait_percent": self.machine_iowait_percent.map(|value| round(value, 1)),
            "commits": self.commits,
            "commits_per_unit": per(self.commits.map(|value| value as f64)),
            "wal_syncs": self.wal_syncs,
            "wal_syncs_per_unit": per(self.wal_syncs.map(|value| value as f64)),
            "wal_bytes_per_unit": per(self.wal_bytes.map(|value| value as f64)).map(|value| value.round()),
            "note": "CPU percent: 100 = one core busy; commits come from pg_stat_database \
                     (flushed about once a second, so approximate); WAL syncs and bytes from pg_stat_wal \
                     are cluster-wide and include anything else running",
        })
    }
}

struct Meter {
    admin: PgPool,
    ticks_per_second: f64,
    worker_pid: Option<u32>,
    worker_is_self: bool,
    worker_db: String,
}

impl Meter {
    async fn new(env: &BenchEnv) -> anyhow::Result<Meter> {
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&env.database_url("postgres"))
            .await
            .with_context(|| {
                format!(
                    "cannot reach Postgres at {} (start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)",
                    phaseflow::config::redact_url(&env.server_url)
                )
            })?;
        Ok(Meter {
            admin,
            ticks_per_second: clock_ticks(),
            worker_pid: None,
            worker_is_self: false,
            worker_db: env.worker_db.clone(),
        })
    }

    fn with_worker(self, pid: u32, is_self: bool) -> Meter {
        Meter {
            worker_pid: Some(pid),
            worker_is_self: is_self,
            ..self
        }
    }

    async fn sample(&self) -> Sample {
        self.sample_database(&self.worker_db).await
    }

    async fn sample_database(&self, database: &str) -> Sample {
        let commits = sqlx::query_scalar::<_, i64>(
            "select xact_commit from pg_stat_database where datname = $1",
        )
        .bind(database)
        .fetch_optional(&self.admin)
        .await
        .ok()
        .flatten();
        let wal = sqlx::query("select wal_sync, wal_bytes::int8 as wal_bytes from pg_stat_wal")
            .fetch_optional(&self.admin)
            .await
            .ok()
            .flatten();
        let (wal_syncs, wal_bytes) = match wal {
            Some(row) => (row.try_get("wal_sync").ok(), row.try_get("wal_bytes").ok()),
            None => (None, None),
        };
        let (postgres_ticks, rabbitmq_ticks) = service_ticks();
        Sample {
            at: Instant::now(),
            worker_ticks: self.worker_pid.and_then(process_ticks),
            driver_ticks: process_ticks(std::process::id()),
            postgres_ticks,
            rabbitmq_ticks,
            machine: machine_cpu(),
            commits,
            wal_syncs,
            wal_bytes,
        }
    }

    fn usage(&self, before: &Sample, after: &Sample) -> Usage {
        let seconds = after.at.duration_since(before.at).as_secs_f64().max(1e-9);
        let percent = |ticks: u64| ticks as f64 / self.ticks_per_second / seconds * 100.0;
        let delta = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?));
        let worker = delta(before.worker_ticks, after.worker_ticks);
        let machine = match (before.machine, after.machine) {
            (Some(a), Some(b)) if b.total > a.total => {
                let total = (b.total - a.total) as f64;
                Some((
                    b.busy.saturating_sub(a.busy) as f64 / total * 100.0,
                    b.iowait.saturating_sub(a.iowait) as f64 / total * 100.0,
                ))
            }
            _ => None,
        };
        Usage {
            seconds,
            clients: 0,
            worker_cpu_percent: worker.map(percent),
            worker_cpu_seconds: worker.map(|ticks| ticks as f64 / self.ticks_per_second),
            driver_cpu_percent: if self.worker_is_self {
                None
            } else {
                delta(before.driver_ticks, after.driver_ticks).map(percent)
            },
            postgres_cpu_percent: percent(
                after.postgres_ticks.saturating_sub(before.postgres_ticks),
            ),
            rabbitmq_cpu_percent: percent(
                after.rabbitmq_ticks.saturating_sub(before.rabbitmq_ticks),
            ),
            machine_busy_percent: machine.map(|(busy, _)| busy),
            machine_iowait_percent: machine.map(|(_, iowait)| iowait),
            commits: after.commits.zip(before.commits).map(|(b, a)| b - a),
            wal_syncs: after.wal_syncs.zip(before.wal_syncs).map(|(b, a)| b - a),
            wal_bytes: after.wal_bytes.zip(before.wal_bytes).map(|(b, a)| b - a),
        }
    }
}

/// The relay's rounds over a stage, from two scrapes of the worker's `/metrics`: how many, how
/// many events each published, and how long events waited in the outbox (from the start of the
/// transaction that wrote them to the broker's confirm).
fn relay_json(
    before: Option<&HashMap<String, f64>>,
    after: Option<&HashMap<String, f64>>,
    transitions: u64,
) -> Value {
    let (Some(before), Some(after)) = (before, after) else {
        return Value::Null;
    };
    let delta = |name: &str| {
        after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0)
    };
    let rounds = delta("phaseflow_outbox_rounds_total");
    let events = delta("phaseflow_outbox_published_total");
    let waits = delta("phaseflow_outbox_publish_lag_seconds_count");
    let waited = delta("phaseflow_outbox_publish_lag_seconds_sum");
    json!({
        "rounds": rounds,
        "events": events,
        "events_per_round": if rounds > 0.0 { round(events / rounds, 2) } else { 0.0 },
        "rounds_per_transition": if transitions > 0 { round(rounds / transitions as f64, 3) } else { 0.0 },
        "outbox_wait_mean_ms": if waits > 0.0 { round(waited / waits * 1000.0, 2) } else { 0.0 },
    })
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}

/// `(comm, utime + stime)` of a process.
fn read_stat(pid: &str) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // after the comm: state is field 3 of stat(5); utime and stime are fields 14 and 15
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

fn process_ticks(pid: u32) -> Option<u64> {
    read_stat(&pid.to_string()).map(|(_, ticks)| ticks)
}

/// CPU ticks of all Postgres and RabbitMQ (beam) processes on the machine.
fn service_ticks() -> (u64, u64) {
    let (mut postgres, mut rabbitmq) = (0, 0);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return (0, 0);
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|pid| pid.bytes().all(|byte| byte.is_ascii_digit()))
        else {
            continue;
        };
        match read_stat(pid) {
            Some((comm, ticks)) if comm == "postgres" => postgres += ticks,
            Some((comm, ticks)) if comm.starts_with("beam") => rabbitmq += ticks,
            _ => {}
        }
    }
    (postgres, rabbitmq)
}

fn machine_cpu() -> Option<MachineCpu> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|line| line.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    if values.len() < 8 {
        return None;
    }
    let total: u64 = values.iter().sum();
    let (idle, iowait) = (values[3], values[4]);
    Some(MachineCpu {
        busy: total - idle - iowait,
        iowait,
        total,
    })
}

/// (VmHWM, VmRSS) of a process in MiB.
fn read_memory(pid: u32) -> Option<(f64, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// The worker's Prometheus metrics (`/metrics` on its ops port), by series.
async fn scrape_metrics(addr: std::net::SocketAddr) -> Option<HashMap<String, f64>> {
    let text = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream =
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        // HTTP/1.0: the body is not chunked and ends when the connection closes
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        Some(response)
    })
    .await
    .ok()??;
    let (_, body) = text.split_once("\r\n\r\n")?;
    let series = body
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse::<f64>().ok()?))
        })
        .collect();
    Some(series)
}

/// Mean handler time per queue and messages per transition over a stage, from two scrapes.
fn worker_metrics_json(
    before: Option<&HashMap<String, f64>>,
    after: Option<&HashMap<String, f64>>,
    transitions: u64,
) -> Value {
    let (Some(before), Some(after)) = (before, after) else {
        return Value::Null;
    };
    let delta = |name: &str| {
        after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0)
    };
    let handler = |queue: &str| {
        let count = delta(&format!(
            "phaseflow_handler_duration_seconds_count{{queue=\"{queue}\"}}"
        ));
        let sum = delta(&format!(
            "phaseflow_handler_duration_seconds_sum{{queue=\"{queue}\"}}"
        ));
        json!({
            "messages": count,
            "messages_per_transition": if transitions > 0 { round(count / transitions as f64, 3) } else { 0.0 },
            "mean_ms": if count > 0.0 { round(sum / count * 1000.0, 3) } else { 0.0 },
        })
    };
    json!({
        "requests_handler": handler("requests"),
        "events_published": delta("phaseflow_outbox_published_total"),
        "transaction_retries": delta("phaseflow_transaction_retries_total"),
        "note": "handler time runs from delivery to settlement (transaction, commit and ack)",
    })
}

// ---------------------------------------------------------------------------------------------
// the broker on its own

/// Persistent messages through a private quorum queue (the worker's queue type), `concurrency`
/// in flight, each published with a confirm and consumed with a manual ack. Latency runs from
/// the publish to the delivery; `to_worker_ms` holds the confirm times.
async fn run_broker_hop(world: &World, env: &BenchEnv, plan: &Plan) -> anyhow::Result<LoadResult> {
    use lapin::options::{
        BasicAckOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    };
    use lapin::types::AMQPValue;
    use std::sync::atomic::{AtomicU64, Ordering};

    let queue = format!("{}.hop", env.prefix);
    let setup = world.amqp.create_channel().await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    setup
        .queue_declare(
            &queue,
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        )
        .await?;
    let consuming = world.amqp.create_channel().await?;
    consuming.basic_qos(64, BasicQosOptions::default()).await?;
    let mut consumer = consuming
        .basic_consume(
            &queue,
            "phaseflow-bench-hop",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<Instant>>>> = Arc::default();
    let router = waiting.clone();
    let consuming_task = tokio::spawn(async move {
        while let Some(Ok(delivery)) = consumer.next().await {
            let at = Instant::now();
            let _ = delivery.ack(BasicAckOptions::default()).await;
            let Ok(bytes) = <[u8; 8]>::try_from(delivery.data.as_slice()) else {
                continue;
            };
            let waiter = router
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&u64::from_le_bytes(bytes));
            if let Some(waiter) = waiter {
                let _ = waiter.send(at);
            }
        }
    });
    let publishing = world.amqp.create_channel().await?;
    publishing
        .confirm_select(ConfirmSelectOptions::default())
        .await?;

    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let measure_from = start + plan.warmup.min(Duration::from_secs(1));
    let end = measure_from + plan.broker;
    let mut senders = JoinSet::new();
    for _ in 0..plan.concurrency {
        let (publishing, queue, waiting, next) = (
            publishing.clone(),
            queue.clone(),
            waiting.clone(),
            next.clone(),
        );
        let timeout = world.timeout;
        senders.spawn(async move {
            let mut result = LoadResult::default();
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let sequence = next.fetch_add(1, Ordering::Relaxed);
                let (reply, delivered) = oneshot::channel();
                waiting
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(sequence, reply);
                let outcome = async {
                    let confirm = publishing
                        .basic_publish(
                            "",
                            &queue,
                            BasicPublishOptions {
                                mandatory: true,
                                ..Default::default()
                            },
                            &sequence.to_le_bytes(),
                            lapin::BasicProperties::default().with_delivery_mode(2),
                        )
                        .await?
                        .await?;
                    let confirmed = sent.elapsed();
                    if !confirm.is_ack() {
                        bail!("the broker refused a message");
                    }
                    let at = tokio::time::timeout(timeout, delivered)
                        .await
                        .context("no delivery in time")?
                        .context("the consumer stopped")?;
                    Ok(Timing {
                        latency: at.saturating_duration_since(sent),
                        to_worker: Some(ms(confirmed)),
                        after_worker: None,
                    })
                }
                .await;
                if sent >= measure_from {
                    result.record(outcome);
                } else {
                    outcome?;
                }
            }
            Ok::<_, anyhow::Error>(result)
        });
    }
    let mut total = LoadResult::default();
    while let Some(joined) = senders.join_next().await {
        merge(&mut total, joined.context("a broker sender panicked")??);
    }
    total.elapsed = plan.broker;
    consuming_task.abort();
    let _ = consuming.close(200, "done").await;
    let _ = publishing.close(200, "done").await;
    let _ = setup
        .queue_delete(&queue, QueueDeleteOptions::default())
        .await;
    let _ = setup.close(200, "done").await;
    Ok(total)
}

// ---------------------------------------------------------------------------------------------
// output

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn round(value: f64, decimals: i32) -> f64 {
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

fn latency_json(latencies_ms: &[f64]) -> Value {
    let mut sorted = latencies_ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mean = if sorted.is_empty() {
        0.0
    } else {
        sorted.iter().sum::<f64>() / sorted.len() as f64
    };
    json!({
        "p50": round(percentile(&sorted, 50.0), 2),
        "p95": round(percentile(&sorted, 95.0), 2),
        "p99": round(percentile(&sorted, 99.0), 2),
        "mean": round(mean, 2),
        "max": round(sorted.last().copied().unwrap_or(0.0), 2),
        "samples": sorted.len(),
    })
}

/// A figure of the report with `decimals` decimals, or `-` when it is missing.
fn number(value: &Value, decimals: usize) -> String {
    match value.as_f64() {
        Some(value) => format!("{value:.decimals$}"),
        None => "-".to_owned(),
    }
}

/// The CPU each process spent per unit of work, and the throughput that CPU allows on this
/// machine's cores.
fn cpu_rows(row: &impl Fn(&str, &str, String, String), usage: &Value, unit: &str) {
    let cpu = &usage["cpu_ms_per_unit"];
    row(
        "",
        &format!("CPU ms per {unit}: pg/rmq/worker/driver"),
        format!(
            "{}/{}/{}/{}",
            number(&cpu["postgres"], 2),
            number(&cpu["rabbitmq"], 2),
            number(&cpu["worker"], 2),
            number(&cpu["bench_driver"], 2)
        ),
        format!(
            "total {} ms: all cores allow {}/s",
            number(&cpu["total"], 2),
            number(&usage["cpu_ceiling_per_second"], 0)
        ),
    );
}

fn print_table(report: &Report) {
    let json = &report.json;
    let yes_no = |value: &Value| match value.as_bool() {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "-",
    };
    let worker_mode = json["worker"]["mode"].as_str().unwrap_or("-");
    println!(
        "phaseflow benchmark: mode {}, concurrency {}, worker {}",
        json["mode"].as_str().unwrap_or("-"),
        json["concurrency"],
        worker_mode
    );
    println!("{:-<96}", "");
    let row = |stage: &str, metric: &str, value: String, note: String| {
        println!("{stage:<12} {metric:<38} {value:>16}  {note}");
    };
    let targets = &json["targets"];
    if json.get("baseline").is_some() {
        let baseline = &json["baseline"];
        row(
            "baseline",
            "tps (same-shape tx, Postgres only)",
            number(&json["baseline_tps"], 1),
            format!(
                "{} conns; tx p50/p99 {}/{} ms",
                json["concurrency"],
                number(&baseline["latency_ms"]["p50"], 2),
                number(&baseline["latency_ms"]["p99"], 2)
            ),
        );
        row(
            "",
            "WAL syncs per tx (cluster-wide)",
            number(&baseline["usage"]["wal_syncs_per_unit"], 3),
            String::new(),
        );
        cpu_rows(&row, &baseline["usage"], "tx");
    }
    if json.get("broker").is_some() {
        let broker = &json["broker"];
        row(
            "broker",
            "messages/s (quorum queue, confirm + ack)",
            number(&broker["messages_per_s"], 0),
            format!(
                "publish->deliver p50/p99 {}/{} ms; confirm p50 {} ms",
                number(&broker["latency_ms"]["p50"], 1),
                number(&broker["latency_ms"]["p99"], 1),
                number(&broker["confirm_ms"]["p50"], 1)
            ),
        );
    }
    if json.get("steady").is_some() {
        let steady = &json["steady"];
        row(
            "steady",
            "transitions/s (worker, end to end)",
            number(&json["steady_tps"], 1),
            format!(
                "{} transitions, {} failed",
                steady["transitions"], steady["failed"]
            ),
        );
        row(
            "",
            "ratio to baseline",
            number(&json["ratio_to_baseline"], 3),
            format!(
                "target >= 1.0: {}",
                yes_no(&targets["steady_vs_baseline_at_least_1"])
            ),
        );
        let latency = &json["latency_ms"];
        row(
            "",
            "latency p50 / p95 / p99 ms",
            format!(
                "{} / {} / {}",
                number(&latency["p50"], 1),
                number(&latency["p95"], 1),
                number(&latency["p99"], 1)
            ),
            "publish -> phase.transitioned".to_owned(),
        );
        let usage = &steady["usage"];
        cpu_rows(&row, usage, "transition");
        row(
            "",
            "worker CPU % of one core",
            number(&json["worker_cpu_percent"], 1),
            format!(
                "{} ms CPU per transition",
                number(&usage["worker_cpu_ms_per_unit"], 3)
            ),
        );
        row(
            "",
            "Postgres / RabbitMQ CPU %",
            format!(
                "{} / {}",
                number(&usage["postgres_cpu_percent"], 0),
                number(&usage["rabbitmq_cpu_percent"], 0)
            ),
            format!(
                "machine busy {}%, iowait {}%",
                number(&usage["machine_busy_percent"], 0),
                number(&usage["machine_iowait_percent"], 0)
            ),
        );
        row(
            "",
            "commits / WAL syncs per transition",
            format!(
                "{} / {}",
                number(&usage["commits_per_unit"], 2),
                number(&usage["wal_syncs_per_unit"], 2)
            ),
            "approximate (pg_stat_*)".to_owned(),
        );
        row(
            "",
            "relay rounds per transition",
            number(&steady["relay"]["rounds_per_transition"], 3),
            format!(
                "{} events per round",
                number(&steady["relay"]["events_per_round"], 1)
            ),
        );
        let breakdown = &steady["latency_breakdown_ms"];
        row(
            "",
            "p50 ms: publish->worker tx / tx->event",
            format!(
                "{} / {}",
                number(&breakdown["publish_to_worker_transaction"]["p50"], 1),
                number(&breakdown["worker_transaction_to_event"]["p50"], 1)
            ),
            format!(
                "events wait in the outbox {} ms (mean)",
                number(&steady["relay"]["outbox_wait_mean_ms"], 1)
            ),
        );
        let metrics = &steady["worker_metrics"];
        row(
            "",
            "handler mean ms (requests)",
            number(&metrics["requests_handler"]["mean_ms"], 2),
            "delivery -> ack, from the worker's /metrics".to_owned(),
        );
    }
    if json.get("half_load").is_some() {
        let half = &json["half_load"];
        row(
            "half-load",
            "rate / p99 ms",
            format!(
                "{} / {}",
                number(&half["rate"], 1),
                number(&half["p99_ms"], 1)
            ),
            format!(
                "p50 {} ms; target p99 <= 25 ms: {}",
                number(&half["latency_ms"]["p50"], 1),
                yes_no(&targets["half_load_p99_at_most_25_ms"])
            ),
        );
    }
    if json.get("saturation").is_some() {
        let saturation = &json["saturation"];
        row(
            "saturation",
            "transitions/s, many in flight",
            number(&json["saturated_tps"], 1),
            format!(
                "{} in flight; ratio to baseline {}; p50/p99 {}/{} ms",
                saturation["in_flight"],
                number(&json["saturated_ratio_to_baseline"], 3),
                number(&saturation["latency_ms"]["p50"], 1),
                number(&saturation["latency_ms"]["p99"], 1)
            ),
        );
        cpu_rows(&row, &saturation["usage"], "transition");
    }
    if json.get("lifecycle").is_some() {
        let lifecycle = &json["lifecycle"];
        row(
            "lifecycle",
            "lifecycles/s",
            number(&json["lifecycles_per_s"], 2),
            format!(
                "{}/{} to DONE; mean {} ms; {} requests/s",
                lifecycle["completed"],
                lifecycle["tickets"],
                number(&lifecycle["mean_latency_ms"], 0),
                number(&lifecycle["requests_per_second"], 0)
            ),
        );
    }
    if json.get("history").is_some() {
        let history = &json["history"];
        row(
            "history",
            "grown / fresh throughput",
            number(&json["history_ratio"], 3),
            format!(
                "{} vs {} tps; {} rows + {} artifacts per ticket",
                number(&history["grown_tps"], 1),
                number(&history["fresh_tps"], 1),
                history["history_rows_per_ticket"],
                history["artifacts_per_ticket"]
            ),
        );
    }
    if json.get("worker_peak_rss_mib").is_some() {
        let note = if json["worker"]["rss_includes_bench_driver"].as_bool() == Some(true) {
            "in-process: includes the bench driver"
        } else {
            "child process"
        };
        row(
            "worker",
            "peak RSS MiB (VmHWM)",
            number(&json["worker_peak_rss_mib"], 1),
            format!(
                "{note}; target <= 64: {}",
                yes_no(&targets["worker_rss_at_most_64_mib"])
            ),
        );
    }
    println!("{:-<96}", "");
    if !report.problems.is_empty() {
        for problem in &report.problems {
            println!("PROBLEM: {problem}");
        }
    }
}
