//! The discovery endpoints (docs/protocol.md, "Discovery"): what agents read to find their way
//! without changing anything: the workflow definition, a ticket with the moves it may make now,
//! a dry run of a transition, listings of tickets and tasks, and a ticket's context as an agent
//! entering a phase should see it.
//!
//! Each handler reads its path and query parameters (every bad one is a reason of one 422
//! `invalid_request` naming it), calls one read of the workflow (`workflow::discovery`,
//! `workflow::listings`) and shapes the answer with `views`. Nothing here writes, decides a
//! workflow question or holds SQL: a dry run is the workflow's check, not a copy of it.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::domain::{Phase, Priority, TaskStatus, TicketId};
use crate::protocol::fields::{is_blank, SHORT_TEXT_MAX_CHARS};
use crate::workflow::listings::{TaskCursor, TaskFilter, TicketCursor, TicketFilter};

use super::auth::Agent;
use super::endpoints::found_or_404;
use super::error::ApiError;
use super::request::{PhasePath, QueryParams, TicketPath};
use super::views::{
    ContextView, TaskPageView, TicketPageView, TicketView, TransitionCheckView, WorkflowView,
};
use super::ApiState;

/// The query parameters of `GET /api/v1/tickets`.
pub const TICKET_LIST_PARAMETERS: [&str; 4] = ["phase", "priority", "limit", "cursor"];
/// The query parameters of `GET /api/v1/tasks`.
pub const TASK_LIST_PARAMETERS: [&str; 6] = [
    "status",
    "task_type",
    "claimable",
    "ticket_id",
    "limit",
    "cursor",
];
/// The query parameter of `GET /api/v1/tickets/{ticket_id}/context`.
pub const CONTEXT_PARAMETERS: [&str; 1] = ["for_phase"];
/// The smallest `limit` of a page; the largest is a setting (`api.max_page_limit` for listings
/// and the board, `api.dead_letter_limit` for dead letters).
pub const MIN_PAGE_LIMIT: usize = 1;
/// The longest `task_type` a listing filters on, as a claim's `task_types` entries.
pub const MAX_TASK_TYPE_CHARS: usize = SHORT_TEXT_MAX_CHARS;

/// `GET /api/v1/workflow`: the definition the API and the workers run.
pub(super) async fn get_workflow(State(state): State<ApiState>, _agent: Agent) -> Response {
    Json(WorkflowView::from(state.workflow.definition())).into_response()
}

/// `GET /api/v1/tickets/{ticket_id}`: the ticket and its valid transitions.
pub(super) async fn get_ticket(
    State(state): State<ApiState>,
    _agent: Agent,
    TicketPath(ticket_id): TicketPath,
) -> Response {
    respond(ticket(&state, ticket_id).await)
}

/// A ticket and its valid transitions, or 404.
pub(crate) async fn ticket(state: &ApiState, ticket_id: TicketId) -> Result<TicketView, ApiError> {
    let found = state.workflow.ticket_overview(ticket_id, state.retry).await;
    found_or_404(found, ticket_id).map(|overview| TicketView::from(&overview))
}

/// `GET /api/v1/tickets/{ticket_id}/transitions/{to_phase}`: a dry run of the transition.
pub(super) async fn check_transition(
    State(state): State<ApiState>,
    _agent: Agent,
    TicketPath(ticket_id): TicketPath,
    PhasePath(to_phase): PhasePath,
) -> Response {
    respond(transition_check(&state, ticket_id, to_phase).await)
}

/// The dry run of a ticket's transition to `to_phase`, or 404.
pub(crate) async fn transition_check(
    state: &ApiState,
    ticket_id: TicketId,
    to_phase: Phase,
) -> Result<TransitionCheckView, ApiError> {
    let found = state
        .workflow
        .check_transition(ticket_id, to_phase, state.retry)
        .await;
    found_or_404(found, ticket_id).map(|check| TransitionCheckView::new(ticket_id, &check))
}

/// `GET /api/v1/tickets?phase=&priority=&limit=&cursor=`: a page of tickets, most recently
/// updated first.
pub(super) async fn list_tickets(
    State(state): State<ApiState>,
    _agent: Agent,
    query: QueryParams,
) -> Response {
    let mut reasons = query.only(&TICKET_LIST_PARAMETERS);
    let filter = TicketFilter {
        phase: parse(&query, "phase", &mut reasons, |text| text.parse::<Phase>()),
        priority: parse(&query, "priority", &mut reasons, |text| {
            text.parse::<Priority>()
        }),
    };
    let limit = state.page_limit(&query, &mut reasons);
    let after = parse(&query, "cursor", &mut reasons, TicketCursor::decode);
    if !reasons.is_empty() {
        return ApiError::invalid(reasons).into_response();
    }
    match state
        .workflow
        .list_tickets(&filter, after, limit, state.retry)
        .await
    {
        Ok(page) => Json(TicketPageView::from(&page)).into_response(),
        Err(error) => ApiError::from_workflow(&error).into_response(),
    }
}

/// `GET /api/v1/tasks?status=&task_type=&claimable=&ticket_id=&limit=&cursor=`: a page of
/// tasks of any ticket, in the order they were created.
pub(super) async fn list_all_tasks(
    State(state): State<ApiState>,
    agent: Agent,
    query: QueryParams,
) -> Response {
    respond(task_page(&state, &agent, &query).await)
}

