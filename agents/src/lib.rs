//! The agents phaseflow ships, written as any agent would be: against the protocol crate
//! (`phaseflow-client`) alone, which the compiler holds them to, since this crate depends on
//! nothing else of phaseflow.
//!
//! - [`review`]: `phaseflow review-agent`, the reference validation agent, which answers every
//!   `gate.review.requested` with a verdict judged by configured rules;
//! - [`demo`]: the team of simulated agents `phaseflow demo` drives tickets to DONE with.
//!
//! The service's binary offers both as commands: it reads their settings from its
//! configuration, and for the demo may start a worker in its own process.

pub mod demo;
pub mod review;
