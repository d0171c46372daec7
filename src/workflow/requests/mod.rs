//! The request kinds as the service applies them: one module each, holding its parsing and its
//! application (which locks, changes, and emits its events), and the one table below that lists
//! them. A kind's `data` type and wire facts (its type, outcome events, rejection, HTTP route)
//! are the protocol's, in `phaseflow_client::requests`, whose table this one follows variant for
//! variant: the consumer's dispatch, the HTTP routes and the generated documents are read from
//! the two. Adding a request kind means adding its data module and table line there, and its
//! module and table line here.
//!
//! No SQL and no AMQP here: statements live in `store`, broker code in `messaging`.

use serde_json::Value;

use crate::domain::TicketId;
use crate::protocol::fields::{Fields, Subject};
use crate::protocol::{Event, InvalidRequest, Rejection};
use crate::store::PgConnection;

pub use phaseflow_client::requests::{HttpRoute, RequestType};

use super::events::EventLog;
use super::{RequestOutcome, Workflow, WorkflowError};

pub mod claim_task;
pub mod complete_task;
pub mod create_ticket;
pub mod generate_tasks;
pub mod heartbeat_task;
pub mod phase_entered;
pub mod release_task;
pub mod review_gate;
pub mod set_ticket_budget;
pub mod submit_artifact;
pub mod transition;
pub mod validate_gate;

/// What the service knows of one request kind: how to read its `data`, which ticket it is
/// about, and how to apply it inside the caller's transaction.
pub(crate) trait RequestKind: Sized {
    /// The request's `data` as a type, for the generated documents and for clients.
    /// Reads the request from its `subject` and `data`; `None` when a reason was added to
    /// `fields`.
    fn parse(subject: Subject<'_>, fields: &mut Fields<'_>) -> Option<Self>;

    /// The ticket whose row the request locks, when it names one.
    fn ticket_id(&self) -> Option<TicketId>;

    /// Applies the request, adding the events it causes to `log` (all but the outcome, which
    /// the caller emits from what this returns). A rejection is decided before anything is
    /// written.
    async fn apply(
        &self,
        workflow: &Workflow,
        connection: &mut PgConnection,
        log: &mut EventLog<'_>,
    ) -> Result<Applied, WorkflowError>;
}

/// What applying a request came to.
pub(crate) enum Applied {
    /// Applied: the outcome event.
    Succeeded(Event),
    /// Not applied, and why.
    Rejected(Rejection),
    /// A consumed event (no outcome event of its own) was handled.
    Consumed(RequestOutcome),
}

macro_rules! request_kinds {
    ($($variant:ident => $module:ident :: $kind:ident;)+) => {
        /// A request (or consumed event), parsed.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Command {
            $($variant($module::$kind),)+
        }

        /// What the generated documents say about each request kind, in the table's order. A
        /// request's data is described by `requests`, a consumed event's (which phaseflow
        /// itself publishes) by `events`.
        pub fn request_docs(
            requests: &mut schemars::SchemaGenerator,
            events: &mut schemars::SchemaGenerator,
        ) -> Vec<RequestDoc> {
            vec![$(RequestDoc {
                kind: RequestType::$variant,
                optional_subject: RequestType::$variant.optional_subject(),
                data: RequestType::$variant.data_schema(
                    if RequestType::$variant.is_request() { &mut *requests } else { &mut *events },
                ),
            },)+]
        }

        impl Command {
            /// Parses a request's `subject` and `data`; every problem is named by its field.
            pub fn parse(
                kind: RequestType,
                subject: Option<&str>,
                data: Option<&Value>,
            ) -> Result<Command, InvalidRequest> {
                let mut fields = Fields::new(data);
                let subject = Subject::read(subject, &mut fields);
                let parsed = match kind {
                    $(RequestType::$variant => {
                        <$module::$kind as RequestKind>::parse(subject, &mut fields)
                            .map(Command::$variant)
                    })+
                };
                fields.finish(parsed)
            }

            /// The request's type.
            pub fn kind(&self) -> RequestType {
                match self {
                    $(Command::$variant(_) => RequestType::$variant,)+
                }
            }

            /// The ticket a command is about, when it names one.
            pub fn ticket_id(&self) -> Option<TicketId> {
                match self {
                    $(Command::$variant(request) => request.ticket_id(),)+
                }
            }

            pub(crate) async fn apply(
                &self,
                workflow: &Workflow,
                connection: &mut PgConnection,
                log: &mut EventLog<'_>,
            ) -> Result<Applied, WorkflowError> {
                match self {
                    $(Command::$variant(request) => request.apply(workflow, connection, log).await,)+
                }
            }
        }
    };
}