/// A page of the tasks `query` asks for (the parameters of `GET /api/v1/tasks`), of the roles
/// `agent` may claim when it asks for claimable ones.
pub(crate) async fn task_page(
    state: &ApiState,
    agent: &Agent,
    query: &QueryParams,
) -> Result<TaskPageView, ApiError> {
    let mut reasons = query.only(&TASK_LIST_PARAMETERS);
    let filter = TaskFilter {
        status: parse(query, "status", &mut reasons, |text| {
            text.parse::<TaskStatus>()
        }),
        task_type: parse(query, "task_type", &mut reasons, read_task_type),
        claimable: parse(query, "claimable", &mut reasons, |text| match text {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(format!("`{other}` is neither true nor false")),
        }),
        ticket_id: parse(query, "ticket_id", &mut reasons, |text| {
            uuid::Uuid::parse_str(text)
                .map(TicketId)
                .map_err(|_| format!("`{text}` is not a UUID"))
        }),
        roles: agent.profile.role_filter().map(<[String]>::to_vec),
    };
    let limit = state.page_limit(query, &mut reasons);
    let after = parse(query, "cursor", &mut reasons, TaskCursor::decode);
    if !reasons.is_empty() {
        return Err(ApiError::invalid(reasons));
    }
    state
        .workflow
        .list_tasks(&filter, after, limit, state.retry)
        .await
        .map(|page| TaskPageView::from(&page))
        .map_err(|error| ApiError::from_workflow(&error))
}

/// `GET /api/v1/tickets/{ticket_id}/context?for_phase=`: the whole context, or with
/// `for_phase` only the phases before it in the normal sequence and their summary.
pub(super) async fn get_context(
    State(state): State<ApiState>,
    _agent: Agent,
    TicketPath(ticket_id): TicketPath,
    query: QueryParams,
) -> Response {
    respond(context(&state, ticket_id, &query).await)
}

/// A ticket's context as `query` (`for_phase`, optional) asks for it, or 404.
pub(crate) async fn context(
    state: &ApiState,
    ticket_id: TicketId,
    query: &QueryParams,
) -> Result<ContextView, ApiError> {
    let mut reasons = query.only(&CONTEXT_PARAMETERS);
    let for_phase = parse(query, "for_phase", &mut reasons, |text| {
        let phase = text.parse::<Phase>().map_err(|error| error.to_string())?;
        match phase.earlier_in_sequence() {
            Some(_) => Ok(phase),
            None => Err(format!(
                "{phase} is not in the normal sequence ({}), so no phases come before it",
                Phase::SEQUENCE.map(Phase::as_str).join(", ")
            )),
        }
    });
    if !reasons.is_empty() {
        return Err(ApiError::invalid(reasons));
    }
    match for_phase {
        Some(phase) => {
            let found = state
                .workflow
                .context_for_phase(ticket_id, phase, state.retry)
                .await;
            found_or_404(found, ticket_id).map(|context| ContextView::from(&context))
        }
        None => {
            let found = state.workflow.find_ticket(ticket_id, state.retry).await;
            found_or_404(found, ticket_id).map(|ticket| ContextView::from(&ticket))
        }
    }
}

/// A read's answer: its view as JSON, or its error.
fn respond<T: serde::Serialize>(answer: Result<T, ApiError>) -> Response {
    match answer {
        Ok(view) => Json(view).into_response(),
        Err(error) => error.into_response(),
    }
}

impl ApiState {
    /// The `limit` query parameter: 1 to `api.max_page_limit`, by default
    /// `api.default_page_limit`.
    pub(super) fn page_limit(&self, query: &QueryParams, reasons: &mut Vec<String>) -> usize {
        parse(query, "limit", reasons, |text| {
            read_limit(text, self.max_page_limit)
        })
        .unwrap_or(self.default_page_limit)
    }
}

/// A `limit` query parameter: a whole number (decimal digits alone) from [`MIN_PAGE_LIMIT`] to
/// `max`.
pub(super) fn read_limit(text: &str, max: usize) -> Result<usize, String> {
    let digits = text.bytes().all(|byte| byte.is_ascii_digit());
    match text.parse::<usize>() {
        Ok(limit) if digits && (MIN_PAGE_LIMIT..=max).contains(&limit) => Ok(limit),
        _ => Err(format!(
            "`{text}` is not a whole number from {MIN_PAGE_LIMIT} to {max}"
        )),
    }
}

/// A `task_type` query parameter: 1 to [`MAX_TASK_TYPE_CHARS`] characters, not all whitespace.
fn read_task_type(text: &str) -> Result<String, String> {
    let chars = text.chars().count();
    if is_blank(text) {
        Err("is whitespace only; a task type has a character that is not".to_owned())
    } else if text.contains('\0') {
        Err("holds U+0000, which no task type holds".to_owned())
    } else if chars > MAX_TASK_TYPE_CHARS {
        Err(format!(
            "is {chars} characters long; the limit is {MAX_TASK_TYPE_CHARS}"
        ))
    } else {
        Ok(text.to_owned())
    }
}

/// The query parameter `name` read by `read`; an empty value, or one `read` refuses, adds a
/// reason naming the parameter.
pub(super) fn parse<T, E: ToString>(
    query: &QueryParams,
    name: &str,
    reasons: &mut Vec<String>,
    read: impl FnOnce(&str) -> Result<T, E>,
) -> Option<T> {
    let text = query.get(name)?;
    if text.is_empty() {
        reasons.push(format!(
            "{name}: is empty; give a value or leave the parameter out"
        ));
        return None;
    }
    match read(text) {
        Ok(value) => Some(value),
        Err(error) => {
            reasons.push(format!("{name}: {}", error.to_string()));
            None
        }
    }
}
