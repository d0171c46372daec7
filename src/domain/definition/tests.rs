//! Unit tests of loading a workflow definition: the built-in `config/workflow.toml` gives the
//! expected templates and gates, and every kind of mistake is refused with its location.
//!
//! Apart from the built-in copy compiled into the binary, definitions are TOML text written in
//! the test that loads them; these tests must not read files.

use super::*;
use crate::domain::ticket::Priority;
use serde_json::json;

fn load(text: &str) -> Result<WorkflowDefinition, DefinitionError> {
    WorkflowDefinition::from_toml_str(text, "workflow.toml")
}

fn error(text: &str) -> String {
    load(text).unwrap_err().to_string()
}

fn rows(templates: &[TaskTemplate]) -> Vec<(&str, &str, Priority, Vec<&str>)> {
    templates
        .iter()
        .map(|t| {
            (
                t.task_type.as_str(),
                t.description.as_str(),
                t.priority,
                t.after.iter().map(String::as_str).collect(),
            )
        })
        .collect()
}

#[test]
fn the_builtin_templates_are_the_documented_defaults() {
    use Priority::*;
    let definition = WorkflowDefinition::builtin().unwrap();
    let t = &definition.templates;
    let none: Vec<&str> = vec![];
    assert!(t.normal(Phase::Backlog).is_empty());
    assert_eq!(
        rows(t.normal(Phase::Requirements)),
        [
            (
                "analyze_requirements",
                "Analyze and clarify requirements for: {ticket_title}",
                High,
                none.clone()
            ),
            (
                "create_requirements_doc",
                "Create requirements document for: {ticket_title}",
                Medium,
                vec!["analyze_requirements"]
            ),
        ]
    );
    assert_eq!(
        rows(t.normal(Phase::Design)),
        [
            (
                "design_architecture",
                "Design architecture for: {ticket_title}",
                High,
                none.clone()
            ),
            (
                "create_design_doc",
                "Create design document for: {ticket_title}",
                Medium,
                vec!["design_architecture"]
            ),
        ]
    );
    assert_eq!(
        rows(t.normal(Phase::Implementation)),
        [
            (
                "implement_feature",
                "Implement feature: {ticket_title}",
                High,
                none.clone()
            ),
            (
                "write_unit_tests",
                "Write unit tests for: {ticket_title}",
                High,
                none.clone()
            ),
        ]
    );
    assert_eq!(
        rows(t.normal(Phase::Testing)),
        [
            (
                "write_tests",
                "Write tests for: {ticket_title}",
                High,
                none.clone()
            ),
            (
                "run_tests",
                "Run test suite for: {ticket_title}",
                Medium,
                vec!["write_tests"]
            ),
        ]
    );
    assert_eq!(
        rows(t.normal(Phase::Deployment)),
        [
            (
                "deploy_feature",
                "Deploy feature: {ticket_title}",
                Critical,
                none.clone()
            ),
            (
                "verify_deployment",
                "Verify deployment for: {ticket_title}",
                High,
                vec!["deploy_feature"]
            ),
        ]
    );
    assert_eq!(
        rows(t.for_visit(Phase::Implementation, true)),
        [(
            "fix_failing_tests",
            "Fix failing tests for: {ticket_title}",
            Critical,
            none.clone()
        )]
    );
    for phase in Phase::ALL {
        if phase != Phase::Implementation {
            assert!(t.reentry(phase).is_empty(), "{phase}");
        }
    }
}