request_kinds! {
    CreateTicket => create_ticket::CreateTicket;
    Transition => transition::Transition;
    ValidateGate => validate_gate::ValidateGate;
    GenerateTasks => generate_tasks::GenerateTasks;
    CompleteTask => complete_task::CompleteTask;
    SubmitArtifact => submit_artifact::SubmitArtifact;
    ClaimTask => claim_task::ClaimTask;
    HeartbeatTask => heartbeat_task::HeartbeatTask;
    ReleaseTask => release_task::ReleaseTask;
    ReviewGate => review_gate::ReviewGate;
    PhaseEntered => phase_entered::PhaseEntered;
    SetTicketBudget => set_ticket_budget::SetTicketBudget;
}

/// A request kind as the generated documents describe it; its wire facts are its `kind`'s.
pub struct RequestDoc {
    pub kind: RequestType,
    pub optional_subject: Option<&'static str>,
    /// the schema of its `data` (a reference into the generator's definitions)
    pub data: schemars::Schema,
}

/// The rejection of a request about a ticket that does not exist.
pub(crate) fn ticket_not_found(ticket_id: TicketId) -> Rejection {
    Rejection::new(
        crate::protocol::RejectionCode::TicketNotFound,
        Some(ticket_id),
        format!("ticket {ticket_id} does not exist"),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::complete_task::CompleteTask;
    use super::create_ticket::CreateTicket;
    use super::phase_entered::PhaseEntered;
    use super::*;
    use crate::domain::{Phase, Priority, TaskStatus};
    use serde_json::Value;

    const TICKET: &str = "6f1c4c1e-0000-4000-8000-000000000001";

    #[test]
    fn a_create_request_gets_the_documented_defaults() {
        let command = Command::parse(
            RequestType::CreateTicket,
            None,
            Some(&json!({"title": "Login"})),
        )
        .unwrap();
        let Command::CreateTicket(CreateTicket {
            title,
            description,
            priority,
            auto_advance,
            ..
        }) = command
        else {
            panic!("not a create command");
        };
        assert_eq!(title, "Login");
        assert_eq!(description, "");
        assert_eq!(priority, Priority::Medium);
        assert!(auto_advance);
    }

    #[test]
    fn every_problem_of_a_request_is_named_by_its_field() {
        let error = Command::parse(
            RequestType::CreateTicket,
            None,
            Some(&json!({"title": "", "priority": "URGENT", "auto_advance": "yes"})),
        )
        .unwrap_err();
        let reasons = error.reasons.join("\n");
        assert!(reasons.contains("title: must not be empty"), "{reasons}");
        assert!(reasons.contains("priority:"), "{reasons}");
        assert!(reasons.contains("auto_advance:"), "{reasons}");
    }

    #[test]
    fn a_title_over_500_characters_is_invalid() {
        let title = "x".repeat(501);
        let error = Command::parse(
            RequestType::CreateTicket,
            None,
            Some(&json!({ "title": title })),
        )
        .unwrap_err();
        assert!(error.reasons[0].contains("limit is 500"));
    }

    #[test]
    fn a_transition_needs_a_uuid_subject_and_a_known_phase() {
        let error = Command::parse(
            RequestType::Transition,
            Some("ticket-1"),
            Some(&json!({"to_phase": "PHASE_DESGN", "reason": "go"})),
        )
        .unwrap_err();
        let reasons = error.reasons.join("\n");
        assert!(
            reasons.contains("subject: `ticket-1` is not a UUID"),
            "{reasons}"
        );
        assert!(reasons.contains("to_phase:"), "{reasons}");

        let error = Command::parse(
            RequestType::Transition,
            None,
            Some(&json!({"reason": "go"})),
        )
        .unwrap_err();
        assert!(error
            .reasons
            .join("\n")
            .contains("subject: the ticket id is required"));
    }

    #[test]
    fn a_transition_without_a_reason_is_invalid() {
        let error = Command::parse(
            RequestType::Transition,
            Some(TICKET),
            Some(&json!({"to_phase": "PHASE_DESIGN"})),
        )
        .unwrap_err();
        assert_eq!(error.reasons, vec!["reason: is required".to_owned()]);
        assert!(error.ticket_id.is_some());
    }

    #[test]
    fn a_task_report_carries_its_validated_artifacts() {
        let command = Command::parse(
            RequestType::CompleteTask,
            Some(TICKET),
            Some(&json!({
                "task_id": "6f1c4c1e-0000-4000-8000-0000000000aa",
                "result": {"summary": "done", "artifacts": [
                    {"artifact_type": "design_document", "artifact_content": {"sections": ["architecture"]}}
                ]}
            })),
        )
        .unwrap();
        let Command::CompleteTask(CompleteTask { report, .. }) = command else {
            panic!("not a task report")
        };
        assert_eq!(report.status, TaskStatus::Completed);
        assert_eq!(report.artifacts.len(), 1);
        assert_eq!(report.artifacts[0].artifact_type, "design_document");
    }

    #[test]
    fn a_malformed_task_artifact_is_named_by_its_index() {
        let error = Command::parse(
            RequestType::CompleteTask,
            Some(TICKET),
            Some(&json!({
                "task_id": "6f1c4c1e-0000-4000-8000-0000000000aa",
                "status": "done",
                "result": {"artifacts": [{"artifact_content": 3}]}
            })),
        )
        .unwrap_err();
        let reasons = error.reasons.join("\n");
        assert!(reasons.contains("status: `done`"), "{reasons}");
        assert!(
            reasons.contains("result.artifacts[0].artifact_type: is required"),
            "{reasons}"
        );
        assert!(
            reasons.contains("result.artifacts[0].artifact_content: must be a JSON object"),
            "{reasons}"
        );
    }

    #[test]
    fn a_phase_entered_event_names_its_visit() {
        let command = Command::parse(
            RequestType::PhaseEntered,
            Some(TICKET),
            Some(&json!({"ticket_id": TICKET, "phase_id": "PHASE_DESIGN", "history_id": 7, "regression": false})),
        )
        .unwrap();
        assert_eq!(
            command,
            Command::PhaseEntered(PhaseEntered {
                ticket_id: TICKET.parse().unwrap(),
                phase_id: Phase::Design,
                history_id: 7,
            })
        );
        let invalid = Command::parse(
            RequestType::PhaseEntered,
            Some(TICKET),
            Some(&json!({"ticket_id": "6f1c4c1e-0000-4000-8000-000000000002", "phase_id": "DESIGN", "history_id": 0})),
        )
        .unwrap_err();
        let reasons = invalid.reasons.join("; ");
        for named in ["ticket_id:", "phase_id:", "history_id:"] {
            assert!(reasons.contains(named), "{reasons}");
        }
    }

    #[test]
    fn the_documented_data_of_every_kind_is_what_its_parser_reads() {
        use super::complete_task::{
            CompleteTaskData, ReportedStatus, TaskContext, TaskReportData, TaskResult,
        };
        use super::create_ticket::CreateTicketData;
        use super::generate_tasks::GenerateTasksData;
        use super::submit_artifact::{ArtifactData, SubmitArtifactData};
        use super::transition::TransitionData;
        use super::validate_gate::ValidateGateData;
        let artifact = ArtifactData {
            artifact_type: "design_document".into(),
            artifact_path: Some("docs/design.md".into()),
            artifact_content: Some(serde_json::Map::from_iter([(
                "sections".to_owned(),
                json!(["architecture"]),
            )])),
        };
        let every_field: [(RequestType, Value); 8] = [
            (
                RequestType::CreateTicket,
                serde_json::to_value(CreateTicketData {
                    title: "Login".into(),
                    description: Some("With passkeys".into()),
                    priority: Some(Priority::High),
                    auto_advance: Some(false),
                    budget: Some(phaseflow_client::budget::BudgetChange {
                        tokens: Some(Some(500_000)),
                        cost_usd: Some(None),
                    }),
                })
                .unwrap(),
            ),
            (
                RequestType::Transition,
                serde_json::to_value(TransitionData {
                    to_phase: Some(Phase::Design),
                    reason: "ready".into(),
                    expected_from_phase: Some(Phase::Requirements),
                    artifacts: Some(serde_json::Map::new()),
                    force: true,
                })
                .unwrap(),
            ),
            (
                RequestType::ValidateGate,
                serde_json::to_value(ValidateGateData {
                    phase_id: Some(Phase::Design),
                })
                .unwrap(),
            ),
            (
                RequestType::GenerateTasks,
                serde_json::to_value(GenerateTasksData { phase_id: None }).unwrap(),
            ),
            (
                RequestType::CompleteTask,
                serde_json::to_value(CompleteTaskData {
                    task_id: crate::domain::TaskId::new(),
                    report: TaskReportData {
                        claim_id: Some(crate::domain::ClaimId(uuid::Uuid::from_u128(7))),
                        status: Some(ReportedStatus::Failed),
                        result: Some(TaskResult {
                            summary: Some("done".into()),
                            outputs: Some(json!({"files": 3})),
                            context: Some(TaskContext {
                                decisions: Some(vec![json!("use passkeys")]),
                                risks: Some(vec![]),
                                notes: None,
                            }),
                            artifacts: Some(vec![artifact.clone()]),
                        }),
                        error: Some("tests failed".into()),
                        usage: Some(phaseflow_client::usage::Usage {
                            input_tokens: 1200,
                            output_tokens: 300,
                            cost_usd: 0.042,
                        }),
                    },
                })
                .unwrap(),
            ),
            (
                RequestType::SubmitArtifact,
                serde_json::to_value(SubmitArtifactData {
                    phase_id: Some(Phase::Design),
                    artifact,
                })
                .unwrap(),
            ),
            (
                RequestType::PhaseEntered,
                json!({"ticket_id": TICKET, "phase_id": "PHASE_DESIGN", "previous_phase": "PHASE_REQUIREMENTS",
                       "history_id": 3, "regression": false, "entered_at": "2026-11-30T10:00:00Z"}),
            ),
            (
                RequestType::SetTicketBudget,
                serde_json::to_value(phaseflow_client::budget::BudgetChange {
                    tokens: Some(None),
                    cost_usd: Some(Some(40.0)),
                })
                .unwrap(),
            ),
        ];
        for (kind, data) in every_field {
            let parsed = Command::parse(kind, Some(TICKET), Some(&data));
            assert!(parsed.is_ok(), "{}: {parsed:?} from {data}", kind.as_str());
            assert_eq!(parsed.map(|command| command.kind()).ok(), Some(kind));
        }
    }

    #[test]
    fn an_unknown_type_is_named_with_every_known_one() {
        let error = RequestType::parse("ticket.delete.requested")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("unknown request type `ticket.delete.requested`"),
            "{error}"
        );
        for kind in RequestType::ALL {
            assert!(error.contains(kind.as_str()), "{error}");
            assert_eq!(RequestType::parse(kind.as_str()), Ok(*kind));
        }
    }

    #[test]
    fn data_that_is_not_an_object_is_invalid() {
        let error =
            Command::parse(RequestType::ValidateGate, Some(TICKET), Some(&json!([1]))).unwrap_err();
        assert_eq!(
            error.reasons,
            vec!["data: must be a JSON object".to_owned()]
        );
    }
}
