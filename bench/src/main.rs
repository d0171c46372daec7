//! `phaseflow-bench`: measures the worker against its own Postgres baseline, in one run on one
//! machine, and prints a table and a JSON object.
//!
//! ```sh
//! cargo build --release --workspace
//! ./target/release/phaseflow-bench --mode full            # about 4 minutes
//! ./target/release/phaseflow-bench --mode short --json    # seconds; what CI runs
//! ```
//!
//! Stages (each can be chosen with `--stages`):
//!
//! 0. **broker**: persistent messages through a quorum queue like the worker's, with confirms
//!    and acks, `--concurrency` in flight: the broker's share of the latency.
//! 1. **baseline**: the transaction a transition is at heart (lock the ticket row, update it,
//!    insert a history row, two outbox rows and an inbox row, commit) run straight against
//!    Postgres by `--concurrency` connections with prepared statements, in a database of its own
//!    with the real schema (minus the outbox NOTIFY trigger, as a pgbench script of the same shape
//!    would run). Each connection cycles over its own 100 tickets.
//! 2. **steady**: the real worker (a child `phaseflow worker` process by default, in-process with
//!    `--in-process`) with its own database and broker names. Tickets cycle REQUIREMENTS →
//!    BLOCKED → REQUIREMENTS with exactly `--concurrency` requests in flight; a request is done
//!    when the `phase.transitioned` event it caused arrives on the events exchange. A ticket is
//!    used again only after the `context.updated` event caused by its `phase.entered` arrived,
//!    and the throughput counts the time until all of that work is done, so the automatic
//!    `phase.entered` work (task generation, context aggregation) is part of what is measured.
//! 3. **half-load**: the same workload published open loop at half the steady throughput;
//!    latency counts from the scheduled send time (no coordinated omission).
//! 4. **saturation**: the steady workload with 16 × `--concurrency` requests in flight. With only
//!    `--concurrency` in flight, throughput is bounded by in-flight / latency (Little's law) and
//!    the end-to-end latency holds the baseline's transaction plus two broker hops, so that
//!    ratio can never reach 1.0; this stage shows what the worker does when it can batch.
//! 5. **lifecycle**: tickets from creation to DONE with simulated agents completing every task
//!    (in dependency order) with artifacts that pass the default gates; `--concurrency` tickets at
//!    a time.
//! 6. **history**: the steady workload on tickets given 1,000 history rows and a few hundred
//!    REQUIREMENTS artifacts (inserted with SQL) against fresh tickets, interleaved
//!    fresh/grown/grown/fresh to cancel drift; the ratio of their throughputs.
//!
//! The worker's peak RSS (VmHWM) and CPU come from `/proc/<pid>`; in-process they are the bench
//! process's own and include the driver. Everything the run creates (two databases, the
//! worker's exchanges and queues) is removed at the end. The machine is shared: compare ratios
//! taken in one run, not absolute numbers across runs.
//!
//! Exit status: 0 when every request completed and every figure is positive; 1 otherwise.
//! Performance targets are reported, never asserted.
//!
//! # Layout
//!
//! - [`cli`]: the command line and the [`cli::Plan`] (stage lengths and sizes) it gives.
//! - [`run`]: the order of the stages, the sanity checks, and the teardown that always runs.
//! - [`stages`]: one module per stage.
//! - [`load`]: the driver's workload: tickets cycling between two phases, closed and open loop.
//! - [`world`]: the driver's connections: a request client and a tap on the events exchange.
//! - [`worker`]: the worker under test, as a child process or in-process.
//! - [`usage`]: CPU, memory and Postgres counters; [`worker_metrics`]: the worker's `/metrics`.
//! - [`report`]: the JSON report as types; [`table`]: the same figures as a table.
//! - [`otlp_sink`]: with `--otlp-sink`, the receiver the worker exports its spans to.
//!
//! The driver talks to the worker as agents do, through `phaseflow-client` (requests, their
//! outcome types, the broker client). The harness around it uses the service crate for what
//! only the service knows: its settings, its migrations, its broker topology and, with
//! `--in-process`, the worker itself.

mod cli;
mod environment;
mod load;
mod otlp_sink;
mod report;
mod run;
mod stages;
mod table;
mod usage;
mod worker;
mod worker_metrics;
mod world;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run::bench(cli))
}