#[test]
fn the_builtin_gates_are_the_documented_defaults() {
    let definition = WorkflowDefinition::builtin().unwrap();
    let gates = &definition.gates;
    let rule = |artifact: &str, field: &str, check: RuleCheck, regression: bool| ArtifactRule {
        artifact: artifact.into(),
        field: field.into(),
        check,
        regression,
    };
    let gate = |required: &[&str], rules: Vec<ArtifactRule>| GateRequirement {
        required_artifacts: required.iter().map(|s| s.to_string()).collect(),
        rules,
        review: false,
    };
    assert_eq!(gates.for_phase(Phase::Backlog), None);
    assert_eq!(gates.for_phase(Phase::Blocked), None);
    assert_eq!(gates.for_phase(Phase::Done), None);
    assert_eq!(
        gates.for_phase(Phase::Requirements),
        Some(&gate(
            &["requirements_document"],
            vec![
                rule(
                    "requirements_document",
                    "length",
                    RuleCheck::AtLeast { value: 500.0 },
                    false
                ),
                rule(
                    "requirements_document",
                    "sections",
                    RuleCheck::Contains {
                        values: vec!["scope".into(), "acceptance_criteria".into()]
                    },
                    false
                ),
            ]
        ))
    );
    assert_eq!(
        gates.for_phase(Phase::Design),
        Some(&gate(
            &["design_document"],
            vec![rule(
                "design_document",
                "sections",
                RuleCheck::Contains {
                    values: vec!["architecture".into()]
                },
                false
            )]
        ))
    );
    assert_eq!(
        gates.for_phase(Phase::Implementation),
        Some(&gate(
            &["code_changes", "test_coverage"],
            vec![
                rule(
                    "test_coverage",
                    "percentage",
                    RuleCheck::AtLeast { value: 80.0 },
                    false
                ),
                rule("code_changes", "has_tests", RuleCheck::IsTrue, false),
            ]
        ))
    );
    assert_eq!(
        gates.for_phase(Phase::Testing),
        Some(&gate(
            &["test_results"],
            vec![rule("test_results", "all_passed", RuleCheck::IsTrue, true)]
        ))
    );
    assert_eq!(
        gates.for_phase(Phase::Deployment),
        Some(&gate(
            &["deployment_record"],
            vec![rule(
                "deployment_record",
                "status",
                RuleCheck::Equals {
                    value: json!("succeeded")
                },
                false
            )]
        ))
    );
}

#[test]
fn an_empty_document_is_a_workflow_without_tasks_or_gates() {
    let definition = load("").unwrap();
    assert!(definition
        .templates
        .for_visit(Phase::Design, false)
        .is_empty());
    assert!(definition.gates.for_phase(Phase::Design).is_none());
}

#[test]
fn an_unknown_phase_is_named_with_its_section() {
    let message = error(
        "[[templates.PHASE_DESGN]]\ntask_type = \"a\"\ndescription = \"d\"\npriority = \"LOW\"\n",
    );
    assert!(
        message.starts_with(
            "workflow.toml: templates.PHASE_DESGN: unknown phase `PHASE_DESGN`; expected one of"
        ),
        "{message}"
    );
    let message = error("[gates.design]\nrequired_artifacts = []\n");
    assert!(
        message.starts_with("workflow.toml: gates.design: unknown phase"),
        "{message}"
    );
}

#[test]
fn a_dependency_cycle_is_shown_along_its_path() {
    let message = error(
        r#"
            [[templates.PHASE_DESIGN]]
            task_type = "a"
            description = "d"
            priority = "LOW"
            after = ["b"]

            [[templates.PHASE_DESIGN]]
            task_type = "b"
            description = "d"
            priority = "LOW"
            after = ["a"]
            "#,
    );
    assert_eq!(
        message,
        "workflow.toml: templates.PHASE_DESIGN: dependency cycle: a -> b -> a"
    );
    let message = error(
        "[[templates.PHASE_DESIGN]]\ntask_type = \"a\"\ndescription = \"d\"\npriority = \"LOW\"\nafter = [\"a\"]\n",
    );
    assert_eq!(
        message,
        "workflow.toml: templates.PHASE_DESIGN: dependency cycle: a -> a"
    );
}

