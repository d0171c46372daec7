//! One simulated agent of `phaseflow demo`: the loop a real agent runs. Claim the next task of
//! a ticket, work on it (renewing the lease once meanwhile), hand in the result with the
//! artifacts its phase's gate asks for, and start again. When the demo asks it to, it crashes
//! holding its task, which then waits for its lease to run out, and reports failing tests.
//!
//! It talks to phaseflow only through requests on the broker, like any agent, or, with
//! `--via mcp`, through tool calls to its own MCP server.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use phaseflow_client::broker::{OutgoingRequest, RequestClient};
use phaseflow_client::events::TaskClaimed;
use phaseflow_client::requests::claim_task::ClaimTaskData;
use phaseflow_client::requests::complete_task::{
    CompleteTaskData, TaskContext, TaskReportData, TaskResult,
};
use phaseflow_client::requests::heartbeat_task::{HeartbeatTaskData, LeaseRenewal, Progress};
use phaseflow_client::requests::Request;
use phaseflow_client::usage::Usage;
use phaseflow_client::{Envelope, Outcome, Phase, TicketId};

/// What every agent of one demo shares.
pub(super) struct Team {
    pub client: RequestClient,
    /// each agent's MCP session, when the agents work through MCP
    pub mcp: Option<super::mcp::McpAgents>,
    pub lease_seconds: u32,
    /// crashes still to stage
    pub crashes: AtomicU32,
    /// failing test runs still to report
    pub test_failures: AtomicU32,
    /// design documents still to hand in without one of the components the requirements name
    pub incomplete_designs: AtomicU32,
    /// claims so far, across agents
    pub claims: AtomicU32,
    /// what agents say about themselves, for the demo's log
    pub say: tokio::sync::mpsc::UnboundedSender<String>,
    /// how long one request may wait for its outcome
    pub outcome_timeout: Duration,
    /// the demo's tickets: agents claim only their tasks, never other work on the same broker
    pub tickets: Vec<TicketId>,
}

impl Team {
    /// Sends a request as `agent` and returns its outcome.
    async fn request<D: Request + Serialize>(
        &self,
        agent: &str,
        subject: Option<TicketId>,
        data: &D,
    ) -> anyhow::Result<Envelope> {
        let mut request = OutgoingRequest::new(format!("demo/{agent}"), subject, data)?;
        request.actor = Some(agent.to_owned());
        self.client.request(&request, self.outcome_timeout).await
    }

    /// Claims the next task of `ticket` as `agent`: the claim, or `None` when there is none
    /// (or the claim was refused).
    async fn claim(
        &self,
        agent: &str,
        ticket: TicketId,
        claim: &ClaimTaskData,
    ) -> anyhow::Result<Option<TaskClaimed>> {
        let Some(mcp) = &self.mcp else {
            let claimed = self.request(agent, Some(ticket), claim).await?;
            return Ok(match claimed.outcome::<TaskClaimed>()? {
                Outcome::Succeeded(claimed) => Some(claimed.data),
                Outcome::Rejected(_) => None,
            });
        };
        let mut arguments = arguments_of(claim)?;
        arguments.insert("ticket_id".to_owned(), json!(ticket));
        match mcp.call(agent, "claim_task", arguments).await? {
            Some(answer) if !answer["task"].is_null() => {
                Ok(Some(serde_json::from_value(answer["task"].clone())?))
            }
            _ => Ok(None),
        }
    }

    /// Sends a heartbeat or a report as `agent` (by the tool of the same name over MCP); a
    /// refusal is no failure (the lease may have run out meanwhile).
    async fn report<D: Request + Serialize>(
        &self,
        agent: &str,
        ticket: TicketId,
        tool: &str,
        data: &D,
    ) -> anyhow::Result<()> {
        match &self.mcp {
            Some(mcp) => {
                mcp.call(agent, tool, arguments_of(data)?).await?;
            }
            None => {
                self.request(agent, Some(ticket), data).await?;
            }
        }
        Ok(())
    }

    /// Takes one from a budget; `true` when there was one left.
    fn spend(budget: &AtomicU32) -> bool {
        budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    }
}

