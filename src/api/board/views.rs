//! The bodies the board's endpoints answer with, one type each (`openapi.json` describes them
//! from these types, and a Rust client reads them back as them), and the ticket's timeline assembled from its stored rows.
//!
//! Field order is the order of the members on the wire. No I/O here.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::TelemetrySettings;
use crate::domain::{GateStatus, Phase, Priority, TaskId, TaskStatus, TicketId};
use crate::messaging::dead_letters::{DeadLetter, QueueDepth};
use crate::protocol::events;
use crate::store::board::{CardRecord, ExpiryRecord, ReplayRecord, ReplicaRecord, TicketArtifact};
use crate::workflow::board::{Column, TicketFile};

/// Who the bearer token belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Me")]
pub struct MeView {
    pub agent: String,
    /// whether the agent is an operator, registered as one or listed in `auth.operators` (may
    /// force, release, replay and manage agents)
    pub operator: bool,
    /// its roles (`*`: every role)
    pub roles: Vec<String>,
    /// whether it has a record (else its token is a configured one)
    pub registered: bool,
}

/// A ticket on the board.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "BoardCard")]
pub struct CardView {
    pub ticket_id: TicketId,
    pub title: String,
    pub priority: Priority,
    pub phase_id: Phase,
    /// tasks of the current visit of the phase that are completed
    pub tasks_done: i64,
    /// tasks of the current visit of the phase
    pub tasks_total: i64,
    /// the latest gate result of the current visit; null before the gate was validated
    pub gate_status: Option<GateStatus>,
    /// the first reason that result gave (a blocking reason, else a missing artifact)
    pub blocking_reason: Option<String>,
    /// agents holding a live lease on one of the ticket's tasks
    pub claimed_by: Vec<String>,
    /// its token budget (input and output together; null: no limit)
    pub budget_tokens: Option<u64>,
    /// its budget in US dollars (null: no limit)
    pub budget_cost_usd: Option<f64>,
    /// tokens its work used so far (input and output together)
    pub spent_tokens: u64,
    /// what its work cost so far, in US dollars
    pub spent_cost_usd: f64,
    /// when the ticket entered its phase
    #[serde(with = "events::time")]
    #[schemars(with = "DateTime<Utc>")]
    pub entered_phase_at: DateTime<Utc>,
    #[serde(with = "events::time")]
    #[schemars(with = "DateTime<Utc>")]
    pub updated_at: DateTime<Utc>,
}

impl From<&CardRecord> for CardView {
    fn from(card: &CardRecord) -> Self {
        CardView {
            ticket_id: card.ticket_id,
            title: card.title.clone(),
            priority: card.priority,
            phase_id: card.phase,
            tasks_done: card.tasks_done,
            tasks_total: card.tasks_total,
            gate_status: card.gate_status,
            blocking_reason: card.blocking_reasons.first().cloned().or_else(|| {
                card.missing_artifacts
                    .first()
                    .map(|artifact| format!("missing artifact: {artifact}"))
            }),
            claimed_by: card.claimed_by.clone(),
            budget_tokens: card.budget.tokens,
            budget_cost_usd: card.budget.cost_usd,
            spent_tokens: card.spent.input_tokens + card.spent.output_tokens,
            spent_cost_usd: card.spent.cost_usd,
            entered_phase_at: card.entered_phase_at,
            updated_at: card.updated_at,
        }
    }
}

/// The tickets of one phase that match the filters, a page at a time.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "BoardColumn")]
pub struct ColumnView {
    pub phase_id: Phase,
    /// the phase's lowercase name
    pub name: String,
    /// how many tickets of the phase match the filters
    pub total: i64,
    /// most recently updated first
    pub cards: Vec<CardView>,
    /// Pass as `cursor` for the column's next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl From<&Column> for ColumnView {
    fn from(column: &Column) -> Self {
        ColumnView {
            phase_id: column.phase,
            name: column.phase.short_name().to_owned(),
            total: column.total,
            cards: column.cards.items.iter().map(CardView::from).collect(),
            next_cursor: column.cards.next_cursor.clone(),
        }
    }
}

/// Every column: the normal sequence, then PHASE_BLOCKED.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Board")]
pub struct BoardView {
    pub columns: Vec<ColumnView>,
}

/// What happened to a ticket, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Timeline")]
pub struct TimelineView {
    pub ticket_id: TicketId,
    pub entries: Vec<TimelineEntry>,
}

