//! The phase guidance of the workflow definition as a prompt (`phase_guidance`, argument
//! `phase_id`): what an agent working in the phase is for, when its work counts as done and what
//! it should hand in, as text a model reads. The same guidance comes with every claimed task;
//! the prompt lets a client show it, or start a conversation with it, before claiming.
//!
//! Only words are made here; nothing is decided.

use crate::domain::{Phase, WorkflowDefinition};

/// The prompt's name.
pub const PHASE_GUIDANCE: &str = "phase_guidance";
/// Its one argument.
pub const PHASE_ARGUMENT: &str = "phase_id";

/// What the prompt is, listing the phases that have guidance.
pub fn description(definition: &WorkflowDefinition) -> String {
    let phases: Vec<&str> = Phase::ALL
        .iter()
        .filter(|phase| definition.guidance(**phase).is_some())
        .map(|phase| phase.as_str())
        .collect();
    format!(
        "What an agent working in a phase is for, when its work counts as done and what it \
         should hand in. Phases with guidance: {}.",
        if phases.is_empty() {
            "none".to_owned()
        } else {
            phases.join(", ")
        }
    )
}

/// The prompt's text for the phase `phase_id` names, or why there is none.
pub fn guidance_text(definition: &WorkflowDefinition, phase_id: &str) -> Result<String, String> {
    let phase = phase_id
        .parse::<Phase>()
        .map_err(|error| format!("{PHASE_ARGUMENT}: {error}"))?;
    let Some(guidance) = definition.guidance(phase) else {
        return Err(format!(
            "{PHASE_ARGUMENT}: {phase} has no guidance in this workflow"
        ));
    };
    let mut text = format!("You are working in {phase} of a ticket.\n");
    if let Some(prompt) = &guidance.prompt {
        text.push_str(&format!("\n{prompt}\n"));
    }
    if let Some(done) = &guidance.done_definition {
        text.push_str(&format!("\nThe phase's work is done when: {done}\n"));
    }
    if !guidance.expected_outputs.is_empty() {
        text.push_str("\nHand in:\n");
        for output in &guidance.expected_outputs {
            text.push_str(&format!("- {output}\n"));
        }
    }
    text.push_str(
        "\nWhether the work is done is the phase gate's verdict: check_transition says what it \
         still misses.",
    );
    Ok(text)
}
