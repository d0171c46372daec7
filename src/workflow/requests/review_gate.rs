//! `gate.review.submit.requested`: an independent agent's verdict on a phase whose gate waits
//! for a review. Its outcome is `gate.reviewed`, followed by what it sets off: an approval
//! validates the gate again (it passes, and with `auto_advance` the ticket moves on as after its
//! last task); changes requested fail the gate with the reviewer's reasons and generate the
//! phase's rework task, after which a new review is asked for.
//!
//! A verdict judges the phase as it was when the review was asked for: a later artifact or task
//! means the review asked for no longer stands (`review_not_requested`). An agent that completed
//! tasks of the phase may not review it (`reviewer_not_independent`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::{independence_refusal, Phase, TicketId, Verdict, REASON_MAX_CHARS};
use crate::protocol::event_type;
use crate::protocol::events::GateReviewed;
use crate::protocol::fields::{Fields, Subject, NOT_BLANK_PATTERN};
use crate::protocol::{Event, Rejection, RejectionCode, SYSTEM_ACTOR};
use crate::store::{self, PgConnection};

use super::{ticket_not_found, Applied, HttpRoute, RequestKind};
use crate::workflow::events::EventLog;
use crate::workflow::{automation, gates, reviews, tasks, Workflow, WorkflowError};

/// Most reasons a review may give.
pub const MAX_REASONS: usize = 50;

/// The `data` of `gate.review.submit.requested`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(extend(
    "if" = {"properties": {"verdict": {"const": "changes_requested"}}, "required": ["verdict"]},
    "then" = {"properties": {"reasons": {"type": "array", "minItems": 1}}, "required": ["reasons"]}
))]
pub struct ReviewGateData {
    /// default: the ticket's current phase
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_id: Option<Phase>,
    pub verdict: Verdict,
    /// why (up to 50, each 1 to 10,000 characters, not all whitespace; `null` as absent);
    /// required, and not empty, with `changes_requested`
    #[serde(default)]
    #[schemars(
        length(max = MAX_REASONS),
        inner(length(min = 1, max = REASON_MAX_CHARS), pattern(NOT_BLANK_PATTERN)),
        extend("type" = ["array", "null"])
    )]
    pub reasons: Vec<String>,
}

/// A verdict on a phase.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewGate {
    pub ticket_id: TicketId,
    /// `None`: the ticket's current phase
    pub phase_id: Option<Phase>,
    pub verdict: Verdict,
    pub reasons: Vec<String>,
}

