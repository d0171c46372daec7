//! A phase's context: what its completed tasks reported, the artifacts collected for it and its
//! latest gate verdict, aggregated into one [`PhaseContext`] and merged into the ticket's full
//! context under the phase's own key.
//!
//! Aggregation is tolerant: agents' task results are free-form JSON, and a malformed part is kept
//! as well as it can be rather than failing the phase. Several tasks often report the same
//! decision; a phase keeps it once. This module must not store anything or read the clock: the
//! time of aggregation is supplied by the caller.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::gate::{GateEvaluation, GateStatus};
use crate::domain::phase::Phase;
use crate::domain::ticket::TaskStatus;

/// Which way phase contexts and summaries are built. Callers that keep a stored context while
/// its sources are unchanged include it in their fingerprint, so that a context or summary built
/// an older way (before summaries opened with the ticket, or before entries were deduplicated)
/// is rebuilt rather than kept. Raise it whenever either changes what it produces.
pub const CONTEXT_FORMAT_VERSION: u32 = 2;

/// What one completed task contributed to its phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskContextEntry {
    /// Which task this was.
    pub task_type: String,
    /// The agent's one-line account of the work, if it gave one.
    pub summary: Option<String>,
    /// Whatever structured outputs the agent reported, kept verbatim.
    pub outputs: Option<Value>,
}

/// An artifact collected for the phase, by reference: its content lives with the artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// What kind of artifact it is (`design_document`).
    pub artifact_type: String,
    /// Where it lives, when the submitter said (`docs/design.md`).
    pub artifact_path: Option<String>,
}

/// The phase's latest gate verdict, as far as later phases care.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateOutcome {
    /// Passed, failed or pending.
    pub gate_status: GateStatus,
    /// Why it did not pass (empty when it did).
    pub blocking_reasons: Vec<String>,
}

impl From<&GateEvaluation> for GateOutcome {
    fn from(evaluation: &GateEvaluation) -> Self {
        Self {
            gate_status: evaluation.status,
            blocking_reasons: evaluation.blocking_reasons.clone(),
        }
    }
}

/// Everything the ticket learned in one phase; stored under `<phase>_phase` in `full_context`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseContext {
    /// The phase this context belongs to.
    pub phase_id: Phase,
    /// The phase's completed tasks, in the order given.
    #[serde(default)]
    pub tasks: Vec<TaskContextEntry>,
    /// Decisions reported by tasks; what later phases most need to respect.
    #[serde(default)]
    pub decisions: Vec<Value>,
    /// Risks reported by tasks; what later phases most need to watch.
    #[serde(default)]
    pub risks: Vec<Value>,
    /// Anything else the agents wanted remembered.
    #[serde(default)]
    pub notes: Vec<Value>,
    /// The artifacts collected for the phase.
    #[serde(default)]
    pub artifacts: Vec<ArtifactRef>,
    /// The latest gate verdict, if the gate was ever validated.
    #[serde(default)]
    pub gate: Option<GateOutcome>,
    /// RFC 3339 time of aggregation, supplied by the caller; newer phases sort first in the
    /// summary.
    pub aggregated_at: String,
}

/// A finished task as stored: its type, status and the `result` object agents reported (summary,
/// outputs, context{decisions,risks,notes}, artifacts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskRecord<'a> {
    /// Which task it is.
    pub task_type: &'a str,
    /// Only completed tasks contribute to the context.
    pub status: TaskStatus,
    /// The reported result, if any.
    pub result: Option<&'a Value>,
}

