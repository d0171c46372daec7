//! `phase.transition.requested`: its `data` and its wire facts (outcome events, rejection, HTTP
//! route, what it does). How the service applies it is the service's business.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{HttpRoute, Request};
use crate::events::event_type;
use crate::limits::{NOT_BLANK_PATTERN, REASON_MAX_CHARS};
use crate::{Phase, RejectionCode};

/// The `data` of `phase.transition.requested`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TransitionData {
    /// the phase to move to; optional only when leaving PHASE_BLOCKED (then back to the phase
    /// it was blocked from when allowed, else the latest allowed phase before it)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_phase: Option<Phase>,
    /// 1 to 10,000 characters, not all whitespace, recorded on the history row
    #[schemars(length(min = 1, max = REASON_MAX_CHARS), pattern(NOT_BLANK_PATTERN))]
    pub reason: String,
    /// refuse the move (`phase_mismatch`) unless the ticket is in this phase
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_from_phase: Option<Phase>,
    /// stored with the history row
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Map<String, Value>>,
    /// operators only: move even when the gate refuses (the move and the gate result say so);
    /// `null` as absent, `false`
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schemars(extend("type" = ["boolean", "null"]))]
    pub force: bool,
}

impl Request for TransitionData {
    const TYPE: &'static str = "phase.transition.requested";
    const OUTCOMES: &'static [&'static str] = &[event_type::PHASE_TRANSITIONED];
    const REJECTION: Option<&'static str> = Some("phase.transition.rejected");
    const REJECTION_CODES: &'static [RejectionCode] = &[
        RejectionCode::TicketNotFound,
        RejectionCode::InvalidTransition,
        RejectionCode::GateNotMet,
        RejectionCode::PhaseMismatch,
        RejectionCode::Forbidden,
        RejectionCode::InvalidRequest,
    ];
    const ROUTE: Option<HttpRoute> = Some(HttpRoute::post(
        "/api/v1/tickets/{ticket_id}/transition",
        200,
        "transitionTicket",
    ));
    const TITLE: &'static str = "Move a ticket to another phase";
    const DESCRIPTION: &'static str =
        "Move a ticket to another phase. A forward move (to the next \
        phase of the normal sequence) needs the gate of the phase being left to pass; moves to \
        PHASE_BLOCKED and the regression PHASE_TESTING -> PHASE_IMPLEMENTATION check no gate. \
        Gates cannot be skipped through PHASE_BLOCKED: leaving it for the phase the ticket was \
        blocked from (its `previous_phase_id`) or an earlier one checks no gate; leaving it for \
        the phase right after that one is a forward move through that phase's gate \
        (`gate_not_met` otherwise); anything further ahead is `invalid_transition`, with a reason \
        naming the phase it was blocked from. `to_phase` is required unless the ticket is in \
        PHASE_BLOCKED (without it, the ticket goes back to the phase it was blocked from when \
        allowed); without it for a ticket in any other phase the request is `invalid_request`. `gate.validated` precedes the outcome when a gate was \
        checked, and `phase.entered` follows it. A rejection carries `from_phase` and \
        `to_phase`.";
}