/// One thing that happened to a ticket.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TimelineEntry {
    #[serde(with = "events::time")]
    #[schemars(with = "DateTime<Utc>")]
    pub at: DateTime<Utc>,
    pub kind: TimelineKind,
    /// the phase it happened in (the phase entered, for a move)
    pub phase_id: Option<Phase>,
    /// the agent whose request did it, or `system`
    pub actor: String,
    pub summary: String,
    /// the reason given (a move's reason, a gate's blocking reasons, a review's reasons, a
    /// failure's error)
    pub reason: Option<String>,
    /// the correlation id of the request (kept for moves)
    pub correlation_id: Option<String>,
    /// an operator forced the move past its gate
    pub forced: bool,
    /// the W3C trace id (32 hex digits) of the request, lease sweep or stall check that did it
    /// (`null` for what was stored before trace ids were kept)
    pub trace_id: Option<String>,
    /// `trace_id` in the tracing backend (`telemetry.trace_url`), when one is configured
    pub trace_url: Option<String>,
}

/// What a timeline entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimelineKind {
    Created,
    Transitioned,
    TaskCreated,
    TaskClaimed,
    TaskCompleted,
    TaskFailed,
    ArtifactSubmitted,
    GateValidated,
    GateReviewed,
}

impl TimelineView {
    /// The timeline of everything stored about a ticket; trace ids link to the backend
    /// `telemetry` names.
    pub fn new(file: &TicketFile, telemetry: &TelemetrySettings) -> Self {
        let mut entries = Vec::new();
        let entry = |at, kind, phase_id, actor: &str, summary: String, trace: &Option<String>| {
            TimelineEntry {
                at,
                kind,
                phase_id,
                actor: actor.to_owned(),
                summary,
                reason: None,
                correlation_id: None,
                forced: false,
                trace_id: trace.clone(),
                trace_url: trace.as_deref().and_then(|id| telemetry.trace_link(id)),
            }
        };
        for row in &file.history {
            let (kind, summary) = match row.from_phase {
                None => (
                    TimelineKind::Created,
                    format!("created in {}", row.to_phase.as_str()),
                ),
                Some(from) => (
                    TimelineKind::Transitioned,
                    format!(
                        "{} → {}{}",
                        from.as_str(),
                        row.to_phase.as_str(),
                        if row.regression { " (regression)" } else { "" }
                    ),
                ),
            };
            entries.push(TimelineEntry {
                reason: Some(row.transition_reason.clone()),
                correlation_id: row.correlation_id.clone(),
                forced: row.forced,
                ..entry(
                    row.created_at,
                    kind,
                    Some(row.to_phase),
                    &row.transitioned_by,
                    summary,
                    &row.trace_id,
                )
            });
        }
        for task in &file.tasks {
            entries.push(entry(
                task.created_at,
                TimelineKind::TaskCreated,
                Some(task.phase),
                "system",
                format!("task {} created: {}", task.task_type, task.description),
                &task.traces.created,
            ));
            let holder = task.claimed_by.as_deref().unwrap_or("unknown");
            if let (TaskStatus::Claimed, Some(expires), Some(seconds)) =
                (task.status, task.lease_expires_at, task.lease_seconds)
            {
                entries.push(entry(
                    expires - chrono::Duration::seconds(i64::from(seconds)),
                    TimelineKind::TaskClaimed,
                    Some(task.phase),
                    holder,
                    format!("task {} claimed (attempt {})", task.task_type, task.attempt),
                    &task.traces.claimed,
                ));
            }
            if let Some(done) = task.completed_at {
                let (kind, verb) = match task.status {
                    TaskStatus::Failed => (TimelineKind::TaskFailed, "failed"),
                    _ => (TimelineKind::TaskCompleted, "completed"),
                };
                entries.push(TimelineEntry {
                    reason: task.error.clone(),
                    ..entry(
                        done,
                        kind,
                        Some(task.phase),
                        holder,
                        format!("task {} {verb}", task.task_type),
                        &task.traces.finished,
                    )
                });
            }
        }
        for artifact in &file.artifacts {
            let path = artifact
                .artifact_path
                .as_deref()
                .map(|path| format!(" at {path}"))
                .unwrap_or_default();
            entries.push(entry(
                artifact.collected_at,
                TimelineKind::ArtifactSubmitted,
                Some(artifact.phase),
                &artifact.collected_by,
                format!("artifact {}{path}", artifact.artifact_type),
                &artifact.trace_id,
            ));
        }
        for result in &file.gate_results {
            let reasons: Vec<String> = result
                .blocking_reasons
                .iter()
                .cloned()
                .chain(
                    result
                        .missing_artifacts
                        .iter()
                        .map(|artifact| format!("missing artifact: {artifact}")),
                )
                .collect();
            entries.push(TimelineEntry {
                reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
                ..entry(
                    result.validated_at,
                    TimelineKind::GateValidated,
                    Some(result.phase),
                    &result.validated_by,
                    format!(
                        "gate of {}: {}",
                        result.phase.as_str(),
                        result.status.as_str()
                    ),
                    &result.trace_id,
                )
            });
        }
        for review in &file.reviews {
            entries.push(TimelineEntry {
                reason: (!review.reasons.is_empty()).then(|| review.reasons.join("; ")),
                ..entry(
                    review.created_at,
                    TimelineKind::GateReviewed,
                    Some(review.phase),
                    &review.reviewer,
                    format!(
                        "review of {}: {}",
                        review.phase.as_str(),
                        review.verdict.as_str()
                    ),
                    &review.trace_id,
                )
            });
        }
        // stable: what happened at the same instant keeps the order above
        entries.sort_by_key(|entry| entry.at);
        TimelineView {
            ticket_id: file.ticket.id,
            entries,
        }
    }
}

