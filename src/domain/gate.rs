//! Phase gates: what a phase must have produced before a ticket may move forward, and the
//! judgement of a phase's tasks and artifacts against it (docs/protocol.md, "Gates").
//!
//! [`evaluate`] is a pure function of the requirement, the phase's tasks and its artifacts; it
//! always lists every problem it sees, so an agent can fix them all at once. This module must not
//! load or store anything, and must not decide what happens after a verdict (advancing,
//! regressing): it only reports, e.g. through [`GateEvaluation::regression_required`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::phase::Phase;
use super::ticket::TaskStatus;
pub use phaseflow_client::gate::{GateStatus, UnknownGateStatus};

/// What a rule demands of the field it looks at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum RuleCheck {
    /// A number at least `value`. A field named `length` that is absent falls back to the
    /// character count of a sibling string field `content`, so agents may submit the text itself.
    AtLeast {
        /// The smallest acceptable number.
        value: f64,
    },
    /// A list of strings (or an object's keys) that includes every one of `values`.
    Contains {
        /// The entries that must all be present.
        values: Vec<String>,
    },
    /// The JSON value `true` (not a truthy string or number).
    IsTrue,
    /// Exactly this JSON value; numbers compare by value (`1` equals `1.0`).
    Equals {
        /// The expected value.
        value: Value,
    },
}

/// One condition on the newest artifact of a type. A rule on an artifact type that is not in
/// `required_artifacts` applies only when such an artifact has been collected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRule {
    /// The `artifact_type` whose newest artifact is judged.
    pub artifact: String,
    /// A field of `artifact_content`, or a dotted path into it (`metrics.coverage`).
    pub field: String,
    /// What the field must satisfy.
    #[serde(flatten)]
    pub check: RuleCheck,
    /// A failure of this rule sends the ticket back (TESTING `all_passed`).
    #[serde(default)]
    pub regression: bool,
}

impl fmt::Display for ArtifactRule {
    /// The rule in words, as agents read it: `test_coverage.percentage ≥ 80`,
    /// `requirements_document.sections contains scope, acceptance_criteria`,
    /// `code_changes.has_tests is true`, `deployment_record.status = "succeeded"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subject = format!("{}.{}", self.artifact, self.field);
        match &self.check {
            RuleCheck::AtLeast { value } => write!(f, "{subject} ≥ {}", number(*value)),
            RuleCheck::Contains { values } => {
                write!(f, "{subject} contains {}", values.join(", "))
            }
            RuleCheck::IsTrue => write!(f, "{subject} is true"),
            RuleCheck::Equals { value } => write!(f, "{subject} = {}", show(value)),
        }
    }
}

/// Everything one phase's gate demands besides its tasks being completed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GateRequirement {
    /// Artifact types that must have been collected for the phase.
    #[serde(default)]
    pub required_artifacts: Vec<String>,
    /// Conditions on the newest artifact of each named type.
    #[serde(default)]
    pub rules: Vec<ArtifactRule>,
    /// Whether an independent agent must approve the phase once everything else holds.
    #[serde(default)]
    pub review: bool,
}

/// The gates of every phase; a phase without one always passes.
#[derive(Debug, Clone, Default)]
pub struct GateSet {
    by_phase: BTreeMap<Phase, GateRequirement>,
}

impl GateSet {
    /// Wraps requirements that have already been validated (see
    /// [`crate::domain::definition::WorkflowDefinition`]).
    pub fn new(by_phase: BTreeMap<Phase, GateRequirement>) -> Self {
        Self { by_phase }
    }

    /// The phase's gate, or `None` when none is configured (the gate then passes).
    pub fn for_phase(&self, phase: Phase) -> Option<&GateRequirement> {
        self.by_phase.get(&phase)
    }
}

/// What the gate needs to know about one of the phase's tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSnapshot {
    /// Named in blocking reasons (`task run_tests failed`).
    pub task_type: String,
    /// Open tasks keep the gate pending; failed ones fail it.
    pub status: TaskStatus,
}

/// One collected artifact of the phase. Given oldest first; the newest of each type is the one
/// judged, so resubmitting an artifact replaces the verdict on it.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactSnapshot {
    /// Matched against `required_artifacts` and rules.
    pub artifact_type: String,
    /// The submitted `artifact_content`; `None` when only a path was given.
    pub content: Option<Value>,
}