impl RequestKind for ReviewGate {
    type Data = ReviewGateData;
    const TYPE: &'static str = "gate.review.submit.requested";
    const OUTCOMES: &'static [&'static str] = &[event_type::GATE_REVIEWED];
    const REJECTION: Option<&'static str> = Some("gate.review.submit.rejected");
    const REJECTION_CODES: &'static [RejectionCode] = &[
        RejectionCode::TicketNotFound,
        RejectionCode::ReviewNotRequested,
        RejectionCode::ReviewerNotIndependent,
        RejectionCode::InvalidRequest,
    ];
    const ROUTE: Option<HttpRoute> = Some(HttpRoute::post(
        "/api/v1/tickets/{ticket_id}/reviews",
        201,
        "reviewGate",
    ));
    const TITLE: &'static str = "Review a phase whose gate waits for a review";
    const DESCRIPTION: &'static str = "An independent agent's verdict on a phase whose gate \
        waits for a review (after `gate.review.requested`): `approved` validates the gate again \
        (and with `auto_advance` the ticket moves on), `changes_requested` (with `reasons`) fails \
        the gate with those reasons and generates the phase's rework task. The verdict holds for \
        the state of the phase the review was asked for. `changes_requested` needs at least one \
        reason (`invalid_request` otherwise).";

    fn parse(subject: Subject<'_>, fields: &mut Fields<'_>) -> Option<Self> {
        let ticket = subject.required(fields);
        let phase_id = fields.optional_parsed::<Phase>("phase_id");
        let verdict = fields.required_parsed::<Verdict>("verdict");
        let reasons = fields.optional_text_list("reasons", MAX_REASONS, REASON_MAX_CHARS);
        if verdict == Some(Verdict::ChangesRequested) && reasons.as_ref().is_some_and(Vec::is_empty)
        {
            fields
                .reasons
                .push("reasons: say what must change (required with changes_requested)".into());
            return None;
        }
        Some(ReviewGate {
            ticket_id: ticket?,
            phase_id,
            verdict: verdict?,
            reasons: reasons?,
        })
    }

    fn ticket_id(&self) -> Option<TicketId> {
        Some(self.ticket_id)
    }

    async fn apply(
        &self,
        workflow: &Workflow,
        connection: &mut PgConnection,
        log: &mut EventLog<'_>,
    ) -> Result<Applied, WorkflowError> {
        let Some(ticket) = store::tickets::lock(connection, self.ticket_id).await? else {
            return Ok(Applied::Rejected(ticket_not_found(self.ticket_id)));
        };
        let phase = self.phase_id.unwrap_or(ticket.phase);
        let not_requested = |reason: String| {
            Ok(Applied::Rejected(
                Rejection::new(RejectionCode::ReviewNotRequested, Some(ticket.id), reason)
                    .with_detail("phase_id", phase.as_str()),
            ))
        };
        if !reviews::required(workflow.definition(), phase) {
            return not_requested(format!("the gate of {phase} requires no review"));
        }
        let state = store::reviews::phase_state(connection, ticket.id, phase)
            .await?
            .key();
        if !store::reviews::is_requested(connection, ticket.id, phase, &state).await? {
            return not_requested(format!(
                "no review of {phase} is awaited: its gate asks for one once everything else \
                 holds, and a new artifact or task since the request asks for a new review"
            ));
        }
        if let Some(review) =
            store::reviews::for_state(connection, ticket.id, phase, &state).await?
        {
            return not_requested(format!(
                "{phase} was reviewed already as it is now ({} by {})",
                review.verdict, review.reviewer
            ));
        }
        let reviewer = log.actor();
        let authors = store::reviews::authors(connection, ticket.id, phase).await?;
        if let Some(reason) = independence_refusal(reviewer, &authors) {
            return Ok(Applied::Rejected(
                Rejection::new(
                    RejectionCode::ReviewerNotIndependent,
                    Some(ticket.id),
                    reason,
                )
                .with_detail("phase_id", phase.as_str()),
            ));
        }
        let review_id = store::reviews::insert(
            connection,
            &store::reviews::NewReview {
                ticket_id: ticket.id,
                phase,
                state: &state,
                verdict: self.verdict,
                reviewer,
                reasons: &self.reasons,
            },
        )
        .await?;
        log.reserve_outcome();
        match self.verdict {
            Verdict::Approved if phase == ticket.phase => {
                automation::after_task_finished(workflow, connection, log, &ticket).await?;
            }
            Verdict::Approved => {
                let (_, validated) =
                    gates::validate(workflow, connection, &ticket, phase, SYSTEM_ACTOR).await?;
                log.emit(SYSTEM_ACTOR, Event::GateValidated(validated));
            }
            Verdict::ChangesRequested => {
                let (_, validated) =
                    gates::validate(workflow, connection, &ticket, phase, SYSTEM_ACTOR).await?;
                log.emit(SYSTEM_ACTOR, Event::GateValidated(validated));
                let rework =
                    reviews::generate_rework(workflow, connection, &ticket, phase, review_id)
                        .await?;
                log.emit(
                    SYSTEM_ACTOR,
                    Event::TasksGenerated(tasks::generated_data(
                        ticket.id,
                        phase,
                        vec![tasks::generated_task(rework)],
                    )),
                );
            }
        }
        Ok(Applied::Succeeded(Event::GateReviewed(GateReviewed {
            ticket_id: ticket.id,
            phase_id: phase,
            verdict: self.verdict,
            reviewer: reviewer.to_owned(),
            reasons: self.reasons.clone(),
        })))
    }
}
