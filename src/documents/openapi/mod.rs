//! The OpenAPI 3.1 document of the HTTP API, generated from the router's table of routes
//! ([`endpoints`]) and the types of the bodies each route takes and answers with: request bodies
//! are the request kinds' `data` types, answers are the event data types and the API's views.
//! What is said here about an operation (its summary and its error statuses) is matched
//! exhaustively on [`Operation`], so a new route cannot go undescribed.

use std::collections::BTreeMap;

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

mod agents;
mod board;

use super::{request_description, Generators};
use crate::api::views::{
    ContextView, ErrorBody, GatesView, HealthView, HistoryEntry, ReadinessView, TaskPageView,
    TaskView, TicketPageView, TicketView, TransitionCheckView, TransitionView, UsageView,
    WorkflowView,
};
use crate::api::{
    endpoints, status_of, Endpoint, Operation, HEADER_ID_PATTERN, MAX_HEADER_ID_CHARS,
    MAX_JSON_DEPTH, MAX_MESSAGE_ID_CHARS, MAX_TASK_TYPE_CHARS, MIN_PAGE_LIMIT,
};
use crate::config::Settings;
use crate::documents::holding_nul;
use crate::domain::{Phase, Priority, TaskStatus};
use crate::protocol::fields::NOT_BLANK_PATTERN;
use crate::protocol::RejectionCode;
use crate::workflow::listings::{TaskCursor, TicketCursor};
use crate::workflow::requests::claim_task::ClaimTaskBody;
use crate::workflow::requests::complete_task::TaskReportData;
use crate::workflow::requests::create_ticket::CreateTicketData;
use crate::workflow::requests::heartbeat_task::LeaseRenewal;
use crate::workflow::requests::release_task::ReleaseNote;
use crate::workflow::requests::transition::TransitionData;
use crate::workflow::RequestType;
use phaseflow_client::limits::NAME_PATTERN;

/// The version of the HTTP API this document describes (its paths are under `/api/v1`).
const API_VERSION: &str = "1.0.0";

/// Where the generated schemas live in the document.
const SCHEMAS: &str = "#/components/schemas/";

const DESCRIPTION: &str = "The HTTP door to phaseflow. Every write is the same transaction, \
    with the same history and the same events on `phaseflow.events`, as the same request sent \
    over RabbitMQ. Bodies are JSON objects (`application/json`) of at most `api.max_body_bytes` \
    (default 256 KiB; 413 above) nested at most MAX_JSON_DEPTH levels (422 deeper). A path id \
    that is not a UUID is 422 `invalid_request`. `Idempotency-Key` makes a write apply at most \
    once per agent and key (a repeat is 409 `duplicate_request`); `X-Correlation-Id` becomes the \
    `correlationid` of every event the request causes. Postgres unavailable after retries: 503 \
    `unavailable` with `Retry-After`.";

/// What the document says about one operation.
pub(super) struct OperationDoc {
    pub(super) tag: &'static str,
    pub(super) summary: &'static str,
    pub(super) description: Option<&'static str>,
    /// the query parameters it takes
    pub(super) query: Vec<Value>,
    /// the request body's schema, and whether a body is required
    pub(super) body: Option<(Value, bool)>,
    pub(super) success: Reply,
    /// the statuses an operation answers with its own reasons, and those reasons
    pub(super) errors: &'static [(u16, &'static str)],
}

/// A successful answer.
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) description: &'static str,
    pub(super) content_type: &'static str,
    pub(super) schema: Value,
}

impl Reply {
    pub(super) fn json<T: JsonSchema>(
        status: u16,
        description: &'static str,
        generators: &mut Generators,
    ) -> Self {
        Reply {
            status,
            description,
            content_type: "application/json",
            schema: generators.answers.subschema_for::<T>().to_value(),
        }
    }
}

fn body<T: JsonSchema>(generators: &mut Generators, required: bool) -> Option<(Value, bool)> {
    Some((generators.bodies.subschema_for::<T>().to_value(), required))
}

