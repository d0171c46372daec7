use std::path::Path;

use figment::providers::{Format, Toml};
use figment::Figment;
use serde_json::json;

use super::*;
use crate::config::Settings;

fn rule(kind: ReviewRuleKind, artifact_type: &str, field: &str) -> ReviewRuleSettings {
    ReviewRuleSettings {
        kind,
        artifact_type: artifact_type.to_owned(),
        field: field.to_owned(),
        required: false,
        value: None,
        from_artifact_type: None,
        from_field: None,
        also_fields: Vec::new(),
    }
}

fn with_value(mut rule: ReviewRuleSettings, value: f64) -> ReviewRuleSettings {
    rule.value = Some(value);
    rule
}

fn required(mut rule: ReviewRuleSettings) -> ReviewRuleSettings {
    rule.required = true;
    rule
}

fn covers(
    artifact_type: &str,
    field: &str,
    from_artifact_type: &str,
    from_field: &str,
) -> ReviewRuleSettings {
    ReviewRuleSettings {
        from_artifact_type: Some(from_artifact_type.to_owned()),
        from_field: Some(from_field.to_owned()),
        ..rule(ReviewRuleKind::Covers, artifact_type, field)
    }
}

fn rules(settings: Vec<ReviewRuleSettings>) -> RuleSet {
    RuleSet::from_settings(&settings).expect("valid rules")
}

fn error_of(settings: Vec<ReviewRuleSettings>) -> String {
    RuleSet::from_settings(&settings)
        .expect_err("the rules are refused")
        .to_string()
}

const TICKET: &str = "6f1c4c1e-9d2b-4e7a-8a51-0c3f5e8b2d11";

/// A review request of PHASE_DESIGN with these artifacts, none from earlier phases.
fn review(artifacts: Value) -> ReviewRequested {
    review_with(artifacts, json!([]))
}

fn review_with(artifacts: Value, earlier_artifacts: Value) -> ReviewRequested {
    serde_json::from_value(json!({
        "ticket_id": TICKET,
        "phase_id": "PHASE_DESIGN",
        "summary": "the design of the login",
        "artifacts": artifacts,
        "earlier_artifacts": earlier_artifacts,
        "authors": ["agent-1"],
    }))
    .expect("a review request")
}

fn artifact(artifact_type: &str, content: Value) -> Value {
    json!({"artifact_type": artifact_type, "artifact_path": null, "artifact_content": content})
}

fn judge(rules: &RuleSet, review: &ReviewRequested) -> Judgement {
    rules.judge(review, &Memory::default())
}

fn approved_with(judgement: &Judgement, reasons: &[&str]) {
    assert_eq!(judgement.verdict, Verdict::Approved, "{judgement:#?}");
    assert_eq!(judgement.reasons, reasons, "{judgement:#?}");
}

fn changes_requested_with(judgement: &Judgement, reasons: &[&str]) {
    assert_eq!(
        judgement.verdict,
        Verdict::ChangesRequested,
        "{judgement:#?}"
    );
    assert_eq!(judgement.reasons, reasons, "{judgement:#?}");
}

// --- the configuration ---

#[test]
fn the_shipped_rules_are_valid() {
    for dir in [
        Path::new("/nonexistent").to_path_buf(),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
    ] {
        let settings = Settings::load_from(&dir).expect("the settings load");
        let rules = RuleSet::from_settings(&settings.review_agent.rules).expect("valid rules");
        let described: Vec<String> = rules.rules().iter().map(Rule::describe).collect();
        assert_eq!(
            described,
            [
                "requirements_document.acceptance_criteria has at least 3 items",
                "design_document.components (or content) mentions every entry of requirements_document.components",
                "test_coverage.percentage did not drop since an earlier review",
                "test_results.failures is at most 0",
            ],
            "{}",
            dir.display()
        );
        assert_eq!(settings.review_agent.agent_id, "review-agent");
        assert_eq!(settings.review_agent.queue, "phaseflow.review-agent");
    }
}

#[test]
fn no_rules_is_refused() {
    assert!(error_of(vec![]).contains("review_agent.rules is empty"));
}

#[test]
fn a_rule_without_its_value_is_refused_naming_its_position() {
    let error = error_of(vec![
        with_value(
            rule(ReviewRuleKind::AtMost, "test_results", "failures"),
            0.0,
        ),
        rule(
            ReviewRuleKind::MinItems,
            "requirements_document",
            "acceptance_criteria",
        ),
    ]);
    assert_eq!(
        error,
        "review_agent.rules entry 2 (min_items on requirements_document.acceptance_criteria): \
         `value` is missing: the least number of items"
    );
    let error = error_of(vec![rule(
        ReviewRuleKind::AtLeast,
        "test_coverage",
        "percentage",
    )]);
    assert!(
        error.contains("entry 1 (at_least on test_coverage.percentage)"),
        "{error}"
    );
    assert!(error.contains("`value` is missing"), "{error}");
}

#[test]
fn min_items_needs_a_whole_number() {
    for bad in [2.5, -1.0] {
        let error = error_of(vec![with_value(
            rule(
                ReviewRuleKind::MinItems,
                "requirements_document",
                "acceptance_criteria",
            ),
            bad,
        )]);
        assert!(error.contains("whole number"), "{error}");
    }
    let zero = rules(vec![with_value(
        rule(
            ReviewRuleKind::MinItems,
            "requirements_document",
            "acceptance_criteria",
        ),
        0.0,
    )]);
    assert_eq!(zero.rules()[0].check, Check::MinItems(0));
}

#[test]
fn a_bound_must_be_finite() {
    let error = error_of(vec![with_value(
        rule(ReviewRuleKind::AtMost, "test_results", "failures"),
        f64::INFINITY,
    )]);
    assert!(error.contains("finite"), "{error}");
}

