//! The endpoints of the HTTP API (docs/protocol.md, "HTTP API"): each write parses its body with `protocol` exactly as the
//! same request arriving as a message, hands it to [`Workflow::handle_request`] (one
//! transaction, the same history and the same events through the same outbox), and shapes the
//! outcome event's `data` into the response. Reads go to the workflow's read side.
//!
//! No SQL and no workflow decisions here: statuses come from [`super::error`], shapes from the
//! protocol. The read-only endpoints agents discover the workflow with are in `discovery`.
//!
//! [`Workflow::handle_request`]: crate::workflow::Workflow::handle_request

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Json;
use serde::Serialize;
use serde_json::Value;

use crate::domain::TicketId;
use crate::protocol::fields::Fields;
use crate::protocol::{Event, Rejection, RejectionCode};
use crate::workflow::requests::claim_task::ClaimTask;
use crate::workflow::requests::complete_task::CompleteTask;
use crate::workflow::requests::heartbeat_task::HeartbeatTask;
use crate::workflow::requests::release_task::ReleaseTask;
use crate::workflow::{Command, OutcomeEvent, RequestOutcome, RequestType, WorkflowError};

use super::auth::Agent;
use super::error::ApiError;
use super::request::{
    Caller, JsonBody, TaskPath, TicketPath, CORRELATION_HEADER, REQUEST_ID_HEADER,
};
use super::views::{GatesView, HistoryEntry, TaskView, TicketView, TransitionView, UsageView};
use super::ApiState;

