//! The board (docs/board.md): the web page `phaseflow api` serves at `/` for the people who
//! supervise the agents, and the read endpoints it is built on.
//!
//! The page is a small script bundle compiled into the binary (`assets/`): no build step, no
//! CDN, no cookie. It signs in with a bearer token kept in the browser's session storage and
//! calls the same API as every agent, so an agent sees and an operator also acts, each action
//! going through the same workflow and outbox as any request, with the operator as its actor.
//! Every page of it is served with a content security policy that allows only its own script and
//! style, and the script builds the page from text nodes: agent input (titles, artifacts,
//! reasons) is never markup.
//!
//! - [`BoardOperation`]: the board's endpoints, listed in the API's route table like every other.
//! - `operations`: the operations page's figures, the dead letters and their replay.
//! - `stream`: the live stream of published events.
//! - `views`: the bodies these endpoints answer with.
//!
//! Reads only, except a replay (which publishes the dead letter again); no SQL, no lapin.

pub mod operations;
pub mod stream;
pub mod views;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, on, MethodFilter, MethodRouter};
use axum::{Json, Router};

use crate::domain::Priority;
use crate::workflow::board::BoardFilter;
use crate::workflow::listings::TicketCursor;

use super::auth::Agent;
use super::discovery::parse;
use super::endpoints::found_or_404;
use super::error::ApiError;
use super::request::{PhaseIdPath, QueryParams, TicketPath};
use super::ApiState;
use views::{ArtifactView, ArtifactsView, BoardView, CardView, ColumnView, MeView, TimelineView};

/// The board's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BoardOperation {
    Me,
    Board,
    Column,
    Card,
    Timeline,
    Artifacts,
    Operations,
    DeadLetters,
    ReplayDeadLetter,
    Stream,
}

impl BoardOperation {
    /// The `operationId` in `openapi.json`.
    pub fn id(self) -> &'static str {
        match self {
            BoardOperation::Me => "getMe",
            BoardOperation::Board => "getBoard",
            BoardOperation::Column => "getBoardColumn",
            BoardOperation::Card => "getBoardCard",
            BoardOperation::Timeline => "getTimeline",
            BoardOperation::Artifacts => "listArtifacts",
            BoardOperation::Operations => "getOperations",
            BoardOperation::DeadLetters => "listDeadLetters",
            BoardOperation::ReplayDeadLetter => "replayDeadLetter",
            BoardOperation::Stream => "streamEvents",
        }
    }

    pub(super) fn handler(self, filter: MethodFilter) -> MethodRouter<ApiState> {
        match self {
            BoardOperation::Me => on(filter, me),
            BoardOperation::Board => on(filter, board),
            BoardOperation::Column => on(filter, column),
            BoardOperation::Card => on(filter, card),
            BoardOperation::Timeline => on(filter, timeline),
            BoardOperation::Artifacts => on(filter, artifacts),
            BoardOperation::Operations => on(filter, operations::operations),
            BoardOperation::DeadLetters => on(filter, operations::dead_letters),
            BoardOperation::ReplayDeadLetter => on(filter, operations::replay),
            BoardOperation::Stream => on(filter, stream::stream),
        }
    }
}

/// The query parameters of `GET /api/v1/board`.
pub const BOARD_PARAMETERS: [&str; 3] = ["priority", "q", "limit"];
/// The query parameters of `GET /api/v1/board/columns/{phase_id}`.
pub const COLUMN_PARAMETERS: [&str; 4] = ["priority", "q", "limit", "cursor"];
/// The longest `q` accepted, in characters.
pub const MAX_SEARCH_CHARS: usize = 200;

/// `GET /api/v1/me`: who the token belongs to, and whether it is an operator.
async fn me(State(state): State<ApiState>, Agent(agent): Agent) -> Response {
    Json(MeView {
        operator: state.workflow.is_operator_agent(&agent),
        agent,
    })
    .into_response()
}