#[test]
fn covers_needs_the_artifact_and_field_it_covers() {
    let mut without_source = covers("design_document", "components", "", "components");
    without_source.from_artifact_type = None;
    assert!(error_of(vec![without_source]).contains("`from_artifact_type` is missing"));
    let mut without_field = covers(
        "design_document",
        "components",
        "requirements_document",
        "x",
    );
    without_field.from_field = None;
    assert!(error_of(vec![without_field]).contains("`from_field` is missing"));
    let bad_path = covers(
        "design_document",
        "components",
        "requirements_document",
        "a..b",
    );
    assert!(error_of(vec![bad_path]).contains("`from_field` = \"a..b\" is not a field name"));
}

#[test]
fn keys_a_kind_does_not_use_are_refused() {
    let error = error_of(vec![with_value(
        covers(
            "design_document",
            "components",
            "requirements_document",
            "components",
        ),
        3.0,
    )]);
    assert!(
        error.contains("`value` does not apply to covers"),
        "{error}"
    );
    let error = error_of(vec![with_value(
        rule(
            ReviewRuleKind::NotBelowPrevious,
            "test_coverage",
            "percentage",
        ),
        80.0,
    )]);
    assert!(
        error.contains("`value` does not apply to not_below_previous"),
        "{error}"
    );
    let mut stray = with_value(
        rule(ReviewRuleKind::AtLeast, "test_coverage", "percentage"),
        1.0,
    );
    stray.from_field = Some("components".to_owned());
    assert!(error_of(vec![stray]).contains("`from_field` does not apply to at_least"));
    let mut stray = with_value(rule(ReviewRuleKind::MinItems, "a", "b"), 1.0);
    stray.also_fields = vec!["content".to_owned()];
    assert!(error_of(vec![stray]).contains("`also_fields` does not apply to min_items"));
}

#[test]
fn fields_must_be_names_or_dotted_paths() {
    for bad in ["", "metrics.", ".coverage", "test coverage"] {
        let error = error_of(vec![with_value(
            rule(ReviewRuleKind::AtLeast, "a", bad),
            1.0,
        )]);
        assert!(
            error.contains("is not a field name or dotted path"),
            "{bad}: {error}"
        );
    }
    let error = error_of(vec![with_value(
        rule(ReviewRuleKind::AtLeast, " ", "x"),
        1.0,
    )]);
    assert!(error.contains("artifact_type is empty"), "{error}");
}

#[test]
fn rules_read_from_toml_are_typed() {
    let text = r#"
        agent_id = "reviewer-1"
        queue = "q"
        outcome_timeout_ms = 1000
        [[rules]]
        kind = "at_least"
        artifact_type = "test_coverage"
        field = "metrics.coverage"
        value = 80
        required = true
    "#;
    let settings: crate::config::ReviewAgentSettings = Figment::from(Toml::string(text))
        .extract()
        .expect("typed settings");
    let rules = RuleSet::from_settings(&settings.rules).expect("valid");
    assert_eq!(
        rules.rules(),
        [Rule {
            artifact_type: "test_coverage".to_owned(),
            field: "metrics.coverage".to_owned(),
            required: true,
            check: Check::AtLeast(80.0),
        }]
    );
    let unknown_kind = text.replace("at_least", "at_leest");
    let error = Figment::from(Toml::string(&unknown_kind))
        .extract::<crate::config::ReviewAgentSettings>()
        .expect_err("an unknown kind is refused")
        .to_string();
    assert!(error.contains("at_leest"), "{error}");
    let unknown_key = text.replace("required", "requird");
    assert!(
        Figment::from(Toml::string(&unknown_key))
            .extract::<crate::config::ReviewAgentSettings>()
            .is_err(),
        "a misspelt key is refused"
    );
}

// --- the event ---

#[test]
fn a_review_request_reads_from_its_wire_form() {
    let review: ReviewRequested = serde_json::from_value(json!({
        "ticket_id": TICKET,
        "phase_id": "PHASE_DESIGN",
        "summary": "text a reviewer can act on",
        "artifacts": [{"artifact_type": "design_document", "artifact_path": "docs/design.md",
                       "artifact_content": {"components": ["auth"]}}],
        "earlier_artifacts": [{"phase_id": "PHASE_REQUIREMENTS",
                               "artifact_type": "requirements_document",
                               "artifact_path": null, "artifact_content": null}],
        "authors": ["agent-1", "agent-2"],
    }))
    .expect("the documented shape");
    assert_eq!(review.ticket_id.to_string(), TICKET);
    assert_eq!(
        review.artifacts[0].artifact_path.as_deref(),
        Some("docs/design.md")
    );
    assert_eq!(
        review.earlier_artifacts[0].phase_id.as_deref(),
        Some("PHASE_REQUIREMENTS")
    );
    assert!(review.earlier_artifacts[0].artifact_content.is_none());
    assert_eq!(review.authors, ["agent-1", "agent-2"]);
    let minimal: ReviewRequested =
        serde_json::from_value(json!({"ticket_id": TICKET, "phase_id": "PHASE_DESIGN"}))
            .expect("lists may be left out");
    assert!(minimal.artifacts.is_empty() && minimal.authors.is_empty());
}

#[test]
fn the_verdict_is_spelt_as_the_protocol_spells_it() {
    assert_eq!(json!(Verdict::Approved), json!("approved"));
    assert_eq!(json!(Verdict::ChangesRequested), json!("changes_requested"));
    assert_eq!(Verdict::ChangesRequested.as_str(), "changes_requested");
}

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
    let settings = Settings::load_from(Path::new("/nonexistent")).expect("the defaults load");
    RuleSet::from_settings(&settings.review_agent.rules).expect("valid rules")
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