/// The full verdict, shaped like the `gate.validated` event's data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateEvaluation {
    /// Pending while tasks are open (or there are none yet), else failed or passed.
    pub status: GateStatus,
    /// `status == Passed`, kept separate because `gate.validated` publishes both.
    pub requirements_met: bool,
    /// Required artifact types not collected, in the requirement's order.
    pub missing_artifacts: Vec<String>,
    /// Every problem found, also while pending, so an agent sees all of them at once.
    pub blocking_reasons: Vec<String>,
    /// Artifact types present and judged (required ones and those named by rules).
    pub artifacts_checked: usize,
    /// Those of the judged types on which every rule holds.
    pub artifacts_passed: usize,
    /// Whether the phase has tasks and every one of them is completed.
    pub tasks_completed: bool,
    /// How many tasks the phase has (in any status).
    pub tasks_total: usize,
    /// How many of the phase's tasks are completed.
    pub tasks_done: usize,
    /// Some failed rule has `regression = true`: the workflow should send the ticket back.
    pub regression_required: bool,
    /// Everything else holds, and the gate waits for a review of the phase as it is now.
    pub awaiting_review: bool,
}

/// Judges a phase whose name is not at hand. None requirement (no gate configured) => Passed,
/// requirements_met true, nothing missing. Prefer [`evaluate_in`], whose "no tasks" reason names
/// the phase.
pub fn evaluate(
    requirement: Option<&GateRequirement>,
    tasks: &[TaskSnapshot],
    artifacts: &[ArtifactSnapshot],
) -> GateEvaluation {
    judge(None, requirement, tasks, artifacts)
}

/// Judges `phase`'s gate exactly like [`evaluate`], naming the phase in the reason given when it
/// has no tasks yet (`no tasks in PHASE_DESIGN yet`).
pub fn evaluate_in(
    phase: Phase,
    requirement: Option<&GateRequirement>,
    tasks: &[TaskSnapshot],
    artifacts: &[ArtifactSnapshot],
) -> GateEvaluation {
    judge(Some(phase), requirement, tasks, artifacts)
}

fn judge(
    phase: Option<Phase>,
    requirement: Option<&GateRequirement>,
    tasks: &[TaskSnapshot],
    artifacts: &[ArtifactSnapshot],
) -> GateEvaluation {
    let tasks_total = tasks.len();
    let tasks_done = tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Completed)
        .count();
    let tasks_completed = tasks_total > 0 && tasks_done == tasks_total;
    let Some(requirement) = requirement else {
        return GateEvaluation {
            status: GateStatus::Passed,
            requirements_met: true,
            missing_artifacts: Vec::new(),
            blocking_reasons: Vec::new(),
            artifacts_checked: 0,
            artifacts_passed: 0,
            tasks_completed,
            tasks_total,
            tasks_done,
            regression_required: false,
            awaiting_review: false,
        };
    };

    let mut reasons = Vec::new();
    if tasks.is_empty() {
        reasons.push(match phase {
            Some(phase) => format!("no tasks in {phase} yet"),
            None => "no tasks in this phase yet".to_owned(),
        });
    }
    let mut any_open = false;
    let mut any_failed = false;
    for task in tasks {
        match task.status {
            TaskStatus::Pending | TaskStatus::Claimed => {
                any_open = true;
                reasons.push(format!("task {} is {}", task.task_type, task.status));
            }
            TaskStatus::Failed => {
                any_failed = true;
                reasons.push(format!("task {} failed", task.task_type));
            }
            TaskStatus::Completed => {}
        }
    }

    let newest = |artifact_type: &str| {
        artifacts
            .iter()
            .rev()
            .find(|a| a.artifact_type == artifact_type)
    };

    let mut missing_artifacts: Vec<String> = Vec::new();
    for required in &requirement.required_artifacts {
        if newest(required).is_none() && !missing_artifacts.contains(required) {
            reasons.push(format!("missing artifact: {required}"));
            missing_artifacts.push(required.clone());
        }
    }

    // The types judged: required ones first, then those named only by rules; each once.
    let mut judged: Vec<(&str, bool)> = Vec::new();
    let named = requirement
        .required_artifacts
        .iter()
        .chain(requirement.rules.iter().map(|r| &r.artifact));
    for artifact_type in named {
        if newest(artifact_type).is_some() && !judged.iter().any(|(t, _)| *t == artifact_type) {
            judged.push((artifact_type.as_str(), true));
        }
    }

    let mut any_rule_failed = false;
    let mut regression_rule_failed = false;
    for rule in &requirement.rules {
        let Some(artifact) = newest(&rule.artifact) else {
            // Required: already reported missing. Optional: the rule does not apply.
            continue;
        };
        if let Err(problem) = check_rule(rule, artifact.content.as_ref()) {
            reasons.push(format!("{}: {problem}", rule.artifact));
            any_rule_failed = true;
            regression_rule_failed |= rule.regression;
            if let Some(entry) = judged.iter_mut().find(|(t, _)| *t == rule.artifact) {
                entry.1 = false;
            }
        }
    }

    let status = if any_open || tasks.is_empty() {
        GateStatus::Pending
    } else if any_failed || !missing_artifacts.is_empty() || any_rule_failed {
        GateStatus::Failed
    } else {
        GateStatus::Passed
    };

    GateEvaluation {
        status,
        requirements_met: status == GateStatus::Passed,
        missing_artifacts,
        blocking_reasons: reasons,
        artifacts_checked: judged.len(),
        artifacts_passed: judged.iter().filter(|(_, ok)| *ok).count(),
        tasks_completed,
        tasks_total,
        tasks_done,
        regression_required: status == GateStatus::Failed && regression_rule_failed,
        awaiting_review: false,
    }
}

