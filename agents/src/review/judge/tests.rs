//! The reference reviewer's rules: reading them from the configuration, reading a review
//! request, and (in `kinds`) what each rule kind makes of the artifacts it is shown.

use serde_json::json;

use super::*;
use crate::review::ReviewAgentSettings;

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

/// The `[review_agent]` table of the shipped configuration (`config/default.toml`, which the
/// service also builds in as its defaults).
pub(crate) fn shipped_settings() -> ReviewAgentSettings {
    let text = include_str!("../../../../config/default.toml");
    let mut table: toml::Table = text.parse().expect("the shipped configuration is TOML");
    table
        .remove("review_agent")
        .expect("the shipped configuration has [review_agent]")
        .try_into()
        .expect("[review_agent] reads as the settings")
}

#[test]
fn the_shipped_rules_are_valid() {
    let settings = shipped_settings();
    let rules = RuleSet::from_settings(&settings.rules).expect("valid rules");
    let described: Vec<String> = rules.rules().iter().map(Rule::describe).collect();
    assert_eq!(
        described,
        [
            "requirements_document.acceptance_criteria has at least 3 items",
            "design_document.components (or content) mentions every entry of requirements_document.components",
            "test_coverage.percentage did not drop since an earlier review",
            "test_results.failures is at most 0",
        ]
    );
    assert_eq!(settings.agent_id, "review-agent");
    assert_eq!(settings.queue, "phaseflow.review-agent");
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
    let settings: ReviewAgentSettings = toml::from_str(text).expect("typed settings");
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
    let error = toml::from_str::<ReviewAgentSettings>(&unknown_kind)
        .expect_err("an unknown kind is refused")
        .to_string();
    assert!(error.contains("at_leest"), "{error}");
    let unknown_key = text.replace("required", "requird");
    assert!(
        toml::from_str::<ReviewAgentSettings>(&unknown_key).is_err(),
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

mod kinds;
