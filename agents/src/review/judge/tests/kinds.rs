//! Each rule kind on the artifacts of a review request: when it holds, when it fails and what it
//! says then.

use serde_json::{json, Value};

use super::*;

// --- min_items ---

fn criteria_rule() -> RuleSet {
    rules(vec![with_value(
        rule(
            ReviewRuleKind::MinItems,
            "requirements_document",
            "acceptance_criteria",
        ),
        3.0,
    )])
}

#[test]
fn min_items_passes_with_enough_items() {
    let judgement = judge(
        &criteria_rule(),
        &review(json!([artifact(
            "requirements_document",
            json!({"acceptance_criteria": ["a", "b", "c", "d"]})
        )])),
    );
    approved_with(
        &judgement,
        &["requirements_document.acceptance_criteria has 4 items (at least 3)"],
    );
    let exactly = judge(
        &criteria_rule(),
        &review(json!([artifact(
            "requirements_document",
            json!({"acceptance_criteria": ["a", "b", "c"]})
        )])),
    );
    assert_eq!(exactly.verdict, Verdict::Approved);
}

#[test]
fn min_items_fails_with_too_few_items_saying_how_many() {
    let judgement = judge(
        &criteria_rule(),
        &review(json!([artifact(
            "requirements_document",
            json!({"acceptance_criteria": ["a", "b"]})
        )])),
    );
    changes_requested_with(
        &judgement,
        &["requirements_document.acceptance_criteria has 2 items; at least 3 expected"],
    );
}

#[test]
fn min_items_fails_on_an_absent_field_or_one_that_is_not_a_list() {
    let absent = judge(
        &criteria_rule(),
        &review(json!([artifact(
            "requirements_document",
            json!({"length": 900})
        )])),
    );
    changes_requested_with(
        &absent,
        &["requirements_document.acceptance_criteria is absent; a list of at least 3 items expected"],
    );
    let null = judge(
        &criteria_rule(),
        &review(json!([artifact(
            "requirements_document",
            json!({"acceptance_criteria": null})
        )])),
    );
    assert_eq!(null.reasons, absent.reasons, "null counts as absent");
    let no_content = judge(
        &criteria_rule(),
        &review(
            json!([{"artifact_type": "requirements_document", "artifact_path": "r.md",
                        "artifact_content": null}]),
        ),
    );
    assert_eq!(no_content.reasons, absent.reasons);
    let text = judge(
        &criteria_rule(),
        &review(json!([artifact(
            "requirements_document",
            json!({"acceptance_criteria": "it works"})
        )])),
    );
    changes_requested_with(
        &text,
        &["requirements_document.acceptance_criteria is not a list (found \"it works\"); a list of at least 3 items expected"],
    );
}

#[test]
fn a_rule_on_an_artifact_the_review_lacks_does_not_apply() {
    let judgement = judge(
        &criteria_rule(),
        &review(json!([artifact("design_document", json!({}))])),
    );
    approved_with(
        &judgement,
        &[
            "not applicable: no requirements_document artifact in this review \
           (requirements_document.acceptance_criteria has at least 3 items)",
        ],
    );
}

#[test]
fn a_required_artifact_the_review_lacks_fails_its_rule() {
    let rules = rules(vec![required(with_value(
        rule(
            ReviewRuleKind::MinItems,
            "requirements_document",
            "acceptance_criteria",
        ),
        3.0,
    ))]);
    let judgement = judge(&rules, &review(json!([])));
    changes_requested_with(
        &judgement,
        &["requirements_document is missing; required to check that \
           requirements_document.acceptance_criteria has at least 3 items"],
    );
}

#[test]
fn only_the_phase_under_review_is_judged_not_earlier_phases() {
    let judgement = judge(
        &criteria_rule(),
        &review_with(
            json!([]),
            json!([artifact(
                "requirements_document",
                json!({"acceptance_criteria": []})
            )]),
        ),
    );
    assert_eq!(judgement.verdict, Verdict::Approved, "{judgement:#?}");
    assert!(judgement.reasons[0].starts_with("not applicable"));
}

// --- at_least, at_most ---

fn failures_rule() -> RuleSet {
    rules(vec![with_value(
        rule(ReviewRuleKind::AtMost, "test_results", "failures"),
        0.0,
    )])
}

#[test]
fn at_most_holds_up_to_its_bound() {
    let judgement = judge(
        &failures_rule(),
        &review(json!([artifact("test_results", json!({"failures": 0}))])),
    );
    approved_with(&judgement, &["test_results.failures is 0 (at most 0)"]);
    let judgement = judge(
        &failures_rule(),
        &review(json!([artifact("test_results", json!({"failures": 2}))])),
    );
    changes_requested_with(
        &judgement,
        &["test_results.failures is 2; at most 0 expected"],
    );
}

