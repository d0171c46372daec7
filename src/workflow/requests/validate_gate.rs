//! `gate.validate.requested`: judge a phase's gate (default: the current phase) and store the
//! result; its outcome is `gate.validated`. It never moves the ticket.

use crate::domain::{Phase, TicketId};
use crate::protocol::fields::{Fields, Subject};
use crate::protocol::Event;
use crate::store::{self, PgConnection};

use super::{ticket_not_found, Applied, RequestKind};
use crate::workflow::events::EventLog;
use crate::workflow::{gates, Workflow, WorkflowError};
pub use phaseflow_client::requests::validate_gate::ValidateGateData;

/// A gate to judge.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidateGate {
    pub ticket_id: TicketId,
    /// `None`: the ticket's current phase
    pub phase_id: Option<Phase>,
}

impl RequestKind for ValidateGate {
    fn parse(subject: Subject<'_>, fields: &mut Fields<'_>) -> Option<Self> {
        let ticket = subject.required(fields);
        let phase_id = fields.optional_parsed::<Phase>("phase_id");
        Some(ValidateGate {
            ticket_id: ticket?,
            phase_id,
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
        let (evaluation, validated) = gates::validate(
            workflow,
            connection,
            &ticket,
            phase,
            log.actor(),
            log.trace_id(),
        )
        .await?;
        // the review request follows the outcome
        log.reserve_outcome();
        gates::ask_review(connection, &ticket, phase, &evaluation, log).await?;
        Ok(Applied::Succeeded(Event::GateValidated(validated)))
    }
}
