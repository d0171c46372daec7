//! `tasks.generate.requested`: the tasks of a phase visit (default: the current phase),
//! generated once per visit; asking again answers with the tasks generated before. Its outcome
//! is `tasks.generated`.

use crate::domain::{Phase, TicketId};
use crate::protocol::fields::{Fields, Subject};
use crate::protocol::Event;
use crate::store::{self, PgConnection};

use super::{ticket_not_found, Applied, RequestKind};
use crate::workflow::events::EventLog;
use crate::workflow::{tasks, Workflow, WorkflowError};
pub use phaseflow_client::requests::generate_tasks::GenerateTasksData;

/// A visit whose tasks are asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateTasks {
    pub ticket_id: TicketId,
    /// `None`: the ticket's current phase
    pub phase_id: Option<Phase>,
}

impl RequestKind for GenerateTasks {
    fn parse(subject: Subject<'_>, fields: &mut Fields<'_>) -> Option<Self> {
        let ticket = subject.required(fields);
        let phase_id = fields.optional_parsed::<Phase>("phase_id");
        Some(GenerateTasks {
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
        // a phase never entered has no visit: its tasks are filed under visit 0
        let (visit_id, regression) =
            match store::tickets::latest_visit(connection, ticket.id, phase).await? {
                Some(visit) => (visit.id, visit.regression),
                None => (0, false),
            };
        let generated = tasks::generate_for_visit(
            workflow,
            connection,
            &ticket,
            phase,
            visit_id,
            regression,
            log.trace_id(),
        )
        .await?;
        Ok(Applied::Succeeded(Event::TasksGenerated(
            tasks::generated_data(ticket.id, phase, generated),
        )))
    }
}
