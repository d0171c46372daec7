//! `phaseflow demo`: a team of simulated agents (`phaseflow_agents::demo`) drives a few tickets
//! from BACKLOG to DONE through a running worker, or one this command starts in its own process.
//! The team is a client like any other; this module registers its agents with their roles and
//! starts and stops the worker around it.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{bail, Context};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;

pub use phaseflow_agents::demo::{DemoOptions, DemoSummary, McpLaunch};

/// The actor on the record of the demo's registrations.
const DEMO_ACTOR: &str = "demo";

/// Registers the team's agents with their roles (or gives them these roles again), so that each
/// claims only the tasks of its roles. Over AMQP their requests name them as `actor` and they
/// need no tokens; over MCP each gets a new token (its earlier ones revoked), returned by agent.
async fn register_team(
    settings: &Settings,
    agents: u32,
    with_tokens: bool,
) -> anyhow::Result<BTreeMap<String, String>> {
    crate::store::migrate(&settings.database.url).await?;
    let pool = crate::store::connect(&settings.database.url, 2, settings.acquire_timeout()).await?;
    let workflow = crate::workflow::Workflow::new(
        pool.clone(),
        settings.workflow_definition()?,
        settings.context.max_tokens,
    );
    let mut tokens = BTreeMap::new();
    for (agent_id, roles) in phaseflow_agents::demo::team_roles(agents) {
        let registration = crate::workflow::Registration {
            agent_id: agent_id.clone(),
            roles,
            max_claims: None,
            operator: false,
            daily_cost_usd: None,
        };
        workflow
            .define_agent(&registration, DEMO_ACTOR)
            .await
            .map_err(|error| anyhow::anyhow!("cannot register the demo's agents: {error}"))?;
        if with_tokens {
            let token = workflow
                .issue_token(&agent_id, true, DEMO_ACTOR)
                .await
                .map_err(|error| anyhow::anyhow!("cannot issue {agent_id} a token: {error}"))?;
            tokens.insert(agent_id, token.reveal().to_owned());
        }
    }
    pool.close().await;
    Ok(tokens)
}

/// Runs the demo, writing each line of its log to `print`. Fails when not every ticket is DONE
/// within `options.timeout`.
pub async fn run(
    settings: Settings,
    options: DemoOptions,
    print: impl FnMut(&str) + Send,
) -> anyhow::Result<DemoSummary> {
    run_until(settings, options, CancellationToken::new(), print).await
}

/// [`run`], ended early when `stop` is cancelled: the demo then fails, after stopping its
/// in-process worker gracefully.
pub async fn run_until(
    settings: Settings,
    options: DemoOptions,
    stop: CancellationToken,
    mut print: impl FnMut(&str) + Send,
) -> anyhow::Result<DemoSummary> {
    if !crate::domain::LEASE_SECONDS.contains(&options.lease_seconds) {
        bail!("--lease-seconds must be between 10 and 86400");
    }
    let started = Instant::now();
    let tokens = register_team(&settings, options.agents, options.via_mcp.is_some()).await?;
    // each agent's `phaseflow mcp` reads the configuration as this process did, and the database
    // this process was given
    let mcp = options.via_mcp.clone().map(|program| McpLaunch {
        program,
        env: vec![("DATABASE_URL".to_owned(), settings.database.url.clone())],
        tokens,
    });
    let worker_stop = CancellationToken::new();
    let worker = options
        .in_process_worker
        .then(|| tokio::spawn(crate::worker::run(settings.clone(), worker_stop.clone())));
    let broker = settings.amqp.broker();
    let outcome = tokio::select! {
        outcome = phaseflow_agents::demo::drive(&broker, &options, mcp.as_ref(), started, &mut print) => outcome,
        () = stop.cancelled() => Err(anyhow::anyhow!("the demo was stopped")),
    };
    if let Some(worker) = worker {
        worker_stop.cancel();
        worker.await.context("the in-process worker panicked")??;
    }
    outcome
}
