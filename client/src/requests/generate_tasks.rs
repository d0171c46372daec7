//! `tasks.generate.requested`: its `data` and its wire facts (outcome events, rejection, HTTP
//! route, what it does). How the service applies it is the service's business.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{HttpRoute, Request};
use crate::events::event_type;
use crate::{Phase, RejectionCode};

/// The `data` of `tasks.generate.requested`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GenerateTasksData {
    /// default: the ticket's current phase
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_id: Option<Phase>,
}

impl Request for GenerateTasksData {
    const TYPE: &'static str = "tasks.generate.requested";
    const OUTCOMES: &'static [&'static str] = &[event_type::TASKS_GENERATED];
    const REJECTION: Option<&'static str> = Some("tasks.generate.rejected");
    const REJECTION_CODES: &'static [RejectionCode] =
        &[RejectionCode::TicketNotFound, RejectionCode::InvalidRequest];
    const ROUTE: Option<HttpRoute> = Some(HttpRoute::post(
        "/api/v1/tickets/{ticket_id}/generate-tasks",
        200,
        "generateTasks",
    ));
    const TITLE: &'static str = "Generate a phase visit's tasks";
    const DESCRIPTION: &'static str = "Generate the tasks of a phase visit (default: the current \
        phase). Idempotent per visit: asking again answers with the tasks generated before.";
}