/// The filters and the page size of a board request; every bad parameter is a reason.
fn board_query(
    state: &ApiState,
    query: &QueryParams,
    reasons: &mut Vec<String>,
) -> (BoardFilter, usize) {
    let priority = parse(query, "priority", reasons, |text| text.parse::<Priority>());
    let text = parse(query, "q", reasons, |text| {
        let text = text.trim();
        match text.chars().count() {
            0 => Ok(None),
            count if count <= MAX_SEARCH_CHARS => Ok(Some(text.to_owned())),
            count => Err(format!(
                "{count} characters; at most {MAX_SEARCH_CHARS} are searched for"
            )),
        }
    })
    .flatten();
    let max = state.max_page_limit;
    let limit = parse(query, "limit", reasons, |text| {
        match text.parse::<usize>() {
            Ok(limit) if (1..=max).contains(&limit) => Ok(limit),
            _ => Err(format!("`{text}` is not a whole number from 1 to {max}")),
        }
    })
    .unwrap_or(state.board_column_limit);
    (BoardFilter { priority, text }, limit)
}

/// `GET /api/v1/board?priority=&q=&limit=`: every column with its first page of cards.
async fn board(State(state): State<ApiState>, _agent: Agent, query: QueryParams) -> Response {
    let mut reasons = query.only(&BOARD_PARAMETERS);
    let (filter, limit) = board_query(&state, &query, &mut reasons);
    if !reasons.is_empty() {
        return ApiError::invalid(reasons).into_response();
    }
    match state.workflow.board(&filter, limit, state.retry).await {
        Ok(columns) => Json(BoardView {
            columns: columns.iter().map(ColumnView::from).collect(),
        })
        .into_response(),
        Err(error) => ApiError::from_workflow(&error).into_response(),
    }
}

/// `GET /api/v1/board/columns/{phase_id}?priority=&q=&limit=&cursor=`: a page of one column.
async fn column(
    State(state): State<ApiState>,
    _agent: Agent,
    PhaseIdPath(phase): PhaseIdPath,
    query: QueryParams,
) -> Response {
    let mut reasons = query.only(&COLUMN_PARAMETERS);
    let (filter, limit) = board_query(&state, &query, &mut reasons);
    let after = parse(&query, "cursor", &mut reasons, TicketCursor::decode);
    if !reasons.is_empty() {
        return ApiError::invalid(reasons).into_response();
    }
    match state
        .workflow
        .board_column(phase, &filter, after, limit, state.retry)
        .await
    {
        Ok(column) => Json(ColumnView::from(&column)).into_response(),
        Err(error) => ApiError::from_workflow(&error).into_response(),
    }
}

/// `GET /api/v1/board/cards/{ticket_id}`: one ticket's card.
async fn card(
    State(state): State<ApiState>,
    _agent: Agent,
    TicketPath(ticket_id): TicketPath,
) -> Response {
    let found = state.workflow.board_card(ticket_id, state.retry).await;
    match found_or_404(found, ticket_id) {
        Ok(card) => Json(CardView::from(&card)).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `GET /api/v1/board/tickets/{ticket_id}/timeline`: what happened to the ticket, oldest first.
async fn timeline(
    State(state): State<ApiState>,
    _agent: Agent,
    TicketPath(ticket_id): TicketPath,
) -> Response {
    let found = state.workflow.ticket_file(ticket_id, state.retry).await;
    match found_or_404(found, ticket_id) {
        Ok(file) => Json(TimelineView::new(&file)).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `GET /api/v1/tickets/{ticket_id}/artifacts`: every artifact of every phase, oldest first.
async fn artifacts(
    State(state): State<ApiState>,
    _agent: Agent,
    TicketPath(ticket_id): TicketPath,
) -> Response {
    let found = state.workflow.ticket_file(ticket_id, state.retry).await;
    match found_or_404(found, ticket_id) {
        Ok(file) => Json(ArtifactsView {
            ticket_id,
            artifacts: file.artifacts.iter().map(ArtifactView::from).collect(),
        })
        .into_response(),
        Err(error) => error.into_response(),
    }
}

/// What the page may load and run: its own script, style and icon, and requests to this API.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const ICON_SVG: &str = include_str!("assets/icon.svg");

/// The page and its files, compiled in. They hold no data, so they need no token.
pub(super) fn asset_routes() -> Router<ApiState> {
    let asset = |content_type: &'static str, body: &'static str| {
        get(move || async move { asset_response(content_type, body) })
    };
    Router::new()
        .route("/", asset("text/html; charset=utf-8", INDEX_HTML))
        .route(
            "/board/app.js",
            asset("text/javascript; charset=utf-8", APP_JS),
        )
        .route("/board/app.css", asset("text/css; charset=utf-8", APP_CSS))
        .route("/board/icon.svg", asset("image/svg+xml", ICON_SVG))
}

fn asset_response(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        // the files change with the binary: always ask whether they did
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
