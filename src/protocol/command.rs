//! Typed requests: the `data` of a decoded request (or an HTTP body) parsed into domain values,
//! and the rejection codes of CONTRACT §2.
//!
//! Parse, don't validate: past [`parse_command`] nothing carries a bare string or UUID with a
//! domain meaning. Every problem is collected into one [`InvalidRequest`] whose reasons name
//! the field, so an agent can fix all of them at once.

use std::str::FromStr;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::domain::ticket::{REASON_MAX_CHARS, TITLE_MAX_CHARS};
use crate::domain::{Phase, Priority, TaskId, TaskStatus, TicketId};

use super::RequestType;

/// Longest accepted `artifact_type`, `artifact_path` or task `error`.
pub const SHORT_TEXT_MAX_CHARS: usize = 500;
/// Longest accepted ticket description.
pub const DESCRIPTION_MAX_CHARS: usize = 100_000;

/// A request phaseflow can apply.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    CreateTicket {
        /// the id the requester chose (`subject`), else a new one
        ticket_id: TicketId,
        title: String,
        description: String,
        priority: Priority,
        auto_advance: bool,
    },
    Transition {
        ticket_id: TicketId,
        /// `None` only when leaving BLOCKED: the unblock target is chosen
        to_phase: Option<Phase>,
        reason: String,
        expected_from_phase: Option<Phase>,
        artifacts: Value,
    },
    ValidateGate {
        ticket_id: TicketId,
        phase_id: Option<Phase>,
    },
    GenerateTasks {
        ticket_id: TicketId,
        phase_id: Option<Phase>,
    },
    CompleteTask {
        /// `None` when the task is addressed by its id alone (HTTP)
        ticket_id: Option<TicketId>,
        task_id: TaskId,
        report: TaskReport,
    },
    SubmitArtifact {
        ticket_id: TicketId,
        phase_id: Option<Phase>,
        artifact: ArtifactSubmission,
    },
    /// A consumed `phase.entered`: do the entry work of the visit that `history_id` started,
    /// unless it was done.
    EnterPhase {
        ticket_id: TicketId,
        phase_id: Phase,
        history_id: i64,
    },
}

impl Command {
    /// The ticket a command is about, when it names one.
    pub fn ticket_id(&self) -> Option<TicketId> {
        match self {
            Command::CreateTicket { ticket_id, .. }
            | Command::Transition { ticket_id, .. }
            | Command::ValidateGate { ticket_id, .. }
            | Command::GenerateTasks { ticket_id, .. }
            | Command::SubmitArtifact { ticket_id, .. }
            | Command::EnterPhase { ticket_id, .. } => Some(*ticket_id),
            Command::CompleteTask { ticket_id, .. } => *ticket_id,
        }
    }
}

/// What an agent reports about a task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskReport {
    /// `Completed` or `Failed`
    pub status: TaskStatus,
    pub result: Option<Value>,
    pub error: Option<String>,
    /// the `result.artifacts` entries, already validated
    pub artifacts: Vec<ArtifactSubmission>,
}

/// One artifact for a phase gate.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactSubmission {
    pub artifact_type: String,
    pub artifact_path: Option<String>,
    pub artifact_content: Option<Value>,
}

/// The rejection codes of CONTRACT §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionCode {
    AlreadyExists,
    InvalidRequest,
    TicketNotFound,
    InvalidTransition,
    GateNotMet,
    PhaseMismatch,
    TaskNotFound,
    TaskAlreadyFinished,
}

impl RejectionCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionCode::AlreadyExists => "already_exists",
            RejectionCode::InvalidRequest => "invalid_request",
            RejectionCode::TicketNotFound => "ticket_not_found",
            RejectionCode::InvalidTransition => "invalid_transition",
            RejectionCode::GateNotMet => "gate_not_met",
            RejectionCode::PhaseMismatch => "phase_mismatch",
            RejectionCode::TaskNotFound => "task_not_found",
            RejectionCode::TaskAlreadyFinished => "task_already_finished",
        }
    }
}