pub(super) const NOT_A_UUID: (u16, &str) = (422, "`invalid_request`: ticket_id is not a UUID");
pub(super) const TICKET_NOT_FOUND: (u16, &str) = (404, "`ticket_not_found`");
pub(super) const BAD_QUERY: (u16, &str) = (
    422,
    "`invalid_request`: a query parameter is unknown, given twice, empty (`?limit=`) or has a \
     bad value; the reasons name it",
);

/// A query parameter, optional, with its schema. An empty value is refused like any other bad
/// one, and no schema here takes the empty string.
pub(super) fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description})
}

/// The `limit` parameter: [`MIN_PAGE_LIMIT`] up to a setting, whose default the document gives
/// (a deployment may configure another).
pub(super) fn limit_parameter(setting: &str, max: usize, description: &str) -> Value {
    query(
        "limit",
        json!({"type": "integer", "minimum": MIN_PAGE_LIMIT, "maximum": max}),
        &format!(
            "{description}: {MIN_PAGE_LIMIT} to `{setting}` (the maximum here is its default, \
             {max}; a deployment may configure another; above it 422)"
        ),
    )
}

/// The `cursor` parameter of a listing whose cursors match `pattern`.
pub(super) fn cursor_parameter(pattern: &str) -> Value {
    query(
        "cursor",
        json!({"type": "string", "pattern": pattern}),
        "`next_cursor` of the previous page, as it is (its content means nothing to a client; \
         every cursor of this listing matches the pattern); without it the first page",
    )
}

/// A text that must hold a character other than whitespace, and no U+0000, of at most `max`
/// characters.
pub(super) fn text_schema(max: usize) -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": max,
        "pattern": NOT_BLANK_PATTERN,
        "not": holding_nul(),
    })
}

/// The wire values of `values`, as the schema of a parameter that takes one of them.
pub(super) fn one_of<T: Copy>(values: &[T], wire: fn(T) -> &'static str) -> Value {
    json!({"type": "string", "enum": values.iter().map(|value| wire(*value)).collect::<Vec<_>>()})
}

fn page_parameters(items: &str, cursor: &str) -> [Value; 2] {
    let api = Settings::defaults().api;
    [
        limit_parameter(
            "api.max_page_limit",
            api.max_page_limit,
            &format!(
                "{items} per page, by default `api.default_page_limit` ({} unless configured)",
                api.default_page_limit
            ),
        ),
        cursor_parameter(cursor),
    ]
}

