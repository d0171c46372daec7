//! The saturation stage: the steady workload with many more requests in flight than
//! `--concurrency` (16 × by default), so the worker has waiting deliveries to batch. With
//! only `--concurrency` in flight, throughput is bounded by in-flight ÷ latency (Little's law);
//! this stage shows the throughput when it is not.

use crate::load::{check_load, closed_loop, prepare_tickets, CyclingTicket};
use crate::report::{round, LoadReport, Report, SaturationReport};
use crate::run::progress;
use crate::worker_metrics::{Interval, Scrape};

use super::Harness;

/// Runs the stage, preparing tickets until there are two per request in flight.
pub async fn run(
    harness: &Harness<'_>,
    mut tickets: Vec<CyclingTicket>,
    report: &mut Report,
) -> anyhow::Result<Vec<CyclingTicket>> {
    let (world, plan) = (harness.world, harness.plan);
    let in_flight = plan.saturation_in_flight;
    let wanted = 2 * in_flight;
    if tickets.len() < wanted {
        progress(format!(
            "saturation: preparing {} more tickets",
            wanted - tickets.len()
        ));
        tickets.extend(prepare_tickets(world, wanted - tickets.len(), "saturation").await?);
        world.tap.reset();
    }
    progress(format!(
        "saturation: {in_flight} in flight for {:.0} s over {} tickets",
        plan.half_load.as_secs_f64(),
        tickets.len()
    ));
    let (_, tickets) = closed_loop(world, tickets, in_flight, plan.warmup).await;
    let metrics_before = Scrape::take(harness.ops).await;
    let before = harness.meter.sample().await;
    let (saturated, tickets) = closed_loop(world, tickets, in_flight, plan.half_load).await;
    let after = harness.meter.sample().await;
    let metrics_after = Scrape::take(harness.ops).await;
    world.tap.reset();
    check_load("saturation", &saturated, &mut report.problems);

    let tps = saturated.throughput();
    report.saturated_tps = Some(round(tps, 1));
    report.saturated_ratio_to_baseline = harness.ratio_to_baseline(tps);
    report.saturation = Some(SaturationReport {
        load: LoadReport::of(&saturated),
        in_flight,
        usage: harness
            .meter
            .usage(&before, &after)
            .report(saturated.completed),
        worker_metrics: Interval::between(metrics_before.as_ref(), metrics_after.as_ref())
            .map(|interval| interval.worker_metrics(saturated.completed)),
    });
    Ok(tickets)
}
