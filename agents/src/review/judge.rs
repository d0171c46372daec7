//! The review agent's judgement: its rules, checked once at start, and the verdict they give on
//! one `gate.review.requested` event. Pure: no I/O, no clock, no logging. The agent's memory of
//! numbers seen in earlier reviews (for `not_below_previous`) is passed in and the numbers a
//! judgement saw come back, for the caller to remember once the verdict is published.

use std::collections::HashMap;
use std::fmt;

use anyhow::bail;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::settings::{ReviewRuleKind, ReviewRuleSettings};

/// The `data` of a `gate.review.requested` event.
#[derive(Debug, Clone, Deserialize)]
pub struct ReviewRequested {
    pub ticket_id: Uuid,
    pub phase_id: String,
    /// the phase in words, for a reviewer that reads
    #[serde(default)]
    pub summary: String,
    /// the newest artifact of each type collected for the phase under review
    #[serde(default)]
    pub artifacts: Vec<ReviewArtifact>,
    /// the newest artifact of each type from the ticket's earlier phases
    #[serde(default)]
    pub earlier_artifacts: Vec<ReviewArtifact>,
    /// the agents that completed the phase's tasks
    #[serde(default)]
    pub authors: Vec<String>,
}

/// An artifact as a review request shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct ReviewArtifact {
    /// the phase it was collected for (given for earlier artifacts)
    #[serde(default)]
    pub phase_id: Option<String>,
    pub artifact_type: String,
    #[serde(default)]
    pub artifact_path: Option<String>,
    #[serde(default)]
    pub artifact_content: Option<Value>,
}

impl ReviewRequested {
    /// The first artifact of a type collected for the phase under review.
    fn artifact(&self, artifact_type: &str) -> Option<&ReviewArtifact> {
        self.artifacts
            .iter()
            .find(|artifact| artifact.artifact_type == artifact_type)
    }

    /// The first artifact of a type collected for the phase under review, else for an earlier
    /// phase.
    fn artifact_here_or_earlier(&self, artifact_type: &str) -> Option<&ReviewArtifact> {
        self.artifact(artifact_type).or_else(|| {
            self.earlier_artifacts
                .iter()
                .find(|artifact| artifact.artifact_type == artifact_type)
        })
    }
}

/// A reviewer's verdict, as `gate.review.submit.requested` spells it.
pub use phaseflow_client::Verdict;

/// What the rules made of one review request.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub verdict: Verdict,
    /// with `changes_requested`, one per failed rule; with `approved`, one per rule, saying what
    /// was checked or why the rule did not apply
    pub reasons: Vec<String>,
    /// the numbers `not_below_previous` rules read, to remember once the verdict is published
    pub observations: Vec<Observation>,
}

/// A number a `not_below_previous` rule read in a review.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub ticket_id: Uuid,
    pub artifact_type: String,
    pub field: String,
    pub value: f64,
}

/// The highest number seen per ticket, artifact type and field, over the reviews judged so far.
#[derive(Debug, Default)]
pub struct Memory {
    highest: HashMap<(Uuid, String, String), f64>,
}

impl Memory {
    /// The highest value seen for a ticket's artifact field, if any.
    pub fn highest(&self, ticket_id: Uuid, artifact_type: &str, field: &str) -> Option<f64> {
        self.highest
            .get(&(ticket_id, artifact_type.to_owned(), field.to_owned()))
            .copied()
    }

    /// Remembers what a judgement saw.
    pub fn record(&mut self, observations: &[Observation]) {
        for observation in observations {
            let key = (
                observation.ticket_id,
                observation.artifact_type.clone(),
                observation.field.clone(),
            );
            let highest = self.highest.entry(key).or_insert(observation.value);
            *highest = highest.max(observation.value);
        }
    }

    /// How many ticket fields it holds.
    pub fn len(&self) -> usize {
        self.highest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.highest.is_empty()
    }
}

/// The checked rules, in the order they are configured.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

/// One rule, checked: every key its kind needs is there, and none it does not use.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub artifact_type: String,
    pub field: String,
    pub required: bool,
    pub check: Check,
}

/// What a rule checks on its field.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// a list of at least this many items
    MinItems(u64),
    /// a number of at least this
    AtLeast(f64),
    /// a number of at most this
    AtMost(f64),
    /// every string of another artifact's list appears in the field, or in one of
    /// `also_fields`
    Covers {
        from_artifact_type: String,
        from_field: String,
        also_fields: Vec<String>,
    },
    /// a number not below the highest seen for the ticket in an earlier review
    NotBelowPrevious,
}