fn describe(operation: Operation, generator: &mut Generators) -> OperationDoc {
    let read = |summary, success| OperationDoc {
        tag: "tickets",
        summary,
        description: None,
        query: Vec::new(),
        body: None,
        success,
        errors: &[TICKET_NOT_FOUND, NOT_A_UUID],
    };
    let probe = |summary, success| OperationDoc {
        tag: "operations",
        summary,
        description: None,
        query: Vec::new(),
        body: None,
        success,
        errors: &[],
    };
    match operation {
        Operation::ListTickets => OperationDoc {
            tag: "tickets",
            summary: "List tickets, most recently updated first",
            description: Some(
                "Tickets as `GET /api/v1/tickets/{ticket_id}` shows them, with their valid \
                 transitions; keyset pages on (`updated_at`, `id`). A ticket changed while you \
                 page moves to the front: no ticket is listed twice, and every ticket not \
                 changed meanwhile is listed exactly once. Reads only.",
            ),
            query: [
                query(
                    "phase",
                    one_of(&Phase::ALL, Phase::as_str),
                    "only tickets in this phase",
                ),
                query(
                    "priority",
                    one_of(&Priority::ALL, Priority::as_str),
                    "only tickets of this priority",
                ),
            ]
            .into_iter()
            .chain(page_parameters("tickets", TicketCursor::PATTERN))
            .collect(),
            body: None,
            success: Reply::json::<TicketPageView>(200, "A page of tickets", generator),
            errors: &[BAD_QUERY],
        },
        Operation::GetTicket => OperationDoc {
            description: Some(
                "With `valid_transitions`: every phase the transition table allows from the \
                 ticket's phase, whether the move checks a gate, and whether a transition there \
                 would be allowed now, with the reasons it would be rejected with. Reads only: \
                 no gate result is stored.",
            ),
            ..read(
                "Read a ticket and the transitions it may make now",
                Reply::json::<TicketView>(200, "The ticket", generator),
            )
        },
        Operation::CheckTransition => OperationDoc {
            tag: "tickets",
            summary: "Dry-run a transition",
            description: Some(
                "What `phase.transition.requested` to `to_phase` would do now (the same checks: \
                 the transition table, the gate judged on the ticket's tasks and artifacts, the \
                 rules for leaving PHASE_BLOCKED), without doing it: no gate result is stored and \
                 no event is published.",
            ),
            query: Vec::new(),
            body: None,
            success: Reply::json::<TransitionCheckView>(
                200,
                "What the transition would do",
                generator,
            ),
            errors: &[
                TICKET_NOT_FOUND,
                (
                    422,
                    "`invalid_request`: ticket_id is not a UUID, or to_phase is not a phase",
                ),
            ],
        },
        Operation::GetContext => OperationDoc {
            description: Some(
                "With `for_phase`: only the phases before it in the normal sequence, and a \
                 summary of the ticket and those phases alone (the context an agent entering \
                 `for_phase` builds on).",
            ),
            query: vec![query(
                "for_phase",
                one_of(&Phase::SEQUENCE, Phase::as_str),
                "show and summarize only the phases before this one in the normal sequence",
            )],
            errors: &[
                TICKET_NOT_FOUND,
                (
                    422,
                    "`invalid_request`: ticket_id is not a UUID, or a bad query parameter",
                ),
            ],
            ..read(
                "Read a ticket's aggregated context",
                Reply::json::<ContextView>(200, "The context", generator),
            )
        },
        Operation::GetHistory => read(
            "Read a ticket's phase history, oldest first",
            Reply::json::<Vec<HistoryEntry>>(200, "The history", generator),
        ),
        Operation::ListTasks => read(
            "List a ticket's tasks (every phase and visit), oldest first",
            Reply::json::<Vec<TaskView>>(200, "The tasks", generator),
        ),
        Operation::GetGates => read(
            "Read a ticket's gate validations and reviews, oldest first",
            Reply::json::<GatesView>(200, "The gate validations and reviews", generator),
        ),
        Operation::GetUsage => read(
            "Read what a ticket's work cost, with its budget",
            Reply::json::<UsageView>(
                200,
                "The budget, and the spend in all and by phase, agent and task",
                generator,
            ),
        ),
        Operation::ListAllTasks => OperationDoc {
            tag: "tasks",
            summary: "List tasks of every ticket, in the order they were created",
            description: Some(
                "Each task as `GET /api/v1/tickets/{ticket_id}/tasks` shows it, with its \
                 `ticket_id` and claim. Pages follow creation order, which never changes, so \
                 they have no gaps or repeats. A task is claimable when it is pending, belongs \
                 to its ticket's current phase (neither PHASE_BLOCKED nor PHASE_DONE), every \
                 task it depends on is completed and its ticket's spend has not used up its \
                 budget. Reads only.",
            ),
            query: [
                query(
                    "status",
                    one_of(&TaskStatus::ALL, TaskStatus::as_str),
                    "only tasks in this status",
                ),
                query(
                    "task_type",
                    text_schema(MAX_TASK_TYPE_CHARS),
                    "only tasks of this type",
                ),
                query(
                    "claimable",
                    json!({"type": "boolean"}),
                    "`true`: only claimable tasks; `false`: only the others",
                ),
                query(
                    "ticket_id",
                    json!({"type": "string", "format": "uuid"}),
                    "only tasks of this ticket",
                ),
            ]
            .into_iter()
            .chain(page_parameters("tasks", TaskCursor::PATTERN))
            .collect(),
            body: None,
            success: Reply::json::<TaskPageView>(200, "A page of tasks", generator),
            errors: &[BAD_QUERY],
        },
        Operation::GetWorkflow => OperationDoc {
            tag: "workflow",
            summary: "Read the workflow definition",
            description: Some(
                "Every phase in order (the normal sequence, then PHASE_BLOCKED) with the moves \
                 it allows and whether they check a gate, its task templates and re-entry \
                 templates, its gate (required artifacts and each rule in words) and the \
                 guidance agents working in it get: the definition the API and workers run.",
            ),
            query: Vec::new(),
            body: None,
            success: Reply::json::<WorkflowView>(200, "The workflow definition", generator),
            errors: &[],
        },
        Operation::Health => probe(
            "Liveness",
            Reply::json::<HealthView>(200, "The process answers", generator),
        ),
        Operation::Ready => OperationDoc {
            errors: &[(503, "Not ready")],
            ..probe(
                "Readiness: Postgres and RabbitMQ reachable, not shutting down",
                Reply::json::<ReadinessView>(200, "Ready", generator),
            )
        },
        Operation::Metrics => probe(
            "Prometheus metrics",
            Reply {
                status: 200,
                description: "Prometheus text exposition format",
                content_type: "text/plain",
                schema: json!({"type": "string"}),
            },
        ),
        Operation::Board(operation) => board::describe(operation, generator),
        Operation::Agents(operation) => agents::describe(operation, generator),
        Operation::Request(kind) => request_doc(kind, generator),
        Operation::OpenApi => probe(
            "This document",
            Reply {
                status: 200,
                description: "The OpenAPI description",
                content_type: "application/json",
                schema: json!({"type": "object"}),
            },
        ),
    }
}

