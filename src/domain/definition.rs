//! The workflow definition: every phase's task templates, gate and agent guidance, read from TOML
//! and checked before anything runs (the defaults live in `config/workflow.toml`).
//!
//! Loading fails with an error that says where the problem is (`templates.PHASE_DESIGN[1]`), so an
//! operator can fix the file without reading code; a definition that loads is safe to use without
//! further checks. This module must not read files or the environment: callers pass the text
//! (see [`WorkflowDefinition::builtin`] for the copy compiled into the binary).

use std::collections::{BTreeMap, HashMap};

use serde::de::DeserializeOwned;
use toml::{Table, Value};

use super::gate::{ArtifactRule, GateRequirement, GateSet, RuleCheck};
use super::guidance::{
    Guidance, DONE_DEFINITION_MAX_CHARS, EXPECTED_OUTPUTS_MAX, EXPECTED_OUTPUT_MAX_CHARS,
    PROMPT_MAX_CHARS,
};
use super::phase::{Phase, PhaseRules, TransitionKind};
use super::template::{TaskTemplate, TemplateSet};

/// Everything about the workflow that operators may configure.
#[derive(Debug, Clone)]
pub struct WorkflowDefinition {
    /// Which tasks each phase visit creates.
    pub templates: TemplateSet,
    /// What each phase must produce before a ticket moves on.
    pub gates: GateSet,
    /// What agents are told about each phase; see [`WorkflowDefinition::guidance`].
    guidance: BTreeMap<Phase, Guidance>,
    /// The task a review that requests changes generates in its phase.
    pub review_rework: TaskTemplate,
}

/// Why a workflow definition was refused. Every message starts with the source name and, for
/// content problems, the TOML location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    /// The text is not valid TOML; the message includes the parser's line and column.
    #[error("{origin}: invalid TOML: {message}")]
    Syntax {
        /// The source name given by the caller (usually a file path).
        origin: String,
        /// The TOML parser's explanation.
        message: String,
    },
    /// The TOML is well-formed but describes an unusable workflow.
    #[error("{origin}: {location}: {problem}")]
    Invalid {
        /// The source name given by the caller (usually a file path).
        origin: String,
        /// Where in the document, e.g. `templates.PHASE_DESIGN[1] (create_design_doc)`.
        location: String,
        /// What is wrong there and, where possible, what would be right.
        problem: String,
    },
}

const SECTIONS: [&str; 5] = [
    "templates",
    "reentry_templates",
    "gates",
    "guidance",
    "review_rework",
];

/// The keys of a `[guidance.<PHASE>]` table.
const GUIDANCE_KEYS: [&str; 3] = ["prompt", "done_definition", "expected_outputs"];