#[test]
fn at_least_holds_from_its_bound_on_and_reads_dotted_paths() {
    let rules = rules(vec![with_value(
        rule(ReviewRuleKind::AtLeast, "test_coverage", "metrics.line"),
        80.5,
    )]);
    let coverage = |value: Value| {
        judge(
            &rules,
            &review(json!([artifact(
                "test_coverage",
                json!({"metrics": {"line": value}})
            )])),
        )
    };
    approved_with(
        &coverage(json!(80.5)),
        &["test_coverage.metrics.line is 80.5 (at least 80.5)"],
    );
    approved_with(
        &coverage(json!(92)),
        &["test_coverage.metrics.line is 92 (at least 80.5)"],
    );
    changes_requested_with(
        &coverage(json!(80)),
        &["test_coverage.metrics.line is 80; at least 80.5 expected"],
    );
}

#[test]
fn a_dotted_path_may_index_a_list() {
    let rules = rules(vec![with_value(
        rule(ReviewRuleKind::AtMost, "test_results", "suites.1.failures"),
        0.0,
    )]);
    let judgement = judge(
        &rules,
        &review(json!([artifact(
            "test_results",
            json!({"suites": [{"failures": 0}, {"failures": 3}]})
        )])),
    );
    changes_requested_with(
        &judgement,
        &["test_results.suites.1.failures is 3; at most 0 expected"],
    );
}

#[test]
fn a_bound_fails_on_an_absent_field_or_one_that_is_not_a_number() {
    let absent = judge(
        &failures_rule(),
        &review(json!([artifact(
            "test_results",
            json!({"all_passed": true})
        )])),
    );
    changes_requested_with(
        &absent,
        &["test_results.failures is absent; a number at most 0 expected"],
    );
    let text = judge(
        &failures_rule(),
        &review(json!([artifact(
            "test_results",
            json!({"failures": "none"})
        )])),
    );
    changes_requested_with(
        &text,
        &["test_results.failures is not a number (found \"none\"); a number at most 0 expected"],
    );
}

#[test]
fn a_long_value_is_cut_short_in_a_reason() {
    let judgement = judge(
        &failures_rule(),
        &review(json!([artifact(
            "test_results",
            json!({"failures": "x".repeat(500)})
        )])),
    );
    assert!(judgement.reasons[0].len() < 200, "{}", judgement.reasons[0]);
    assert!(judgement.reasons[0].contains('…'));
}

// --- covers ---

fn components_rule() -> RuleSet {
    let mut rule = covers(
        "design_document",
        "components",
        "requirements_document",
        "components",
    );
    rule.also_fields = vec!["content".to_owned()];
    rules(vec![rule])
}

fn requirements(components: Value) -> Value {
    json!([{"phase_id": "PHASE_REQUIREMENTS", "artifact_type": "requirements_document",
            "artifact_path": "docs/requirements.md",
            "artifact_content": {"components": components}}])
}

#[test]
fn covers_passes_when_every_entry_is_mentioned_in_any_case() {
    let judgement = judge(
        &components_rule(),
        &review_with(
            json!([artifact(
                "design_document",
                json!({"components": ["Auth Service", "the BILLING module"]})
            )]),
            requirements(json!(["auth service", "Billing"])),
        ),
    );
    approved_with(
        &judgement,
        &[
            "design_document.components (or content) mentions all 2 entries of \
           requirements_document.components",
        ],
    );
}

#[test]
fn covers_searches_the_text_of_the_other_fields_too() {
    let judgement = judge(
        &components_rule(),
        &review_with(
            json!([artifact(
                "design_document",
                json!({"content": "The audit log writes to the Event Store."})
            )]),
            requirements(json!(["audit log", "event store"])),
        ),
    );
    assert_eq!(judgement.verdict, Verdict::Approved, "{judgement:#?}");
}

#[test]
fn covers_searches_nested_lists_and_object_keys() {
    let judgement = judge(
        &components_rule(),
        &review_with(
            json!([artifact(
                "design_document",
                json!({"components": {"gateway": {"talks_to": ["auth"]}, "billing": {}}})
            )]),
            requirements(json!(["Gateway", "auth", "billing"])),
        ),
    );
    assert_eq!(judgement.verdict, Verdict::Approved, "{judgement:#?}");
}

