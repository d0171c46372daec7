//! One simulated agent of `phaseflow demo`: the loop a real agent runs. Claim the next task of
//! a ticket, work on it (renewing the lease once meanwhile), hand in the result with the
//! artifacts its phase's gate asks for, and start again. When the demo asks it to, it crashes
//! holding its task, which then waits for its lease to run out, and reports failing tests.
//!
//! It talks to phaseflow only through requests on the broker, like any agent.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::messaging::client::{OutgoingRequest, RequestClient};

/// What every agent of one demo shares.
pub(super) struct Team {
    pub client: RequestClient,
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
    pub tickets: Vec<String>,
}

impl Team {
    async fn request(
        &self,
        agent: &str,
        request_type: &str,
        subject: Option<&str>,
        data: Value,
    ) -> anyhow::Result<Value> {
        let request = OutgoingRequest {
            id: Uuid::new_v4().to_string(),
            request_type: request_type.to_owned(),
            subject: subject.map(str::to_owned),
            source: format!("demo/{agent}"),
            actor: Some(agent.to_owned()),
            correlation_id: None,
            data,
        };
        self.client
            .publish_and_wait(&request, self.outcome_timeout)
            .await
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
        let claimed = team
            .request(
                &agent,
                "task.claim.requested",
                Some(asked),
                json!({"lease_seconds": team.lease_seconds}),
            )
            .await?;
        if claimed["type"] != "task.claimed" {
            // nothing to do there now (tasks wait for their dependencies or the next phase)
            pause(&stop, Duration::from_millis(100)).await;
            continue;
        }
        let data = &claimed["data"];
        let ticket = data["ticket_id"].as_str().unwrap_or_default().to_owned();
        let task = data["task_id"].as_str().unwrap_or_default().to_owned();
        let task_type = data["task_type"].as_str().unwrap_or_default().to_owned();
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
        team.request(
            &agent,
            "task.heartbeat.requested",
            Some(&ticket),
            json!({"task_id": task}),
        )
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
        let handed_in = match (task_type.as_str(), data["phase_id"].as_str()) {
            ("address_review_feedback", Some("PHASE_DESIGN")) => "create_design_doc",
            (task_type, _) => task_type,
        };
        let result = json!({
            "summary": format!("{task_type} done by {agent}"),
            "context": {"decisions": [format!("{task_type}: keep it simple")]},
            "artifacts": artifacts_for(handed_in, failing, incomplete),
        });
        team.request(
            &agent,
            "task.complete.requested",
            Some(&ticket),
            json!({"task_id": task, "result": result}),
        )
        .await?;
    }
    Ok(())
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