impl WorkflowDefinition {
    /// Reads and checks a definition. `source` names the text in error messages (a file path).
    pub fn from_toml_str(text: &str, source: &str) -> Result<Self, DefinitionError> {
        let reader = Reader { origin: source };
        let document: Table = toml::from_str(text).map_err(|e| DefinitionError::Syntax {
            origin: source.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        for key in document.keys() {
            if !SECTIONS.contains(&key.as_str()) {
                return Err(reader.invalid(
                    key,
                    format!("unknown section; expected one of {}", SECTIONS.join(", ")),
                ));
            }
        }
        let normal = reader.templates("templates", document.get("templates"))?;
        let reentry = reader.templates("reentry_templates", document.get("reentry_templates"))?;
        let gates = reader.gates(document.get("gates"))?;
        let guidance = reader.guidance(document.get("guidance"))?;
        let review_rework = reader.review_rework(document.get("review_rework"))?;
        let normal_roles = TemplateSet::new(normal.clone(), BTreeMap::new());
        let mut reentry = reentry;
        for (phase, templates) in &mut reentry {
            let role = normal_roles.phase_role(*phase);
            for template in templates.iter_mut().filter(|t| t.role.is_none()) {
                template.role = role.map(str::to_owned);
            }
        }
        Ok(Self {
            templates: TemplateSet::new(normal, reentry),
            gates: GateSet::new(gates),
            guidance,
            review_rework,
        })
    }

    /// What agents working in `phase` are told about it; `None` when the definition says
    /// nothing (never for PHASE_BLOCKED and PHASE_DONE, which may not have any).
    pub fn guidance(&self, phase: Phase) -> Option<&Guidance> {
        self.guidance.get(&phase)
    }

    /// The role the review rework task of `phase` needs: the rework template's own, else the
    /// phase's ([`TemplateSet::phase_role`]).
    pub fn rework_role(&self, phase: Phase) -> Option<&str> {
        self.review_rework
            .role
            .as_deref()
            .or_else(|| self.templates.phase_role(phase))
    }

    /// The definitions compiled into the binary: the repository's config/workflow.toml via
    /// include_str!("../../config/workflow.toml").
    pub fn builtin() -> Result<Self, DefinitionError> {
        Self::from_toml_str(
            include_str!("../../config/workflow.toml"),
            "built-in config/workflow.toml",
        )
    }
}

/// The rework task a review that requests changes generates when the definition names none.
fn default_review_rework() -> TaskTemplate {
    TaskTemplate {
        task_type: "address_review_feedback".to_owned(),
        description: "Address the review of {phase} for: {ticket_title}".to_owned(),
        priority: crate::domain::Priority::High,
        after: Vec::new(),
        role: None,
    }
}

/// Carries the source name into every error.
struct Reader<'a> {
    origin: &'a str,
}

impl Reader<'_> {
    fn invalid(&self, location: &str, problem: impl Into<String>) -> DefinitionError {
        DefinitionError::Invalid {
            origin: self.origin.to_owned(),
            location: location.to_owned(),
            problem: problem.into(),
        }
    }

