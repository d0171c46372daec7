//! Task templates: which tasks a visit to a phase creates, in what order, depending on what, and
//! how their descriptions are filled in (docs/protocol.md, "Task templates").
//!
//! This module turns already-validated templates into a plan ([`PlannedTask`]s whose dependencies
//! are indexes into the plan); giving the tasks ids and storing them is the caller's job. It must
//! not read files (see [`crate::domain::definition`] for loading) or decide *whether* a visit gets
//! tasks (the workflow does that: none while the phase still has unfinished tasks).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::phase::Phase;
use super::ticket::{Priority, TicketId};

/// One task a phase visit creates. `description` may use the placeholders `{ticket_title}`,
/// `{ticket_priority}`, `{ticket_id}` and `{phase}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskTemplate {
    /// Unique within the phase's list; agents route work by it and `after` refers to it.
    pub task_type: String,
    /// What the agent is asked to do, before placeholders are filled in.
    pub description: String,
    /// The generated task's priority (independent of the ticket's).
    pub priority: Priority,
    /// The `task_type`s in the same list that must be done first.
    #[serde(default)]
    pub after: Vec<String>,
    /// The role an agent needs to claim the generated task (`None`: any agent may).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// The templates of every phase: the normal ones, and the re-entry ones used instead when a
/// phase is entered by regression.
#[derive(Debug, Clone, Default)]
pub struct TemplateSet {
    normal: BTreeMap<Phase, Vec<TaskTemplate>>,
    reentry: BTreeMap<Phase, Vec<TaskTemplate>>,
}

impl TemplateSet {
    /// Wraps templates that have already been validated (unique task types, known and acyclic
    /// `after` names), as [`crate::domain::definition::WorkflowDefinition`] does.
    pub fn new(
        normal: BTreeMap<Phase, Vec<TaskTemplate>>,
        reentry: BTreeMap<Phase, Vec<TaskTemplate>>,
    ) -> Self {
        Self { normal, reentry }
    }

    /// The templates for one visit: re-entry templates when entered by regression and the phase
    /// has some, else the normal ones (empty slice if none).
    pub fn for_visit(&self, phase: Phase, regression: bool) -> &[TaskTemplate] {
        if regression {
            if let Some(reentry) = self.reentry.get(&phase).filter(|t| !t.is_empty()) {
                return reentry;
            }
        }
        self.normal(phase)
    }

    /// The phase's normal templates (empty if it has none), e.g. for documentation endpoints.
    pub fn normal(&self, phase: Phase) -> &[TaskTemplate] {
        self.normal.get(&phase).map_or(&[], Vec::as_slice)
    }

    /// The phase's re-entry templates (empty if it has none).
    pub fn reentry(&self, phase: Phase) -> &[TaskTemplate] {
        self.reentry.get(&phase).map_or(&[], Vec::as_slice)
    }

    /// The phase's role: the first role its normal templates name. Its re-entry templates and
    /// its review rework tasks take it when they name none.
    pub fn phase_role(&self, phase: Phase) -> Option<&str> {
        self.normal(phase)
            .iter()
            .find_map(|template| template.role.as_deref())
    }
}

/// The values placeholders are filled with.
#[derive(Debug, Clone, Copy)]
pub struct TemplateVars<'a> {
    /// Fills `{ticket_title}`, inserted literally.
    pub ticket_title: &'a str,
    /// Fills `{ticket_priority}` (`HIGH`).
    pub ticket_priority: Priority,
    /// Fills `{ticket_id}` (hyphenated UUID).
    pub ticket_id: TicketId,
    /// Fills `{phase}` (`PHASE_DESIGN`): the phase the tasks are generated for.
    pub phase: Phase,
}

/// A task about to be created, before it has an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTask {
    /// Copied from the template.
    pub task_type: String,
    /// The template's description with placeholders filled in.
    pub description: String,
    /// Copied from the template.
    pub priority: Priority,
    /// Copied from the template.
    pub role: Option<String>,
    /// Indexes into the returned Vec of the tasks it comes after; the caller maps them to the ids
    /// it gives those tasks (`dependencies` are task ids).
    pub depends_on: Vec<usize>,
}

/// Plans one visit's tasks from its templates, in the templates' order. `after` names that match
/// no template are ignored (validation rejects them earlier); repeated names count once.
pub fn plan_tasks(templates: &[TaskTemplate], vars: &TemplateVars<'_>) -> Vec<PlannedTask> {
    templates
        .iter()
        .map(|template| {
            let mut depends_on: Vec<usize> = Vec::with_capacity(template.after.len());
            for name in &template.after {
                if let Some(index) = templates.iter().position(|t| &t.task_type == name) {
                    if !depends_on.contains(&index) {
                        depends_on.push(index);
                    }
                }
            }
            PlannedTask {
                task_type: template.task_type.clone(),
                description: render(&template.description, vars),
                priority: template.priority,
                role: template.role.clone(),
                depends_on,
            }
        })
        .collect()
}

