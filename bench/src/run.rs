//! One run: the stages in their order (the baseline before the worker exists, the broker stage
//! before it starts, then the worker stages), the sanity checks that decide the exit status,
//! and the teardown that runs whatever happened: the worker stopped, the run's exchanges,
//! queues and databases removed.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::cli::{Cli, Plan, Stage};
use crate::environment::BenchEnv;
use crate::load::prepare_tickets;
use crate::report::{ms, round, Report, Targets, WorkerReport};
use crate::stages::{self, Harness};
use crate::usage::{read_memory, Meter};
use crate::worker::{Launch, WorkerHandle};
use crate::world::World;

/// Runs the benchmark as `cli` asks, prints its report, and cleans up.
pub async fn bench(cli: Cli) -> ExitCode {
    let mut env = BenchEnv::new(&cli);
    let sink = if cli.otlp_sink {
        match crate::otlp_sink::start().await {
            Ok((endpoint, received)) => {
                env.otlp_endpoint = Some(endpoint);
                Some(received)
            }
            Err(error) => {
                eprintln!("error: {error:#}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let plan = Plan::new(&cli);
    let stages: Vec<Stage> = if cli.stages.is_empty() {
        Stage::ALL.to_vec()
    } else {
        cli.stages.clone()
    };
    let launch = match Launch::choose(&cli) {
        Ok(launch) => launch,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };

    let mut state = RunState::default();
    let outcome = tokio::select! {
        outcome = run(&cli, &env, &plan, &stages, &launch, &mut state) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    let worker_ok = cleanup(&env, &mut state).await;
    match outcome {
        Ok(mut report) => {
            report.otlp_sink = sink.map(|received| received.report());
            if !cli.json {
                crate::table::print(&report);
                println!();
            }
            match report.to_json() {
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

/// A line of progress on stderr.
pub fn progress(message: impl AsRef<str>) {
    eprintln!("[phaseflow-bench] {}", message.as_ref());
}

/// What must be torn down whatever happens.
#[derive(Default)]
struct RunState {
    worker: Option<WorkerHandle>,
    world: Option<Arc<World>>,
    created_databases: Vec<String>,
    broker_declared: bool,
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
    let reference_lifecycles = cli
        .reference
        .as_deref()
        .map(reference_lifecycles_per_s)
        .transpose()?;
    let meter = Meter::new(env).await?;
    let mut report = Report::new(cli.mode.name(), plan.concurrency, &env.id, &env.config_dir);

    // the baseline, before the worker exists
    let mut baseline_tps = None;
    if wants(Stage::Baseline) {
        state.created_databases.push(env.baseline_db.clone());
        let tps = stages::baseline::run(env, plan, &meter, &mut report)
            .await
            .context("baseline stage")?;
        baseline_tps = Some(tps);
    }
    if stages.iter().all(|stage| *stage == Stage::Baseline) {
        report.conclude();
        return Ok(report);
    }

    // the worker's database and topology, and the driver's connections
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
        stages::broker::run(&world, env, plan, &mut report)
            .await
            .context("broker stage")?;
    }
    if !Stage::WITH_WORKER.iter().any(|stage| wants(*stage)) {
        report.conclude();
        return Ok(report);
    }

    match launch.binary() {
        Some(binary) => progress(format!("starting the worker process {}", binary.display())),
        None => progress("starting the worker in-process"),
    }
    let worker = launch.start(env, &settings)?;
    let worker_pid = worker.pid();
    let includes_driver = worker.includes_driver();
    state.worker = Some(worker);
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
    let mut worker_report = WorkerReport {
        mode: if includes_driver {
            "in-process"
        } else {
            "process"
        },
        binary: launch.binary().map(|path| path.display().to_string()),
        pid: worker_pid,
        prefetch: settings.amqp.prefetch,
        max_connections: settings.database.max_connections,
        outbox_batch_size: settings.outbox.batch_size,
        ready_ms: round(ms(started.elapsed()), 0),
        rss_mib_after_first_ticket: read_memory(worker_pid).map(|(_, now)| round(now, 1)),
        rss_mib_at_end: None,
        rss_includes_bench_driver: includes_driver,
    };
    tickets.extend(prepare_tickets(&world, plan.tickets - 1, "steady").await?);
    world.tap.reset();

    let harness = Harness {
        world: &world,
        plan,
        meter: &meter,
        ops: settings.ops.addr,
        baseline_tps,
    };
    let mut steady_tps = None;
    if wants(Stage::Steady) || wants(Stage::HalfLoad) {
        let (tps, returned) = stages::steady::run(&harness, tickets, &mut report).await;
        steady_tps = Some(tps);
        tickets = returned;
    }
    if wants(Stage::HalfLoad) {
        let rate = steady_tps.unwrap_or(0.0) / 2.0;
        tickets = stages::steady::half_load(&harness, tickets, rate, &mut report).await;
    }
    if wants(Stage::Saturation) {
        tickets = stages::saturation::run(&harness, tickets, &mut report).await?;
    }
    drop(tickets);
    if wants(Stage::Lifecycle) {
        stages::lifecycles::run(&harness, &mut report).await;
    }
    if wants(Stage::History) {
        stages::growth::run(&harness, &mut report)
            .await
            .context("history stage")?;
    }

    // worker memory, read before it stops
    if let Some(worker) = state.worker.as_mut() {
        worker.check_alive()?;
    }
    let memory = read_memory(worker_pid);
    report.worker_peak_rss_mib = Some(memory.map(|(peak, _)| round(peak, 1)));
    worker_report.rss_mib_at_end = memory.map(|(_, now)| round(now, 1));
    report.worker = Some(worker_report);
    if memory.is_none_or(|(peak, _)| peak <= 0.0) {
        report
            .problems
            .push("cannot read the worker's peak RSS".to_owned());
    }
    if let (Some(reference), Some(now)) = (reference_lifecycles, report.lifecycles_per_s) {
        report.reference_lifecycles_per_s = Some(reference);
        report.lifecycles_vs_reference = (reference > 0.0).then(|| round(now / reference, 3));
    }
    report.targets = Some(Targets::of(&report));
    report.conclude();
    Ok(report)
}

/// `lifecycles_per_s` of the JSON report `--reference` names.
fn reference_lifecycles_per_s(path: &Path) -> anyhow::Result<f64> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the reference report {}", path.display()))?;
    let reference: serde_json::Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "the reference report {} is not the JSON of a `--json` run",
            path.display()
        )
    })?;
    reference["lifecycles_per_s"].as_f64().with_context(|| {
        format!(
            "the reference report {} has no lifecycles_per_s: run it with the lifecycle stage",
            path.display()
        )
    })
}

/// Stops the worker, deletes the run's exchanges and queues and drops its databases; `false`
/// when the worker did not stop cleanly.
async fn cleanup(env: &BenchEnv, state: &mut RunState) -> bool {
    let mut worker_ok = true;
    if let Some(worker) = state.worker.take() {
        progress("stopping the worker");
        worker_ok = worker.stop().await;
    }
    if let Some(world) = state.world.take() {
        world.close().await;
    }
    if state.broker_declared {
        if let Ok(connection) =
            phaseflow_client::broker::connect(&env.amqp_url, 30, "phaseflow-bench cleanup").await
        {
            if let Ok(channel) = connection.create_channel().await {
                for queue in env.queues() {
                    let _ = channel
                        .queue_delete(queue.into(), QueueDeleteOptions::default())
                        .await;
                }
                for exchange in env.exchanges() {
                    let _ = channel
                        .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
                        .await;
                }
            }
            let _ = connection.close(200, "cleaned up".into()).await;
        }
    }
    if !state.created_databases.is_empty() {
        match PgConnection::connect(&env.database_url("postgres")).await {
            Ok(mut admin) => {
                for database in state.created_databases.drain(..) {
                    // the run's own database names: letters, digits and underscores
                    let statement = format!("drop database if exists \"{database}\" with (force)");
                    let dropped = sqlx::query(AssertSqlSafe(statement))
                        .execute(&mut admin)
                        .await;
                    if let Err(error) = dropped {
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