/// A ticket's artifacts of every phase, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Artifacts")]
pub struct ArtifactsView {
    pub ticket_id: TicketId,
    pub artifacts: Vec<ArtifactView>,
}

/// One collected artifact.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Artifact")]
pub struct ArtifactView {
    pub phase_id: Phase,
    pub artifact_type: String,
    pub artifact_path: Option<String>,
    /// the artifact's content as submitted (any JSON)
    pub content: Option<Value>,
    pub collected_by: String,
    /// the task whose report carried it
    pub task_id: Option<TaskId>,
    #[serde(with = "events::time")]
    #[schemars(with = "DateTime<Utc>")]
    pub collected_at: DateTime<Utc>,
}

impl From<&TicketArtifact> for ArtifactView {
    fn from(artifact: &TicketArtifact) -> Self {
        ArtifactView {
            phase_id: artifact.phase,
            artifact_type: artifact.artifact_type.clone(),
            artifact_path: artifact.artifact_path.clone(),
            content: artifact.content.clone(),
            collected_by: artifact.collected_by.clone(),
            task_id: artifact.task_id,
            collected_at: artifact.collected_at,
        }
    }
}

/// The running system as far as the API can know it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Operations")]
pub struct OperationsView {
    /// every worker and API process that reported itself in the last day
    pub replicas: Vec<ReplicaView>,
    pub queues: QueuesView,
    pub outbox: OutboxView,
    pub leases: LeasesView,
    /// the 20 latest replays of dead letters by operators, newest first
    pub recent_replays: Vec<ReplayView>,
}

/// A worker or API process, as it last reported itself.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Replica")]
pub struct ReplicaView {
    pub replica_id: String,
    /// `worker` or `api`
    pub kind: String,
    pub host: String,
    pub pid: i32,
    #[serde(with = "events::time")]
    #[schemars(with = "DateTime<Utc>")]
    pub started_at: DateTime<Utc>,
    #[serde(with = "events::time")]
    #[schemars(with = "DateTime<Utc>")]
    pub last_seen_at: DateTime<Utc>,
    /// whether it took work at its last report
    pub ready: bool,
    /// messages being applied (worker) or requests being served (API) at its last report
    pub in_flight: i64,
    /// messages or requests finished since it started
    pub handled: i64,
    /// not heard from for three report intervals: stopped, or cut off from Postgres
    pub stale: bool,
}

impl ReplicaView {
    pub fn new(replica: &ReplicaRecord, report_interval: std::time::Duration) -> Self {
        ReplicaView {
            replica_id: replica.replica_id.clone(),
            kind: replica.kind.clone(),
            host: replica.host.clone(),
            pid: replica.pid,
            started_at: replica.started_at,
            last_seen_at: replica.last_seen_at,
            ready: replica.ready,
            in_flight: replica.in_flight,
            handled: replica.handled,
            stale: replica.silent_for > 3.0 * report_interval.as_secs_f64(),
        }
    }
}