/// Fills the placeholders of a description in one pass. Unknown `{x}` are left as they are, and
/// inserted values are never expanded again (a title containing `{phase}` stays as written).
pub fn render(description: &str, vars: &TemplateVars<'_>) -> String {
    let mut out = String::with_capacity(description.len() + vars.ticket_title.len());
    let mut rest = description;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after_open = &rest[open + 1..];
        let value = after_open.find('}').and_then(|close| {
            let value = match &after_open[..close] {
                "ticket_title" => vars.ticket_title.to_owned(),
                "ticket_priority" => vars.ticket_priority.as_str().to_owned(),
                "ticket_id" => vars.ticket_id.to_string(),
                "phase" => vars.phase.as_str().to_owned(),
                _ => return None,
            };
            Some((value, close))
        });
        match value {
            Some((value, close)) => {
                out.push_str(&value);
                rest = &after_open[close + 1..];
            }
            None => {
                out.push('{');
                rest = after_open;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(title: &str) -> TemplateVars<'_> {
        TemplateVars {
            ticket_title: title,
            ticket_priority: Priority::High,
            ticket_id: TicketId("7f0c3c5e-1b1e-4a53-9b53-6a1c1f0c9a11".parse().unwrap()),
            phase: Phase::Design,
        }
    }

    fn template(task_type: &str, after: &[&str]) -> TaskTemplate {
        TaskTemplate {
            task_type: task_type.into(),
            description: format!("{task_type} for: {{ticket_title}}"),
            priority: Priority::Medium,
            after: after.iter().map(|s| s.to_string()).collect(),
            role: None,
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        let text = render(
            "{ticket_title}|{ticket_priority}|{ticket_id}|{phase}",
            &vars("Add login"),
        );
        assert_eq!(
            text,
            "Add login|HIGH|7f0c3c5e-1b1e-4a53-9b53-6a1c1f0c9a11|PHASE_DESIGN"
        );
    }

    #[test]
    fn unknown_and_unclosed_placeholders_are_left_as_they_are() {
        assert_eq!(
            render("{nope} {ticket_title} {{ticket_title}} {open", &vars("T")),
            "{nope} T {T} {open"
        );
        assert_eq!(render("}{", &vars("T")), "}{");
        assert_eq!(render("", &vars("T")), "");
    }

    #[test]
    fn a_title_with_placeholders_is_inserted_literally() {
        assert_eq!(
            render(
                "Do: {ticket_title} in {phase}",
                &vars("{phase} and {ticket_id}")
            ),
            "Do: {phase} and {ticket_id} in PHASE_DESIGN"
        );
    }

    #[test]
    fn non_ascii_text_around_placeholders_survives() {
        assert_eq!(
            render("Überprüfe „{ticket_title}“ ✓", &vars("日本語")),
            "Überprüfe „日本語“ ✓"
        );
    }

    #[test]
    fn plans_keep_template_order_and_point_dependencies_at_indexes() {
        let templates = vec![
            template("analyze", &[]),
            template("write", &["analyze"]),
            template("review", &["write", "analyze", "write", "ghost"]),
        ];
        let plan = plan_tasks(&templates, &vars("X"));
        let types: Vec<_> = plan.iter().map(|t| t.task_type.as_str()).collect();
        assert_eq!(types, ["analyze", "write", "review"]);
        assert_eq!(plan[0].depends_on, Vec::<usize>::new());
        assert_eq!(plan[1].depends_on, vec![0]);
        assert_eq!(plan[2].depends_on, vec![1, 0]);
        assert_eq!(plan[1].description, "write for: X");
        assert_eq!(plan[1].priority, Priority::Medium);
    }

    #[test]
    fn a_visit_uses_reentry_templates_only_after_a_regression_and_only_if_there_are_some() {
        let normal = BTreeMap::from([
            (Phase::Implementation, vec![template("implement", &[])]),
            (Phase::Testing, vec![template("test", &[])]),
        ]);
        let reentry = BTreeMap::from([
            (Phase::Implementation, vec![template("fix", &[])]),
            (Phase::Testing, vec![]),
        ]);
        let set = TemplateSet::new(normal, reentry);
        assert_eq!(
            set.for_visit(Phase::Implementation, false)[0].task_type,
            "implement"
        );
        assert_eq!(
            set.for_visit(Phase::Implementation, true)[0].task_type,
            "fix"
        );
        assert_eq!(set.for_visit(Phase::Testing, true)[0].task_type, "test");
        assert!(set.for_visit(Phase::Backlog, false).is_empty());
        assert!(set.for_visit(Phase::Backlog, true).is_empty());
    }
}
