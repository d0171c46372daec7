//! The baseline stage: the transaction a transition is at heart (lock the ticket row, update
//! it, insert a history row, two outbox rows and an inbox row, commit), run straight against
//! Postgres by `--concurrency` connections with prepared statements, in a database of its own
//! with the real schema minus the outbox NOTIFY trigger. No broker and no worker: this is the
//! figure the worker's throughput is compared with.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, Row};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::cli::Plan;
use crate::environment::BenchEnv;
use crate::report::{ms, round, BaselineReport, Latency, Report};
use crate::run::progress;
use crate::usage::{Meter, Usage};
use crate::world::{BLOCKED, REQUIREMENTS};

/// The tickets each baseline connection cycles over.
const TICKETS_PER_CLIENT: usize = 100;

/// What the baseline measured.
struct BaselineResult {
    tps: f64,
    transactions: u64,
    seconds: f64,
    clients: usize,
    latencies_ms: Vec<f64>,
    usage: Usage,
}

impl BaselineResult {
    fn report(&self) -> BaselineReport {
        BaselineReport {
            tps: round(self.tps, 1),
            transactions: self.transactions,
            seconds: round(self.seconds, 2),
            clients: self.clients,
            tickets_per_client: TICKETS_PER_CLIENT,
            latency_ms: Latency::of(&self.latencies_ms),
            usage: self.usage.report(self.transactions),
            shape: "select ... for update; update tickets; insert phase_history; insert outbox (2 rows); insert inbox; commit (prepared; no NOTIFY trigger)",
        }
    }
}

/// Runs the stage in its own database (created here; the caller drops it) and writes its part
/// of the report; returns the throughput (unrounded) the worker stages are compared with.
pub async fn run(
    env: &BenchEnv,
    plan: &Plan,
    meter: &Meter,
    report: &mut Report,
) -> anyhow::Result<f64> {
    progress(format!(
        "baseline: {} connections, {:.0} s, same-shape transaction straight against Postgres",
        plan.concurrency,
        plan.baseline.as_secs_f64()
    ));
    let baseline = measure(env, plan, meter).await?;
    if baseline.tps <= 0.0 {
        report
            .problems
            .push("baseline tps is not positive".to_owned());
    }
    report.baseline_tps = Some(round(baseline.tps, 1));
    report.baseline = Some(baseline.report());
    Ok(baseline.tps)
}

/// The worker's ticket columns: the baseline reads the same row the worker locks.
const LOCK: &str =
    "select id, title, description, priority::text as priority, phase_id::text as phase_id, \
     previous_phase_id::text as previous_phase_id, context, context_summary, context_updated_at, \
     auto_advance, created_at, updated_at from tickets where id = $1 for update";
const UPDATE: &str = "update tickets set phase_id = $2::phase, previous_phase_id = $3::phase, \
     event_seq = event_seq + 2, updated_at = now() where id = $1 returning event_seq";
const HISTORY: &str = "insert into phase_history (ticket_id, from_phase, to_phase, transition_reason, \
     transitioned_by, artifacts, regression) values ($1, $2::phase, $3::phase, $4, $5, $6, false) returning id";
const OUTBOX: &str = "insert into outbox (ticket_id, ticket_seq, event_id, event_type, body) \
     values ($1, $2, $3, 'phase.transitioned', $4), ($1, $5, $6, 'phase.entered', $7)";
const INBOX: &str = "insert into inbox (handler, message_id, message_type) \
     values ('requests', $1, 'phase.transition.requested') on conflict do nothing";

/// The baseline in its own database (created here; the caller drops it).
async fn measure(env: &BenchEnv, plan: &Plan, meter: &Meter) -> anyhow::Result<BaselineResult> {
    let url = env.database_url(&env.baseline_db);
    phaseflow::store::migrate(&url)
        .await
        .context("cannot create the baseline database")?;
    let mut setup = PgConnection::connect(&url).await?;
    sqlx::query("drop trigger if exists outbox_notify_after_insert on outbox")
        .execute(&mut setup)
        .await?;
    let count = (plan.concurrency * TICKETS_PER_CLIENT) as i64;
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
    for (connection, tickets) in connections.into_iter().zip(ids.chunks(TICKETS_PER_CLIENT)) {
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
    let usage = meter.usage(&before, &after);
    Ok(BaselineResult {
        tps: transactions as f64 / seconds,
        transactions,
        seconds,
        clients: plan.concurrency,
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
    let row = sqlx::query(LOCK)
        .bind(ticket)
        .fetch_one(&mut *transaction)
        .await?;
    let from: String = row.try_get("phase_id")?;
    let to = if from == REQUIREMENTS {
        BLOCKED
    } else {
        REQUIREMENTS
    };
    let last_seq: i64 = sqlx::query_scalar(UPDATE)
        .bind(ticket)
        .bind(to)
        .bind(&from)
        .fetch_one(&mut *transaction)
        .await?;
    let history_id: i64 = sqlx::query_scalar(HISTORY)
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
    // serialised as the worker stores them: without `ticketseq`, which is the row's
    let event = |id: Uuid, kind: &str, data: Value| {
        json!({
            "specversion": "1.0", "id": id, "source": "phaseflow", "type": kind,
            "subject": ticket, "time": now, "datacontenttype": "application/json",
            "actor": "agent-bench", "correlationid": request_id, "causationid": request_id,
            "data": data,
        })
        .to_string()
        .into_bytes()
    };
    let transitioned = event(
        transitioned_id,
        "phase.transitioned",
        json!({"ticket_id": ticket, "previous_phase": from, "current_phase": to, "transitioned_at": now,
               "transitioned_by": "agent-bench", "reason": "bench: baseline cycle", "history_id": history_id}),
    );
    let entered = event(
        entered_id,
        "phase.entered",
        json!({"ticket_id": ticket, "phase_id": to, "previous_phase": from, "history_id": history_id,
               "regression": false, "entered_at": now}),
    );
    sqlx::query(OUTBOX)
        .bind(ticket)
        .bind(last_seq - 1)
        .bind(transitioned_id)
        .bind(transitioned)
        .bind(last_seq)
        .bind(entered_id)
        .bind(entered)
        .execute(&mut *transaction)
        .await?;
    sqlx::query(INBOX)
        .bind(&request_id)
        .execute(&mut *transaction)
        .await?;
    transaction.commit().await?;
    Ok(())
}