/// Checks one rule against an artifact's content; the error is the reason without the
/// artifact name (`percentage 62 is below 80`).
fn check_rule(rule: &ArtifactRule, content: Option<&Value>) -> Result<(), String> {
    let field = rule.field.as_str();
    let found = content.and_then(|c| lookup(c, field));
    match &rule.check {
        RuleCheck::AtLeast { value: minimum } => {
            let actual = match found {
                Some(v) => v
                    .as_f64()
                    .ok_or_else(|| format!("{field} is not a number"))?,
                None => content
                    .and_then(|c| length_of_sibling_content(c, field))
                    .ok_or_else(|| format!("{field} is missing"))?,
            };
            if actual >= *minimum {
                Ok(())
            } else {
                Err(format!(
                    "{field} {} is below {}",
                    number(actual),
                    number(*minimum)
                ))
            }
        }
        RuleCheck::Contains { values } => {
            let found = found.ok_or_else(|| format!("{field} is missing"))?;
            let has = |wanted: &str| match found {
                Value::Array(items) => items.iter().any(|i| i.as_str() == Some(wanted)),
                Value::Object(map) => map.contains_key(wanted),
                _ => false,
            };
            if !matches!(found, Value::Array(_) | Value::Object(_)) {
                return Err(format!("{field} is not a list"));
            }
            let absent: Vec<&str> = values
                .iter()
                .map(String::as_str)
                .filter(|v| !has(v))
                .collect();
            if absent.is_empty() {
                Ok(())
            } else {
                Err(format!("{field} is missing {}", absent.join(", ")))
            }
        }
        RuleCheck::IsTrue => match found {
            Some(Value::Bool(true)) => Ok(()),
            Some(_) => Err(format!("{field} is not true")),
            None => Err(format!("{field} is missing")),
        },
        RuleCheck::Equals { value: expected } => {
            let found = found.ok_or_else(|| format!("{field} is missing"))?;
            if json_equal(found, expected) {
                Ok(())
            } else {
                Err(format!(
                    "{field} is {}, expected {}",
                    show(found),
                    show(expected)
                ))
            }
        }
    }
}

/// Follows a dotted path through objects (and arrays, by index). JSON `null` counts as absent.
fn lookup<'v>(content: &'v Value, path: &str) -> Option<&'v Value> {
    let mut current = content;
    for segment in path.split('.') {
        current = match current {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    (!current.is_null()).then_some(current)
}

/// For an absent `…length` field: the character count of the string `content` beside it.
fn length_of_sibling_content(content: &Value, path: &str) -> Option<f64> {
    let parent = match path.rsplit_once('.') {
        Some((parent, "length")) => lookup(content, parent)?,
        None if path == "length" => content,
        _ => return None,
    };
    let text = parent.get("content")?.as_str()?;
    // Precision loss only past 2^53 characters, far beyond any message size limit.
    Some(text.chars().count() as f64)
}

fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Numbers as people write them: `62`, not `62.0`; `80.5` stays `80.5`.
fn number(n: f64) -> String {
    format!("{n}")
}

fn show(value: &Value) -> String {
    match value {
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), number),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