#[test]
fn an_unknown_after_name_points_at_the_template() {
    let message = error(
        r#"
            [[templates.PHASE_DESIGN]]
            task_type = "design_architecture"
            description = "d"
            priority = "HIGH"

            [[templates.PHASE_DESIGN]]
            task_type = "create_design_doc"
            description = "d"
            priority = "MEDIUM"
            after = ["x"]
            "#,
    );
    assert_eq!(
        message,
        "workflow.toml: templates.PHASE_DESIGN[1] (create_design_doc): `after` names unknown \
         task_type `x` in PHASE_DESIGN"
    );
}

#[test]
fn a_toml_syntax_error_carries_the_parsers_position() {
    let message = error("[templates\nx = 1\n");
    assert!(
        message.starts_with("workflow.toml: invalid TOML: "),
        "{message}"
    );
    assert!(message.contains("line 1"), "{message}");
}

#[test]
fn template_mistakes_are_located() {
    let cases = [
        (
            "[[templates.PHASE_DESIGN]]\ntask_type = \"a\"\ndescription = \"d\"\npriority = \"LOW\"\n\
             [[templates.PHASE_DESIGN]]\ntask_type = \"a\"\ndescription = \"e\"\npriority = \"LOW\"\n",
            "templates.PHASE_DESIGN[1] (a): duplicate task_type `a` in PHASE_DESIGN (first at \
             templates.PHASE_DESIGN[0])",
        ),
        (
            "[[templates.PHASE_DESIGN]]\ntask_type = \" \"\ndescription = \"d\"\npriority = \"LOW\"\n",
            "templates.PHASE_DESIGN[0]: task_type is empty",
        ),
        (
            "[[templates.PHASE_DESIGN]]\ntask_type = \"a\"\ndescription = \"\"\npriority = \"LOW\"\n",
            "templates.PHASE_DESIGN[0] (a): description is empty",
        ),
        (
            "[[templates.PHASE_DESIGN]]\ntask_type = \"a\"\ndescription = \"d\"\npriority = \"URGENT\"\n",
            "templates.PHASE_DESIGN[0]: unknown variant `URGENT`",
        ),
        (
            "[[templates.PHASE_DESIGN]]\ntask_type = \"a\"\ndescription = \"d\"\npriority = \"LOW\"\nafer = []\n",
            "templates.PHASE_DESIGN[0]: unknown field `afer`",
        ),
        (
            "[[templates.PHASE_DONE]]\ntask_type = \"a\"\ndescription = \"d\"\npriority = \"LOW\"\n",
            "templates.PHASE_DONE: PHASE_DONE is terminal",
        ),
        (
            "[[templates.PHASE_BLOCKED]]\ntask_type = \"a\"\ndescription = \"d\"\npriority = \"LOW\"\n",
            "templates.PHASE_BLOCKED: PHASE_BLOCKED gets no tasks",
        ),
        (
            "[[reentry_templates.PHASE_DESIGN]]\ntask_type = \"a\"\ndescription = \"d\"\npriority = \"LOW\"\n",
            "reentry_templates.PHASE_DESIGN: PHASE_DESIGN is never entered by regression",
        ),
        (
            "[templates.PHASE_DESIGN]\ntask_type = \"a\"\n",
            "templates.PHASE_DESIGN: must be a list of tasks",
        ),
        ("[phases]\n", "phases: unknown section"),
    ];
    for (text, expected) in cases {
        let message = error(text);
        assert!(
            message.starts_with(&format!("workflow.toml: {expected}")),
            "expected `{expected}`, got `{message}`"
        );
    }
}

