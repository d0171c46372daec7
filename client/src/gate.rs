//! The answers about a gate: its status, as `gate.validated` publishes it, and a reviewer's
//! verdict. Pure values: how a gate is evaluated is the service's business.

use crate::wire::wire_enum;

wire_enum! {
    /// The verdict of a gate, as published in `gate.validated`.
    pub enum GateStatus, error UnknownGateStatus("gate status") {
        /// Every task completed, every artifact present, every rule holds: the ticket may move on.
        Passed = "passed",
        /// All tasks are finished but something is missing or wrong; someone must act.
        Failed = "failed",
        /// Work is still under way (or has not been generated yet); judge again later.
        Pending = "pending",
        /// The gate was not met, and an operator forced the ticket past it.
        Overridden = "overridden",
    }
}

wire_enum! {
    /// A reviewer's answer.
    pub enum Verdict, error UnknownVerdict("verdict") {
        /// the gate passes (for the state the reviewer saw)
        Approved = "approved",
        /// the gate fails with the reviewer's reasons, and a rework task is generated
        ChangesRequested = "changes_requested",
    }
}