/// How one rule came out.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Passed(String),
    Failed(String),
    NotApplicable(String),
}

impl RuleSet {
    /// Checks the configured rules. An error names the rule by its position (from 1), its kind,
    /// artifact and field, and says what is wrong.
    pub fn from_settings(rules: &[ReviewRuleSettings]) -> anyhow::Result<RuleSet> {
        if rules.is_empty() {
            bail!(
                "review_agent.rules is empty: the review agent would approve everything; \
                 configure at least one [[review_agent.rules]]"
            );
        }
        let rules = rules
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                Rule::from_settings(rule).map_err(|problem| {
                    anyhow::anyhow!(
                        "review_agent.rules entry {} ({} on {}.{}): {problem}",
                        index + 1,
                        kind_name(rule.kind),
                        rule.artifact_type,
                        rule.field
                    )
                })
            })
            .collect::<anyhow::Result<Vec<Rule>>>()?;
        Ok(RuleSet { rules })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Judges a review request: `changes_requested` when a rule fails, with one reason per
    /// failed rule; otherwise `approved`, with one reason per rule.
    pub fn judge(&self, review: &ReviewRequested, memory: &Memory) -> Judgement {
        let mut observations = Vec::new();
        let outcomes: Vec<Outcome> = self
            .rules
            .iter()
            .map(|rule| rule.judge(review, memory, &mut observations))
            .collect();
        let failures: Vec<String> = outcomes
            .iter()
            .filter_map(|outcome| match outcome {
                Outcome::Failed(reason) => Some(reason.clone()),
                _ => None,
            })
            .collect();
        if failures.is_empty() {
            let reasons = outcomes
                .into_iter()
                .map(|outcome| match outcome {
                    Outcome::Passed(reason) | Outcome::Failed(reason) => reason,
                    Outcome::NotApplicable(reason) => format!("not applicable: {reason}"),
                })
                .collect();
            Judgement {
                verdict: Verdict::Approved,
                reasons,
                observations,
            }
        } else {
            Judgement {
                verdict: Verdict::ChangesRequested,
                reasons: failures,
                observations,
            }
        }
    }
}

impl Rule {
    fn from_settings(rule: &ReviewRuleSettings) -> Result<Rule, String> {
        if rule.artifact_type.trim().is_empty() {
            return Err("artifact_type is empty".to_owned());
        }
        check_path("field", &rule.field)?;
        let kind = rule.kind;
        let unused = |key: &str, present: bool| {
            if present {
                Err(format!("`{key}` does not apply to {}", kind_name(kind)))
            } else {
                Ok(())
            }
        };
        if kind != ReviewRuleKind::Covers {
            unused("from_artifact_type", rule.from_artifact_type.is_some())?;
            unused("from_field", rule.from_field.is_some())?;
            unused("also_fields", !rule.also_fields.is_empty())?;
        }
        let check = match kind {
            ReviewRuleKind::MinItems => {
                let value = rule
                    .value
                    .ok_or("`value` is missing: the least number of items")?;
                if value < 0.0 || value.fract() != 0.0 || value > u32::MAX as f64 {
                    return Err(format!(
                        "`value` must be a whole number of items, 0 or more (found {value})"
                    ));
                }
                Check::MinItems(value as u64)
            }
            ReviewRuleKind::AtLeast | ReviewRuleKind::AtMost => {
                let value = rule.value.ok_or("`value` is missing: the bound")?;
                if !value.is_finite() {
                    return Err(format!("`value` must be a finite number (found {value})"));
                }
                if kind == ReviewRuleKind::AtLeast {
                    Check::AtLeast(value)
                } else {
                    Check::AtMost(value)
                }
            }
            ReviewRuleKind::Covers => {
                unused("value", rule.value.is_some())?;
                let from_artifact_type = rule
                    .from_artifact_type
                    .clone()
                    .filter(|name| !name.trim().is_empty())
                    .ok_or("`from_artifact_type` is missing: the artifact whose list is covered")?;
                let from_field = rule
                    .from_field
                    .clone()
                    .ok_or("`from_field` is missing: the field that holds the list")?;
                check_path("from_field", &from_field)?;
                for field in &rule.also_fields {
                    check_path("also_fields", field)?;
                }
                Check::Covers {
                    from_artifact_type,
                    from_field,
                    also_fields: rule.also_fields.clone(),
                }
            }
            ReviewRuleKind::NotBelowPrevious => {
                unused("value", rule.value.is_some())?;
                Check::NotBelowPrevious
            }
        };
        Ok(Rule {
            artifact_type: rule.artifact_type.clone(),
            field: rule.field.clone(),
            required: rule.required,
            check,
        })
    }

