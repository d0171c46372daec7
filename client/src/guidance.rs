//! Agent guidance: what the workflow definition tells an agent about a phase it works in: what
//! the phase is for (`prompt`), when its work counts as done (`done_definition`) and which
//! outputs its gate expects (`expected_outputs`). The service reads it from its workflow
//! definition's `[guidance.<PHASE>]` tables, checks it there, and shows it to agents as it is.
//!
//! Guidance is advice in words: it must not decide anything. Whether a phase's work is done is
//! the gate's verdict alone, whatever the guidance says.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The longest `prompt`, in characters.
pub const PROMPT_MAX_CHARS: usize = 4000;
/// The longest `done_definition`, in characters.
pub const DONE_DEFINITION_MAX_CHARS: usize = 2000;
/// The most entries `expected_outputs` may have.
pub const EXPECTED_OUTPUTS_MAX: usize = 20;
/// The longest entry of `expected_outputs`, in characters.
pub const EXPECTED_OUTPUT_MAX_CHARS: usize = 500;

/// What an agent working in a phase is told about it. Every member is optional in the
/// definition; one that is not set is `null` (or an empty list).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Guidance {
    /// What an agent in this phase is for and how it should go about the phase's tasks.
    #[serde(default)]
    pub prompt: Option<String>,
    /// When the phase's work counts as done, in words; the gate is what checks it.
    #[serde(default)]
    pub done_definition: Option<String>,
    /// The artifacts and other outputs the phase is expected to hand on, one per entry.
    #[serde(default)]
    pub expected_outputs: Vec<String>,
}