#[test]
fn covers_names_every_entry_not_mentioned() {
    let judgement = judge(
        &components_rule(),
        &review_with(
            json!([artifact(
                "design_document",
                json!({"components": ["auth"], "content": "auth only"})
            )]),
            requirements(json!(["auth", "billing", "audit log"])),
        ),
    );
    changes_requested_with(
        &judgement,
        &[
            "design_document.components (or content) does not mention \"billing\", \"audit log\" \
           of requirements_document.components; every entry expected",
        ],
    );
}

#[test]
fn covers_fails_when_the_searched_fields_are_absent() {
    let judgement = judge(
        &components_rule(),
        &review_with(
            json!([artifact(
                "design_document",
                json!({"sections": ["architecture"]})
            )]),
            requirements(json!(["auth"])),
        ),
    );
    changes_requested_with(
        &judgement,
        &[
            "design_document.components (or content) is absent; expected to mention every entry \
           of requirements_document.components: \"auth\"",
        ],
    );
}

#[test]
fn covers_prefers_the_list_of_the_phase_under_review() {
    let judgement = judge(
        &components_rule(),
        &review_with(
            json!([
                artifact("design_document", json!({"components": ["auth"]})),
                artifact("requirements_document", json!({"components": ["auth"]})),
            ]),
            requirements(json!(["auth", "billing"])),
        ),
    );
    assert_eq!(judgement.verdict, Verdict::Approved, "{judgement:#?}");
}

#[test]
fn covers_does_not_apply_without_the_list_to_cover() {
    let design = json!([artifact("design_document", json!({"components": ["auth"]}))]);
    let no_requirements = judge(&components_rule(), &review(design.clone()));
    approved_with(
        &no_requirements,
        &[
            "not applicable: no requirements_document artifact in this review or an earlier \
           phase (design_document.components (or content) mentions every entry of \
           requirements_document.components)",
        ],
    );
    let no_list = judge(
        &components_rule(),
        &review_with(design, requirements(json!("auth and billing"))),
    );
    assert_eq!(no_list.verdict, Verdict::Approved, "{no_list:#?}");
    assert!(
        no_list.reasons[0]
            .starts_with("not applicable: requirements_document.components is not a list"),
        "{no_list:#?}"
    );
}

#[test]
fn covers_with_nothing_to_cover_passes() {
    let judgement = judge(
        &components_rule(),
        &review_with(
            json!([artifact("design_document", json!({}))]),
            requirements(json!([])),
        ),
    );
    approved_with(
        &judgement,
        &[
            "design_document.components (or content) mentions all 0 entries of \
           requirements_document.components",
        ],
    );
}

#[test]
fn covers_does_not_apply_when_the_judged_artifact_is_absent() {
    let judgement = judge(
        &components_rule(),
        &review_with(json!([]), requirements(json!(["auth"]))),
    );
    assert_eq!(judgement.verdict, Verdict::Approved);
    assert!(judgement.reasons[0].starts_with("not applicable: no design_document artifact"));
}

// --- not_below_previous ---

fn coverage_rule() -> RuleSet {
    rules(vec![rule(
        ReviewRuleKind::NotBelowPrevious,
        "test_coverage",
        "percentage",
    )])
}

fn coverage_review(ticket: &str, percentage: Value) -> ReviewRequested {
    let mut review = review(json!([artifact(
        "test_coverage",
        json!({"percentage": percentage})
    )]));
    review.ticket_id = ticket.parse().expect("a UUID");
    review
}

#[test]
fn not_below_previous_passes_a_first_review_and_reports_what_it_saw() {
    let judgement = judge(&coverage_rule(), &coverage_review(TICKET, json!(86)));
    approved_with(
        &judgement,
        &[
            "test_coverage.percentage is 86 (the first value seen for this ticket: nothing to \
           compare with)",
        ],
    );
    assert_eq!(
        judgement.observations,
        [Observation {
            ticket_id: TICKET.parse().expect("a UUID"),
            artifact_type: "test_coverage".to_owned(),
            field: "percentage".to_owned(),
            value: 86.0,
        }]
    );
}

#[test]
fn not_below_previous_fails_a_drop_below_an_earlier_review() {
    let rules = coverage_rule();
    let mut memory = Memory::default();
    let first = rules.judge(&coverage_review(TICKET, json!(86)), &memory);
    memory.record(&first.observations);
    let same = rules.judge(&coverage_review(TICKET, json!(86)), &memory);
    approved_with(
        &same,
        &["test_coverage.percentage is 86 (not below 86, seen in an earlier review)"],
    );
    let dropped = rules.judge(&coverage_review(TICKET, json!(79.5)), &memory);
    changes_requested_with(
        &dropped,
        &[
            "test_coverage.percentage dropped to 79.5; at least 86, seen in an earlier review of \
           this ticket, expected",
        ],
    );
    memory.record(&dropped.observations);
    let recovered_partly = rules.judge(&coverage_review(TICKET, json!(82)), &memory);
    assert_eq!(
        recovered_partly.verdict,
        Verdict::ChangesRequested,
        "compared with the highest value seen, not the last"
    );
    let risen = rules.judge(&coverage_review(TICKET, json!(91)), &memory);
    assert_eq!(risen.verdict, Verdict::Approved);
}

