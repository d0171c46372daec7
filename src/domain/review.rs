//! Reviews as rules: what a reviewer may answer, who may review a phase, and which state of a
//! phase a review judged. A gate that requires a review passes only with an approval of the
//! phase as it is now; a later artifact or task changes the phase's state and asks for a new
//! review.
//!
//! Pure: the state is computed from what the caller read; nothing here stores or reads the clock.

use super::gate::{GateEvaluation, GateStatus};
pub use phaseflow_client::gate::{UnknownVerdict, Verdict};

/// The blocking reason of a gate that waits for its review.
pub const AWAITING_REVIEW: &str = "awaiting review";

/// A review of the phase as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewSeen<'a> {
    pub verdict: Verdict,
    pub reviewer: &'a str,
    pub reasons: &'a [String],
}

/// Makes the evaluation of a gate that requires a review say what the review of the phase as it
/// is now says, once everything else holds: approved, it passes; changes requested, it fails
/// with the reviewer's reasons; no review yet, it is pending, awaiting one.
pub fn apply_review(evaluation: &mut GateEvaluation, review: Option<ReviewSeen<'_>>) {
    if evaluation.status != GateStatus::Passed {
        return;
    }
    match review {
        Some(ReviewSeen {
            verdict: Verdict::Approved,
            ..
        }) => {}
        Some(ReviewSeen {
            reviewer, reasons, ..
        }) => {
            evaluation.status = GateStatus::Failed;
            evaluation.requirements_met = false;
            evaluation.blocking_reasons = reasons
                .iter()
                .map(|reason| format!("review by {reviewer}: {reason}"))
                .collect();
        }
        None => {
            evaluation.status = GateStatus::Pending;
            evaluation.requirements_met = false;
            evaluation.awaiting_review = true;
            evaluation.blocking_reasons = vec![AWAITING_REVIEW.to_owned()];
        }
    }
}

/// What a review judges: the phase's artifacts and tasks as they were. Two states are equal
/// exactly when no artifact was collected and no task created or finished in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseState {
    /// the newest artifact of the phase (its order number; 0 for none)
    pub last_artifact: i64,
    /// the newest task of the phase (its order number; 0 for none)
    pub last_task: i64,
    /// tasks of the phase finished (completed or failed)
    pub finished_tasks: i64,
}

impl PhaseState {
    /// The state as stored with a review and its request.
    pub fn key(&self) -> String {
        format!(
            "a{}-t{}-f{}",
            self.last_artifact, self.last_task, self.finished_tasks
        )
    }
}

/// Why `reviewer` may not review a phase whose tasks `authors` completed; `None` when it may.
pub fn independence_refusal(reviewer: &str, authors: &[String]) -> Option<String> {
    authors.iter().any(|author| author == reviewer).then(|| {
        format!(
            "{reviewer} completed tasks of this phase; a review must come from another agent (authors: {})",
            authors.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_read_and_write_their_wire_names() {
        for verdict in [Verdict::Approved, Verdict::ChangesRequested] {
            assert_eq!(verdict.as_str().parse::<Verdict>(), Ok(verdict));
            assert_eq!(verdict.to_string(), verdict.as_str());
            assert_eq!(
                serde_json::to_value(verdict).unwrap(),
                serde_json::Value::from(verdict.as_str())
            );
        }
        assert!("rejected".parse::<Verdict>().is_err());
    }

    #[test]
    fn any_new_artifact_or_task_is_a_new_state() {
        let seen = PhaseState {
            last_artifact: 4,
            last_task: 9,
            finished_tasks: 2,
        };
        let artifact = PhaseState {
            last_artifact: 5,
            ..seen
        };
        let task = PhaseState {
            last_task: 10,
            ..seen
        };
        let finished = PhaseState {
            finished_tasks: 3,
            ..seen
        };
        for later in [artifact, task, finished] {
            assert_ne!(seen.key(), later.key());
        }
        assert_eq!(seen.key(), seen.key());
    }

    fn passed() -> GateEvaluation {
        crate::domain::gate::evaluate(None, &[], &[])
    }

    #[test]
    fn a_gate_that_otherwise_passes_says_what_its_review_says() {
        let mut waiting = passed();
        apply_review(&mut waiting, None);
        assert_eq!(waiting.status, GateStatus::Pending);
        assert!(waiting.awaiting_review && !waiting.requirements_met);
        assert_eq!(waiting.blocking_reasons, vec![AWAITING_REVIEW]);

        let mut approved = passed();
        let reasons = vec!["looks right".to_owned()];
        apply_review(
            &mut approved,
            Some(ReviewSeen {
                verdict: Verdict::Approved,
                reviewer: "reviewer",
                reasons: &reasons,
            }),
        );
        assert_eq!(approved, passed());

        let mut refused = passed();
        let reasons = vec!["name the data model".to_owned()];
        apply_review(
            &mut refused,
            Some(ReviewSeen {
                verdict: Verdict::ChangesRequested,
                reviewer: "reviewer",
                reasons: &reasons,
            }),
        );
        assert_eq!(refused.status, GateStatus::Failed);
        assert_eq!(
            refused.blocking_reasons,
            vec!["review by reviewer: name the data model"]
        );

        let mut pending = passed();
        pending.status = GateStatus::Pending;
        let before = pending.clone();
        apply_review(&mut pending, None);
        assert_eq!(pending, before, "a gate not otherwise met is not reviewed");
    }

    #[test]
    fn an_author_may_not_review_its_own_phase() {
        let authors = vec!["agent-1".to_owned(), "agent-2".to_owned()];
        assert!(independence_refusal("agent-2", &authors)
            .unwrap()
            .contains("authors: agent-1, agent-2"));
        assert_eq!(independence_refusal("reviewer", &authors), None);
    }
}