/// The worker's queues, as RabbitMQ reports them.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct QueuesView {
    /// whether RabbitMQ answered
    pub reachable: bool,
    /// why RabbitMQ could not be asked
    pub error: Option<String>,
    /// null when not declared yet (no worker started) or RabbitMQ could not be asked
    pub requests: Option<QueueView>,
    pub dead_letter: Option<QueueView>,
}

/// One queue.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct QueueView {
    pub name: String,
    /// messages ready for delivery (not those delivered and unacknowledged)
    pub messages: u32,
    pub consumers: u32,
}

impl From<&QueueDepth> for QueueView {
    fn from(depth: &QueueDepth) -> Self {
        QueueView {
            name: depth.name.clone(),
            messages: depth.messages,
            consumers: depth.consumers,
        }
    }
}

/// Events written and not published yet.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct OutboxView {
    pub backlog: i64,
    /// seconds since the oldest unpublished event was written; null when there is none
    pub oldest_age_seconds: Option<f64>,
}

/// Claims now, and leases that ran out lately.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LeasesView {
    /// tasks claimed now
    pub live: i64,
    /// the 20 latest expiries, newest first
    pub recent_expiries: Vec<ExpiryView>,
}

/// A lease that ran out.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ExpiryView {
    pub ticket_id: TicketId,
    pub task_id: TaskId,
    pub task_type: String,
    pub claimed_by: String,
    pub attempt: i32,
    /// whether it failed the task (its attempts were used up)
    pub failed: bool,
    #[serde(with = "events::time")]
    #[schemars(with = "DateTime<Utc>")]
    pub expired_at: DateTime<Utc>,
}

impl From<&ExpiryRecord> for ExpiryView {
    fn from(expiry: &ExpiryRecord) -> Self {
        ExpiryView {
            ticket_id: expiry.ticket_id,
            task_id: expiry.task_id,
            task_type: expiry.task_type.clone(),
            claimed_by: expiry.claimed_by.clone(),
            attempt: expiry.attempt,
            failed: expiry.failed,
            expired_at: expiry.expired_at,
        }
    }
}

/// A dead letter an operator replayed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ReplayView {
    pub message_id: String,
    pub routing_key: String,
    /// why it had been dead-lettered
    pub reason: Option<String>,
    pub replayed_by: String,
    #[serde(with = "events::time")]
    #[schemars(with = "DateTime<Utc>")]
    pub replayed_at: DateTime<Utc>,
}

impl From<&ReplayRecord> for ReplayView {
    fn from(replay: &ReplayRecord) -> Self {
        ReplayView {
            message_id: replay.message_id.clone(),
            routing_key: replay.routing_key.clone(),
            reason: replay.reason.clone(),
            replayed_by: replay.replayed_by.clone(),
            replayed_at: replay.replayed_at,
        }
    }
}

/// Messages of the dead-letter queue, oldest first, left in the queue.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "DeadLetters")]
pub struct DeadLettersView {
    pub dead_letters: Vec<DeadLetterView>,
    /// messages in the dead-letter queue (null when it is not declared yet)
    pub total: Option<u32>,
}

/// A dead letter.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "DeadLetter")]
pub struct DeadLetterView {
    pub message_id: Option<String>,
    /// the routing key it was published with (a replay publishes it with this one)
    pub routing_key: String,
    /// why it was dead-lettered (the `x-phaseflow-error` header)
    pub reason: Option<String>,
    /// the AMQP `type` property
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// every header, as text
    pub headers: BTreeMap<String, String>,
    /// the body as text (bytes that are not UTF-8 replaced)
    pub body: String,
    pub body_bytes: usize,
}

impl From<&DeadLetter> for DeadLetterView {
    fn from(letter: &DeadLetter) -> Self {
        DeadLetterView {
            message_id: letter.message_id.clone(),
            routing_key: letter.routing_key.clone(),
            reason: letter.reason.clone(),
            kind: letter.kind.clone(),
            headers: letter.headers.clone(),
            body: String::from_utf8_lossy(&letter.body).into_owned(),
            body_bytes: letter.body.len(),
        }
    }
}

/// A dead letter sent back to the requests exchange.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Replayed")]
pub struct ReplayedView {
    pub message_id: String,
    pub routing_key: String,
    /// the operator (also in the replayed message's `x-phaseflow-replayed-by` header)
    pub replayed_by: String,
}
