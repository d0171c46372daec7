//! `ticket.budget.set.requested`: an operator changes a ticket's budget; its outcome is
//! `ticket.budget.set`. A limit that is given replaces the ticket's, `null` removes it, an absent
//! one stays. Marks the ticket's spend already reaches of the new budget publish their alerts
//! (once per limit value) and may block the ticket, as a report would; a raise moves nothing.
//! Anyone but an operator gets `forbidden`.

use serde_json::Value;

use crate::domain::TicketId;
use crate::protocol::events::TicketBudgetSet;
use crate::protocol::fields::{Fields, Subject};
use crate::protocol::{Event, Rejection, RejectionCode};
use crate::store::{self, PgConnection};

use super::{ticket_not_found, Applied, RequestKind};
use crate::workflow::budgets;
use crate::workflow::events::EventLog;
use crate::workflow::{Workflow, WorkflowError};
pub use phaseflow_client::budget::BudgetChange;

/// A change of a ticket's budget.
#[derive(Debug, Clone, PartialEq)]
pub struct SetTicketBudget {
    pub ticket_id: TicketId,
    pub change: BudgetChange,
}

impl RequestKind for SetTicketBudget {
    fn parse(subject: Subject<'_>, fields: &mut Fields<'_>) -> Option<Self> {
        let ticket_id = subject.required(fields);
        let change = match fields.members() {
            Some(members) => {
                let data = Value::Object(members.clone());
                budgets::parse_limits(&data, "", &mut fields.reasons)
            }
            None => Some(BudgetChange::default()),
        };
        Some(SetTicketBudget {
            ticket_id: ticket_id?,
            change: change?,
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
        if !workflow.is_operator(log) {
            return Ok(Applied::Rejected(Rejection::new(
                RejectionCode::Forbidden,
                Some(ticket.id),
                format!(
                    "only an operator may change a ticket's budget, and {} is not one \
                     (operators are named in auth.operators or registered as operators)",
                    log.actor()
                ),
            )));
        }
        let budget = self.change.applied_to(ticket.budget);
        log.reserve_outcome();
        let budget = budgets::set_ticket_budget(workflow, connection, log, &ticket, budget).await?;
        Ok(Applied::Succeeded(Event::TicketBudgetSet(
            TicketBudgetSet {
                ticket_id: ticket.id,
                budget,
                set_by: log.actor().to_owned(),
            },
        )))
    }
}
