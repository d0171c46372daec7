//! `ticket.create.requested`: a new ticket in PHASE_BACKLOG, with its first history row; its
//! outcome is `ticket.created`, followed by the visit's `phase.entered`.

use serde_json::{Map, Value};

use crate::domain::context::{summarize, TicketBrief};
use crate::domain::ticket::TITLE_MAX_CHARS;
use crate::domain::{Phase, Priority, TicketId};
use crate::protocol::events::TicketCreated;
use crate::protocol::fields::{Fields, Subject, DESCRIPTION_MAX_CHARS};
use crate::protocol::{Event, Rejection, RejectionCode};
use crate::store::{self, PgConnection};

use super::{Applied, RequestKind};
use crate::workflow::budgets;
use crate::workflow::events::EventLog;
use crate::workflow::{automation, Workflow, WorkflowError};
pub use phaseflow_client::budget::BudgetChange;
pub use phaseflow_client::requests::create_ticket::CreateTicketData;

/// A ticket to create.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateTicket {
    /// the id the requester chose (`subject`), else a new one
    pub ticket_id: TicketId,
    pub title: String,
    pub description: String,
    pub priority: Priority,
    /// move on by itself when a phase's last task completes and its gate passes
    pub auto_advance: bool,
    /// what the request said of the budget (limits it leaves out take the configured default)
    pub budget: BudgetChange,
}

impl RequestKind for CreateTicket {
    fn parse(subject: Subject<'_>, fields: &mut Fields<'_>) -> Option<Self> {
        let title = fields.required_text("title", TITLE_MAX_CHARS);
        let description = fields
            .optional_text("description", DESCRIPTION_MAX_CHARS)
            .unwrap_or_default();
        let priority = fields
            .optional_parsed::<Priority>("priority")
            .unwrap_or_default();
        let auto_advance = fields.optional_bool("auto_advance").unwrap_or(true);
        let budget = match fields.get("budget") {
            Some(budget) => budgets::parse_limits(budget, "budget.", &mut fields.reasons),
            None => Some(BudgetChange::default()),
        };
        Some(CreateTicket {
            ticket_id: subject.ticket().unwrap_or_default(),
            title: title?,
            description,
            priority,
            auto_advance,
            budget: budget?,
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
        // with no context yet, the summary is the ticket itself
        let summary = summarize(
            &TicketBrief {
                title: &self.title,
                priority: self.priority,
                description: &self.description,
            },
            &Map::new(),
            workflow.max_summary_tokens,
        );
        let new_ticket = store::tickets::NewTicket {
            id: self.ticket_id,
            title: &self.title,
            description: &self.description,
            priority: self.priority,
            auto_advance: self.auto_advance,
            budget: self.budget.applied_to(workflow.budgets.ticket_default),
            summary: &summary.text,
            summary_tokens: summary.tokens,
        };
        let Some(ticket) = store::tickets::insert(connection, &new_ticket).await? else {
            return Ok(Applied::Rejected(Rejection::new(
                RejectionCode::AlreadyExists,
                Some(self.ticket_id),
                format!("ticket {} already exists", self.ticket_id),
            )));
        };
        let actor = log.actor();
        let history = store::tickets::insert_history(
            connection,
            &store::tickets::NewHistory {
                ticket_id: ticket.id,
                from_phase: None,
                to_phase: Phase::Backlog,
                reason: "ticket created",
                transitioned_by: actor,
                artifacts: &Value::Object(Map::new()),
                regression: false,
                forced: false,
                correlation_id: &log.origin().correlation_id,
                trace_id: log.trace_id(),
            },
        )
        .await?;
        log.reserve_outcome();
        let entered = log.emit(
            actor,
            Event::PhaseEntered(automation::entered_data(&history)),
        );
        automation::enter_phase(
            workflow,
            connection,
            log,
            &ticket,
            &history,
            Some(entered),
            None,
        )
        .await?;
        Ok(Applied::Succeeded(Event::TicketCreated(TicketCreated {
            ticket_id: ticket.id,
            title: ticket.title,
            description: ticket.description,
            priority: ticket.priority,
            phase_id: ticket.phase,
            auto_advance: ticket.auto_advance,
            budget: (!ticket.budget.is_unlimited()).then_some(ticket.budget),
            created_at: ticket.created_at,
        })))
    }
}
