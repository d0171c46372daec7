//! The board (docs/board.md): the web page `phaseflow api` serves at `/` for the people who
//! supervise the agents, and the read endpoints it is built on.
//!
//! The page is a set of ES modules compiled into the binary (`assets/`, served from the one
//! table [`ASSETS`]): no build step, no CDN, no cookie. It signs in with a bearer token kept in the browser's session storage and
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
use crate::protocol::fields::is_blank;
use crate::workflow::board::BoardFilter;
use crate::workflow::listings::TicketCursor;

use super::auth::Agent;
use super::discovery::{parse, read_limit};
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
async fn me(agent: Agent) -> Response {
    Json(MeView {
        operator: agent.is_operator(),
        roles: agent.profile.roles,
        registered: agent.profile.registered,
        agent: agent.id,
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
        let count = text.chars().count();
        if is_blank(text) {
            Err("is whitespace only; leave it out to search for nothing".to_owned())
        } else if text.contains('\0') {
            Err("holds U+0000, which no title holds".to_owned())
        } else if count > MAX_SEARCH_CHARS {
            Err(format!(
                "{count} characters; at most {MAX_SEARCH_CHARS} are searched for"
            ))
        } else {
            Ok(text.trim().to_owned())
        }
    });
    let limit = parse(query, "limit", reasons, |text| {
        read_limit(text, state.max_page_limit)
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
        Ok(file) => Json(TimelineView::new(&file, &state.telemetry)).into_response(),
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

/// One file of the page: the path it is served at, its content type and its bytes.
pub(super) struct Asset {
    pub route: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// An [`Asset`] compiled from `assets/<file>`, served at `/board/<file>` unless a route is given.
macro_rules! asset {
    ($route:expr, $file:literal, $content_type:expr) => {
        Asset {
            route: $route,
            content_type: $content_type,
            body: include_bytes!(concat!("assets/", $file)),
        }
    };
    ($file:literal, $content_type:expr) => {
        asset!(concat!("/board/", $file), $file, $content_type)
    };
}

/// Every file of the page. A module the script imports is one line here; a unit test fails when
/// a file under `assets/` is missing from this table or an import names a file it lacks.
pub(super) const ASSETS: &[Asset] = &[
    asset!("/", "index.html", HTML),
    asset!("app.css", CSS),
    asset!("icon.svg", SVG),
    asset!("main.js", JAVASCRIPT),
    asset!("api.js", JAVASCRIPT),
    asset!("flash.js", JAVASCRIPT),
    asset!("router.js", JAVASCRIPT),
    asset!("session.js", JAVASCRIPT),
    asset!("stream.js", JAVASCRIPT),
    asset!("workflow.js", JAVASCRIPT),
    asset!("lib/badges.js", JAVASCRIPT),
    asset!("lib/dom.js", JAVASCRIPT),
    asset!("lib/text.js", JAVASCRIPT),
    asset!("lib/time.js", JAVASCRIPT),
    asset!("pages/agents.js", JAVASCRIPT),
    asset!("pages/board.js", JAVASCRIPT),
    asset!("pages/not-found.js", JAVASCRIPT),
    asset!("pages/operations.js", JAVASCRIPT),
    asset!("pages/sign-in.js", JAVASCRIPT),
    asset!("pages/ticket.js", JAVASCRIPT),
    asset!("pages/ticket-sections.js", JAVASCRIPT),
    asset!("pages/ticket-tasks.js", JAVASCRIPT),
];

/// The page and its files, compiled in. They hold no data, so they need no token.
pub(super) fn asset_routes() -> Router<ApiState> {
    ASSETS.iter().fold(Router::new(), |router, asset| {
        let (content_type, body) = (asset.content_type, asset.body);
        router.route(
            asset.route,
            get(move || async move { asset_response(content_type, body) }),
        )
    })
}

fn asset_response(content_type: &'static str, body: &'static [u8]) -> Response {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use super::ASSETS;

    /// The file under `assets/` an asset is compiled from (see the `asset!` macro).
    fn file_of(route: &str) -> &str {
        match route {
            "/" => "index.html",
            route => route.strip_prefix("/board/").expect("a file of the board"),
        }
    }

    fn assets_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api/board/assets")
    }

    /// Every file under `dir`, as a path relative to `assets/` with `/` between its parts.
    fn files_under(dir: &Path, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("the assets directory is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                files_under(&path, found);
            } else {
                let relative = path.strip_prefix(assets_dir()).expect("under assets/");
                let parts: Vec<_> = relative.iter().map(|part| part.to_string_lossy()).collect();
                found.insert(parts.join("/"));
            }
        }
    }

    /// The files a module imports (`import … from "./x.js"`, `import "./x.js"`), as written.
    fn imports(source: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut statement = String::new();
        for line in source.lines() {
            let line = line.trim();
            if statement.is_empty() && !line.starts_with("import ") {
                continue;
            }
            statement.push_str(line);
            statement.push(' ');
            if line.ends_with(';') {
                let quoted = statement.rsplit(['"', '\'']).nth(1).unwrap_or_default();
                found.push(quoted.to_owned());
                statement.clear();
            }
        }
        found
    }

    /// `import` resolves `target` against the module at `file` (both relative to `assets/`).
    fn resolve(file: &str, target: &str) -> String {
        let mut parts: Vec<&str> = file.split('/').collect();
        parts.pop();
        for part in target.split('/') {
            match part {
                "." => {}
                ".." => {
                    parts.pop();
                }
                part => parts.push(part),
            }
        }
        parts.join("/")
    }

    #[test]
    fn every_file_under_assets_is_served() {
        let mut on_disk = BTreeSet::new();
        files_under(&assets_dir(), &mut on_disk);
        let served: BTreeSet<String> = ASSETS
            .iter()
            .map(|asset| file_of(asset.route).to_owned())
            .collect();
        let missing: Vec<_> = on_disk.difference(&served).collect();
        assert!(
            missing.is_empty(),
            "files under assets/ that the asset table does not serve: {missing:?}"
        );
    }

    #[test]
    fn every_module_is_served_as_javascript_and_imports_only_served_modules() {
        let routes: BTreeSet<&str> = ASSETS.iter().map(|asset| asset.route).collect();
        let mut modules = 0;
        for asset in ASSETS.iter().filter(|asset| asset.route.ends_with(".js")) {
            let file = file_of(asset.route);
            modules += 1;
            assert!(
                asset.content_type.starts_with("text/javascript"),
                "{file} is served as {}",
                asset.content_type
            );
            let source = std::str::from_utf8(asset.body).expect("a module is UTF-8");
            for target in imports(source) {
                assert!(
                    target.starts_with("./") || target.starts_with("../"),
                    "{file} imports `{target}`: only relative imports of the page's own modules"
                );
                let route = format!("/board/{}", resolve(file, &target));
                assert!(
                    routes.contains(route.as_str()),
                    "{file} imports `{target}`, which is not served ({route})"
                );
            }
        }
        assert!(modules > 1, "the page's script is a set of modules");
    }

    #[test]
    fn the_import_reader_finds_single_and_multi_line_imports() {
        let source = "import { a } from \"./a.js\";\nimport {\n  b,\n} from '../lib/b.js';\n\
                      import \"./c.js\";\nconst important = 1;\n";
        assert_eq!(imports(source), ["./a.js", "../lib/b.js", "./c.js"]);
        assert_eq!(resolve("pages/board.js", "../lib/dom.js"), "lib/dom.js");
        assert_eq!(resolve("main.js", "./pages/board.js"), "pages/board.js");
    }
}