/// Works until `stop`: claims, works, reports; a failed request ends the agent with its error.
/// It asks each of the demo's tickets in turn for its next claimable task.
pub(super) async fn run(
    team: Arc<Team>,
    agent: String,
    first_ticket: usize,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut turn = first_ticket;
    while !stop.is_cancelled() {
        let asked = &team.tickets[turn % team.tickets.len()];
        turn += 1;
        let claim = ClaimTaskData {
            lease_seconds: Some(team.lease_seconds),
            ..ClaimTaskData::default()
        };
        let Some(claimed) = team.claim(&agent, *asked, &claim).await? else {
            // nothing to do there now (tasks wait for their dependencies or the next phase)
            pause(&stop, Duration::from_millis(100)).await;
            continue;
        };
        let TaskClaimed {
            ticket_id,
            task_id,
            task_type,
            phase_id,
            claim_id,
            ..
        } = claimed;
        // every fourth claim, while the budget lasts, the agent dies holding its task
        let claim_number = team.claims.fetch_add(1, Ordering::Relaxed) + 1;
        if claim_number % 4 == 2 && Team::spend(&team.crashes) {
            let _ = team.say.send(format!(
                "{agent} crashes holding {task_type}: an agent takes it over once its lease runs out in {}s",
                team.lease_seconds
            ));
            pause(&stop, Duration::from_millis(500)).await;
            continue;
        }

        pause(&stop, work_time()).await;
        let heartbeat = HeartbeatTaskData {
            task_id,
            renewal: LeaseRenewal {
                claim_id: Some(claim_id),
                progress: Some(Progress {
                    note: Some(format!("{task_type} under way")),
                    percent: Some(50),
                    step: Some("halfway".to_owned()),
                }),
                usage: Some(work_usage()),
                ..LeaseRenewal::default()
            },
        };
        team.report(&agent, ticket_id, "heartbeat", &heartbeat)
            .await?;
        pause(&stop, work_time()).await;

        let failing = task_type == "run_tests" && Team::spend(&team.test_failures);
        if failing {
            let _ = team.say.send(format!(
                "{agent} reports failing tests: the ticket regresses"
            ));
        }
        let incomplete = task_type == "create_design_doc" && Team::spend(&team.incomplete_designs);
        if incomplete {
            let _ = team.say.send(format!(
                "{agent} hands in a design that leaves out a component the requirements name"
            ));
        }
        // rework after a review hands in the reviewed phase's document again, complete
        let handed_in = match (task_type.as_str(), phase_id) {
            ("address_review_feedback", Phase::Design) => "create_design_doc",
            (task_type, _) => task_type,
        };
        let result = TaskResult {
            summary: Some(format!("{task_type} done by {agent}")),
            context: Some(TaskContext {
                decisions: Some(vec![json!(format!("{task_type}: keep it simple"))]),
                ..TaskContext::default()
            }),
            artifacts: Some(serde_json::from_value(artifacts_for(
                handed_in, failing, incomplete,
            ))?),
            ..TaskResult::default()
        };
        let report = CompleteTaskData {
            task_id,
            report: TaskReportData {
                claim_id: Some(claim_id),
                result: Some(result),
                usage: Some(work_usage()),
                ..TaskReportData::default()
            },
        };
        team.report(&agent, ticket_id, "complete_task", &report)
            .await?;
    }
    Ok(())
}

/// A request's `data` as a tool's arguments.
fn arguments_of(data: &impl Serialize) -> anyhow::Result<serde_json::Map<String, Value>> {
    match serde_json::to_value(data)? {
        Value::Object(arguments) => Ok(arguments),
        other => anyhow::bail!("a request's data is not an object: {other}"),
    }
}

/// What a stretch of a simulated agent's work costs: a few thousand tokens read, a few hundred
/// written, at a model's list price of $3 per million tokens read and $15 per million written.
fn work_usage() -> Usage {
    let random = Uuid::new_v4().as_u128();
    let input_tokens = 2_000 + (random % 10_000) as u64;
    let output_tokens = 300 + ((random >> 64) % 2_200) as u64;
    Usage {
        input_tokens,
        output_tokens,
        cost_usd: (input_tokens as f64 * 3.0 + output_tokens as f64 * 15.0) / 1_000_000.0,
    }
}

/// The components every demo ticket's requirements name (and its design must cover).
const COMPONENTS: [&str; 3] = ["passkey registration", "login", "account recovery"];

/// What a task hands in for its phase's gate and for the reference reviewer's shipped rules
/// (other task types hand in nothing).
fn artifacts_for(task_type: &str, failing_tests: bool, incomplete_design: bool) -> Value {
    match task_type {
        "create_requirements_doc" => json!([{
            "artifact_type": "requirements_document",
            "artifact_path": "docs/requirements.md",
            "artifact_content": {
                "length": 1200,
                "sections": ["scope", "acceptance_criteria"],
                "acceptance_criteria": [
                    "a user registers a passkey",
                    "a user logs in with it",
                    "a user who lost it recovers the account",
                ],
                "components": COMPONENTS,
            },
        }]),
        "create_design_doc" => {
            let covered = if incomplete_design {
                &COMPONENTS[..COMPONENTS.len() - 1]
            } else {
                &COMPONENTS[..]
            };
            json!([{
                "artifact_type": "design_document",
                "artifact_path": "docs/design.md",
                "artifact_content": {"sections": ["architecture", "data_model"], "components": covered},
            }])
        }
        "implement_feature" => json!([{
            "artifact_type": "code_changes",
            "artifact_content": {"has_tests": true, "files": 6},
        }]),
        "write_unit_tests" => json!([{
            "artifact_type": "test_coverage",
            "artifact_content": {"percentage": 86},
        }]),
        "run_tests" => json!([{
            "artifact_type": "test_results",
            "artifact_content": {
                "all_passed": !failing_tests,
                "total": 48,
                "failures": if failing_tests { 3 } else { 0 },
            },
        }]),
        "verify_deployment" => json!([{
            "artifact_type": "deployment_record",
            "artifact_content": {"status": "succeeded"},
        }]),
        _ => json!([]),
    }
}

/// A short, varying time spent working.
fn work_time() -> Duration {
    Duration::from_millis(60 + (Uuid::new_v4().as_u128() % 200) as u64)
}

async fn pause(stop: &CancellationToken, duration: Duration) {
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        () = stop.cancelled() => {}
    }
}