    /// Deserializes one value, reporting serde's complaint at `location`.
    fn decode<T: DeserializeOwned>(
        &self,
        location: &str,
        value: &Value,
    ) -> Result<T, DefinitionError> {
        value
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| self.invalid(location, e.message().trim_end()))
    }

    fn phase_tables<'v>(
        &self,
        section: &str,
        value: Option<&'v Value>,
    ) -> Result<Vec<(Phase, String, &'v Value)>, DefinitionError> {
        let Some(value) = value else {
            return Ok(Vec::new());
        };
        let Value::Table(table) = value else {
            return Err(self.invalid(
                section,
                format!("must be a table keyed by phase, e.g. [{section}.PHASE_DESIGN]"),
            ));
        };
        table
            .iter()
            .map(|(key, value)| {
                let location = format!("{section}.{key}");
                let phase = key
                    .parse::<Phase>()
                    .map_err(|e| self.invalid(&location, e.to_string()))?;
                Ok((phase, location, value))
            })
            .collect()
    }

    fn templates(
        &self,
        section: &str,
        value: Option<&Value>,
    ) -> Result<BTreeMap<Phase, Vec<TaskTemplate>>, DefinitionError> {
        let reentry = section == "reentry_templates";
        let mut by_phase = BTreeMap::new();
        for (phase, location, value) in self.phase_tables(section, value)? {
            match phase {
                Phase::Done => {
                    return Err(self.invalid(
                        &location,
                        "PHASE_DONE is terminal and gets no tasks; remove this section",
                    ))
                }
                Phase::Blocked => {
                    return Err(self.invalid(
                        &location,
                        "PHASE_BLOCKED gets no tasks of its own (the unfinished tasks of the \
                         phase it was blocked from carry over); remove this section",
                    ))
                }
                _ => {}
            }
            if reentry && !entered_by_regression(phase) {
                return Err(self.invalid(
                    &location,
                    format!(
                        "{phase} is never entered by regression, so re-entry templates for it \
                         would never be used; only {} may have them",
                        regression_targets().join(", ")
                    ),
                ));
            }
            let Value::Array(entries) = value else {
                return Err(self.invalid(
                    &location,
                    format!("must be a list of tasks, written as [[{location}]] tables"),
                ));
            };
            let mut templates: Vec<TaskTemplate> = Vec::with_capacity(entries.len());
            for (index, entry) in entries.iter().enumerate() {
                let at = format!("{location}[{index}]");
                let template: TaskTemplate = self.decode(&at, entry)?;
                if template.task_type.trim().is_empty() {
                    return Err(self.invalid(&at, "task_type is empty"));
                }
                let at = format!("{at} ({})", template.task_type);
                if template.description.trim().is_empty() {
                    return Err(self.invalid(&at, "description is empty"));
                }
                self.check_role(&at, template.role.as_deref())?;
                if let Some(first) = templates
                    .iter()
                    .position(|t| t.task_type == template.task_type)
                {
                    return Err(self.invalid(
                        &at,
                        format!(
                            "duplicate task_type `{}` in {phase} (first at {location}[{first}])",
                            template.task_type
                        ),
                    ));
                }
                templates.push(template);
            }
            for (index, template) in templates.iter().enumerate() {
                for name in &template.after {
                    if !templates.iter().any(|t| &t.task_type == name) {
                        return Err(self.invalid(
                            &format!("{location}[{index}] ({})", template.task_type),
                            format!("`after` names unknown task_type `{name}` in {phase}"),
                        ));
                    }
                }
            }
            if let Some(cycle) = find_cycle(&templates) {
                return Err(self.invalid(
                    &location,
                    format!("dependency cycle: {}", cycle.join(" -> ")),
                ));
            }
            by_phase.insert(phase, templates);
        }
        Ok(by_phase)
    }

    fn gates(
        &self,
        value: Option<&Value>,
    ) -> Result<BTreeMap<Phase, GateRequirement>, DefinitionError> {
        let mut by_phase = BTreeMap::new();
        for (phase, location, value) in self.phase_tables("gates", value)? {
            match phase {
                Phase::Done => {
                    return Err(self.invalid(
                        &location,
                        "PHASE_DONE is never left, so its gate would never be checked; remove \
                         this section",
                    ))
                }
                Phase::Blocked => {
                    return Err(self.invalid(
                        &location,
                        "leaving PHASE_BLOCKED never checks a gate; remove this section",
                    ))
                }
                _ => {}
            }
            let Value::Table(table) = value else {
                return Err(self.invalid(&location, "must be a table"));
            };
            reject_unknown_keys(
                self,
                &location,
                table,
                &["required_artifacts", "rules", "review"],
            )?;
            let review: bool = match table.get("review") {
                Some(value) => self.decode(&format!("{location}.review"), value)?,
                None => false,
            };

            let required_artifacts: Vec<String> = match table.get("required_artifacts") {
                Some(value) => self.decode(&format!("{location}.required_artifacts"), value)?,
                None => Vec::new(),
            };
            for (index, name) in required_artifacts.iter().enumerate() {
                let at = format!("{location}.required_artifacts[{index}]");
                if name.trim().is_empty() {
                    return Err(self.invalid(&at, "artifact type is empty"));
                }
                if required_artifacts[..index].contains(name) {
                    return Err(self.invalid(&at, format!("`{name}` is listed twice")));
                }
            }

            let rules = match table.get("rules") {
                None => Vec::new(),
                Some(Value::Array(entries)) => entries
                    .iter()
                    .enumerate()
                    .map(|(index, entry)| self.rule(&format!("{location}.rules[{index}]"), entry))
                    .collect::<Result<Vec<_>, _>>()?,
                Some(_) => return Err(self.invalid(
                    &format!("{location}.rules"),
                    "must be a list of rules, e.g. rules = [{ artifact = \"…\", field = \"…\", \
                         check = \"is_true\" }]",
                )),
            };
            by_phase.insert(
                phase,
                GateRequirement {
                    required_artifacts,
                    rules,
                    review,
                },
            );
        }
        Ok(by_phase)
    }

    fn guidance(
        &self,
        value: Option<&Value>,
    ) -> Result<BTreeMap<Phase, Guidance>, DefinitionError> {
        let mut by_phase = BTreeMap::new();
        for (phase, location, value) in self.phase_tables("guidance", value)? {
            match phase {
                Phase::Done => {
                    return Err(self.invalid(
                        &location,
                        "PHASE_DONE is terminal: no agent works in it; remove this section",
                    ))
                }
                Phase::Blocked => {
                    return Err(self.invalid(
                        &location,
                        "PHASE_BLOCKED has no work of its own (its tasks are those of the phase \
                         it was blocked from); remove this section",
                    ))
                }
                _ => {}
            }
            let Value::Table(table) = value else {
                return Err(self.invalid(
                    &location,
                    format!("must be a table, written as [{location}]"),
                ));
            };
            reject_unknown_keys(self, &location, table, &GUIDANCE_KEYS)?;
            if table.is_empty() {
                return Err(self.invalid(
                    &location,
                    format!(
                        "says nothing; set at least one of {} or remove this section",
                        GUIDANCE_KEYS.join(", ")
                    ),
                ));
            }
            let field = |key: &str| format!("{location}.{key}");
            let guidance = Guidance {
                prompt: self.optional(&field("prompt"), table.get("prompt"))?,
                done_definition: self
                    .optional(&field("done_definition"), table.get("done_definition"))?,
                expected_outputs: self
                    .optional(&field("expected_outputs"), table.get("expected_outputs"))?
                    .unwrap_or_default(),
            };
            if let Some(prompt) = &guidance.prompt {
                self.text(&field("prompt"), prompt, PROMPT_MAX_CHARS)?;
            }
            if let Some(done) = &guidance.done_definition {
                self.text(&field("done_definition"), done, DONE_DEFINITION_MAX_CHARS)?;
            }
            let outputs = &guidance.expected_outputs;
            if table.contains_key("expected_outputs") && outputs.is_empty() {
                return Err(self.invalid(
                    &field("expected_outputs"),
                    "is empty; list at least one output or remove the key",
                ));
            }
            if outputs.len() > EXPECTED_OUTPUTS_MAX {
                return Err(self.invalid(
                    &field("expected_outputs"),
                    format!(
                        "has {} entries; at most {EXPECTED_OUTPUTS_MAX} are allowed",
                        outputs.len()
                    ),
                ));
            }
            for (index, output) in outputs.iter().enumerate() {
                let at = format!("{location}.expected_outputs[{index}]");
                self.text(&at, output, EXPECTED_OUTPUT_MAX_CHARS)?;
                if outputs[..index].contains(output) {
                    return Err(self.invalid(&at, "is listed twice"));
                }
            }
            by_phase.insert(phase, guidance);
        }
        Ok(by_phase)
    }

    /// The rework task of a review that requests changes; the shipped one when the section is
    /// absent.
    fn review_rework(&self, value: Option<&Value>) -> Result<TaskTemplate, DefinitionError> {
        let Some(value) = value else {
            return Ok(default_review_rework());
        };
        let location = "review_rework";
        let template: TaskTemplate = self.decode(location, value)?;
        if template.task_type.trim().is_empty() {
            return Err(self.invalid(location, "task_type is empty"));
        }
        if template.description.trim().is_empty() {
            return Err(self.invalid(location, "description is empty"));
        }
        if !template.after.is_empty() {
            return Err(self.invalid(
                location,
                "a rework task comes after nothing: it is generated alone; remove `after`",
            ));
        }
        self.check_role(location, template.role.as_deref())?;
        Ok(template)
    }

    /// A template's `role`, when it names one, is a role name (1 to 64 of `a-z0-9._-`).
    fn check_role(&self, location: &str, role: Option<&str>) -> Result<(), DefinitionError> {
        match role {
            Some(role) if !phaseflow_client::limits::is_valid_name(role) => Err(self.invalid(
                location,
                format!("role `{role}` is not a role name: 1 to 64 of a-z, 0-9, `.`, `_` and `-`"),
            )),
            _ => Ok(()),
        }
    }

    /// An optional value, decoded at `location` when present.
    fn optional<T: DeserializeOwned>(
        &self,
        location: &str,
        value: Option<&Value>,
    ) -> Result<Option<T>, DefinitionError> {
        value.map(|value| self.decode(location, value)).transpose()
    }

    /// A text of the definition that agents read: not blank, at most `max` characters.
    fn text(&self, location: &str, text: &str, max: usize) -> Result<(), DefinitionError> {
        if text.trim().is_empty() {
            return Err(self.invalid(location, "is empty"));
        }
        let length = text.chars().count();
        if length > max {
            return Err(self.invalid(
                location,
                format!("is {length} characters long; at most {max} are allowed"),
            ));
        }
        Ok(())
    }

    fn rule(&self, location: &str, value: &Value) -> Result<ArtifactRule, DefinitionError> {
        let Value::Table(table) = value else {
            return Err(self.invalid(location, "must be a table"));
        };
        // `check`'s own fields are flattened into the rule, which serde cannot police; do it here.
        let extra: &[&str] = match table.get("check").and_then(Value::as_str) {
            Some("at_least") | Some("equals") => &["value"],
            Some("contains") => &["values"],
            _ => &[],
        };
        let mut allowed = vec!["artifact", "field", "check", "regression"];
        allowed.extend_from_slice(extra);
        reject_unknown_keys(self, location, table, &allowed)?;

        let rule: ArtifactRule = self.decode(location, value)?;
        if rule.artifact.trim().is_empty() {
            return Err(self.invalid(location, "artifact is empty"));
        }
        if rule
            .field
            .split('.')
            .any(|segment| segment.trim().is_empty())
        {
            return Err(self.invalid(
                location,
                format!(
                    "field `{}` is not a field name or dotted path (e.g. `metrics.coverage`)",
                    rule.field
                ),
            ));
        }
        match &rule.check {
            RuleCheck::AtLeast { value } if !value.is_finite() => {
                Err(self.invalid(location, "at_least needs a finite number as value"))
            }
            RuleCheck::Contains { values } if values.is_empty() => {
                Err(self.invalid(location, "contains needs at least one entry in values"))
            }
            _ => Ok(rule),
        }
    }
}