/// A request kind's route: its title from the request table, its body and its answer. Its
/// description and error answers are added from the table by [`request_texts`].
fn request_doc(kind: RequestType, generators: &mut Generators) -> OperationDoc {
    let (body, success) = match kind {
        RequestType::CreateTicket => (
            body::<CreateTicketData>(generators, true),
            Reply::json::<TicketView>(201, "The new ticket", generators),
        ),
        RequestType::Transition => (
            body::<TransitionData>(generators, true),
            Reply::json::<TransitionView>(200, "The transition", generators),
        ),
        RequestType::CompleteTask => (
            body::<TaskReportData>(generators, false),
            outcome_reply(kind, generators),
        ),
        RequestType::ClaimTask => (
            body::<ClaimTaskBody>(generators, false),
            outcome_reply(kind, generators),
        ),
        RequestType::HeartbeatTask => (
            body::<LeaseRenewal>(generators, false),
            outcome_reply(kind, generators),
        ),
        RequestType::ReleaseTask => (
            body::<ReleaseNote>(generators, false),
            outcome_reply(kind, generators),
        ),
        // a ticket's request: the body is the message's `data`
        _ => (data_body(kind, generators), outcome_reply(kind, generators)),
    };
    let on_tasks = kind
        .route()
        .is_some_and(|route| route.path.starts_with("/api/v1/tasks"));
    OperationDoc {
        tag: if on_tasks { "tasks" } else { "tickets" },
        summary: kind.title(),
        description: None,
        query: Vec::new(),
        body,
        success,
        errors: &[],
    }
}

/// The message's `data` as the body; required when the data has a required member.
fn data_body(kind: RequestType, generators: &mut Generators) -> Option<(Value, bool)> {
    let schema = kind.data_schema(&mut generators.bodies).to_value();
    let name = schema["$ref"]
        .as_str()
        .and_then(|reference| reference.rsplit('/').next())
        .unwrap_or_default();
    let required = generators
        .bodies
        .definitions()
        .get(name)
        .and_then(|definition| definition["required"].as_array())
        .is_some_and(|members| !members.is_empty());
    Some((schema, required))
}

/// The outcome event's `data` as the answer, with the route's success status.
fn outcome_reply(kind: RequestType, generators: &mut Generators) -> Reply {
    let outcome = kind.outcome_types().first().copied().unwrap_or_default();
    let schema = crate::protocol::events::data_schema(outcome, &mut generators.answers)
        .map(|schema| schema.to_value())
        .unwrap_or_else(|| json!({"type": "object"}));
    Reply {
        status: kind.route().map_or(200, |route| route.success_status),
        description: "The outcome event's `data`",
        content_type: "application/json",
        schema,
    }
}

