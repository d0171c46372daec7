//! The `phaseflow` command line: parses arguments, loads settings, starts logging and runs the
//! chosen subcommand from the library.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use phaseflow::admin::AgentsCommand;
use phaseflow::config::Settings;
use phaseflow::shutdown;
use phaseflow::workflow::Registration;
use phaseflow_client::{OutgoingRequest, RequestClient};

#[derive(Parser)]
#[command(
    name = "phaseflow",
    version,
    about = "Runs the multi-phase workflow of software tickets for teams of AI agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Consume requests and apply them, and publish their events (runs pending migrations first).
    Worker {
        /// Do not apply pending migrations at start.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Serve the HTTP API on PHASEFLOW_API_ADDR (runs pending migrations first).
    Api {
        /// Do not apply pending migrations at start.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Serve one agent the Model Context Protocol on stdin and stdout (its token in
    /// PHASEFLOW_TOKEN; logs go to stderr). Configure it as an MCP server of your agent's client.
    Mcp,
    /// Create the database if it is missing and apply migrations.
    Migrate,
    /// Register agents, list them, revoke or rotate their tokens (tokens are printed once).
    Agents {
        #[command(subcommand)]
        action: AgentsAction,
    },
    /// Simulated agents drive a few tickets to DONE through a worker, printing what happens.
    Demo {
        /// Simulated agents
        #[arg(long, default_value_t = 4)]
        agents: u32,
        /// Tickets to drive from BACKLOG to DONE
        #[arg(long, default_value_t = 3)]
        tickets: u32,
        /// The lease of each claim, in seconds (10 to 86400)
        #[arg(long, default_value_t = 10)]
        lease_seconds: u32,
        /// Agents that crash holding a task (its lease runs out, another agent takes it over)
        #[arg(long, default_value_t = 1)]
        crashes: u32,
        /// Test runs reported failing (each sends its ticket back to IMPLEMENTATION)
        #[arg(long, default_value_t = 1)]
        test_failures: u32,
        /// Design documents handed in without a component the requirements name (with reviews
        /// on DESIGN and `phaseflow review-agent` running, a review asks for changes)
        #[arg(long, default_value_t = 0)]
        incomplete_designs: u32,
        /// Fail when the tickets are not all DONE within this many seconds
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// Start a worker in this process instead of using a running one
        #[arg(long)]
        with_worker: bool,
        /// Give the first ticket this budget in US dollars: its agents' reports use it up on
        /// the way (a ticket costs about $1) and phaseflow stops it (BLOCKED, budget exceeded);
        /// the demo ends when every other ticket is DONE
        #[arg(long)]
        budget: Option<f64>,
        /// How the agents reach phaseflow: amqp (requests on the broker) or mcp (each agent runs
        /// its own `phaseflow mcp` and calls tools)
        #[arg(long, value_enum, default_value_t = Via::Amqp)]
        via: Via,
    },
    /// Answer review requests with verdicts judged by the rules of [review_agent] (the
    /// reference validation agent); runs until SIGTERM or Ctrl-C.
    ReviewAgent,
    /// Send one request (a CloudEvent is built for you).
    Publish {
        /// The request type, e.g. phase.transition.requested
        #[arg(value_name = "TYPE")]
        request_type: String,
        /// The ticket id (optional only for ticket.create.requested)
        #[arg(long)]
        subject: Option<String>,
        /// The request's data, a JSON object
        #[arg(long, default_value = "{}")]
        data: String,
        /// The agent id recorded as the actor
        #[arg(long)]
        actor: Option<String>,
        /// The CloudEvent source
        #[arg(long, default_value = "cli/phaseflow-publish")]
        source: String,
        /// The request id (default: a new UUID); the same id is applied at most once
        #[arg(long)]
        id: Option<String>,
        /// Correlation id to carry through the events it causes
        #[arg(long)]
        correlation_id: Option<String>,
        /// Wait for the outcome event and print it
        #[arg(long)]
        wait: bool,
        /// Seconds to wait for the outcome
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
}

/// How the demo's agents reach phaseflow.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Via {
    Amqp,
    Mcp,
}

#[derive(Subcommand)]
enum AgentsAction {
    /// Register an agent and print its first token.
    Add {
        /// The agent id: 1 to 64 of a-z, 0-9, `.`, `_` and `-`
        name: String,
        /// A role whose tasks it may claim (repeat, or separate with commas; `*`: every role)
        #[arg(long = "role", value_delimiter = ',')]
        roles: Vec<String>,
        /// The live leases it may hold at once (default: agents.default_max_claims)
        #[arg(long)]
        max_claims: Option<u32>,
        /// It is an operator: it may force moves, release others' tasks and manage agents
        #[arg(long)]
        operator: bool,
        /// Its daily budget in US dollars
        #[arg(long)]
        daily_cost_usd: Option<f64>,
    },
    /// List the registered agents.
    List,
    /// Revoke every token of an agent, at once on every API process.
    Revoke { name: String },
    /// Revoke every token of an agent and print a new one.
    Rotate { name: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // the settings decide where spans go; one that cannot load is reported by `run`
    let settings = Settings::load();
    match cli.command {
        // the demo prints its own story on stdout: only problems are logged beside it
        Command::Demo { .. } => phaseflow::telemetry::init_logging_with("warn,lapin=off"),
        // stdout is the protocol's channel
        Command::Mcp => phaseflow::telemetry::init_logging_on_stderr(),
        _ => phaseflow::telemetry::init_logging_and_tracing(
            settings.as_ref().ok().map(|settings| &settings.telemetry),
        ),
    }
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
    let result = runtime.block_on(run(cli, settings));
    // lapin's background I/O and idle pool connections must not hold the exit up
    runtime.shutdown_timeout(Duration::from_millis(200));
    // spans still buffered go out before the process ends
    phaseflow::telemetry::trace::shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "phaseflow failed");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, settings: anyhow::Result<Settings>) -> anyhow::Result<()> {
    let mut settings = settings?;
    match cli.command {
        Command::Worker { no_migrate } => {
            if no_migrate {
                settings.worker.migrate_on_start = false;
            }
            phaseflow::worker::run(settings, shutdown::on_signal()).await
        }
        Command::Api { no_migrate } => {
            if no_migrate {
                settings.worker.migrate_on_start = false;
            }
            phaseflow::api::run(settings, shutdown::on_signal()).await
        }
        Command::Mcp => {
            let token = std::env::var("PHASEFLOW_TOKEN").context(
                "PHASEFLOW_TOKEN is not set: give the agent's token (phaseflow agents add prints one)",
            )?;
            phaseflow::mcp::run_stdio(settings, token, shutdown::on_signal()).await
        }
        Command::ReviewAgent => {
            phaseflow_agents::review::run(
                settings.amqp.broker(),
                settings.amqp.reconnect_backoff(),
                settings.review_agent.clone(),
                shutdown::on_signal(),
            )
            .await
        }
        Command::Demo {
            agents,
            tickets,
            lease_seconds,
            crashes,
            test_failures,
            incomplete_designs,
            timeout,
            with_worker,
            budget,
            via,
        } => {
            let via_mcp = match via {
                Via::Amqp => None,
                Via::Mcp => Some(
                    std::env::current_exe().context("cannot find this program to run as `mcp`")?,
                ),
            };
            let options = phaseflow::demo::DemoOptions {
                agents,
                tickets,
                lease_seconds,
                crashes,
                test_failures,
                incomplete_designs,
                timeout: Duration::from_secs(timeout),
                in_process_worker: with_worker,
                budget_usd: budget,
                via_mcp,
            };
            let summary =
                phaseflow::demo::run_until(settings, options, shutdown::on_signal(), |line| {
                    println!("{line}")
                })
                .await?;
            println!("{summary}");
            Ok(())
        }
        Command::Agents { action } => {
            let command = match action {
                AgentsAction::Add {
                    name,
                    roles,
                    max_claims,
                    operator,
                    daily_cost_usd,
                } => AgentsCommand::Add(Registration {
                    agent_id: name,
                    roles,
                    max_claims,
                    operator,
                    daily_cost_usd,
                }),
                AgentsAction::List => AgentsCommand::List,
                AgentsAction::Revoke { name } => AgentsCommand::Revoke { agent_id: name },
                AgentsAction::Rotate { name } => AgentsCommand::Rotate { agent_id: name },
            };
            println!("{}", phaseflow::admin::run(&settings, command).await?);
            Ok(())
        }
        Command::Migrate => {
            phaseflow::store::migrate(&settings.database.url).await?;
            println!("database migrated");
            Ok(())
        }
        Command::Publish {
            request_type,
            subject,
            data,
            actor,
            source,
            id,
            correlation_id,
            wait,
            timeout,
        } => {
            let data = serde_json::from_str(&data).context("--data is not valid JSON")?;
            let request = OutgoingRequest {
                id: id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                request_type,
                subject,
                source,
                actor,
                correlation_id,
                data,
            };
            let client =
                RequestClient::connect(&settings.amqp.broker(), "phaseflow publish").await?;
            let result = if wait {
                let outcome = client
                    .publish_and_wait(&request, Duration::from_secs(timeout))
                    .await?;
                println!("{}", serde_json::to_string_pretty(&outcome)?);
                Ok(())
            } else {
                client.publish(&request).await?;
                println!("{}", request.id);
                Ok(())
            };
            client.close().await;
            result
        }
    }
}
