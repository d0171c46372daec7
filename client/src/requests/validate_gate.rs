//! `gate.validate.requested`: its `data` and its wire facts (outcome events, rejection, HTTP route,
//! what it does). How the service applies it is the service's business.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{HttpRoute, Request};
use crate::events::event_type;
use crate::{Phase, RejectionCode};

/// The `data` of `gate.validate.requested`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ValidateGateData {
    /// default: the ticket's current phase
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_id: Option<Phase>,
}

impl Request for ValidateGateData {
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
}