/// A decodable request that cannot be applied: answered with a `….rejected` event.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub code: RejectionCode,
    pub ticket_id: Option<TicketId>,
    pub reasons: Vec<String>,
    /// extra members of the rejection's `data` (`from_phase`, `to_phase`, `task_id`)
    pub details: Map<String, Value>,
}

impl Rejection {
    pub fn new(
        code: RejectionCode,
        ticket_id: Option<TicketId>,
        reason: impl Into<String>,
    ) -> Self {
        Rejection {
            code,
            ticket_id,
            reasons: vec![reason.into()],
            details: Map::new(),
        }
    }

    pub fn with_reasons(mut self, reasons: Vec<String>) -> Self {
        self.reasons = reasons;
        self
    }

    pub fn with_detail(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.details.insert(name.to_owned(), value.into());
        self
    }

    /// The rejection event's `data`.
    pub fn to_data(&self) -> Value {
        let mut data = Map::new();
        data.insert(
            "ticket_id".into(),
            self.ticket_id
                .map(|id| Value::String(id.to_string()))
                .unwrap_or(Value::Null),
        );
        data.insert("code".into(), Value::String(self.code.as_str().into()));
        data.insert(
            "reasons".into(),
            Value::Array(self.reasons.iter().cloned().map(Value::String).collect()),
        );
        for (name, value) in &self.details {
            data.insert(name.clone(), value.clone());
        }
        Value::Object(data)
    }
}

/// A request whose `subject` or `data` is wrong; every reason names its field.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidRequest {
    pub ticket_id: Option<TicketId>,
    pub reasons: Vec<String>,
    /// extra members of the rejection's `data` (a transition's `to_phase`)
    pub details: Map<String, Value>,
}

impl From<InvalidRequest> for Rejection {
    fn from(invalid: InvalidRequest) -> Self {
        let mut rejection = Rejection::new(RejectionCode::InvalidRequest, invalid.ticket_id, "")
            .with_reasons(invalid.reasons);
        rejection.details = invalid.details;
        rejection
    }
}

/// Parses a request's `subject` and `data` into a [`Command`].
pub fn parse_command(
    kind: RequestType,
    subject: Option<&str>,
    data: Option<&Value>,
) -> Result<Command, InvalidRequest> {
    let mut fields = Fields::new(data);
    let ticket_id = match subject {
        Some(text) => match TicketId::from_str(text) {
            Ok(id) => Some(id),
            Err(_) => {
                fields
                    .reasons
                    .push(format!("subject: `{text}` is not a UUID"));
                None
            }
        },
        None => None,
    };
    fields.ticket_id = ticket_id;
    let needs_ticket = |fields: &mut Fields| -> Option<TicketId> {
        if ticket_id.is_none() && subject.is_none() {
            fields
                .reasons
                .push("subject: the ticket id is required".to_owned());
        }
        ticket_id
    };
    let command = match kind {
        RequestType::CreateTicket => {
            let title = fields.required_text("title", TITLE_MAX_CHARS);
            let description = fields
                .optional_text("description", DESCRIPTION_MAX_CHARS)
                .unwrap_or_default();
            let priority = fields
                .optional_parsed::<Priority>("priority")
                .unwrap_or_default();
            let auto_advance = fields.optional_bool("auto_advance").unwrap_or(true);
            title.map(|title| Command::CreateTicket {
                ticket_id: ticket_id.unwrap_or_else(TicketId::new),
                title,
                description,
                priority,
                auto_advance,
            })
        }
        RequestType::Transition => {
            let ticket = needs_ticket(&mut fields);
            let to_phase = fields.optional_parsed::<Phase>("to_phase");
            let reason = fields.required_text("reason", REASON_MAX_CHARS);
            let expected_from_phase = fields.optional_parsed::<Phase>("expected_from_phase");
            // a rejected transition names the phase it asked for (null when it named none)
            fields.details.insert("to_phase".into(), json!(to_phase));
            let artifacts = fields
                .optional_object("artifacts")
                .unwrap_or_else(|| Value::Object(Map::new()));
            match (ticket, reason) {
                (Some(ticket_id), Some(reason)) => Some(Command::Transition {
                    ticket_id,
                    to_phase,
                    reason,
                    expected_from_phase,
                    artifacts,
                }),
                _ => None,
            }
        }
        RequestType::ValidateGate => {
            let ticket = needs_ticket(&mut fields);
            let phase_id = fields.optional_parsed::<Phase>("phase_id");
            ticket.map(|ticket_id| Command::ValidateGate {
                ticket_id,
                phase_id,
            })
        }
        RequestType::GenerateTasks => {
            let ticket = needs_ticket(&mut fields);
            let phase_id = fields.optional_parsed::<Phase>("phase_id");
            ticket.map(|ticket_id| Command::GenerateTasks {
                ticket_id,
                phase_id,
            })
        }
        RequestType::CompleteTask => {
            let ticket = needs_ticket(&mut fields);
            parse_task_report(&mut fields).map(|(task_id, report)| Command::CompleteTask {
                ticket_id: ticket,
                task_id,
                report,
            })
        }
        RequestType::SubmitArtifact => {
            let ticket = needs_ticket(&mut fields);
            let phase_id = fields.optional_parsed::<Phase>("phase_id");
            let artifact = fields.artifact("");
            match (ticket, artifact) {
                (Some(ticket_id), Some(artifact)) => Some(Command::SubmitArtifact {
                    ticket_id,
                    phase_id,
                    artifact,
                }),
                _ => None,
            }
        }
        RequestType::PhaseEntered => {
            let ticket = needs_ticket(&mut fields);
            let phase_id = fields.required_parsed::<Phase>("phase_id");
            let history_id = fields.required_positive_integer("history_id");
            if let (Some(subject), Some(named)) = (ticket, fields.get("ticket_id")) {
                if named != &json!(subject) {
                    fields
                        .reasons
                        .push(format!("ticket_id: {named} is not the subject {subject}"));
                }
            }
            match (ticket, phase_id, history_id) {
                (Some(ticket_id), Some(phase_id), Some(history_id)) => Some(Command::EnterPhase {
                    ticket_id,
                    phase_id,
                    history_id,
                }),
                _ => None,
            }
        }
    };
    fields.finish(command)
}