/// What a request kind's route adds to the message it stands for.
fn http_note(kind: RequestType) -> Option<&'static str> {
    match kind {
        RequestType::CreateTicket => Some(
            "The ticket always gets a new id (so `already_exists` cannot happen); the answer is \
             the ticket as `GET` shows it, with `Location`.",
        ),
        RequestType::Transition => Some("The answer is the transition."),
        RequestType::CompleteTask | RequestType::HeartbeatTask | RequestType::ReleaseTask => {
            Some("The task is named by the path.")
        }
        RequestType::ClaimTask => Some(
            "`ticket_id` in the body stands for the message's `subject`. 204 (no body) when no \
             task is available.",
        ),
        _ => None,
    }
}

/// A request kind's route described from the request table: the description of the message it
/// stands for, and one error answer per status its rejection codes map to (with
/// `duplicate_request` for an `Idempotency-Key` used before).
fn request_texts(kind: RequestType, operation: &mut Value, error: &Value) {
    let mut description = format!(
        "Same as `{}`: the same transaction, rules and events. {}",
        kind.as_str(),
        request_description(kind)
    );
    if let Some(note) = http_note(kind) {
        description.push(' ');
        description.push_str(note);
    }
    operation["description"] = description.into();
    let mut by_status: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for code in kind.rejection_codes() {
        // the API gives every ticket it creates a new id
        if kind == RequestType::CreateTicket && *code == RejectionCode::AlreadyExists {
            continue;
        }
        by_status
            .entry(status_of(*code).as_u16())
            .or_default()
            .push(format!("`{}`", code.as_str()));
    }
    by_status
        .entry(409)
        .or_default()
        .push("`duplicate_request` (this `Idempotency-Key` was used before)".into());
    for (status, codes) in by_status {
        let text = codes.join(", ");
        operation["responses"][status.to_string()] = if status == 204 {
            json!({ "description": format!("{text}: no body") })
        } else {
            error_response(&text, error)
        };
    }
}

/// The whole document.
pub fn document() -> Value {
    let mut generators = Generators::new(SchemaSettings::draft2020_12(), SCHEMAS);
    let error = generators.answers.subschema_for::<ErrorBody>().to_value();

    let mut paths = Map::new();
    for endpoint in endpoints() {
        let doc = describe(endpoint.operation, &mut generators);
        let item = paths
            .entry(endpoint.path)
            .or_insert_with(|| Value::Object(Map::new()));
        let mut described = operation(&endpoint, doc, &error);
        if let Operation::Request(kind) = endpoint.operation {
            request_texts(kind, &mut described, &error);
        }
        item[endpoint.method.as_str().to_lowercase()] = described;
    }

    let schemas = generators.definitions();
    let description = DESCRIPTION.replace("MAX_JSON_DEPTH", &MAX_JSON_DEPTH.to_string());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "phaseflow HTTP API",
            "version": API_VERSION,
            "description": description,
        },
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "security": [{"bearer": []}],
        "tags": [{"name": "tickets"}, {"name": "tasks"}, {"name": "workflow"}, {"name": "agents"}, {"name": "operations"}, {"name": "board"}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "A token issued to a registered agent (`phaseflow agents add`, \
                    POST /api/v1/agents), or one of `PHASEFLOW_API_TOKENS` \
                    (`agent-1=secret1,...`); its agent id is the actor of what the request causes",
            }},
            "parameters": parameters(),
            "responses": {
                "Unauthorized": error_response(
                    "`unauthorized`: the bearer token is missing, malformed or unknown; nothing changed",
                    &error,
                ),
                "PayloadTooLarge": error_response(
                    "`payload_too_large`: the body is larger than `api.max_body_bytes`",
                    &error,
                ),
                "Unavailable": error_response(
                    "`unavailable`: Postgres is unreachable; retry after `Retry-After` seconds",
                    &error,
                ),
            },
            "schemas": schemas,
        },
    })
}

/// The document as committed: pretty-printed, with a final newline.
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(&document()).expect("the document serializes");
    text.push('\n');
    text
}