/// Builds a phase's context from its completed tasks (only status Completed counts; tasks in
/// given order), its collected artifacts (type + path) and its latest gate outcome. Malformed
/// result parts (e.g. decisions not an array) are tolerated: a non-array value is kept as a single
/// entry; missing parts are empty. A decision, risk or note several tasks reported alike (the
/// same JSON value) is kept once, where it first appeared.
pub fn aggregate_phase(
    phase: Phase,
    tasks: &[TaskRecord<'_>],
    artifacts: &[ArtifactRef],
    gate: Option<GateOutcome>,
    aggregated_at: String,
) -> PhaseContext {
    let mut context = PhaseContext {
        phase_id: phase,
        tasks: Vec::new(),
        decisions: Vec::new(),
        risks: Vec::new(),
        notes: Vec::new(),
        artifacts: artifacts.to_vec(),
        gate,
        aggregated_at,
    };
    for task in tasks.iter().filter(|t| t.status == TaskStatus::Completed) {
        let result = task.result.filter(|r| !r.is_null());
        let (summary, outputs) = match result {
            Some(Value::Object(fields)) => (
                fields.get("summary").and_then(text_of),
                fields.get("outputs").filter(|o| !o.is_null()).cloned(),
            ),
            // A bare string is the agent's summary; any other bare value, its output.
            Some(Value::String(text)) => (Some(text.clone()), None),
            Some(other) => (None, Some(other.clone())),
            None => (None, None),
        };
        context.tasks.push(TaskContextEntry {
            task_type: task.task_type.to_owned(),
            summary,
            outputs,
        });

        let Some(Value::Object(fields)) = result else {
            continue;
        };
        match fields.get("context") {
            Some(Value::Object(parts)) => {
                // The protocol nests the parts under `context`; parts given at the top level of
                // the result are accepted too, as the obvious mistake to forgive.
                let part = |name: &str| parts.get(name).or_else(|| fields.get(name));
                extend_entries(&mut context.decisions, part("decisions"));
                extend_entries(&mut context.risks, part("risks"));
                extend_entries(&mut context.notes, part("notes"));
            }
            other => {
                extend_entries(&mut context.decisions, fields.get("decisions"));
                extend_entries(&mut context.risks, fields.get("risks"));
                extend_entries(&mut context.notes, fields.get("notes"));
                // A `context` that is not an object is still something the agent said.
                extend_entries(&mut context.notes, other);
            }
        }
    }
    for entries in [
        &mut context.decisions,
        &mut context.risks,
        &mut context.notes,
    ] {
        keep_first_of_equal_values(entries);
    }
    context
}

/// Merges one phase's context into the ticket's full context (a JSON object keyed
/// `<phase>_phase`), replacing only that key.
pub fn merge_phase(full_context: &mut Map<String, Value>, phase_context: &PhaseContext) {
    // Invariant: a PhaseContext holds only strings, sequences, enums and JSON values, none of
    // which can fail to serialize to a `Value`.
    let value = serde_json::to_value(phase_context).expect("a PhaseContext always serializes");
    full_context.insert(phase_context.phase_id.context_key(), value);
}

/// An entry of a task's result as text: strings as they are, other JSON values as JSON, null
/// as nothing.
pub(super) fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

fn extend_entries(target: &mut Vec<Value>, part: Option<&Value>) {
    match part {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => target.extend(items.iter().filter(|i| !i.is_null()).cloned()),
        Some(other) => target.push(other.clone()),
    }
}

/// Drops every value equal to an earlier one. Values are compared by their JSON text, which is
/// the same for equal values because serde_json keeps object keys sorted (its `preserve_order`
/// feature is off); hashing the text keeps this linear however many entries a phase has.
fn keep_first_of_equal_values(values: &mut Vec<Value>) {
    let mut seen = HashSet::new();
    values.retain(|value| seen.insert(value.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::domain::context::fixtures::{design_context, record, TICKET};
    use crate::domain::context::summarize;

    #[test]
    fn aggregation_takes_completed_tasks_and_their_reported_context() {
        let context = design_context();
        assert_eq!(context.phase_id, Phase::Design);
        assert_eq!(context.tasks.len(), 2);
        assert_eq!(context.tasks[0].task_type, "design_architecture");
        assert_eq!(
            context.tasks[0].summary.as_deref(),
            Some("Chose a hexagonal layout")
        );
        assert_eq!(context.tasks[0].outputs, Some(json!({"modules": 4})));
        assert_eq!(
            context.decisions,
            [
                json!("Use Postgres for state"),
                json!("One queue per handler")
            ]
        );
        assert_eq!(context.risks, [json!("RabbitMQ outage stalls progress")]);
        assert_eq!(context.notes, [json!("Consider sharding later")]);
        assert_eq!(context.artifacts.len(), 1);
        assert_eq!(context.aggregated_at, "2024-05-01T10:00:00Z");
    }

    #[test]
    fn aggregation_tolerates_malformed_results() {
        let bare_string = json!("just a summary");
        let number = json!(42);
        let odd_context = json!({"summary": 7, "context": "remember this"});
        let null = Value::Null;
        let context = aggregate_phase(
            Phase::Testing,
            &[
                record("a", TaskStatus::Completed, &bare_string),
                record("b", TaskStatus::Completed, &number),
                record("c", TaskStatus::Completed, &odd_context),
                record("d", TaskStatus::Completed, &null),
                TaskRecord {
                    task_type: "e",
                    status: TaskStatus::Completed,
                    result: None,
                },
                record("f", TaskStatus::Failed, &bare_string),
            ],
            &[],
            None,
            "t".into(),
        );
        let summaries: Vec<_> = context.tasks.iter().map(|t| t.summary.clone()).collect();
        assert_eq!(
            summaries,
            [
                Some("just a summary".to_owned()),
                None,
                Some("7".to_owned()),
                None,
                None
            ]
        );
        assert_eq!(context.tasks[1].outputs, Some(json!(42)));
        assert_eq!(context.notes, [json!("remember this")]);
        assert!(context.decisions.is_empty());
    }

    #[test]
    fn merging_replaces_only_its_own_phase_key() {
        let mut full = Map::new();
        full.insert("requirements_phase".into(), json!({"keep": true}));
        full.insert("design_phase".into(), json!({"old": true}));
        let context = design_context();
        merge_phase(&mut full, &context);
        assert_eq!(full["requirements_phase"], json!({"keep": true}));
        let stored: PhaseContext = serde_json::from_value(full["design_phase"].clone()).unwrap();
        assert_eq!(stored, context);
    }

    #[test]
    fn identical_decisions_risks_and_notes_of_a_phase_are_aggregated_once_in_first_order() {
        let first = json!({"context": {
            "decisions": ["Use Postgres", {"b": 2, "a": 1}, "One queue"],
            "risks": ["Outage"],
            "notes": ["Pairing helped"],
        }});
        let second = json!({"context": {
            "decisions": ["One queue", {"a": 1, "b": 2}, "Use Postgres", "Shard later"],
            "risks": ["Outage", "Outage"],
            "notes": ["Pairing helped", "pairing helped"],
        }});
        let context = aggregate_phase(
            Phase::Design,
            &[
                record("design_architecture", TaskStatus::Completed, &first),
                record("create_design_doc", TaskStatus::Completed, &second),
            ],
            &[],
            None,
            "t".into(),
        );
        assert_eq!(
            context.decisions,
            [
                json!("Use Postgres"),
                json!({"a": 1, "b": 2}),
                json!("One queue"),
                json!("Shard later")
            ]
        );
        assert_eq!(context.risks, [json!("Outage")]);
        // Only exact duplicates go: differently written notes are different notes.
        assert_eq!(
            context.notes,
            [json!("Pairing helped"), json!("pairing helped")]
        );

        let mut full = Map::new();
        merge_phase(&mut full, &context);
        let text = summarize(&TICKET, &full, 2000).text;
        assert!(
            text.contains("Decisions: Use Postgres; {\"a\":1,\"b\":2}; One queue; Shard later\n"),
            "{text}"
        );
        assert!(text.contains("Risks: Outage\n"), "{text}");
        assert!(
            text.contains("Notes: Pairing helped; pairing helped"),
            "{text}"
        );
    }
}
