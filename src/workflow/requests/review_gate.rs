//! `gate.review.submit.requested`: an independent agent's verdict on a phase whose gate waits
//! for a review. Its outcome is `gate.reviewed`, followed by what it sets off: an approval
//! validates the gate again (it passes, and with `auto_advance` the ticket moves on as after its
//! last task); changes requested fail the gate with the reviewer's reasons and generate the
//! phase's rework task, after which a new review is asked for.
//!
//! A verdict judges the phase as it was when the review was asked for: a later artifact or task
//! means the review asked for no longer stands (`review_not_requested`). An agent that completed
//! tasks of the phase may not review it (`reviewer_not_independent`).

use crate::domain::{independence_refusal, Phase, TicketId, Verdict, REASON_MAX_CHARS};
use crate::protocol::events::GateReviewed;
use crate::protocol::fields::{Fields, Subject};
use crate::protocol::{Event, Rejection, RejectionCode, SYSTEM_ACTOR};
use crate::store::{self, PgConnection};

use super::{ticket_not_found, Applied, RequestKind};
use crate::workflow::events::EventLog;
use crate::workflow::{automation, gates, reviews, tasks, Workflow, WorkflowError};
pub use phaseflow_client::requests::review_gate::{ReviewGateData, MAX_REASONS};

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
                trace_id: log.trace_id(),
            },
        )
        .await?;
        log.reserve_outcome();
        match self.verdict {
            Verdict::Approved if phase == ticket.phase => {
                automation::after_task_finished(workflow, connection, log, &ticket).await?;
            }
            Verdict::Approved => {
                let (_, validated) = gates::validate(
                    workflow,
                    connection,
                    &ticket,
                    phase,
                    SYSTEM_ACTOR,
                    log.trace_id(),
                )
                .await?;
                log.emit(SYSTEM_ACTOR, Event::GateValidated(validated));
            }
            Verdict::ChangesRequested => {
                let (_, validated) = gates::validate(
                    workflow,
                    connection,
                    &ticket,
                    phase,
                    SYSTEM_ACTOR,
                    log.trace_id(),
                )
                .await?;
                log.emit(SYSTEM_ACTOR, Event::GateValidated(validated));
                let rework = reviews::generate_rework(
                    workflow,
                    connection,
                    &ticket,
                    phase,
                    review_id,
                    log.trace_id(),
                )
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
