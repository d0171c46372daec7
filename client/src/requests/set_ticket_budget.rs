//! `ticket.budget.set.requested`: its `data` and its wire facts (outcome events, rejection, HTTP
//! route, what it does). How the service applies it is the service's business.

use super::{HttpRoute, Request};
use crate::budget::BudgetChange;
use crate::events::event_type;
use crate::RejectionCode;

/// The `data` of `ticket.budget.set.requested`: the change of the ticket's budget.
pub type SetTicketBudgetData = BudgetChange;

impl Request for BudgetChange {
    const TYPE: &'static str = "ticket.budget.set.requested";
    const OUTCOMES: &'static [&'static str] = &[event_type::TICKET_BUDGET_SET];
    const REJECTION: Option<&'static str> = Some("ticket.budget.set.rejected");
    const REJECTION_CODES: &'static [RejectionCode] = &[
        RejectionCode::TicketNotFound,
        RejectionCode::Forbidden,
        RejectionCode::InvalidRequest,
    ];
    const ROUTE: Option<HttpRoute> = Some(HttpRoute::put(
        "/api/v1/tickets/{ticket_id}/budget",
        200,
        "setTicketBudget",
    ));
    const TITLE: &'static str = "Change a ticket's budget";
    const DESCRIPTION: &'static str = "Operators only (`forbidden` for anyone else): set or \
        remove the limits of a ticket's budget. A limit that is given replaces the ticket's, \
        `null` removes it, an absent one stays as it is. A budget that the ticket's spend \
        already reaches publishes `budget.warning` and `budget.exceeded` as a report would (once \
        per limit value) and, with `budgets.block_when_exceeded`, moves the ticket to \
        PHASE_BLOCKED. A raise does not move a blocked ticket: unblock it with a transition.";
}
