//! Unit tests of gate evaluation: the verdict and the exact reasons given for tasks in every
//! state, missing and newest artifacts and each kind of rule, and the rules' config shape.
//!
//! Every requirement, task and artifact is built in the test that uses it; these tests must not
//! depend on the gates of `config/workflow.toml`, which the definition's tests check.

use super::*;
use serde_json::json;

fn task(task_type: &str, status: TaskStatus) -> TaskSnapshot {
    TaskSnapshot {
        task_type: task_type.into(),
        status,
    }
}

fn done(task_type: &str) -> TaskSnapshot {
    task(task_type, TaskStatus::Completed)
}

fn artifact(artifact_type: &str, content: Value) -> ArtifactSnapshot {
    ArtifactSnapshot {
        artifact_type: artifact_type.into(),
        content: Some(content),
    }
}

fn rule(artifact: &str, field: &str, check: RuleCheck) -> ArtifactRule {
    ArtifactRule {
        artifact: artifact.into(),
        field: field.into(),
        check,
        regression: false,
    }
}

fn gate(required: &[&str], rules: Vec<ArtifactRule>) -> GateRequirement {
    GateRequirement {
        required_artifacts: required.iter().map(|s| s.to_string()).collect(),
        rules,
        review: false,
    }
}

fn implementation_gate() -> GateRequirement {
    gate(
        &["code_changes", "test_coverage"],
        vec![
            rule(
                "test_coverage",
                "percentage",
                RuleCheck::AtLeast { value: 80.0 },
            ),
            rule("code_changes", "has_tests", RuleCheck::IsTrue),
        ],
    )
}

fn testing_gate() -> GateRequirement {
    let mut all_passed = rule("test_results", "all_passed", RuleCheck::IsTrue);
    all_passed.regression = true;
    gate(&["test_results"], vec![all_passed])
}

#[test]
fn a_phase_without_a_gate_passes_whatever_its_tasks() {
    let tasks = [done("a"), task("b", TaskStatus::Pending)];
    let eval = evaluate(None, &tasks, &[]);
    assert_eq!(eval.status, GateStatus::Passed);
    assert!(eval.requirements_met);
    assert!(eval.missing_artifacts.is_empty());
    assert!(eval.blocking_reasons.is_empty());
    assert_eq!(
        (eval.tasks_completed, eval.tasks_total, eval.tasks_done),
        (false, 2, 1)
    );
    assert!(evaluate(None, &[], &[]).requirements_met);
}

#[test]
fn everything_completed_present_and_holding_passes() {
    let eval = evaluate(
        Some(&implementation_gate()),
        &[done("implement_feature"), done("write_unit_tests")],
        &[
            artifact("code_changes", json!({"has_tests": true})),
            artifact("test_coverage", json!({"percentage": 85})),
        ],
    );
    assert_eq!(eval.status, GateStatus::Passed);
    assert!(eval.requirements_met);
    assert_eq!(eval.blocking_reasons, Vec::<String>::new());
    assert_eq!((eval.artifacts_checked, eval.artifacts_passed), (2, 2));
    assert_eq!(
        (eval.tasks_completed, eval.tasks_total, eval.tasks_done),
        (true, 2, 2)
    );
    assert!(!eval.regression_required);
}

#[test]
fn open_tasks_keep_the_gate_pending_but_every_problem_is_still_listed() {
    let eval = evaluate(
        Some(&implementation_gate()),
        &[
            task("implement_feature", TaskStatus::Claimed),
            task("write_unit_tests", TaskStatus::Pending),
            task("old", TaskStatus::Failed),
        ],
        &[artifact("test_coverage", json!({"percentage": 62}))],
    );
    assert_eq!(eval.status, GateStatus::Pending);
    assert!(!eval.requirements_met);
    assert_eq!(eval.missing_artifacts, ["code_changes"]);
    assert_eq!(
        eval.blocking_reasons,
        [
            "task implement_feature is claimed",
            "task write_unit_tests is pending",
            "task old failed",
            "missing artifact: code_changes",
            "test_coverage: percentage 62 is below 80",
        ]
    );
    assert_eq!((eval.artifacts_checked, eval.artifacts_passed), (1, 0));
}

