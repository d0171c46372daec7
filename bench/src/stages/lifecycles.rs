//! The lifecycle stage: tickets from creation to DONE, `--concurrency` at a time, with
//! simulated agents completing every generated task (in dependency order), reporting what the
//! work cost (`usage`) and handing in, with the last task of a phase, artifacts that pass the
//! phase's default gate (`config/workflow.toml`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use phaseflow_client::RequestType;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::Harness;
use crate::cli::Plan;
use crate::report::{ms, round, Latency, LifecycleReport, Report};
use crate::run::progress;
use crate::usage::Usage;
use crate::world::{
    World, CONTEXT_UPDATED, CREATE_OUTCOMES, DONE, GATE_VALIDATED, PHASE_ENTERED,
    PHASE_TRANSITIONED, REQUIREMENTS, TASKS_GENERATED, TASK_OUTCOMES, TRANSITION_OUTCOMES,
};

/// What the lifecycle stage measured.
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

    /// The report, with the processes' `usage` over the stage.
    fn report(&self, usage: &Usage) -> LifecycleReport {
        let mean = if self.latencies_ms.is_empty() {
            0.0
        } else {
            self.latencies_ms.iter().sum::<f64>() / self.latencies_ms.len() as f64
        };
        LifecycleReport {
            tickets: self.requested,
            completed: self.completed,
            seconds: round(self.elapsed.as_secs_f64(), 2),
            per_second: round(self.per_second(), 2),
            mean_latency_ms: round(mean, 1),
            latency_ms: Latency::of(&self.latencies_ms),
            requests: self.requests,
            requests_per_second: round(
                self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9),
                1,
            ),
            errors: self.errors.clone(),
            usage: usage.report(0),
        }
    }
}

/// Runs the stage and writes its part of the report; a ticket that did not reach DONE is a
/// problem.
pub async fn run(harness: &Harness<'_>, report: &mut Report) {
    let plan = harness.plan;
    progress(format!(
        "lifecycle: {} tickets from creation to DONE, {} at a time",
        plan.lifecycles, plan.concurrency
    ));
    let before = harness.meter.sample().await;
    let lifecycles = take_to_done(harness.world, plan).await;
    let after = harness.meter.sample().await;
    harness.world.tap.reset();
    if lifecycles.completed < plan.lifecycles {
        report.problems.push(format!(
            "lifecycle: {} of {} tickets reached DONE; first error: {}",
            lifecycles.completed,
            plan.lifecycles,
            lifecycles.errors.first().map_or("none", String::as_str)
        ));
    }
    report.lifecycles_per_s = Some(round(lifecycles.per_second(), 2));
    report.lifecycle = Some(lifecycles.report(&harness.meter.usage(&before, &after)));
}

/// Takes `plan.lifecycles` tickets to DONE, `plan.concurrency` at a time.
async fn take_to_done(world: &Arc<World>, plan: &Plan) -> LifecycleResult {
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
        RequestType::CreateTicket.as_str(),
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
        RequestType::Transition.as_str(),
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
                RequestType::CompleteTask.as_str(),
                Some(&ticket),
                json!({
                    "task_id": task_id,
                    "status": "completed",
                    "result": {
                        "summary": format!("{task_type} done by the bench agent"),
                        "outputs": {"files": ["src/feature.rs"]},
                        "context": {"decisions": [format!("{task_type}: keep it simple")], "risks": ["none known"], "notes": []},
                        "artifacts": artifacts,
                    },
                    // what an LLM agent's work on a task costs, as agents report it
                    "usage": {"input_tokens": 4000, "output_tokens": 900, "cost_usd": 0.0255},
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
