//! `ticket.create.requested`: its `data` and its wire facts (outcome events, rejection, HTTP route,
//! what it does). How the service applies it is the service's business.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{HttpRoute, Request};
use crate::budget::BudgetChange;
use crate::events::event_type;
use crate::limits::{DESCRIPTION_MAX_CHARS, NOT_BLANK_PATTERN, TITLE_MAX_CHARS};
use crate::{Priority, RejectionCode};

/// The `data` of `ticket.create.requested`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateTicketData {
    /// 1 to 500 characters, not all whitespace
    #[schemars(length(min = 1, max = TITLE_MAX_CHARS), pattern(NOT_BLANK_PATTERN))]
    pub title: String,
    /// up to 100,000 characters; default empty
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = DESCRIPTION_MAX_CHARS))]
    pub description: Option<String>,
    /// default MEDIUM
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// move on by itself when a phase's last task completes and its gate passes (and regress
    /// when tests fail); default true
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_advance: Option<bool>,
    /// what the ticket may cost: a limit left out is `budgets.ticket_tokens` or
    /// `budgets.ticket_cost_usd` (none by default: no limit), `null` is no limit. Its spend
    /// reaching a limit stops claims of its tasks (`budget_exhausted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetChange>,
}

impl Request for CreateTicketData {
    const TYPE: &'static str = "ticket.create.requested";
    const OUTCOMES: &'static [&'static str] = &[event_type::TICKET_CREATED];
    const REJECTION: Option<&'static str> = Some("ticket.create.rejected");
    const REJECTION_CODES: &'static [RejectionCode] =
        &[RejectionCode::AlreadyExists, RejectionCode::InvalidRequest];
    const ROUTE: Option<HttpRoute> = Some(HttpRoute::post("/api/v1/tickets", 201, "createTicket"));
    const TITLE: &'static str = "Create a ticket";
    const DESCRIPTION: &'static str = "Create a ticket in PHASE_BACKLOG. `phase.entered` \
        follows its outcome.";
    const OPTIONAL_SUBJECT: Option<&'static str> =
        Some("The new ticket's id (a UUID); a new one when absent.");
}