#[test]
fn a_phase_with_no_tasks_is_pending_and_says_so() {
    let eval = evaluate_in(Phase::Design, Some(&GateRequirement::default()), &[], &[]);
    assert_eq!(eval.status, GateStatus::Pending);
    assert_eq!(eval.blocking_reasons, ["no tasks in PHASE_DESIGN yet"]);
    let eval = evaluate(Some(&GateRequirement::default()), &[], &[]);
    assert_eq!(eval.blocking_reasons, ["no tasks in this phase yet"]);
}

#[test]
fn a_failed_task_fails_the_gate_once_nothing_is_open() {
    let eval = evaluate(
        Some(&GateRequirement::default()),
        &[done("write_tests"), task("run_tests", TaskStatus::Failed)],
        &[],
    );
    assert_eq!(eval.status, GateStatus::Failed);
    assert_eq!(eval.blocking_reasons, ["task run_tests failed"]);
}

#[test]
fn a_missing_required_artifact_fails_the_gate() {
    let requirement = gate(&["requirements_document"], vec![]);
    let eval = evaluate(
        Some(&requirement),
        &[done("a")],
        &[artifact("other", json!({}))],
    );
    assert_eq!(eval.status, GateStatus::Failed);
    assert_eq!(eval.missing_artifacts, ["requirements_document"]);
    assert_eq!(
        eval.blocking_reasons,
        ["missing artifact: requirements_document"]
    );
    assert_eq!(eval.artifacts_checked, 0);
}

#[test]
fn at_least_reports_the_number_below_the_minimum_without_trailing_zeros() {
    let requirement = gate(
        &["test_coverage"],
        vec![rule(
            "test_coverage",
            "percentage",
            RuleCheck::AtLeast { value: 80.5 },
        )],
    );
    for (percentage, reason) in [
        (json!(62), "test_coverage: percentage 62 is below 80.5"),
        (json!(62.0), "test_coverage: percentage 62 is below 80.5"),
        (
            json!(79.25),
            "test_coverage: percentage 79.25 is below 80.5",
        ),
        (json!("90"), "test_coverage: percentage is not a number"),
    ] {
        let eval = evaluate(
            Some(&requirement),
            &[done("t")],
            &[artifact(
                "test_coverage",
                json!({ "percentage": percentage }),
            )],
        );
        assert_eq!(eval.status, GateStatus::Failed);
        assert_eq!(eval.blocking_reasons, [reason]);
    }
    let eval = evaluate(
        Some(&requirement),
        &[done("t")],
        &[artifact("test_coverage", json!({"percentage": 80.5}))],
    );
    assert_eq!(eval.status, GateStatus::Passed);
}

#[test]
fn a_missing_or_null_field_and_content_without_json_are_reported_missing() {
    let requirement = implementation_gate();
    for coverage in [
        artifact("test_coverage", json!({})),
        artifact("test_coverage", json!({"percentage": null})),
        ArtifactSnapshot {
            artifact_type: "test_coverage".into(),
            content: None,
        },
    ] {
        let eval = evaluate(
            Some(&requirement),
            &[done("t")],
            &[
                artifact("code_changes", json!({"has_tests": true})),
                coverage,
            ],
        );
        assert_eq!(
            eval.blocking_reasons,
            ["test_coverage: percentage is missing"]
        );
        assert_eq!((eval.artifacts_checked, eval.artifacts_passed), (2, 1));
    }
}

#[test]
fn the_length_rule_falls_back_to_the_character_count_of_content() {
    let requirement = gate(
        &["requirements_document"],
        vec![rule(
            "requirements_document",
            "length",
            RuleCheck::AtLeast { value: 500.0 },
        )],
    );
    let judge = |content: Value| {
        evaluate(
            Some(&requirement),
            &[done("t")],
            &[artifact("requirements_document", content)],
        )
    };
    assert!(judge(json!({"content": "é".repeat(500)})).requirements_met);
    assert_eq!(
        judge(json!({"content": "x".repeat(499)})).blocking_reasons,
        ["requirements_document: length 499 is below 500"]
    );
    assert!(judge(json!({"length": 500, "content": "short"})).requirements_met);
    assert_eq!(
        judge(json!({"title": "no text"})).blocking_reasons,
        ["requirements_document: length is missing"]
    );
}

