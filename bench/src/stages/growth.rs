//! The history stage: does a ticket get slower as it grows? The steady workload on tickets
//! given, straight in SQL, `--history-rows` history rows and `--history-artifacts`
//! REQUIREMENTS artifacts each, against fresh tickets, interleaved fresh/grown/grown/fresh (in
//! full mode) to cancel drift; the figure is the ratio of their throughputs.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use sqlx::PgPool;
use uuid::Uuid;

use super::Harness;
use crate::cli::Plan;
use crate::load::{check_load, closed_loop, merge, prepare_tickets, CyclingTicket, LoadResult};
use crate::report::{round, HistoryReport, LoadReport, Report};
use crate::run::progress;
use crate::world::World;

/// What the history stage measured.
struct HistoryResult {
    fresh: LoadResult,
    grown: LoadResult,
    inflate_seconds: f64,
}

impl HistoryResult {
    /// Grown throughput over fresh.
    fn ratio(&self) -> f64 {
        let fresh = self.fresh.throughput();
        if fresh > 0.0 {
            self.grown.throughput() / fresh
        } else {
            0.0
        }
    }

    fn report(&self, plan: &Plan) -> HistoryReport {
        let fresh = LoadReport::of(&self.fresh);
        let grown = LoadReport::of(&self.grown);
        HistoryReport {
            ratio: round(self.ratio(), 3),
            fresh_tps: fresh.tps,
            grown_tps: grown.tps,
            fresh_latency_ms: fresh.latency_ms,
            grown_latency_ms: grown.latency_ms,
            history_rows_per_ticket: plan.history_rows,
            artifacts_per_ticket: plan.history_artifacts,
            tickets_per_set: plan.tickets,
            order: if plan.history_interleaved {
                "fresh, grown, grown, fresh"
            } else {
                "fresh, grown"
            },
            inflate_seconds: round(self.inflate_seconds, 2),
            fresh,
            grown,
        }
    }
}

/// Runs the stage and writes its part of the report.
pub async fn run(harness: &Harness<'_>, report: &mut Report) -> anyhow::Result<()> {
    let plan = harness.plan;
    progress(format!(
        "history: {} fresh tickets vs {} with {} history rows and {} artifacts each",
        plan.tickets, plan.tickets, plan.history_rows, plan.history_artifacts
    ));
    let history = measure(harness.world, plan).await?;
    harness.world.tap.reset();
    check_load("history (fresh)", &history.fresh, &mut report.problems);
    check_load("history (grown)", &history.grown, &mut report.problems);
    report.history_ratio = Some(round(history.ratio(), 3));
    report.history = Some(history.report(plan));
    Ok(())
}

/// Prepares both sets, grows one, warms both, then runs them in turn.
async fn measure(world: &Arc<World>, plan: &Plan) -> anyhow::Result<HistoryResult> {
    let mut fresh = prepare_tickets(world, plan.tickets, "fresh").await?;
    let mut grown = prepare_tickets(world, plan.tickets, "grown").await?;
    world.tap.reset();
    let started = Instant::now();
    inflate(
        &world.pool,
        &grown,
        plan.history_rows,
        plan.history_artifacts,
    )
    .await?;
    let inflate_seconds = started.elapsed().as_secs_f64();

    // warm both sets: the first cycle of a grown ticket aggregates its artifacts into its context
    let (_, returned) = closed_loop(world, fresh, plan.concurrency, plan.warmup).await;
    fresh = returned;
    let (_, returned) = closed_loop(world, grown, plan.concurrency, plan.warmup).await;
    grown = returned;

    let order: &[bool] = if plan.history_interleaved {
        &[false, true, true, false]
    } else {
        &[false, true]
    };
    let mut fresh_total = LoadResult::default();
    let mut grown_total = LoadResult::default();
    for &is_grown in order {
        let tickets = if is_grown {
            std::mem::take(&mut grown)
        } else {
            std::mem::take(&mut fresh)
        };
        let (segment, returned) =
            closed_loop(world, tickets, plan.concurrency, plan.history_segment).await;
        let total = if is_grown {
            &mut grown_total
        } else {
            &mut fresh_total
        };
        merge(total, segment);
        if is_grown {
            grown = returned;
        } else {
            fresh = returned;
        }
        world.tap.reset();
    }
    Ok(HistoryResult {
        fresh: fresh_total,
        grown: grown_total,
        inflate_seconds,
    })
}

/// Gives each ticket `rows` more history rows (a valid chain of REQUIREMENTS <-> BLOCKED that
/// ends in REQUIREMENTS) and `artifacts` REQUIREMENTS artifacts, straight in SQL.
async fn inflate(
    pool: &PgPool,
    tickets: &[CyclingTicket],
    rows: i64,
    artifacts: i64,
) -> anyhow::Result<()> {
    let ids: Vec<Uuid> = tickets
        .iter()
        .map(|ticket| Uuid::from_str(&ticket.id))
        .collect::<Result<_, _>>()?;
    let rows = rows + rows % 2;
    let mut transaction = pool.begin().await?;
    sqlx::query(
        "insert into phase_history (ticket_id, from_phase, to_phase, transition_reason, transitioned_by, artifacts, regression) \
         select t.id, \
                case when g % 2 = 1 then 'PHASE_REQUIREMENTS'::phase else 'PHASE_BLOCKED'::phase end, \
                case when g % 2 = 1 then 'PHASE_BLOCKED'::phase else 'PHASE_REQUIREMENTS'::phase end, \
                'bench: grown history ' || g, 'agent-bench', '{}'::jsonb, false \
         from unnest($1::uuid[]) as t(id) cross join generate_series(1, $2) as g \
         order by t.id, g",
    )
    .bind(&ids)
    .bind(rows)
    .execute(&mut *transaction)
    .await?;
    sqlx::query(
        "insert into phase_gate_artifacts (id, ticket_id, phase_id, artifact_type, artifact_path, artifact_content, collected_by) \
         select gen_random_uuid(), t.id, 'PHASE_REQUIREMENTS', 'research_note_' || (g % 12), 'docs/notes/note-' || g || '.md', \
                jsonb_build_object('length', 800 + g, 'sections', jsonb_build_array('scope', 'acceptance_criteria'), \
                                   'summary', repeat('finding ' || g || ' ', 12)), \
                'agent-bench' \
         from unnest($1::uuid[]) as t(id) cross join generate_series(1, $2) as g \
         order by t.id, g",
    )
    .bind(&ids)
    .bind(artifacts)
    .execute(&mut *transaction)
    .await?;
    sqlx::query("update tickets set previous_phase_id = 'PHASE_BLOCKED' where id = any($1)")
        .bind(&ids)
        .execute(&mut *transaction)
        .await?;
    transaction.commit().await?;
    sqlx::query("analyze phase_history").execute(pool).await?;
    sqlx::query("analyze phase_gate_artifacts")
        .execute(pool)
        .await?;
    Ok(())
}