/// `POST /api/v1/tickets`: 201 with the new ticket (in BACKLOG).
pub(super) async fn create_ticket(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Response {
    let kind = RequestType::CreateTicket;
    let command = Command::parse(kind, None, body.as_ref()).map_err(Rejection::from);
    let result = match state.apply(&caller, kind, &command).await {
        // the ticket as stored, with the summary it was created with and its valid transitions
        Ok(Event::TicketCreated(created)) => {
            let found = state
                .workflow
                .ticket_overview(created.ticket_id, state.retry)
                .await;
            found_or_404(found, created.ticket_id).and_then(|ticket| {
                to_body(&TicketView::from(&ticket)).map(|body| (StatusCode::CREATED, body))
            })
        }
        Ok(other) => Err(unexpected(other)),
        Err(error) => Err(error),
    };
    let location = result
        .as_ref()
        .ok()
        .and_then(|(_, ticket)| ticket["id"].as_str())
        .map(|id| format!("/api/v1/tickets/{id}"));
    let mut response = answer(&caller, result);
    if let Some(location) = location.and_then(|location| HeaderValue::from_str(&location).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// `POST /api/v1/tickets/{ticket_id}/transition`: 200 with the transition.
pub(super) async fn transition(
    State(state): State<ApiState>,
    caller: Caller,
    TicketPath(ticket_id): TicketPath,
    JsonBody(body): JsonBody,
) -> Response {
    let kind = RequestType::Transition;
    let command =
        Command::parse(kind, Some(&ticket_id.to_string()), body.as_ref()).map_err(Rejection::from);
    let result = match state.apply(&caller, kind, &command).await {
        Ok(Event::PhaseTransitioned(moved)) => {
            to_body(&TransitionView::from(moved)).map(|body| (StatusCode::OK, body))
        }
        Ok(other) => Err(unexpected(other)),
        Err(error) => Err(error),
    };
    answer(&caller, result)
}

/// `GET /api/v1/tickets/{ticket_id}/gates`: the ticket's gate validations and reviews.
pub(super) async fn get_usage(
    State(state): State<ApiState>,
    _agent: Agent,
    TicketPath(ticket_id): TicketPath,
) -> Response {
    let found = state.workflow.ticket_usage(ticket_id, state.retry).await;
    match found_or_404(found, ticket_id) {
        Ok(usage) => Json(UsageView::new(ticket_id, &usage)).into_response(),
        Err(error) => error.into_response(),
    }
}

pub(super) async fn get_gates(
    State(state): State<ApiState>,
    _agent: Agent,
    TicketPath(ticket_id): TicketPath,
) -> Response {
    let found = state.workflow.ticket_gates(ticket_id, state.retry).await;
    match found_or_404(found, ticket_id) {
        Ok((results, reviews)) => {
            Json(GatesView::new(ticket_id, &results, &reviews)).into_response()
        }
        Err(error) => error.into_response(),
    }
}

/// `GET /api/v1/tickets/{ticket_id}/history`: oldest first.
pub(super) async fn get_history(
    State(state): State<ApiState>,
    _agent: Agent,
    TicketPath(ticket_id): TicketPath,
) -> Response {
    let found = state.workflow.ticket_history(ticket_id, state.retry).await;
    match found_or_404(found, ticket_id) {
        Ok(rows) => Json(rows.iter().map(HistoryEntry::from).collect::<Vec<_>>()).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `GET /api/v1/tickets/{ticket_id}/tasks`: every phase and visit, oldest first.
pub(super) async fn list_tasks(
    State(state): State<ApiState>,
    _agent: Agent,
    TicketPath(ticket_id): TicketPath,
) -> Response {
    let found = state.workflow.ticket_tasks(ticket_id, state.retry).await;
    match found_or_404(found, ticket_id) {
        Ok(tasks) => Json(tasks.iter().map(TaskView::from).collect::<Vec<_>>()).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `POST /api/v1/tasks/{task_id}/complete`: 200 with the `task.completed` or `task.failed` data.
pub(super) async fn complete_task(
    State(state): State<ApiState>,
    caller: Caller,
    TaskPath(task_id): TaskPath,
    JsonBody(body): JsonBody,
) -> Response {
    let command = CompleteTask::parse_for_task(task_id, body.as_ref())
        .map(Command::CompleteTask)
        .map_err(Rejection::from);
    task_command(&state, &caller, RequestType::CompleteTask, &command).await
}

/// `POST /api/v1/tasks/claim`: 200 with the `task.claimed` data, 204 when no task is available.
pub(super) async fn claim_task(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Response {
    let kind = RequestType::ClaimTask;
    let mut fields = Fields::new(body.as_ref());
    let ticket_id = fields.optional_parsed::<TicketId>("ticket_id");
    let claim = ClaimTask::parse_data(ticket_id, &mut fields);
    let command = fields
        .finish(claim)
        .map(Command::ClaimTask)
        .map_err(Rejection::from);
    match state.apply(&caller, kind, &command).await {
        Err(error) if error.code == RejectionCode::NoTaskAvailable.as_str() => {
            answer(&caller, Ok((StatusCode::NO_CONTENT, Value::Null)))
        }
        result => answer(
            &caller,
            result
                .and_then(|event| event_body(&event))
                .map(|data| (StatusCode::OK, data)),
        ),
    }
}

/// `POST /api/v1/tasks/{task_id}/heartbeat`: 200 with the `task.lease.extended` data.
pub(super) async fn heartbeat_task(
    State(state): State<ApiState>,
    caller: Caller,
    TaskPath(task_id): TaskPath,
    JsonBody(body): JsonBody,
) -> Response {
    let command = HeartbeatTask::parse_for_task(task_id, body.as_ref())
        .map(Command::HeartbeatTask)
        .map_err(Rejection::from);
    task_command(&state, &caller, RequestType::HeartbeatTask, &command).await
}

/// `POST /api/v1/tasks/{task_id}/release`: 200 with the `task.released` data.
pub(super) async fn release_task(
    State(state): State<ApiState>,
    caller: Caller,
    TaskPath(task_id): TaskPath,
    JsonBody(body): JsonBody,
) -> Response {
    let command = ReleaseTask::parse_for_task(task_id, body.as_ref())
        .map(Command::ReleaseTask)
        .map_err(Rejection::from);
    task_command(&state, &caller, RequestType::ReleaseTask, &command).await
}

/// A request about a task named by the path, answered with its outcome event's `data`.
async fn task_command(
    state: &ApiState,
    caller: &Caller,
    kind: RequestType,
    command: &Result<Command, Rejection>,
) -> Response {
    let result = state
        .apply(caller, kind, command)
        .await
        .and_then(|event| event_body(&event))
        .map(|data| (StatusCode::OK, data));
    answer(caller, result)
}

/// The handler of a request kind's route: the kinds whose answer is shaped their own way have
/// their own handler; every other kind's route names the ticket (`{ticket_id}`) and answers
/// with its outcome event's `data` and the route's success status.
pub(super) fn request_route(kind: RequestType, filter: MethodFilter) -> MethodRouter<ApiState> {
    own_route(kind, filter).unwrap_or_else(|| {
        on(
            filter,
            move |State(state): State<ApiState>,
                  caller: Caller,
                  TicketPath(ticket_id): TicketPath,
                  JsonBody(body): JsonBody| async move {
                ticket_request(&state, &caller, kind, ticket_id, body).await
            },
        )
    })
}

/// The handler of a kind whose answer is shaped its own way; `None` for the others.
fn own_route(kind: RequestType, filter: MethodFilter) -> Option<MethodRouter<ApiState>> {
    Some(match kind {
        RequestType::CreateTicket => on(filter, create_ticket),
        RequestType::Transition => on(filter, transition),
        RequestType::CompleteTask => on(filter, complete_task),
        RequestType::ClaimTask => on(filter, claim_task),
        RequestType::HeartbeatTask => on(filter, heartbeat_task),
        RequestType::ReleaseTask => on(filter, release_task),
        _ => return None,
    })
}

/// A request about the ticket its path names, answered with its outcome event's `data` as it
/// is.
async fn ticket_request(
    state: &ApiState,
    caller: &Caller,
    kind: RequestType,
    ticket_id: TicketId,
    body: Option<Value>,
) -> Response {
    let status = kind
        .route()
        .and_then(|route| StatusCode::from_u16(route.success_status).ok())
        .unwrap_or(StatusCode::OK);
    let command =
        Command::parse(kind, Some(&ticket_id.to_string()), body.as_ref()).map_err(Rejection::from);
    let result = state
        .apply(caller, kind, &command)
        .await
        .and_then(|event| event_body(&event))
        .map(|data| (status, data));
    answer(caller, result)
}

impl ApiState {
    /// Applies a request through the workflow, as the worker would a message: a success is the
    /// outcome event; a rejection (also published as `….rejected`) is an [`ApiError`].
    pub(crate) async fn apply(
        &self,
        caller: &Caller,
        kind: RequestType,
        command: &Result<Command, Rejection>,
    ) -> Result<Event, ApiError> {
        let outcome = self
            .workflow
            .handle_request(&caller.origin, kind, command, caller.dedupe(), self.retry)
            .await
            .map_err(|error| ApiError::from_workflow(&error))?;
        match outcome {
            RequestOutcome::Applied(OutcomeEvent {
                result: Ok(event),
                event_type,
            }) => {
                tracing::info!(outcome = %event_type, "request applied");
                Ok(event)
            }
            RequestOutcome::Applied(OutcomeEvent {
                result: Err(rejection),
                event_type,
            }) => {
                tracing::info!(outcome = %event_type, code = rejection.code.as_str(), "request rejected");
                Err(ApiError::rejected(&rejection))
            }
            RequestOutcome::Duplicate => {
                tracing::info!("idempotency key seen before; nothing applied");
                Err(ApiError::duplicate(
                    caller.idempotency_key.as_deref().unwrap_or_default(),
                ))
            }
            RequestOutcome::EventConsumed | RequestOutcome::EventIgnored(_) => Err(
                ApiError::from_workflow(&WorkflowError::Failed(anyhow::anyhow!(
                    "{} is an event the worker consumes, not an HTTP request",
                    kind.as_str()
                ))),
            ),
        }
    }
}

/// The response of a write, carrying `X-Request-Id` and `X-Correlation-Id`.
fn answer(caller: &Caller, result: Result<(StatusCode, Value), ApiError>) -> Response {
    let mut response = match result {
        Ok((StatusCode::NO_CONTENT, _)) => StatusCode::NO_CONTENT.into_response(),
        Ok((status, body)) => (status, Json(body)).into_response(),
        Err(error) => error.into_response(),
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&caller.request_id) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    if let Ok(value) = HeaderValue::from_str(&caller.origin.correlation_id) {
        headers.insert(CORRELATION_HEADER, value);
    }
    response
}

pub(super) fn found_or_404<T>(
    found: Result<Option<T>, crate::workflow::WorkflowError>,
    ticket_id: TicketId,
) -> Result<T, ApiError> {
    match found {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(ApiError::rejected(&Rejection::new(
            RejectionCode::TicketNotFound,
            Some(ticket_id),
            format!("ticket {ticket_id} does not exist"),
        ))),
        Err(error) => Err(ApiError::from_workflow(&error)),
    }
}

/// An outcome event's `data` as a response body.
fn event_body(event: &Event) -> Result<Value, ApiError> {
    event.data().map_err(|error| internal(error.into()))
}

/// A response body from its type.
fn to_body(body: &impl Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(body).map_err(|error| internal(error.into()))
}

/// An outcome of another type than the request's: a bug, answered as a server error.
fn unexpected(event: Event) -> ApiError {
    internal(anyhow::anyhow!(
        "unexpected outcome {} for the request",
        event.event_type()
    ))
}

fn internal(error: anyhow::Error) -> ApiError {
    ApiError::from_workflow(&WorkflowError::Failed(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one handler for requests about a ticket reads the ticket from the path and nothing
    /// else, so a route it serves must name `{ticket_id}` and no other parameter.
    #[test]
    fn every_route_the_ticket_handler_serves_names_the_ticket_alone() {
        for kind in RequestType::ALL {
            let Some(route) = kind.route() else {
                continue;
            };
            if own_route(*kind, MethodFilter::POST).is_some() {
                continue;
            }
            let parameters: Vec<&str> = route
                .path
                .split('/')
                .filter(|segment| segment.starts_with('{'))
                .collect();
            assert_eq!(parameters, ["{ticket_id}"], "{}", kind.as_str());
        }
    }
}
