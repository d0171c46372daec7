//! The team of `phaseflow demo`: simulated agents drive a few tickets from BACKLOG to DONE
//! through the worker(s) behind a broker, showing what phaseflow does: claims
//! and leases, heartbeats, an agent that crashes holding its task (the lease runs out and
//! another agent picks the task up), artifacts handed in for the gates, failing tests that send
//! a ticket back to IMPLEMENTATION, and auto-advance. Its agents report what their work cost, and
//! with a budget the first ticket runs out of money on the way: phaseflow warns, then stops it
//! (BLOCKED). It prints one line per event as it happens and a summary at the end.
//!
//! It is a client like any other: it publishes requests and follows the events exchange, with
//! the protocol crate alone. It decides nothing about the workflow.

mod mcp;
mod team;

pub use mcp::McpLaunch;

use std::collections::HashMap;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use phaseflow_client::broker::{Broker, EventSubscription, OutgoingRequest, RequestClient};
use phaseflow_client::budget::BudgetChange;
use phaseflow_client::events::{PhaseTransitioned, TicketCreated};
use phaseflow_client::requests::claim_task::ClaimTaskData;
use phaseflow_client::requests::create_ticket::CreateTicketData;
use phaseflow_client::requests::transition::TransitionData;
use phaseflow_client::requests::Request;
use phaseflow_client::{Outcome, Phase, Priority, TicketId};
use serde::Serialize;

use team::Team;

/// What the demo does.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// simulated agents
    pub agents: u32,
    /// tickets to drive to DONE
    pub tickets: u32,
    /// the lease of each claim (10 at least): a crashed agent's task waits this long
    pub lease_seconds: u32,
    /// agents that crash holding a task
    pub crashes: u32,
    /// test runs reported failing (each sends its ticket back to IMPLEMENTATION once)
    pub test_failures: u32,
    /// design documents handed in without a component the requirements name (a reviewer asks
    /// for changes when the worker's DESIGN gate requires a review)
    pub incomplete_designs: u32,
    /// the demo fails when the tickets are not all DONE by then
    pub timeout: Duration,
    /// `phaseflow demo` starts a worker in its own process instead of using a running one (the
    /// team works the same either way)
    pub in_process_worker: bool,
    /// the first ticket's budget in US dollars: it runs out on the way, and phaseflow stops it
    /// (the demo ends when every other ticket is DONE)
    pub budget_usd: Option<f64>,
    /// the agents work through MCP instead of AMQP: each runs this `phaseflow` binary as its
    /// own `phaseflow mcp` (stdio) and calls tools
    pub via_mcp: Option<std::path::PathBuf>,
}

/// What happened, counted from the events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DemoSummary {
    pub tickets: u32,
    pub tickets_done: u32,
    /// tickets phaseflow stopped because they used their budget up
    pub tickets_stopped: u32,
    pub tasks_claimed: u32,
    pub tasks_completed: u32,
    pub leases_expired: u32,
    pub regressions: u32,
    /// verdicts of reviewers on gates that require a review
    pub reviews: u32,
    /// of those, the ones that asked for changes
    pub changes_requested: u32,
    /// tokens the finished tasks' work used, input and output together
    pub tokens: u64,
    /// what the finished tasks' work cost, in US dollars
    pub cost_usd: f64,
    pub duration: Duration,
}

impl std::fmt::Display for DemoSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} tickets done in {:.1}s: {} tasks claimed, {} completed, {} leases expired, \
             {} regressions, {} reviews ({} asking for changes); the finished tasks used {} \
             tokens for ${:.2}",
            self.tickets_done,
            self.tickets,
            self.duration.as_secs_f64(),
            self.tasks_claimed,
            self.tasks_completed,
            self.leases_expired,
            self.regressions,
            self.reviews,
            self.changes_requested,
            self.tokens,
            self.cost_usd
        )?;
        if self.tickets_stopped > 0 {
            write!(
                f,
                "; {} ticket(s) stopped by their budget",
                self.tickets_stopped
            )?;
        }
        Ok(())
    }
}