    /// What the rule checks, in words: `requirements_document.acceptance_criteria has at least
    /// 3 items`.
    pub fn describe(&self) -> String {
        let target = self.target();
        match &self.check {
            Check::MinItems(min) => format!("{target} has at least {min} items"),
            Check::AtLeast(bound) => format!("{target} is at least {}", number(*bound)),
            Check::AtMost(bound) => format!("{target} is at most {}", number(*bound)),
            Check::Covers {
                from_artifact_type,
                from_field,
                ..
            } => format!(
                "{} mentions every entry of {from_artifact_type}.{from_field}",
                self.searched()
            ),
            Check::NotBelowPrevious => format!("{target} did not drop since an earlier review"),
        }
    }

    fn target(&self) -> String {
        format!("{}.{}", self.artifact_type, self.field)
    }

    /// The fields a `covers` rule searches: `design_document.components (or content)`.
    fn searched(&self) -> String {
        match &self.check {
            Check::Covers { also_fields, .. } if !also_fields.is_empty() => {
                format!("{} (or {})", self.target(), also_fields.join(", "))
            }
            _ => self.target(),
        }
    }

    fn judge(
        &self,
        review: &ReviewRequested,
        memory: &Memory,
        observations: &mut Vec<Observation>,
    ) -> Outcome {
        let Some(artifact) = review.artifact(&self.artifact_type) else {
            let absent = format!(
                "no {} artifact in this review ({})",
                self.artifact_type,
                self.describe()
            );
            return if self.required {
                Outcome::Failed(format!(
                    "{} is missing; required to check that {}",
                    self.artifact_type,
                    self.describe()
                ))
            } else {
                Outcome::NotApplicable(absent)
            };
        };
        let content = artifact.artifact_content.as_ref();
        let found = content.and_then(|content| lookup(content, &self.field));
        let target = self.target();
        match &self.check {
            Check::MinItems(min) => {
                let expected = format!("a list of at least {min} items expected");
                match found {
                    None => Outcome::Failed(format!("{target} is absent; {expected}")),
                    Some(Value::Array(list)) if list.len() as u64 >= *min => Outcome::Passed(
                        format!("{target} has {} (at least {min})", items(list.len())),
                    ),
                    Some(Value::Array(list)) => Outcome::Failed(format!(
                        "{target} has {}; at least {min} expected",
                        items(list.len())
                    )),
                    Some(other) => Outcome::Failed(format!(
                        "{target} is not a list (found {}); {expected}",
                        show(other)
                    )),
                }
            }
            Check::AtLeast(bound) | Check::AtMost(bound) => {
                let at_least = matches!(self.check, Check::AtLeast(_));
                let word = if at_least { "at least" } else { "at most" };
                let holds = |x: f64| if at_least { x >= *bound } else { x <= *bound };
                let bound = number(*bound);
                match found.map(|value| (value, value.as_f64())) {
                    None => Outcome::Failed(format!(
                        "{target} is absent; a number {word} {bound} expected"
                    )),
                    Some((other, None)) => Outcome::Failed(format!(
                        "{target} is not a number (found {}); a number {word} {bound} expected",
                        show(other)
                    )),
                    Some((value, Some(x))) if holds(x) => {
                        Outcome::Passed(format!("{target} is {value} ({word} {bound})"))
                    }
                    Some((value, Some(_))) => {
                        Outcome::Failed(format!("{target} is {value}; {word} {bound} expected"))
                    }
                }
            }
            Check::Covers {
                from_artifact_type,
                from_field,
                also_fields,
            } => self.judge_covers(review, content, from_artifact_type, from_field, also_fields),
            Check::NotBelowPrevious => {
                let value = match found.map(|value| (value, value.as_f64())) {
                    None => {
                        return Outcome::Failed(format!(
                            "{target} is absent; a number expected, to compare with earlier \
                             reviews"
                        ))
                    }
                    Some((other, None)) => {
                        return Outcome::Failed(format!(
                            "{target} is not a number (found {}); a number expected, to compare \
                             with earlier reviews",
                            show(other)
                        ))
                    }
                    Some((_, Some(value))) => value,
                };
                observations.push(Observation {
                    ticket_id: review.ticket_id,
                    artifact_type: self.artifact_type.clone(),
                    field: self.field.clone(),
                    value,
                });
                let shown = number(value);
                match memory.highest(review.ticket_id, &self.artifact_type, &self.field) {
                    None => Outcome::Passed(format!(
                        "{target} is {shown} (the first value seen for this ticket: nothing to \
                         compare with)"
                    )),
                    Some(earlier) if value >= earlier => Outcome::Passed(format!(
                        "{target} is {shown} (not below {}, seen in an earlier review)",
                        number(earlier)
                    )),
                    Some(earlier) => Outcome::Failed(format!(
                        "{target} dropped to {shown}; at least {}, seen in an earlier review of \
                         this ticket, expected",
                        number(earlier)
                    )),
                }
            }
        }
    }