fn operation(endpoint: &Endpoint, doc: OperationDoc, error: &Value) -> Value {
    let mut parameters = Vec::new();
    for (placeholder, name) in [
        ("{ticket_id}", "TicketId"),
        ("{task_id}", "TaskId"),
        ("{to_phase}", "ToPhase"),
        ("{phase_id}", "PhaseId"),
        ("{message_id}", "MessageId"),
        ("{agent_id}", "AgentId"),
    ] {
        if endpoint.path.contains(placeholder) {
            parameters.push(parameter_ref(name));
        }
    }
    parameters.extend(doc.query);
    // a write of the workflow; a replay re-sends a message that keeps its own ids
    if matches!(endpoint.operation, Operation::Request(_)) {
        parameters.push(parameter_ref("IdempotencyKey"));
        parameters.push(parameter_ref("CorrelationId"));
    }

    let mut responses = Map::new();
    let Reply {
        status,
        description,
        content_type,
        schema,
    } = doc.success;
    // a probe answers a failure with the same body as its success
    let failure_schema = if endpoint.operation.authenticated() {
        error.clone()
    } else {
        schema.clone()
    };
    let mut success = json!({
        "description": description,
        "content": {content_type: {"schema": schema}},
    });
    if endpoint.operation == Operation::Request(RequestType::CreateTicket) {
        success["headers"] = json!({"Location": {"schema": {"type": "string"}}});
    }
    responses.insert(status.to_string(), success);
    for (status, description) in doc.errors {
        let response = if *status == 204 {
            json!({ "description": description })
        } else {
            json!({"description": description, "content": {"application/json": {"schema": failure_schema}}})
        };
        responses.insert(status.to_string(), response);
    }
    if endpoint.operation.authenticated() {
        responses.insert("401".into(), response_ref("Unauthorized"));
        if doc.body.is_some() {
            responses.insert("413".into(), response_ref("PayloadTooLarge"));
        }
        responses.insert("503".into(), response_ref("Unavailable"));
    }

    let mut operation = Map::new();
    operation.insert("operationId".into(), endpoint.operation.id().into());
    operation.insert("tags".into(), json!([doc.tag]));
    operation.insert("summary".into(), doc.summary.into());
    if let Some(description) = doc.description {
        operation.insert("description".into(), description.into());
    }
    if !endpoint.operation.authenticated() {
        operation.insert("security".into(), json!([]));
    }
    if !parameters.is_empty() {
        operation.insert("parameters".into(), Value::Array(parameters));
    }
    if let Some((schema, required)) = doc.body {
        operation.insert(
            "requestBody".into(),
            json!({"required": required, "content": {"application/json": {"schema": schema}}}),
        );
    }
    operation.insert("responses".into(), Value::Object(responses));
    Value::Object(operation)
}

fn parameters() -> Value {
    let id = json!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_HEADER_ID_CHARS,
        "pattern": HEADER_ID_PATTERN,
    });
    json!({
        "TicketId": {"name": "ticket_id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}},
        "TaskId": {"name": "task_id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}},
        "ToPhase": {"name": "to_phase", "in": "path", "required": true, "schema": one_of(&Phase::ALL, Phase::as_str)},
        "PhaseId": {"name": "phase_id", "in": "path", "required": true, "schema": one_of(&Phase::ALL, Phase::as_str)},
        "AgentId": {"name": "agent_id", "in": "path", "required": true, "schema": {"type": "string", "pattern": NAME_PATTERN}, "description": "1 to 64 of a-z, 0-9, `.`, `_` and `-`"},
        "MessageId": {"name": "message_id", "in": "path", "required": true, "schema": {"type": "string", "minLength": 1, "maxLength": MAX_MESSAGE_ID_CHARS}, "description": "the dead letter's AMQP message id"},
        "IdempotencyKey": {
            "name": "Idempotency-Key", "in": "header", "required": false, "schema": id,
            "description": format!("Apply this write at most once per agent and key; a repeat changes nothing and gets 409 `duplicate_request`. 1 to {MAX_HEADER_ID_CHARS} visible ASCII characters, no spaces (else 422 `invalid_request`)"),
        },
        "CorrelationId": {
            "name": "X-Correlation-Id", "in": "header", "required": false, "schema": id,
            "description": format!("The `correlationid` of every event the request causes (default: the request id, returned as `X-Request-Id`). 1 to {MAX_HEADER_ID_CHARS} visible ASCII characters, no spaces (else 422 `invalid_request`)"),
        },
    })
}

fn parameter_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/parameters/{name}")})
}

fn response_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/responses/{name}")})
}

fn error_response(description: &str, error: &Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": error}}})
}
