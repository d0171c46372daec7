//! The workflow definition as `GET /api/v1/workflow` answers it: phases in order with their
//! guidance, moves, task templates and gates, and the priorities. No I/O and no decisions here.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::{Guidance, Phase, Priority, TaskTemplate, TransitionKind, WorkflowDefinition};
use crate::workflow::discovery::{self, FromBlocked, MoveRule};

/// The workflow definition the API and the workers run: every phase in order, and every
/// priority a ticket may have. The board takes both from here rather than repeating them.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Workflow")]
pub struct WorkflowView {
    /// The normal sequence (PHASE_BACKLOG to PHASE_DONE), then PHASE_BLOCKED.
    pub phases: Vec<PhaseView>,
    /// Every priority, lowest first.
    pub priorities: Vec<Priority>,
}

impl From<&WorkflowDefinition> for WorkflowView {
    fn from(definition: &WorkflowDefinition) -> Self {
        let order = Phase::SEQUENCE.into_iter().chain(
            Phase::ALL
                .into_iter()
                .filter(|p| !Phase::SEQUENCE.contains(p)),
        );
        WorkflowView {
            phases: order
                .map(|phase| PhaseView::new(definition, phase))
                .collect(),
            priorities: Priority::ALL.to_vec(),
        }
    }
}

/// One phase of the definition.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "WorkflowPhase")]
pub struct PhaseView {
    pub phase_id: Phase,
    /// The lowercase name used in context keys and summaries.
    pub name: String,
    /// The moves the transition table allows out of this phase.
    pub transitions: Vec<MoveView>,
    /// The tasks a visit creates.
    pub templates: Vec<TemplateView>,
    /// The tasks a visit entered by regression creates instead (when there are any).
    pub reentry_templates: Vec<TemplateView>,
    /// The phase's role: the first its templates name, which its re-entry and review rework
    /// tasks take when they name none (null: its tasks need no role).
    pub role: Option<String>,
    /// What the forward move out of this phase demands; null when it has no gate (it passes).
    pub gate: Option<GateView>,
    /// What agents working in this phase are told; null when the definition says nothing.
    pub guidance: Option<Guidance>,
}

impl PhaseView {
    fn new(definition: &WorkflowDefinition, phase: Phase) -> Self {
        let templates = |list: &[TaskTemplate]| list.iter().map(TemplateView::from).collect();
        PhaseView {
            phase_id: phase,
            name: phase.short_name().to_owned(),
            transitions: discovery::moves_from(definition, phase)
                .iter()
                .map(MoveView::from)
                .collect(),
            templates: templates(definition.templates.normal(phase)),
            reentry_templates: templates(definition.templates.reentry(phase)),
            role: definition.templates.phase_role(phase).map(str::to_owned),
            gate: definition.gates.for_phase(phase).map(|gate| GateView {
                required_artifacts: gate.required_artifacts.clone(),
                rules: gate
                    .rules
                    .iter()
                    .map(|rule| RuleView {
                        artifact: rule.artifact.clone(),
                        field: rule.field.clone(),
                        rule: rule.to_string(),
                        regression: rule.regression,
                    })
                    .collect(),
            }),
            guidance: definition.guidance(phase).cloned(),
        }
    }
}

/// A move of the transition table.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "PhaseMove")]
pub struct MoveView {
    pub to_phase: Phase,
    pub kind: MoveKind,
    /// Whether the move checks a gate; for a move out of PHASE_BLOCKED, whether it does for
    /// some phase the ticket may have been blocked from (see `from_blocked`).
    pub gated: bool,
    /// The phase whose gate the move checks.
    pub gate_phase: Option<Phase>,
    /// Moves out of PHASE_BLOCKED only: what the move is, by the phase the ticket was blocked
    /// from (its `previous_phase_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_blocked: Option<FromBlockedView>,
}

impl From<&MoveRule> for MoveView {
    fn from(rule: &MoveRule) -> Self {
        MoveView {
            to_phase: rule.to_phase,
            kind: MoveKind::from(rule.kind),
            gated: rule.gate_phase.is_some(),
            gate_phase: rule.gate_phase,
            from_blocked: rule.from_blocked.as_ref().map(FromBlockedView::from),
        }
    }
}

/// What kind of move it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MoveKind {
    /// to the next phase of the normal sequence
    Forward,
    /// PHASE_TESTING back to PHASE_IMPLEMENTATION
    Regression,
    /// to PHASE_BLOCKED
    Block,
    /// out of PHASE_BLOCKED
    Unblock,
}

impl From<TransitionKind> for MoveKind {
    fn from(kind: TransitionKind) -> Self {
        match kind {
            TransitionKind::Forward => MoveKind::Forward,
            TransitionKind::Regression => MoveKind::Regression,
            TransitionKind::Block => MoveKind::Block,
            TransitionKind::Unblock | TransitionKind::UnblockForward => MoveKind::Unblock,
        }
    }
}

/// What leaving PHASE_BLOCKED for a phase is, by the phase the ticket was blocked from.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "FromBlocked")]
pub struct FromBlockedView {
    /// Blocked from these, the move checks no gate.
    pub ungated: Vec<Phase>,
    /// Blocked from these, the move checks their gate (`gate_not_met` when it fails).
    pub gated: Vec<Phase>,
    /// Blocked from these, the move is refused (`invalid_transition`): it would skip a gate.
    pub refused: Vec<Phase>,
}

impl From<&FromBlocked> for FromBlockedView {
    fn from(rule: &FromBlocked) -> Self {
        FromBlockedView {
            ungated: rule.ungated.clone(),
            gated: rule.gated.clone(),
            refused: rule.refused.clone(),
        }
    }
}

/// A task template.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "TaskTemplate")]
pub struct TemplateView {
    pub task_type: String,
    /// Before its placeholders (`{ticket_title}`, `{ticket_priority}`, `{ticket_id}`, `{phase}`)
    /// are filled in.
    pub description: String,
    pub priority: Priority,
    /// The task types of the same visit that must be completed first.
    pub after: Vec<String>,
    /// The role an agent needs to claim its tasks (null: any agent may).
    pub role: Option<String>,
}

impl From<&TaskTemplate> for TemplateView {
    fn from(template: &TaskTemplate) -> Self {
        TemplateView {
            task_type: template.task_type.clone(),
            description: template.description.clone(),
            priority: template.priority,
            after: template.after.clone(),
            role: template.role.clone(),
        }
    }
}

/// A phase's gate: besides every task of the phase completed (and at least one), these.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Gate")]
pub struct GateView {
    /// Artifact types that must have been collected for the phase.
    pub required_artifacts: Vec<String>,
    /// Conditions on the newest artifact of each type.
    pub rules: Vec<RuleView>,
}

/// A gate's rule.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "GateRule")]
pub struct RuleView {
    /// The artifact type whose newest artifact is judged.
    pub artifact: String,
    /// The field of its `artifact_content` (or a dotted path into it).
    pub field: String,
    /// The rule in words, e.g. `test_coverage.percentage ≥ 80`.
    pub rule: String,
    /// Whether failing it sends the ticket back (PHASE_TESTING to PHASE_IMPLEMENTATION).
    pub regression: bool,
}