/// Drives `options.tickets` tickets to DONE with `options.agents` simulated agents through the
/// worker(s) behind `broker`, writing each line of its log to `print`. Fails when not every
/// ticket is DONE within `options.timeout` (counted from `started`).
pub async fn drive(
    broker: &Broker,
    options: &DemoOptions,
    mcp: Option<&McpLaunch>,
    started: Instant,
    print: &mut (impl FnMut(&str) + Send),
) -> anyhow::Result<DemoSummary> {
    // the worker declares its queues at start: wait for them before publishing
    let client = connect_when_ready(broker, options.timeout).await?;
    let mut events = EventSubscription::start(broker, "#").await?;
    let (say, mut said) = tokio::sync::mpsc::unbounded_channel();
    let mut labels = HashMap::new();
    let mut tickets = Vec::new();
    for number in 1..=options.tickets {
        let budget = options.budget_usd.filter(|_| number == 1);
        let ticket = create_ticket(&client, number, budget).await?;
        labels.insert(ticket.to_string(), format!("T{number}"));
        tickets.push(ticket);
    }
    let mcp = match mcp {
        Some(launch) => Some(mcp::McpAgents::connect(launch).await?),
        None => None,
    };
    let team = Arc::new(Team {
        client,
        mcp,
        lease_seconds: options.lease_seconds,
        crashes: AtomicU32::new(options.crashes),
        test_failures: AtomicU32::new(options.test_failures),
        incomplete_designs: AtomicU32::new(options.incomplete_designs),
        claims: AtomicU32::new(0),
        say,
        outcome_timeout: Duration::from_secs(30),
        tickets: tickets.clone(),
    });
    print(&format!(
        "{} agents, {} tickets; leases of {}s, {} crash(es), {} failing test run(s)",
        options.agents,
        options.tickets,
        options.lease_seconds,
        options.crashes,
        options.test_failures
    ));
    if team.mcp.is_some() {
        print("the agents work through MCP: each runs its own `phaseflow mcp` and calls tools");
    }
    if let Some(budget) = options.budget_usd {
        print(&format!(
            "T1 may cost ${budget:.2}: phaseflow stops it when its agents' reports reach that"
        ));
    }
    for ticket in &tickets {
        move_to_requirements(&team.client, *ticket).await?;
    }

    let stop = CancellationToken::new();
    let mut agents = tokio::task::JoinSet::new();
    for (index, (agent, roles)) in team_roles(options.agents).into_iter().enumerate() {
        print(&format!(
            "{agent} takes the tasks of the roles {}",
            roles.join(", ")
        ));
        agents.spawn(team::run(team.clone(), agent, index + 1, stop.clone()));
    }

    let mut summary = DemoSummary {
        tickets: options.tickets,
        ..DemoSummary::default()
    };
    let deadline = tokio::time::sleep(options.timeout);
    tokio::pin!(deadline);
    let result = loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { break Err(anyhow::anyhow!("the event subscription ended")) };
                let event = event?;
                let Some(label) = event["subject"].as_str().and_then(|subject| labels.get(subject)) else {
                    continue;
                };
                count(&mut summary, &event);
                // agents ask for work all the time: only what they get is worth a line
                if event["type"] == "task.claim.rejected"
                    && matches!(event["data"]["code"].as_str(), Some("no_task_available" | "budget_exhausted"))
                {
                    continue;
                }
                print(&format!("{:>7.1}s  {label:<3} {}", started.elapsed().as_secs_f64(), describe(&event)));
                if summary.tickets_done + summary.tickets_stopped == options.tickets {
                    break Ok(());
                }
            }
            Some(line) = said.recv() => print(&format!("{:>7.1}s       {line}", started.elapsed().as_secs_f64())),
            Some(ended) = agents.join_next() => {
                // an agent ends early only when a request failed
                break Err(match ended {
                    Ok(Err(error)) => error.context("an agent failed"),
                    Ok(Ok(())) => anyhow::anyhow!("an agent stopped"),
                    Err(error) => anyhow::anyhow!("an agent panicked: {error}"),
                });
            }
            () = &mut deadline => break Err(anyhow::anyhow!(
                "{} of {} tickets reached DONE within {}s",
                summary.tickets_done, options.tickets, options.timeout.as_secs()
            )),
        }
    };
    stop.cancel();
    while agents.join_next().await.is_some() {}
    events.close().await;
    if let Some(team) = Arc::into_inner(team) {
        if let Some(mcp) = team.mcp {
            mcp.close().await;
        }
        team.client.close().await;
    }
    summary.duration = started.elapsed();
    result.map(|()| summary)
}