#[test]
fn gate_mistakes_are_located() {
    let cases = [
        (
            "[gates.PHASE_DONE]\n",
            "gates.PHASE_DONE: PHASE_DONE is never left",
        ),
        (
            "[gates.PHASE_BLOCKED]\n",
            "gates.PHASE_BLOCKED: leaving PHASE_BLOCKED never checks a gate",
        ),
        (
            "[gates.PHASE_DESIGN]\nrequired = [\"x\"]\n",
            "gates.PHASE_DESIGN: unknown key `required`",
        ),
        (
            "[gates.PHASE_DESIGN]\nrequired_artifacts = [\"x\", \"x\"]\n",
            "gates.PHASE_DESIGN.required_artifacts[1]: `x` is listed twice",
        ),
        (
            "[gates.PHASE_DESIGN]\nrules = [{ artifact = \"a\", field = \"f\", check = \"bigger\" }]\n",
            "gates.PHASE_DESIGN.rules[0]: unknown variant `bigger`",
        ),
        (
            "[gates.PHASE_DESIGN]\nrules = [{ artifact = \"a\", field = \"f\", check = \"is_true\", value = 1 }]\n",
            "gates.PHASE_DESIGN.rules[0]: unknown key `value`",
        ),
        (
            "[gates.PHASE_DESIGN]\nrules = [{ artifact = \"a\", field = \"f\", check = \"contains\", values = [] }]\n",
            "gates.PHASE_DESIGN.rules[0]: contains needs at least one entry",
        ),
        (
            "[gates.PHASE_DESIGN]\nrules = [{ artifact = \"a\", field = \"m..c\", check = \"is_true\" }]\n",
            "gates.PHASE_DESIGN.rules[0]: field `m..c` is not a field name",
        ),
        (
            "[gates.PHASE_DESIGN]\nrules = [{ artifact = \"a\", field = \"f\", check = \"at_least\" }]\n",
            "gates.PHASE_DESIGN.rules[0]: missing field `value`",
        ),
    ];
    for (text, expected) in cases {
        let message = error(text);
        assert!(
            message.starts_with(&format!("workflow.toml: {expected}")),
            "expected `{expected}`, got `{message}`"
        );
    }
}

#[test]
fn a_rule_on_an_artifact_that_is_not_required_is_accepted() {
    let definition = load(
        "[gates.PHASE_DESIGN]\nrequired_artifacts = []\nrules = [{ artifact = \"bench\", \
         field = \"metrics.p99\", check = \"at_least\", value = 1.5 }]\n",
    )
    .unwrap();
    let gate = definition.gates.for_phase(Phase::Design).unwrap();
    assert_eq!(gate.rules[0].check, RuleCheck::AtLeast { value: 1.5 });
}

#[test]
fn the_builtin_guidance_covers_the_working_phases_and_names_what_their_gates_require() {
    let definition = WorkflowDefinition::builtin().unwrap();
    for phase in [Phase::Backlog, Phase::Blocked, Phase::Done] {
        assert_eq!(definition.guidance(phase), None, "{phase}");
    }
    for phase in [
        Phase::Requirements,
        Phase::Design,
        Phase::Implementation,
        Phase::Testing,
        Phase::Deployment,
    ] {
        let guidance = definition
            .guidance(phase)
            .unwrap_or_else(|| panic!("{phase} has guidance"));
        assert!(guidance.prompt.is_some(), "{phase}");
        assert!(guidance.done_definition.is_some(), "{phase}");
        let outputs = guidance.expected_outputs.join("\n");
        let gate = definition.gates.for_phase(phase).unwrap();
        for artifact in &gate.required_artifacts {
            assert!(
                outputs.contains(artifact.as_str()),
                "{phase}'s expected outputs name {artifact}: {outputs}"
            );
        }
        // the prompt names the phase's tasks, so an agent knows what it will be asked
        let prompt = guidance.prompt.as_deref().unwrap();
        for template in definition.templates.normal(phase) {
            assert!(
                prompt.contains(template.task_type.as_str()),
                "{phase}'s prompt names {}",
                template.task_type
            );
        }
    }
}

#[test]
fn guidance_keys_are_all_optional() {
    let definition = load(
        "[guidance.PHASE_BACKLOG]\nprompt = \"Triage: decide whether the ticket is worth doing.\"\n\
         [guidance.PHASE_DESIGN]\nexpected_outputs = [\"design_document\"]\n",
    )
    .unwrap();
    assert_eq!(
        definition.guidance(Phase::Backlog),
        Some(&Guidance {
            prompt: Some("Triage: decide whether the ticket is worth doing.".into()),
            done_definition: None,
            expected_outputs: vec![],
        })
    );
    assert_eq!(
        definition.guidance(Phase::Design).unwrap().expected_outputs,
        ["design_document"]
    );
    assert_eq!(definition.guidance(Phase::Testing), None);
}

