//! One module per stage. Each stage's `run` drives its workload, checks what it can (failed or
//! missing requests become problems of the report) and writes its own part of the report. The
//! order of the stages, and what they share, is `run`'s business.

pub mod baseline;
pub mod broker;
pub mod growth;
pub mod lifecycles;
pub mod saturation;
pub mod steady;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::cli::Plan;
use crate::usage::Meter;
use crate::world::World;

/// What the stages that drive the worker share.
pub struct Harness<'a> {
    pub world: &'a Arc<World>,
    pub plan: &'a Plan,
    /// knows the worker's process
    pub meter: &'a Meter,
    /// the worker's ops address, for its `/metrics`
    pub ops: SocketAddr,
    /// the baseline's throughput (unrounded), when the baseline ran
    pub baseline_tps: Option<f64>,
}

impl Harness<'_> {
    /// `tps` over the baseline's, rounded as reported; `None` without a baseline.
    pub fn ratio_to_baseline(&self, tps: f64) -> Option<f64> {
        self.baseline_tps
            .filter(|baseline| *baseline > 0.0)
            .map(|baseline| crate::report::round(tps / baseline, 3))
    }
}
