//! The driver's workload: tickets cycling REQUIREMENTS ⇄ BLOCKED, published closed loop (a fixed
//! number in flight) or open loop (a fixed rate), and what one load run measured. A transition
//! is done when its `phase.transitioned` arrived; its ticket is used again only once the
//! `context.updated` its `phase.entered` caused arrived too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use phaseflow_client::RequestType;
use serde_json::json;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::report::ms;
use crate::world::{
    Arrived, World, BLOCKED, CONTEXT_UPDATED, CREATE_OUTCOMES, PHASE_ENTERED, REQUIREMENTS,
    TRANSITION_OUTCOMES,
};

/// A ticket of the steady workload and the phase it is in.
#[derive(Debug, Clone)]
pub struct CyclingTicket {
    pub id: String,
    pub phase: &'static str,
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
pub async fn prepare_tickets(
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
        RequestType::CreateTicket.as_str(),
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
pub struct PendingTransition {
    id: String,
    sent: Instant,
    sent_wall: DateTime<Utc>,
    outcome: oneshot::Receiver<Arrived>,
    entered: oneshot::Receiver<Arrived>,
}

pub async fn publish_transition(
    world: &World,
    ticket: &str,
    to: &str,
    reason: &str,
) -> anyhow::Result<PendingTransition> {
    let request = world.request(
        RequestType::Transition.as_str(),
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
pub async fn finish_transition(
    world: &World,
    pending: PendingTransition,
    since: Option<Instant>,
) -> anyhow::Result<Timing> {
    finish_transition_releasing(world, pending, since, None).await
}

/// How long one transition took, and where: `to_worker` runs from the publish to the start of
/// the worker's transaction (`transitioned_at` is the transaction's `now()`), `after_worker`
/// from there to the event's arrival (transaction, commit, outbox relay, delivery).
pub struct Timing {
    pub latency: Duration,
    pub to_worker: Option<f64>,
    pub after_worker: Option<f64>,
}

pub async fn finish_transition_releasing(
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
pub struct LoadResult {
    pub completed: u64,
    pub failed: u64,
    pub latencies_ms: Vec<f64>,
    pub to_worker_ms: Vec<f64>,
    pub after_worker_ms: Vec<f64>,
    /// until the last request's follow-up work finished
    pub elapsed: Duration,
    /// sends that started more than 5 ms after their scheduled time (open loop)
    pub late_sends: u64,
    pub errors: Vec<String>,
}

impl LoadResult {
    pub fn record(&mut self, result: anyhow::Result<Timing>) {
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

    pub fn throughput(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.completed as f64 / seconds
        } else {
            0.0
        }
    }
}

/// Keeps exactly `concurrency` transitions in flight for `duration`, then waits for every
/// request and its follow-up work. Returns the tickets for the next run.
pub async fn closed_loop(
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
pub async fn open_loop(
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

/// Adds a segment's figures to a total (its `elapsed` too: segments run one after another).
pub fn merge(total: &mut LoadResult, segment: LoadResult) {
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

/// Adds a problem when `load` had failures or no completed request.
pub fn check_load(stage: &str, load: &LoadResult, problems: &mut Vec<String>) {
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