#[test]
fn not_below_previous_compares_only_the_same_ticket() {
    let rules = coverage_rule();
    let mut memory = Memory::default();
    memory.record(
        &rules
            .judge(&coverage_review(TICKET, json!(95)), &memory)
            .observations,
    );
    let other = rules.judge(
        &coverage_review("0d5c3b0a-6a55-4c6e-a3f4-6d3e7f3c9b21", json!(60)),
        &memory,
    );
    assert_eq!(other.verdict, Verdict::Approved, "{other:#?}");
    assert_eq!(memory.len(), 1);
}

#[test]
fn not_below_previous_fails_without_a_number() {
    let absent = judge(
        &coverage_rule(),
        &review(json!([artifact("test_coverage", json!({}))])),
    );
    changes_requested_with(
        &absent,
        &["test_coverage.percentage is absent; a number expected, to compare with earlier reviews"],
    );
    assert!(absent.observations.is_empty());
    let text = judge(&coverage_rule(), &coverage_review(TICKET, json!("86%")));
    assert_eq!(text.verdict, Verdict::ChangesRequested);
    assert!(text.reasons[0].contains("is not a number (found \"86%\")"));
}

#[test]
fn the_memory_keeps_the_highest_value() {
    let mut memory = Memory::default();
    let ticket: Uuid = TICKET.parse().expect("a UUID");
    let seen = |value| Observation {
        ticket_id: ticket,
        artifact_type: "test_coverage".to_owned(),
        field: "percentage".to_owned(),
        value,
    };
    assert!(memory.is_empty());
    memory.record(&[seen(80.0), seen(90.0), seen(85.0)]);
    assert_eq!(
        memory.highest(ticket, "test_coverage", "percentage"),
        Some(90.0)
    );
    assert_eq!(memory.highest(ticket, "test_coverage", "branches"), None);
}

// --- the verdict ---

fn shipped_rules() -> RuleSet {
    RuleSet::from_settings(&shipped_settings().rules).expect("valid rules")
}

#[test]
fn every_failed_rule_gives_one_reason_in_rule_order() {
    let judgement = judge(
        &shipped_rules(),
        &review_with(
            json!([
                artifact("test_results", json!({"failures": 1})),
                artifact(
                    "requirements_document",
                    json!({"acceptance_criteria": ["a"], "components": ["auth", "billing"]})
                ),
                artifact("design_document", json!({"components": ["auth"]})),
                artifact("test_coverage", json!({"percentage": 90})),
            ]),
            requirements(json!(["auth"])),
        ),
    );
    changes_requested_with(
        &judgement,
        &[
            "requirements_document.acceptance_criteria has 1 item; at least 3 expected",
            "design_document.components (or content) does not mention \"billing\" of \
             requirements_document.components; every entry expected",
            "test_results.failures is 1; at most 0 expected",
        ],
    );
}

#[test]
fn an_approval_lists_what_was_checked_and_what_did_not_apply() {
    let judgement = judge(
        &shipped_rules(),
        &review_with(
            json!([artifact(
                "design_document",
                json!({"components": ["auth", "billing"], "content": "…"})
            )]),
            requirements(json!(["auth", "billing"])),
        ),
    );
    approved_with(
        &judgement,
        &[
            "not applicable: no requirements_document artifact in this review \
             (requirements_document.acceptance_criteria has at least 3 items)",
            "design_document.components (or content) mentions all 2 entries of \
             requirements_document.components",
            "not applicable: no test_coverage artifact in this review \
             (test_coverage.percentage did not drop since an earlier review)",
            "not applicable: no test_results artifact in this review \
             (test_results.failures is at most 0)",
        ],
    );
    assert!(judgement.observations.is_empty());
}

#[test]
fn judging_reads_the_memory_without_changing_it() {
    let rules = shipped_rules();
    let memory = Memory::default();
    let review = coverage_review(TICKET, json!(70));
    let first = rules.judge(&review, &memory);
    let again = rules.judge(&review, &memory);
    assert_eq!(
        first, again,
        "the same request and memory give the same judgement"
    );
    assert!(memory.is_empty());
}