fn reject_unknown_keys(
    reader: &Reader<'_>,
    location: &str,
    table: &Table,
    allowed: &[&str],
) -> Result<(), DefinitionError> {
    match table.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(reader.invalid(
            location,
            format!(
                "unknown key `{key}`; expected one of {}",
                allowed.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

fn entered_by_regression(phase: Phase) -> bool {
    Phase::ALL
        .iter()
        .any(|from| from.classify_transition(phase) == Ok(TransitionKind::Regression))
}

fn regression_targets() -> Vec<&'static str> {
    Phase::ALL
        .into_iter()
        .filter(|p| entered_by_regression(*p))
        .map(Phase::as_str)
        .collect()
}

/// Finds a cycle in the `after` relation, as the task types along it with the first repeated at
/// the end (`a -> b -> a`, read "a comes after b, which comes after a").
fn find_cycle(templates: &[TaskTemplate]) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }

    fn visit(
        node: usize,
        edges: &[Vec<usize>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks[node] = Mark::OnPath;
        path.push(node);
        for &next in &edges[node] {
            match marks[next] {
                Mark::OnPath => {
                    let start = path.iter().position(|&n| n == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next);
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(cycle) = visit(next, edges, marks, path) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[node] = Mark::Done;
        None
    }

    let index: HashMap<&str, usize> = templates
        .iter()
        .enumerate()
        .map(|(i, t)| (t.task_type.as_str(), i))
        .collect();
    let edges: Vec<Vec<usize>> = templates
        .iter()
        .map(|t| {
            t.after
                .iter()
                .filter_map(|name| index.get(name.as_str()).copied())
                .collect()
        })
        .collect();
    let mut marks = vec![Mark::New; templates.len()];
    for start in 0..templates.len() {
        if marks[start] == Mark::New {
            if let Some(cycle) = visit(start, &edges, &mut marks, &mut Vec::new()) {
                return Some(
                    cycle
                        .into_iter()
                        .map(|i| templates[i].task_type.clone())
                        .collect(),
                );
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