#[test]
fn contains_names_every_missing_value_in_one_reason() {
    let requirement = gate(
        &["requirements_document"],
        vec![rule(
            "requirements_document",
            "sections",
            RuleCheck::Contains {
                values: vec!["scope".into(), "acceptance_criteria".into(), "risks".into()],
            },
        )],
    );
    let judge = |content: Value| {
        evaluate(
            Some(&requirement),
            &[done("t")],
            &[artifact("requirements_document", content)],
        )
        .blocking_reasons
    };
    assert_eq!(
        judge(json!({"sections": ["scope", "risks", 3]})),
        ["requirements_document: sections is missing acceptance_criteria"]
    );
    assert_eq!(
        judge(json!({"sections": []})),
        ["requirements_document: sections is missing scope, acceptance_criteria, risks"]
    );
    assert_eq!(
        judge(json!({"sections": "scope"})),
        ["requirements_document: sections is not a list"]
    );
    assert!(
        judge(json!({"sections": {"scope": 1, "acceptance_criteria": 2, "risks": 3}})).is_empty()
    );
}

#[test]
fn is_true_accepts_only_the_json_value_true() {
    let requirement = implementation_gate();
    for has_tests in [json!(false), json!("true"), json!(1)] {
        let eval = evaluate(
            Some(&requirement),
            &[done("t")],
            &[
                artifact("code_changes", json!({ "has_tests": has_tests })),
                artifact("test_coverage", json!({"percentage": 90})),
            ],
        );
        assert_eq!(
            eval.blocking_reasons,
            ["code_changes: has_tests is not true"]
        );
    }
}