    fn judge_covers(
        &self,
        review: &ReviewRequested,
        content: Option<&Value>,
        from_artifact_type: &str,
        from_field: &str,
        also_fields: &[String],
    ) -> Outcome {
        let source = format!("{from_artifact_type}.{from_field}");
        let Some(from) = review.artifact_here_or_earlier(from_artifact_type) else {
            return Outcome::NotApplicable(format!(
                "no {from_artifact_type} artifact in this review or an earlier phase ({})",
                self.describe()
            ));
        };
        let wanted: Vec<&str> = match from
            .artifact_content
            .as_ref()
            .and_then(|content| lookup(content, from_field))
        {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .collect(),
            _ => {
                return Outcome::NotApplicable(format!(
                    "{source} is not a list ({})",
                    self.describe()
                ))
            }
        };
        let mut text = Vec::new();
        for field in std::iter::once(&self.field).chain(also_fields) {
            if let Some(value) = content.and_then(|content| lookup(content, field)) {
                collect_text(value, &mut text);
            }
        }
        if text.is_empty() && !wanted.is_empty() {
            return Outcome::Failed(format!(
                "{} is absent; expected to mention every entry of {source}: {}",
                self.searched(),
                quoted(&wanted)
            ));
        }
        let text: Vec<String> = text.iter().map(|text| text.to_lowercase()).collect();
        let missing: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|item| {
                let item = item.to_lowercase();
                !text.iter().any(|text| text.contains(&item))
            })
            .collect();
        if missing.is_empty() {
            Outcome::Passed(format!(
                "{} mentions all {} entries of {source}",
                self.searched(),
                wanted.len()
            ))
        } else {
            Outcome::Failed(format!(
                "{} does not mention {} of {source}; every entry expected",
                self.searched(),
                quoted(&missing)
            ))
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

fn kind_name(kind: ReviewRuleKind) -> &'static str {
    match kind {
        ReviewRuleKind::MinItems => "min_items",
        ReviewRuleKind::AtLeast => "at_least",
        ReviewRuleKind::AtMost => "at_most",
        ReviewRuleKind::Covers => "covers",
        ReviewRuleKind::NotBelowPrevious => "not_below_previous",
    }
}

/// A field name or dotted path: segments that are not empty and hold no spaces.
fn check_path(key: &str, path: &str) -> Result<(), String> {
    if path
        .split('.')
        .any(|segment| segment.is_empty() || segment.chars().any(char::is_whitespace))
    {
        return Err(format!(
            "`{key}` = \"{path}\" is not a field name or dotted path (e.g. `metrics.coverage`)"
        ));
    }
    Ok(())
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

/// Every piece of text in a value: strings, numbers, and the keys and values of objects, at
/// any depth.
fn collect_text<'v>(value: &'v Value, into: &mut Vec<std::borrow::Cow<'v, str>>) {
    match value {
        Value::String(text) => into.push(text.as_str().into()),
        Value::Number(number) => into.push(number.to_string().into()),
        Value::Array(items) => items.iter().for_each(|item| collect_text(item, into)),
        Value::Object(map) => {
            for (key, item) in map {
                into.push(key.as_str().into());
                collect_text(item, into);
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

/// `1 item`, `3 items`.
fn items(count: usize) -> String {
    if count == 1 {
        "1 item".to_owned()
    } else {
        format!("{count} items")
    }
}

/// Numbers as people write them: `62`, not `62.0`; `80.5` stays `80.5`.
fn number(n: f64) -> String {
    format!("{n}")
}

/// A found value for a reason, cut short when long.
fn show(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// `"billing", "audit log"`.
fn quoted(items: &[&str]) -> String {
    items
        .iter()
        .map(|item| format!("\"{item}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
pub(crate) mod tests;