/// The roles of the shipped workflow, in the order of its phases.
pub const WORKFLOW_ROLES: [&str; 5] = ["analyst", "architect", "developer", "tester", "release"];

/// The demo's agents and their roles: the workflow's roles dealt out in turn (so a team of
/// fewer than five has agents with several roles), and every agent past the fifth one more
/// developer. Each is named after its first role and its place in the team (`analyst-1`).
/// phaseflow must know them by these roles before they claim (`phaseflow demo` registers them).
pub fn team_roles(agents: u32) -> Vec<(String, Vec<String>)> {
    let agents = agents.max(1) as usize;
    (0..agents)
        .map(|index| {
            let mut roles: Vec<String> = WORKFLOW_ROLES
                .iter()
                .enumerate()
                .filter(|(role, _)| role % agents == index)
                .map(|(_, role)| role.to_string())
                .collect();
            if roles.is_empty() {
                roles.push("developer".to_owned());
            }
            (format!("{}-{}", roles[0], index + 1), roles)
        })
        .collect()
}

/// A request client, once the worker's queues exist (so that requests are not returned).
async fn connect_when_ready(broker: &Broker, within: Duration) -> anyhow::Result<RequestClient> {
    let until = Instant::now() + within;
    loop {
        let client = RequestClient::connect(broker, "phaseflow demo").await;
        let probe = match client {
            Ok(client) => match client
                .publish_and_wait(&probe_request()?, Duration::from_secs(10))
                .await
            {
                Ok(_) => return Ok(client),
                Err(error) => {
                    client.close().await;
                    error
                }
            },
            Err(error) => error,
        };
        if Instant::now() >= until {
            return Err(probe.context("no phaseflow worker answered"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A request that changes nothing: a claim for a task type no ticket has.
fn probe_request() -> anyhow::Result<OutgoingRequest> {
    let probe = ClaimTaskData {
        task_types: Some(vec!["phaseflow-demo-probe".to_owned()]),
        ..ClaimTaskData::default()
    };
    request(None, &probe)
}

/// A request of the demo's own (not one of its agents').
fn request<D: Request + Serialize>(
    subject: Option<TicketId>,
    data: &D,
) -> anyhow::Result<OutgoingRequest> {
    let mut request = OutgoingRequest::new("demo/demo", subject, data)?;
    request.actor = Some("demo".to_owned());
    Ok(request)
}

async fn create_ticket(
    client: &RequestClient,
    number: u32,
    budget_usd: Option<f64>,
) -> anyhow::Result<TicketId> {
    let titles = [
        "Login with passkeys",
        "Export reports as CSV",
        "Rate-limit the public API",
        "Dark mode",
        "Audit log",
    ];
    let title = format!(
        "{} (demo {number})",
        titles[(number as usize - 1) % titles.len()]
    );
    let create = CreateTicketData {
        title,
        description: None,
        priority: Some(Priority::High),
        auto_advance: None,
        budget: budget_usd.map(|cost_usd| BudgetChange {
            tokens: None,
            cost_usd: Some(Some(cost_usd)),
        }),
    };
    let created = client
        .request(&request(None, &create)?, Duration::from_secs(30))
        .await?;
    match created.outcome::<TicketCreated>()? {
        Outcome::Succeeded(created) => Ok(created.data.ticket_id),
        Outcome::Rejected(refused) => bail!("the ticket was not created: {:?}", refused.data),
    }
}

async fn move_to_requirements(client: &RequestClient, ticket: TicketId) -> anyhow::Result<()> {
    let transition = TransitionData {
        to_phase: Some(Phase::Requirements),
        reason: "picked up by the demo team".to_owned(),
        ..TransitionData::default()
    };
    let moved = client
        .request(
            &request(Some(ticket), &transition)?,
            Duration::from_secs(30),
        )
        .await?;
    match moved.outcome::<PhaseTransitioned>()? {
        Outcome::Succeeded(_) => Ok(()),
        Outcome::Rejected(refused) => {
            bail!("the ticket did not leave the backlog: {:?}", refused.data)
        }
    }
}

fn count(summary: &mut DemoSummary, event: &Value) {
    let data = &event["data"];
    match event["type"].as_str().unwrap_or_default() {
        "task.claimed" => summary.tasks_claimed += 1,
        "task.completed" => summary.tasks_completed += 1,
        "phase.transitioned"
            if data["current_phase"] == "PHASE_BLOCKED"
                && data["reason"]
                    .as_str()
                    .is_some_and(|reason| reason.starts_with("budget exceeded")) =>
        {
            summary.tickets_stopped += 1
        }
        "task.lease.expired" => summary.leases_expired += 1,
        "phase.transitioned"
            if data["previous_phase"] == "PHASE_TESTING"
                && data["current_phase"] == "PHASE_IMPLEMENTATION" =>
        {
            summary.regressions += 1
        }
        "phase.entered" if data["phase_id"] == "PHASE_DONE" => summary.tickets_done += 1,
        "gate.reviewed" => {
            summary.reviews += 1;
            if data["verdict"] == "changes_requested" {
                summary.changes_requested += 1;
            }
        }
        _ => {}
    }
    if matches!(
        event["type"].as_str(),
        Some("task.completed" | "task.failed")
    ) {
        let usage = &data["usage"];
        let tokens = |name: &str| usage[name].as_u64().unwrap_or(0);
        summary.tokens += tokens("input_tokens") + tokens("output_tokens");
        summary.cost_usd += usage["cost_usd"].as_f64().unwrap_or(0.0);
    }
}

/// One line about an event.
fn describe(event: &Value) -> String {
    let data = &event["data"];
    let text = |name: &str| data[name].as_str().unwrap_or_default().to_owned();
    let phase = |name: &str| text(name).trim_start_matches("PHASE_").to_owned();
    let kind = event["type"].as_str().unwrap_or_default();
    let detail = match kind {
        "ticket.created" => text("title"),
        "phase.transitioned" => format!(
            "{} -> {} by {}: {}",
            phase("previous_phase"),
            phase("current_phase"),
            text("transitioned_by"),
            text("reason")
        ),
        "phase.entered" => phase("phase_id"),
        "tasks.generated" => data["generated_tasks"]
            .as_array()
            .map(|tasks| {
                tasks
                    .iter()
                    .filter_map(|task| task["task_type"].as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
        "task.claimed" => format!(
            "{} -> {} (attempt {})",
            text("task_type"),
            text("claimed_by"),
            data["attempt"]
        ),
        "task.lease.extended" => format!("lease of {} renewed", text("claimed_by")),
        "task.released" => format!("released by {}", text("released_by")),
        "task.lease.expired" => format!(
            "lease of {} ran out (attempt {})",
            text("claimed_by"),
            data["attempt"]
        ),
        "task.completed" | "task.failed" => format!(
            "{} ({} tokens, ${:.3})",
            text("task_type"),
            data["usage"]["input_tokens"].as_u64().unwrap_or(0)
                + data["usage"]["output_tokens"].as_u64().unwrap_or(0),
            data["usage"]["cost_usd"].as_f64().unwrap_or(0.0)
        ),
        "budget.warning" | "budget.exceeded" => format!(
            "{} of its {} budget spent ({} of {})",
            if kind == "budget.warning" {
                "80 %"
            } else {
                "all"
            },
            text("limit"),
            data["spent"],
            data["budget"]
        ),
        "gate.validated" => format!("{} {}", phase("phase_id"), text("gate_status")),
        "context.updated" => format!(
            "{} aggregated ({} tokens)",
            phase("phase_id"),
            data["summary_tokens"]
        ),
        "artifact.collected" => text("artifact_type"),
        "gate.review.requested" => format!(
            "{} waits for a review (authors: {})",
            phase("phase_id"),
            data["authors"]
                .as_array()
                .map(|authors| authors
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ),
        "gate.reviewed" => format!(
            "{} by {}: {}",
            text("verdict"),
            text("reviewer"),
            data["reasons"]
        ),
        _ if kind.ends_with(".rejected") => format!("{}: {}", text("code"), data["reasons"]),
        _ => String::new(),
    };
    format!("{kind:<20} {detail}")
}
