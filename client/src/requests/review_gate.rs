//! `gate.review.submit.requested`: its `data` and its wire facts (outcome events, rejection, HTTP
//! route, what it does). How the service applies it is the service's business.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{HttpRoute, Request};
use crate::events::event_type;
use crate::limits::{NOT_BLANK_PATTERN, REASON_MAX_CHARS};
use crate::{Phase, RejectionCode, Verdict};

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

impl Request for ReviewGateData {
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
}
