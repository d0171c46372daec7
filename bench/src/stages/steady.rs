//! The steady and half-load stages. Steady: exactly `--concurrency` transitions in flight
//! (closed loop), after a warm-up; its throughput is bounded by in-flight ÷ latency. Half-load:
//! the same workload published open loop at half the steady throughput, with latency counted
//! from each request's scheduled send time, so a late send is not hidden (no coordinated
//! omission).

use crate::load::{check_load, closed_loop, open_loop, CyclingTicket};
use crate::report::{round, HalfLoadReport, LoadReport, Report, SteadyReport};
use crate::run::progress;
use crate::worker_metrics::{Interval, Scrape};

use super::Harness;

/// Runs the steady stage; returns its throughput (unrounded) and the tickets.
pub async fn run(
    harness: &Harness<'_>,
    tickets: Vec<CyclingTicket>,
    report: &mut Report,
) -> (f64, Vec<CyclingTicket>) {
    let (world, plan) = (harness.world, harness.plan);
    progress(format!(
        "steady: warming up {:.1} s",
        plan.warmup.as_secs_f64()
    ));
    let (warmup, tickets) = closed_loop(world, tickets, plan.concurrency, plan.warmup).await;
    check_load("steady warm-up", &warmup, &mut report.problems);
    progress(format!(
        "steady: {} in flight for {:.0} s over {} tickets",
        plan.concurrency,
        plan.steady.as_secs_f64(),
        tickets.len()
    ));
    let metrics_before = Scrape::take(harness.ops).await;
    let before = harness.meter.sample().await;
    let (steady, tickets) = closed_loop(world, tickets, plan.concurrency, plan.steady).await;
    let after = harness.meter.sample().await;
    let metrics_after = Scrape::take(harness.ops).await;
    let usage = harness.meter.usage(&before, &after);
    world.tap.reset();
    check_load("steady", &steady, &mut report.problems);

    let tps = steady.throughput();
    let load = LoadReport::of(&steady);
    let interval = Interval::between(metrics_before.as_ref(), metrics_after.as_ref());
    report.steady_tps = Some(round(tps, 1));
    report.ratio_to_baseline = harness.ratio_to_baseline(tps);
    report.latency_ms = Some(load.latency_ms);
    report.worker_cpu_percent = Some(usage.worker_cpu_percent.map(|value| round(value, 1)));
    report.steady = Some(SteadyReport {
        load,
        usage: usage.report(steady.completed),
        worker_metrics: interval
            .as_ref()
            .map(|interval| interval.worker_metrics(steady.completed)),
        relay: interval.map(|interval| interval.relay(steady.completed)),
    });
    (tps, tickets)
}

/// Runs the half-load stage at `rate` requests per second; a problem when there is no rate.
pub async fn half_load(
    harness: &Harness<'_>,
    tickets: Vec<CyclingTicket>,
    rate: f64,
    report: &mut Report,
) -> Vec<CyclingTicket> {
    if rate <= 0.0 {
        report
            .problems
            .push("half-load: no steady throughput to halve".to_owned());
        return tickets;
    }
    let (world, plan) = (harness.world, harness.plan);
    progress(format!(
        "half-load: {rate:.1} requests/s open loop for {:.0} s",
        plan.half_load.as_secs_f64()
    ));
    let (half, tickets) = open_loop(world, tickets, rate, plan.half_load).await;
    world.tap.reset();
    check_load("half-load", &half, &mut report.problems);
    let load = LoadReport::of(&half);
    report.half_load = Some(HalfLoadReport {
        rate: round(rate, 1),
        p99_ms: load.latency_ms.p99,
        load,
    });
    tickets
}
