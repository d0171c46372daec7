//! `gate.validate.requested`: judge a phase's gate (default: the current phase) and store the
//! result; its outcome is `gate.validated`. It never moves the ticket.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::{Phase, TicketId};
use crate::protocol::event_type;
use crate::protocol::fields::{Fields, Subject};
use crate::protocol::Event;
use crate::protocol::RejectionCode;
use crate::store::{self, PgConnection};

use super::{ticket_not_found, Applied, HttpRoute, RequestKind};
use crate::workflow::events::EventLog;
use crate::workflow::{gates, Workflow, WorkflowError};

/// The `data` of a request about one phase of a ticket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PhaseSelectorData {
    /// default: the ticket's current phase
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_id: Option<Phase>,
}

/// A gate to judge.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidateGate {
    pub ticket_id: TicketId,
    /// `None`: the ticket's current phase
    pub phase_id: Option<Phase>,
}

impl RequestKind for ValidateGate {
    type Data = PhaseSelectorData;
    const TYPE: &'static str = "gate.validate.requested";
    const OUTCOMES: &'static [&'static str] = &[event_type::GATE_VALIDATED];
    const REJECTION: Option<&'static str> = Some("gate.validate.rejected");
    const REJECTION_CODES: &'static [RejectionCode] =
        &[RejectionCode::TicketNotFound, RejectionCode::InvalidRequest];
    const ROUTE: Option<HttpRoute> = Some(HttpRoute::post(
        "/api/v1/tickets/{ticket_id}/validate-gate",
        200,
        "validateGate",
    ));
    const TITLE: &'static str = "Validate a phase's gate";
    const DESCRIPTION: &'static str = "Validate a phase's gate (default: the current phase) and \
        store the result.";

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
        let (evaluation, validated) =
            gates::validate(workflow, connection, &ticket, phase, log.actor()).await?;
        // the review request follows the outcome
        log.reserve_outcome();
        gates::ask_review(connection, &ticket, phase, &evaluation, log).await?;
        Ok(Applied::Succeeded(Event::GateValidated(validated)))
    }
}