/// Parses an HTTP task completion body, where the task is named by the path.
pub fn parse_task_completion(
    task_id: TaskId,
    data: Option<&Value>,
) -> Result<Command, InvalidRequest> {
    let mut fields = Fields::new(data);
    fields.preset_task_id = Some(task_id);
    let command = parse_task_report(&mut fields).map(|(task_id, report)| Command::CompleteTask {
        ticket_id: None,
        task_id,
        report,
    });
    fields.finish(command)
}

fn parse_task_report(fields: &mut Fields) -> Option<(TaskId, TaskReport)> {
    let task_id = match fields.preset_task_id {
        Some(task_id) => Some(task_id),
        None => fields.required_parsed::<TaskId>("task_id"),
    };
    let status = match fields.optional_text("status", 32).as_deref() {
        None | Some("completed") => Some(TaskStatus::Completed),
        Some("failed") => Some(TaskStatus::Failed),
        Some(other) => {
            fields
                .reasons
                .push(format!("status: `{other}` is not one of completed, failed"));
            None
        }
    };
    let error = fields.optional_text("error", DESCRIPTION_MAX_CHARS);
    let result = fields.optional_object("result");
    let mut artifacts = Vec::new();
    if let Some(Value::Object(result)) = &result {
        for name in ["summary"] {
            if let Some(value) = result.get(name) {
                if !value.is_string() && !value.is_null() {
                    fields
                        .reasons
                        .push(format!("result.{name}: must be a string"));
                }
            }
        }
        if let Some(Value::Object(context)) = result.get("context") {
            for name in ["decisions", "risks", "notes"] {
                if let Some(value) = context.get(name) {
                    if !value.is_array() && !value.is_null() {
                        fields
                            .reasons
                            .push(format!("result.context.{name}: must be an array"));
                    }
                }
            }
        } else if result.get("context").is_some_and(|value| !value.is_null()) {
            fields
                .reasons
                .push("result.context: must be an object".into());
        }
        match result.get("artifacts") {
            None | Some(Value::Null) => {}
            Some(Value::Array(entries)) => {
                for (index, entry) in entries.iter().enumerate() {
                    let mut entry_fields = Fields::new(Some(entry));
                    let prefix = format!("result.artifacts[{index}].");
                    if !entry.is_object() {
                        fields
                            .reasons
                            .push(format!("result.artifacts[{index}]: must be an object"));
                        continue;
                    }
                    if let Some(artifact) = entry_fields.artifact(&prefix) {
                        artifacts.push(artifact);
                    }
                    fields.reasons.append(&mut entry_fields.reasons);
                }
            }
            Some(_) => fields
                .reasons
                .push("result.artifacts: must be an array".into()),
        }
    }
    match (task_id, status) {
        (Some(task_id), Some(status)) => Some((
            task_id,
            TaskReport {
                status,
                result,
                error,
                artifacts,
            },
        )),
        _ => None,
    }
}