#[test]
fn equals_quotes_what_it_found_and_what_it_expected() {
    let requirement = gate(
        &["deployment_record"],
        vec![rule(
            "deployment_record",
            "status",
            RuleCheck::Equals {
                value: json!("succeeded"),
            },
        )],
    );
    let judge = |content: Value| {
        evaluate(
            Some(&requirement),
            &[done("t")],
            &[artifact("deployment_record", content)],
        )
    };
    assert_eq!(
        judge(json!({"status": "failed"})).blocking_reasons,
        [r#"deployment_record: status is "failed", expected "succeeded""#]
    );
    assert!(judge(json!({"status": "succeeded"})).requirements_met);

    let numeric = gate(
        &[],
        vec![rule("r", "n", RuleCheck::Equals { value: json!(1) })],
    );
    let eval = evaluate(
        Some(&numeric),
        &[done("t")],
        &[artifact("r", json!({"n": 1.0}))],
    );
    assert!(eval.requirements_met);
    let eval = evaluate(
        Some(&numeric),
        &[done("t")],
        &[artifact("r", json!({"n": 2.5}))],
    );
    assert_eq!(eval.blocking_reasons, ["r: n is 2.5, expected 1"]);
}

#[test]
fn a_rule_field_may_be_a_dotted_path() {
    let requirement = gate(
        &["test_coverage"],
        vec![rule(
            "test_coverage",
            "metrics.lines.0",
            RuleCheck::AtLeast { value: 80.0 },
        )],
    );
    let eval = evaluate(
        Some(&requirement),
        &[done("t")],
        &[artifact(
            "test_coverage",
            json!({"metrics": {"lines": [70, 95]}}),
        )],
    );
    assert_eq!(
        eval.blocking_reasons,
        ["test_coverage: metrics.lines.0 70 is below 80"]
    );
}

#[test]
fn the_newest_artifact_of_a_type_is_the_one_judged() {
    let requirement = implementation_gate();
    let tasks = [done("implement_feature")];
    let older_bad_newer_good = [
        artifact("test_coverage", json!({"percentage": 50})),
        artifact("code_changes", json!({"has_tests": true})),
        artifact("test_coverage", json!({"percentage": 90})),
    ];
    assert!(evaluate(Some(&requirement), &tasks, &older_bad_newer_good).requirements_met);
    let older_good_newer_bad = [
        artifact("test_coverage", json!({"percentage": 90})),
        artifact("code_changes", json!({"has_tests": true})),
        artifact("test_coverage", json!({"percentage": 50})),
    ];
    let eval = evaluate(Some(&requirement), &tasks, &older_good_newer_bad);
    assert_eq!(
        eval.blocking_reasons,
        ["test_coverage: percentage 50 is below 80"]
    );
}

#[test]
fn a_failed_regression_rule_asks_for_regression_only_when_the_gate_failed() {
    let failing = [artifact("test_results", json!({"all_passed": false}))];
    let eval = evaluate(Some(&testing_gate()), &[done("run_tests")], &failing);
    assert_eq!(eval.status, GateStatus::Failed);
    assert_eq!(
        eval.blocking_reasons,
        ["test_results: all_passed is not true"]
    );
    assert!(eval.regression_required);

    let still_running = [done("write_tests"), task("run_tests", TaskStatus::Pending)];
    let eval = evaluate(Some(&testing_gate()), &still_running, &failing);
    assert_eq!(eval.status, GateStatus::Pending);
    assert!(!eval.regression_required);

    let eval = evaluate(Some(&implementation_gate()), &[done("t")], &[]);
    assert_eq!(eval.status, GateStatus::Failed);
    assert!(!eval.regression_required);
}

#[test]
fn a_rule_on_an_artifact_that_is_not_required_applies_only_when_it_is_present() {
    let requirement = gate(&[], vec![rule("benchmark", "ok", RuleCheck::IsTrue)]);
    let eval = evaluate(Some(&requirement), &[done("t")], &[]);
    assert!(eval.requirements_met);
    assert_eq!(eval.artifacts_checked, 0);
    let eval = evaluate(
        Some(&requirement),
        &[done("t")],
        &[artifact("benchmark", json!({"ok": false}))],
    );
    assert_eq!(eval.blocking_reasons, ["benchmark: ok is not true"]);
    assert_eq!((eval.artifacts_checked, eval.artifacts_passed), (1, 0));
}

#[test]
fn rules_read_and_write_their_config_shape() {
    let rule: ArtifactRule = serde_json::from_value(json!({
        "artifact": "test_results", "field": "all_passed", "check": "is_true", "regression": true
    }))
    .unwrap();
    assert_eq!(rule.check, RuleCheck::IsTrue);
    assert!(rule.regression);
    let back = serde_json::to_value(&rule).unwrap();
    assert_eq!(back["check"], "is_true");
    let rule: ArtifactRule = serde_json::from_value(json!({
        "artifact": "a", "field": "f", "check": "at_least", "value": 80
    }))
    .unwrap();
    assert_eq!(rule.check, RuleCheck::AtLeast { value: 80.0 });
    assert!(!rule.regression);
    assert_eq!(
        serde_json::to_value(GateStatus::Pending).unwrap(),
        "pending"
    );
}

#[test]
fn a_rule_reads_as_words() {
    let cases = [
        (
            rule(
                "test_coverage",
                "percentage",
                RuleCheck::AtLeast { value: 80.0 },
            ),
            "test_coverage.percentage ≥ 80",
        ),
        (
            rule("bench", "metrics.p99", RuleCheck::AtLeast { value: 1.5 }),
            "bench.metrics.p99 ≥ 1.5",
        ),
        (
            rule(
                "requirements_document",
                "sections",
                RuleCheck::Contains {
                    values: vec!["scope".into(), "acceptance_criteria".into()],
                },
            ),
            "requirements_document.sections contains scope, acceptance_criteria",
        ),
        (
            rule("code_changes", "has_tests", RuleCheck::IsTrue),
            "code_changes.has_tests is true",
        ),
        (
            rule(
                "deployment_record",
                "status",
                RuleCheck::Equals {
                    value: json!("succeeded"),
                },
            ),
            "deployment_record.status = \"succeeded\"",
        ),
    ];
    for (rule, words) in cases {
        assert_eq!(rule.to_string(), words);
    }
}
