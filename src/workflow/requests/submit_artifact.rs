//! `artifact.submit.requested`: an artifact for a phase's gate (default: the current phase).
//! The newest artifact of a type is the one a gate judges; submitting does not judge the gate.
//! Its outcome is `artifact.collected`.

use serde_json::Value;
use uuid::Uuid;

use crate::domain::{Phase, TaskId, TicketId};
use crate::protocol::events::ArtifactCollected;
use crate::protocol::fields::{Fields, Subject, SHORT_TEXT_MAX_CHARS};
use crate::protocol::Event;
use crate::store::{self, PgConnection};

use super::{ticket_not_found, Applied, RequestKind};
use crate::workflow::events::EventLog;
use crate::workflow::{Workflow, WorkflowError};
pub use phaseflow_client::requests::submit_artifact::{ArtifactData, SubmitArtifactData};

/// An artifact handed in.
#[derive(Debug, Clone, PartialEq)]
pub struct SubmitArtifact {
    pub ticket_id: TicketId,
    /// `None`: the ticket's current phase
    pub phase_id: Option<Phase>,
    pub artifact: ArtifactSubmission,
}

/// One artifact for a phase gate, as a request or a task report carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactSubmission {
    pub artifact_type: String,
    pub artifact_path: Option<String>,
    pub artifact_content: Option<Value>,
}

impl ArtifactSubmission {
    /// Reads `artifact_type`, `artifact_path`? and `artifact_content`? (an object); reasons are
    /// prefixed with `prefix` (`result.artifacts[0].`).
    pub(crate) fn parse(fields: &mut Fields<'_>, prefix: &str) -> Option<Self> {
        let artifact_type = fields.required_text_at(
            "artifact_type",
            &format!("{prefix}artifact_type"),
            SHORT_TEXT_MAX_CHARS,
        );
        let artifact_path = fields.optional_text_at(
            "artifact_path",
            &format!("{prefix}artifact_path"),
            SHORT_TEXT_MAX_CHARS,
        );
        let artifact_content =
            fields.optional_object_at("artifact_content", &format!("{prefix}artifact_content"));
        artifact_type.map(|artifact_type| ArtifactSubmission {
            artifact_type,
            artifact_path,
            artifact_content,
        })
    }

    /// Stores the artifact for `phase`, collected by `collected_by` (and a task, when a task
    /// report handed it in).
    pub(crate) async fn collect(
        &self,
        connection: &mut PgConnection,
        ticket_id: TicketId,
        phase: Phase,
        collected_by: &str,
        task_id: Option<TaskId>,
        trace_id: Option<&str>,
    ) -> Result<Uuid, WorkflowError> {
        let artifact = store::artifacts::NewArtifact {
            ticket_id,
            phase,
            artifact_type: &self.artifact_type,
            artifact_path: self.artifact_path.as_deref(),
            artifact_content: self.artifact_content.as_ref(),
            collected_by,
            task_id,
            trace_id,
        };
        Ok(store::artifacts::insert_artifact(connection, &artifact).await?)
    }
}

impl RequestKind for SubmitArtifact {
    fn parse(subject: Subject<'_>, fields: &mut Fields<'_>) -> Option<Self> {
        let ticket = subject.required(fields);
        let phase_id = fields.optional_parsed::<Phase>("phase_id");
        let artifact = ArtifactSubmission::parse(fields, "");
        Some(SubmitArtifact {
            ticket_id: ticket?,
            phase_id,
            artifact: artifact?,
        })
    }

    fn ticket_id(&self) -> Option<TicketId> {
        Some(self.ticket_id)
    }

    async fn apply(
        &self,
        _workflow: &Workflow,
        connection: &mut PgConnection,
        log: &mut EventLog<'_>,
    ) -> Result<Applied, WorkflowError> {
        let Some(ticket) = store::tickets::lock(connection, self.ticket_id).await? else {
            return Ok(Applied::Rejected(ticket_not_found(self.ticket_id)));
        };
        let phase = self.phase_id.unwrap_or(ticket.phase);
        let artifact_id = self
            .artifact
            .collect(
                connection,
                ticket.id,
                phase,
                log.actor(),
                None,
                log.trace_id(),
            )
            .await?;
        Ok(Applied::Succeeded(Event::ArtifactCollected(
            ArtifactCollected {
                ticket_id: ticket.id,
                phase_id: phase,
                artifact_id,
                artifact_type: self.artifact.artifact_type.clone(),
            },
        )))
    }
}