/// Reads the members of a request's `data`, collecting a reason for every problem.
struct Fields<'a> {
    data: Option<&'a Map<String, Value>>,
    reasons: Vec<String>,
    ticket_id: Option<TicketId>,
    preset_task_id: Option<TaskId>,
    details: Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn new(data: Option<&'a Value>) -> Self {
        let mut reasons = Vec::new();
        let data = match data {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(map),
            Some(_) => {
                reasons.push("data: must be a JSON object".to_owned());
                None
            }
        };
        Fields {
            data,
            reasons,
            ticket_id: None,
            preset_task_id: None,
            details: Map::new(),
        }
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.data
            .and_then(|data| data.get(name))
            .filter(|value| !value.is_null())
    }

    fn required_text(&mut self, name: &str, max_chars: usize) -> Option<String> {
        self.required_text_at(name, name, max_chars)
    }

    fn required_text_at(&mut self, name: &str, label: &str, max_chars: usize) -> Option<String> {
        match self.get(name) {
            None => {
                self.reasons.push(format!("{label}: is required"));
                None
            }
            Some(_) => {
                let text = self.optional_text_at(name, label, max_chars)?;
                if text.trim().is_empty() {
                    self.reasons.push(format!("{label}: must not be empty"));
                    None
                } else {
                    Some(text)
                }
            }
        }
    }

    fn optional_text(&mut self, name: &str, max_chars: usize) -> Option<String> {
        self.optional_text_at(name, name, max_chars)
    }

    fn optional_text_at(&mut self, name: &str, label: &str, max_chars: usize) -> Option<String> {
        match self.get(name)? {
            Value::String(text) => {
                let chars = text.chars().count();
                if chars > max_chars {
                    self.reasons.push(format!(
                        "{label}: is {chars} characters long; the limit is {max_chars}"
                    ));
                    None
                } else {
                    Some(text.clone())
                }
            }
            _ => {
                self.reasons.push(format!("{label}: must be a string"));
                None
            }
        }
    }

    fn optional_bool(&mut self, name: &str) -> Option<bool> {
        match self.get(name)? {
            Value::Bool(flag) => Some(*flag),
            _ => {
                self.reasons.push(format!("{name}: must be true or false"));
                None
            }
        }
    }

    fn optional_object(&mut self, name: &str) -> Option<Value> {
        match self.get(name)? {
            value @ Value::Object(_) => Some(value.clone()),
            _ => {
                self.reasons.push(format!("{name}: must be a JSON object"));
                None
            }
        }
    }

    fn optional_parsed<T>(&mut self, name: &str) -> Option<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(name)? {
            Value::String(text) => match text.parse::<T>() {
                Ok(value) => Some(value),
                Err(error) => {
                    self.reasons.push(format!("{name}: {error}"));
                    None
                }
            },
            _ => {
                self.reasons.push(format!("{name}: must be a string"));
                None
            }
        }
    }

    fn required_parsed<T>(&mut self, name: &str) -> Option<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        if self.get(name).is_none() {
            self.reasons.push(format!("{name}: is required"));
            return None;
        }
        self.optional_parsed(name)
    }

    fn required_positive_integer(&mut self, name: &str) -> Option<i64> {
        match self.get(name) {
            None => {
                self.reasons.push(format!("{name}: is required"));
                None
            }
            Some(value) => match value.as_i64() {
                Some(number) if number > 0 => Some(number),
                _ => {
                    self.reasons
                        .push(format!("{name}: must be a positive integer"));
                    None
                }
            },
        }
    }

    /// `artifact_type`, `artifact_path`?, `artifact_content`? (reasons prefixed with `prefix`).
    fn artifact(&mut self, prefix: &str) -> Option<ArtifactSubmission> {
        let artifact_type = self.required_text_at(
            "artifact_type",
            &format!("{prefix}artifact_type"),
            SHORT_TEXT_MAX_CHARS,
        );
        let artifact_path = self.optional_text_at(
            "artifact_path",
            &format!("{prefix}artifact_path"),
            SHORT_TEXT_MAX_CHARS,
        );
        let artifact_content = match self.get("artifact_content") {
            None => None,
            Some(value @ Value::Object(_)) => Some(value.clone()),
            Some(_) => {
                self.reasons
                    .push(format!("{prefix}artifact_content: must be a JSON object"));
                None
            }
        };
        artifact_type.map(|artifact_type| ArtifactSubmission {
            artifact_type,
            artifact_path,
            artifact_content,
        })
    }

    fn finish(self, command: Option<Command>) -> Result<Command, InvalidRequest> {
        match command {
            Some(command) if self.reasons.is_empty() => Ok(command),
            _ => Err(InvalidRequest {
                ticket_id: self.ticket_id,
                details: self.details,
                reasons: if self.reasons.is_empty() {
                    vec!["data: the request is incomplete".to_owned()]
                } else {
                    self.reasons
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const TICKET: &str = "6f1c4c1e-0000-4000-8000-000000000001";

    #[test]
    fn a_create_request_gets_the_contract_defaults() {
        let command = parse_command(
            RequestType::CreateTicket,
            None,
            Some(&json!({"title": "Login"})),
        )
        .unwrap();
        let Command::CreateTicket {
            title,
            description,
            priority,
            auto_advance,
            ..
        } = command
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
        let error = parse_command(
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
        let error = parse_command(
            RequestType::CreateTicket,
            None,
            Some(&json!({ "title": title })),
        )
        .unwrap_err();
        assert!(error.reasons[0].contains("limit is 500"));
    }

    #[test]
    fn a_transition_needs_a_uuid_subject_and_a_known_phase() {
        let error = parse_command(
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

        let error = parse_command(
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
        let error = parse_command(
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
        let command = parse_command(
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
        let Command::CompleteTask { report, .. } = command else {
            panic!("not a task report")
        };
        assert_eq!(report.status, TaskStatus::Completed);
        assert_eq!(report.artifacts.len(), 1);
        assert_eq!(report.artifacts[0].artifact_type, "design_document");
    }

    #[test]
    fn a_malformed_task_artifact_is_named_by_its_index() {
        let error = parse_command(
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
        let command = parse_command(
            RequestType::PhaseEntered,
            Some(TICKET),
            Some(&json!({"ticket_id": TICKET, "phase_id": "PHASE_DESIGN", "history_id": 7, "regression": false})),
        )
        .unwrap();
        assert_eq!(
            command,
            Command::EnterPhase {
                ticket_id: TICKET.parse().unwrap(),
                phase_id: Phase::Design,
                history_id: 7,
            }
        );
        let invalid = parse_command(
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
    fn data_that_is_not_an_object_is_invalid() {
        let error =
            parse_command(RequestType::ValidateGate, Some(TICKET), Some(&json!([1]))).unwrap_err();
        assert_eq!(
            error.reasons,
            vec!["data: must be a JSON object".to_owned()]
        );
    }

    #[test]
    fn rejection_data_has_the_contract_members() {
        let rejection = Rejection::new(RejectionCode::GateNotMet, None, "missing artifact: x")
            .with_detail("from_phase", "PHASE_DESIGN");
        assert_eq!(
            rejection.to_data(),
            json!({"ticket_id": null, "code": "gate_not_met", "reasons": ["missing artifact: x"], "from_phase": "PHASE_DESIGN"})
        );
    }
}