#[test]
fn guidance_mistakes_are_located() {
    let long_prompt = "p".repeat(4001);
    let long_done = "d".repeat(2001);
    let long_output = "o".repeat(501);
    let many_outputs = (0..21)
        .map(|i| format!("\"output {i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let cases = [
        (
            "[guidance.PHASE_DONE]\nprompt = \"x\"\n".to_owned(),
            "guidance.PHASE_DONE: PHASE_DONE is terminal",
        ),
        (
            "[guidance.PHASE_BLOCKED]\nprompt = \"x\"\n".to_owned(),
            "guidance.PHASE_BLOCKED: PHASE_BLOCKED has no work of its own",
        ),
        (
            "[guidance.PHASE_DESGN]\nprompt = \"x\"\n".to_owned(),
            "guidance.PHASE_DESGN: unknown phase `PHASE_DESGN`",
        ),
        (
            "[guidance.PHASE_DESIGN]\nprompts = \"x\"\n".to_owned(),
            "guidance.PHASE_DESIGN: unknown key `prompts`; expected one of prompt, \
             done_definition, expected_outputs",
        ),
        (
            "[guidance.PHASE_DESIGN]\n".to_owned(),
            "guidance.PHASE_DESIGN: says nothing",
        ),
        (
            "guidance = [\"x\"]\n".to_owned(),
            "guidance: must be a table keyed by phase",
        ),
        (
            "[[guidance.PHASE_DESIGN]]\nprompt = \"x\"\n".to_owned(),
            "guidance.PHASE_DESIGN: must be a table",
        ),
        (
            "[guidance.PHASE_DESIGN]\nprompt = \"  \"\n".to_owned(),
            "guidance.PHASE_DESIGN.prompt: is empty",
        ),
        (
            "[guidance.PHASE_DESIGN]\nprompt = 5\n".to_owned(),
            "guidance.PHASE_DESIGN.prompt: invalid type",
        ),
        (
            format!("[guidance.PHASE_DESIGN]\nprompt = \"{long_prompt}\"\n"),
            "guidance.PHASE_DESIGN.prompt: is 4001 characters long; at most 4000 are allowed",
        ),
        (
            "[guidance.PHASE_DESIGN]\ndone_definition = \"\"\n".to_owned(),
            "guidance.PHASE_DESIGN.done_definition: is empty",
        ),
        (
            format!("[guidance.PHASE_DESIGN]\ndone_definition = \"{long_done}\"\n"),
            "guidance.PHASE_DESIGN.done_definition: is 2001 characters long",
        ),
        (
            "[guidance.PHASE_DESIGN]\nexpected_outputs = []\n".to_owned(),
            "guidance.PHASE_DESIGN.expected_outputs: is empty",
        ),
        (
            "[guidance.PHASE_DESIGN]\nexpected_outputs = \"design_document\"\n".to_owned(),
            "guidance.PHASE_DESIGN.expected_outputs: invalid type",
        ),
        (
            "[guidance.PHASE_DESIGN]\nexpected_outputs = [\"a\", \" \"]\n".to_owned(),
            "guidance.PHASE_DESIGN.expected_outputs[1]: is empty",
        ),
        (
            "[guidance.PHASE_DESIGN]\nexpected_outputs = [\"a\", \"b\", \"a\"]\n".to_owned(),
            "guidance.PHASE_DESIGN.expected_outputs[2]: is listed twice",
        ),
        (
            format!("[guidance.PHASE_DESIGN]\nexpected_outputs = [\"{long_output}\"]\n"),
            "guidance.PHASE_DESIGN.expected_outputs[0]: is 501 characters long",
        ),
        (
            format!("[guidance.PHASE_DESIGN]\nexpected_outputs = [{many_outputs}]\n"),
            "guidance.PHASE_DESIGN.expected_outputs: has 21 entries; at most 20 are allowed",
        ),
    ];
    for (text, expected) in cases {
        let message = error(&text);
        assert!(
            message.starts_with(&format!("workflow.toml: {expected}")),
            "expected `{expected}`, got `{message}`"
        );
    }
}

#[test]
fn a_gate_may_require_a_review_and_the_rework_task_is_configurable() {
    let definition = WorkflowDefinition::from_toml_str(
        r#"
        [gates.PHASE_DESIGN]
        required_artifacts = ["design_document"]
        review = true

        [review_rework]
        task_type = "rework"
        description = "Rework {phase} of {ticket_title}"
        priority = "CRITICAL"
        "#,
        "test",
    )
    .expect("loads");
    assert!(definition.gates.for_phase(Phase::Design).unwrap().review);
    assert_eq!(definition.review_rework.task_type, "rework");
    assert_eq!(definition.review_rework.priority, Priority::Critical);

    let shipped = WorkflowDefinition::builtin().expect("loads");
    assert_eq!(shipped.review_rework.task_type, "address_review_feedback");
    assert!(
        [
            Phase::Requirements,
            Phase::Design,
            Phase::Implementation,
            Phase::Testing,
            Phase::Deployment
        ]
        .iter()
        .all(|phase| !shipped.gates.for_phase(*phase).unwrap().review),
        "reviews are off in the shipped definition"
    );

    let error =
        WorkflowDefinition::from_toml_str("[gates.PHASE_DESIGN]\nreview = \"yes\"\n", "test")
            .unwrap_err()
            .to_string();
    assert!(error.contains("gates.PHASE_DESIGN.review"), "{error}");
    let error = WorkflowDefinition::from_toml_str(
        "[review_rework]\ntask_type = \"r\"\ndescription = \"d\"\npriority = \"LOW\"\nafter = [\"x\"]\n",
        "test",
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("review_rework") && error.contains("after"),
        "{error}"
    );
}

#[test]
fn the_builtin_phases_have_their_roles_and_rework_takes_the_phases() {
    let definition = WorkflowDefinition::builtin().unwrap();
    for (phase, role) in [
        (Phase::Requirements, "analyst"),
        (Phase::Design, "architect"),
        (Phase::Implementation, "developer"),
        (Phase::Testing, "tester"),
        (Phase::Deployment, "release"),
    ] {
        assert!(definition
            .templates
            .normal(phase)
            .iter()
            .all(|template| template.role.as_deref() == Some(role)));
        assert_eq!(definition.templates.phase_role(phase), Some(role));
        assert_eq!(definition.rework_role(phase), Some(role), "{phase}");
    }
    let fix = &definition.templates.reentry(Phase::Implementation)[0];
    assert_eq!(fix.role.as_deref(), Some("developer"));
    assert_eq!(definition.templates.phase_role(Phase::Backlog), None);
}

#[test]
fn a_role_is_a_name_and_a_template_without_one_needs_none() {
    let text = r#"
[[templates.PHASE_DESIGN]]
task_type = "sketch"
description = "Sketch {ticket_title}"
priority = "LOW"

[[templates.PHASE_DESIGN]]
task_type = "review_sketch"
description = "Review the sketch"
priority = "LOW"
role = "reviewer"
"#;
    let definition = load(text).unwrap();
    let templates = definition.templates.normal(Phase::Design);
    assert_eq!(templates[0].role, None);
    assert_eq!(
        definition.templates.phase_role(Phase::Design),
        Some("reviewer")
    );
    let bad = error(&text.replace("\"reviewer\"", "\"Lead Reviewer\""));
    assert!(bad.contains("templates.PHASE_DESIGN[1]"), "{bad}");
    assert!(
        bad.contains("role `Lead Reviewer` is not a role name"),
        "{bad}"
    );
}
