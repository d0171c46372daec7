//! A ticket's accumulated knowledge: each phase's context, aggregated from its completed tasks,
//! artifacts and gate, and a token-bounded summary of the ticket and all of it.
//!
//! Aggregation ([`aggregate_phase`], [`merge_phase`]) is tolerant: agents' task results are
//! free-form JSON, and a malformed part is kept as well as it can be rather than failing the
//! phase. The summary ([`summarize`]) is what agents read first, so it opens with the ticket
//! itself and must never exceed its token budget, measured in cl100k_base tokens
//! ([`count_tokens`]), whatever the input. This module must not store anything or read the
//! clock: times are supplied by the caller.

mod aggregate;
#[cfg(test)]
mod fixtures;
mod summary;
mod tokens;

pub use aggregate::{
    aggregate_phase, merge_phase, ArtifactRef, GateOutcome, PhaseContext, TaskContextEntry,
    TaskRecord, CONTEXT_FORMAT_VERSION,
};
pub use summary::{summarize, Summary, TicketBrief};
pub use tokens::count_tokens;
