use serde_json::json;

use super::*;
use crate::review::Verdict;

/// The `[review_agent]` table of the shipped configuration.
fn settings() -> ReviewAgentSettings {
    crate::review::judge::tests::shipped_settings()
}

const TICKET: &str = "6f1c4c1e-9d2b-4e7a-8a51-0c3f5e8b2d11";

fn review_requested(authors: Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": "0d5c3b0a-6a55-4c6e-a3f4-6d3e7f3c9b21",
        "source": "phaseflow",
        "type": "gate.review.requested",
        "subject": TICKET,
        "correlationid": "feature-login-7",
        "data": {
            "ticket_id": TICKET,
            "phase_id": "PHASE_DESIGN",
            "summary": "the design",
            "artifacts": [{"artifact_type": "design_document", "artifact_path": "docs/design.md",
                           "artifact_content": {"components": ["auth"]}}],
            "earlier_artifacts": [],
            "authors": authors,
        }
    })
}

#[test]
fn the_shipped_settings_are_usable() {
    let rules = check_settings(&settings()).expect("usable");
    assert_eq!(rules.len(), 4);
}

#[test]
fn unusable_settings_are_refused_naming_the_setting() {
    for agent_id in ["", "  ", "review agent", &"a".repeat(65)] {
        let mut settings = settings();
        settings.agent_id = agent_id.to_owned();
        let error = check_settings(&settings).expect_err("refused").to_string();
        assert!(error.starts_with("review_agent.agent_id"), "{error}");
    }
    let mut settings = settings();
    settings.queue = "q".repeat(256);
    let error = check_settings(&settings).expect_err("refused").to_string();
    assert!(error.starts_with("review_agent.queue"), "{error}");
    let mut settings = self::settings();
    settings.outcome_timeout_ms = 0;
    let error = check_settings(&settings).expect_err("refused").to_string();
    assert!(
        error.starts_with("review_agent.outcome_timeout_ms"),
        "{error}"
    );
    let mut settings = self::settings();
    settings.rules[1].value = Some(1.0);
    let error = check_settings(&settings).expect_err("refused").to_string();
    assert!(
        error.starts_with("review_agent.rules entry 2 (covers"),
        "{error}"
    );
}

#[test]
fn a_review_request_is_prepared_for_judging() {
    match prepare(&review_requested(json!(["agent-1"])), "review-agent") {
        Prepared::Review {
            event_id,
            correlation_id,
            review,
        } => {
            assert_eq!(event_id, "0d5c3b0a-6a55-4c6e-a3f4-6d3e7f3c9b21");
            assert_eq!(correlation_id.as_deref(), Some("feature-login-7"));
            assert_eq!(review.phase_id, "PHASE_DESIGN");
            assert_eq!(review.artifacts.len(), 1);
        }
        skipped => panic!("not prepared for review: {skipped:?}"),
    }
}

#[test]
fn a_phase_the_agent_authored_is_skipped() {
    match prepare(
        &review_requested(json!(["agent-1", "review-agent"])),
        "review-agent",
    ) {
        Prepared::Skip { reason, unexpected } => {
            assert!(!unexpected);
            assert!(reason.contains("an author may not review it"), "{reason}");
        }
        prepared => panic!("not skipped: {prepared:?}"),
    }
}

#[test]
fn events_that_are_not_readable_review_requests_are_skipped_as_unexpected() {
    let mut other_type = review_requested(json!([]));
    other_type["type"] = json!("gate.validated");
    let mut no_id = review_requested(json!([]));
    no_id["id"] = json!(null);
    let mut bad_ticket = review_requested(json!([]));
    bad_ticket["data"]["ticket_id"] = json!("not-a-uuid");
    let mut no_data = review_requested(json!([]));
    no_data["data"] = json!(null);
    for event in [other_type, no_id, bad_ticket, no_data] {
        match prepare(&event, "review-agent") {
            Prepared::Skip { unexpected, .. } => assert!(unexpected, "{event}"),
            prepared => panic!("not skipped: {prepared:?}"),
        }
    }
}

#[test]
fn a_verdict_is_sent_again_under_the_same_id() {
    let first = request_id("review-agent", "0d5c3b0a-6a55-4c6e-a3f4-6d3e7f3c9b21");
    assert_eq!(
        first,
        "review:review-agent:0d5c3b0a-6a55-4c6e-a3f4-6d3e7f3c9b21"
    );
    assert_eq!(
        first,
        request_id("review-agent", "0d5c3b0a-6a55-4c6e-a3f4-6d3e7f3c9b21")
    );
    assert_ne!(
        first,
        request_id("reviewer-2", "0d5c3b0a-6a55-4c6e-a3f4-6d3e7f3c9b21")
    );
    let long = request_id("review-agent", &"e".repeat(120));
    assert!(
        Uuid::parse_str(&long).is_ok(),
        "too long: a new UUID ({long})"
    );
}

#[test]
fn the_verdict_request_carries_ticket_agent_chain_and_judgement() {
    let Prepared::Review {
        event_id,
        correlation_id,
        review,
    } = prepare(&review_requested(json!(["agent-1"])), "review-agent")
    else {
        panic!("prepared for review");
    };
    let judgement = Judgement {
        verdict: Verdict::ChangesRequested,
        reasons: vec!["design_document.components does not mention \"billing\"".to_owned()],
        observations: Vec::new(),
    };
    let request = verdict_request(
        "review-agent",
        &event_id,
        correlation_id.as_deref(),
        &review,
        &judgement,
    );
    let event = request.to_cloudevent();
    assert_eq!(event["type"], "gate.review.submit.requested");
    assert_eq!(
        event["id"],
        "review:review-agent:0d5c3b0a-6a55-4c6e-a3f4-6d3e7f3c9b21"
    );
    assert_eq!(event["subject"], TICKET);
    assert_eq!(event["actor"], "review-agent");
    assert_eq!(event["source"], "agent/review-agent");
    assert_eq!(event["correlationid"], "feature-login-7");
    assert_eq!(
        event["data"],
        json!({
            "phase_id": "PHASE_DESIGN",
            "verdict": "changes_requested",
            "reasons": ["design_document.components does not mention \"billing\""],
        })
    );
}
