//! The HTTP API (docs/protocol.md, "HTTP API"): axum routes over the very same workflow services the worker
//! calls. A change made here is one `Workflow::handle_request` transaction, which writes the same
//! history and puts the same events in the same outbox as the same request sent as a message;
//! the worker's relay publishes them. Entering a phase over HTTP sets off task generation and
//! context aggregation in the same transaction, as it does over AMQP, so the API never needs a
//! worker to be correct, and holds no AMQP session.
//!
//! - [`endpoints`] is the one list of routes: the router is built from it and a test checks
//!   `openapi.json` against it.
//! - `auth`: bearer tokens → agent ids (the actor of what a request causes).
//! - `request`: the caller's origin (request id, `Idempotency-Key`, `X-Correlation-Id`), path
//!   ids, and the JSON body with its size and depth limits.
//! - `endpoints`: one handler per endpoint that changes something, and the history and tasks
//!   of a ticket; `discovery`: the read-only endpoints agents find their way with (the
//!   workflow definition, a ticket and its valid transitions, transition dry runs, listings,
//!   context for a phase); `probes`: health, readiness, metrics and the OpenAPI document;
//!   `error`: the error body and the status of each rejection code; `views`: the type of every
//!   body the API answers with.
//!
//! Choices of the API's own: a path id that is not a UUID is 422 `invalid_request`
//! naming the parameter (no such ticket can exist, and the request is malformed); a body that is
//! not JSON, not `application/json`, not an object or nested deeper than 32 levels is 422 with a
//! reason naming `body` or `Content-Type`, and, like an undecodable message, causes no event;
//! a request with a repeated `Idempotency-Key` (per agent) changes nothing and is 409
//! `duplicate_request`; Postgres unreachable after five retries is 503 `unavailable`.

pub mod agents;
mod auth;
pub mod board;
mod discovery;
mod endpoints;
mod error;
mod probes;
mod request;
mod revocations;
pub mod views;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{field, Instrument};

use crate::config::{redact_url, Settings};
use crate::messaging::dead_letters::Broker;
use crate::messaging::feed::EventFeed;
use crate::retry::OutageLog;
use crate::telemetry::trace::{self, TraceContext};
use crate::workflow::{RequestType, RetryPolicy, Workflow};
use crate::{store, telemetry};
use phaseflow_client::RouteMethod;

pub(crate) use agents::agent_view;
pub use agents::AgentOperation;
pub(crate) use auth::authenticate;
pub use auth::{Agent, Tokens};
pub use board::BoardOperation;
pub(crate) use discovery::{context, task_page, ticket, transition_check};
pub use discovery::{MAX_TASK_TYPE_CHARS, MIN_PAGE_LIMIT};
pub use error::{status_of, ApiError};
pub use probes::{Readiness, OPENAPI_JSON};
pub use request::{
    parse_json_object, Caller, JsonBody, QueryParams, HEADER_ID_PATTERN, MAX_HEADER_ID_CHARS,
    MAX_JSON_DEPTH, MAX_MESSAGE_ID_CHARS,
};

/// The HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Delete,
}

impl HttpMethod {
    /// Upper case, as in a request line.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            HttpMethod::Get => MethodFilter::GET,
            HttpMethod::Post => MethodFilter::POST,
            HttpMethod::Put => MethodFilter::PUT,
            HttpMethod::Delete => MethodFilter::DELETE,
        }
    }
}

/// What an endpoint does; its handler is chosen by an exhaustive match, so every listed
/// endpoint is served and nothing unlisted is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// a request kind offered over HTTP, at the route the request table gives it
    Request(RequestType),
    ListTickets,
    GetTicket,
    CheckTransition,
    GetContext,
    GetHistory,
    ListTasks,
    GetGates,
    GetUsage,
    ListAllTasks,
    GetWorkflow,
    Health,
    Ready,
    Metrics,
    OpenApi,
    /// the board's endpoints
    Board(BoardOperation),
    /// the agents and their management
    Agents(AgentOperation),
}

impl Operation {
    /// The `operationId` in `openapi.json`.
    pub fn id(self) -> &'static str {
        match self {
            Operation::Request(kind) => match kind.route() {
                Some(route) => route.operation_id,
                None => kind.as_str(),
            },
            Operation::ListTickets => "listTickets",
            Operation::GetTicket => "getTicket",
            Operation::CheckTransition => "checkTransition",
            Operation::GetContext => "getContext",
            Operation::GetHistory => "getHistory",
            Operation::ListTasks => "listTasks",
            Operation::GetGates => "getGates",
            Operation::GetUsage => "getTicketUsage",
            Operation::ListAllTasks => "listAllTasks",
            Operation::GetWorkflow => "getWorkflow",
            Operation::Health => "healthz",
            Operation::Ready => "readyz",
            Operation::Metrics => "metrics",
            Operation::OpenApi => "openapi",
            Operation::Board(board) => board.id(),
            Operation::Agents(agents) => agents.id(),
        }
    }

    /// Whether a bearer token is required (everything but the probes and the description).
    pub fn authenticated(self) -> bool {
        !matches!(
            self,
            Operation::Health | Operation::Ready | Operation::Metrics | Operation::OpenApi
        )
    }

    fn handler(self, method: HttpMethod) -> MethodRouter<ApiState> {
        let filter = method.filter();
        match self {
            Operation::Request(kind) => endpoints::request_route(kind, filter),
            Operation::ListTickets => on(filter, discovery::list_tickets),
            Operation::GetTicket => on(filter, discovery::get_ticket),
            Operation::CheckTransition => on(filter, discovery::check_transition),
            Operation::GetContext => on(filter, discovery::get_context),
            Operation::GetHistory => on(filter, endpoints::get_history),
            Operation::ListTasks => on(filter, endpoints::list_tasks),
            Operation::GetGates => on(filter, endpoints::get_gates),
            Operation::GetUsage => on(filter, endpoints::get_usage),
            Operation::ListAllTasks => on(filter, discovery::list_all_tasks),
            Operation::GetWorkflow => on(filter, discovery::get_workflow),
            Operation::Health => on(filter, probes::healthz),
            Operation::Ready => on(filter, probes::readyz),
            Operation::Metrics => on(filter, probes::metrics),
            Operation::OpenApi => on(filter, probes::openapi),
            Operation::Board(board) => board.handler(filter),
            Operation::Agents(agents) => agents.handler(filter),
        }
    }
}

/// One route: method, path (axum and OpenAPI share the `{param}` syntax) and operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub method: HttpMethod,
    pub path: &'static str,
    pub operation: Operation,
}

const fn endpoint(method: HttpMethod, path: &'static str, operation: Operation) -> Endpoint {
    Endpoint {
        method,
        path,
        operation,
    }
}

/// Every route the API serves: each request kind's route from the request table, then the
/// routes below.
pub fn endpoints() -> Vec<Endpoint> {
    let requests = RequestType::ALL.iter().filter_map(|kind| {
        kind.route().map(|route| {
            let method = match route.method {
                RouteMethod::Post => HttpMethod::Post,
                RouteMethod::Put => HttpMethod::Put,
            };
            endpoint(method, route.path, Operation::Request(*kind))
        })
    });
    requests.chain(ROUTES.iter().copied()).collect()
}

/// The routes that are not a request kind's: reads, probes and the board's.
const ROUTES: &[Endpoint] = &[
    endpoint(HttpMethod::Get, "/api/v1/tickets", Operation::ListTickets),
    endpoint(
        HttpMethod::Get,
        "/api/v1/tickets/{ticket_id}",
        Operation::GetTicket,
    ),
    endpoint(
        HttpMethod::Get,
        "/api/v1/tickets/{ticket_id}/transitions/{to_phase}",
        Operation::CheckTransition,
    ),
    endpoint(
        HttpMethod::Get,
        "/api/v1/tickets/{ticket_id}/context",
        Operation::GetContext,
    ),
    endpoint(
        HttpMethod::Get,
        "/api/v1/tickets/{ticket_id}/history",
        Operation::GetHistory,
    ),
    endpoint(
        HttpMethod::Get,
        "/api/v1/tickets/{ticket_id}/tasks",
        Operation::ListTasks,
    ),
    endpoint(
        HttpMethod::Get,
        "/api/v1/tickets/{ticket_id}/gates",
        Operation::GetGates,
    ),
    endpoint(
        HttpMethod::Get,
        "/api/v1/tickets/{ticket_id}/usage",
        Operation::GetUsage,
    ),
    endpoint(HttpMethod::Get, "/api/v1/tasks", Operation::ListAllTasks),
    endpoint(HttpMethod::Get, "/api/v1/workflow", Operation::GetWorkflow),
    endpoint(HttpMethod::Get, "/healthz", Operation::Health),
    endpoint(HttpMethod::Get, "/readyz", Operation::Ready),
    endpoint(HttpMethod::Get, "/metrics", Operation::Metrics),
    endpoint(HttpMethod::Get, "/api/v1/openapi.json", Operation::OpenApi),
    endpoint(
        HttpMethod::Get,
        "/api/v1/me",
        Operation::Board(BoardOperation::Me),
    ),
    endpoint(
        HttpMethod::Get,
        "/api/v1/board",
        Operation::Board(BoardOperation::Board),
    ),
    endpoint(
        HttpMethod::Get,
        "/api/v1/board/columns/{phase_id}",
        Operation::Board(BoardOperation::Column),
    ),
    endpoint(
        HttpMethod::Get,
        "/api/v1/board/cards/{ticket_id}",
        Operation::Board(BoardOperation::Card),
    ),
    endpoint(
        HttpMethod::Get,
        "/api/v1/board/tickets/{ticket_id}/timeline",
        Operation::Board(BoardOperation::Timeline),
    ),
    endpoint(
        HttpMethod::Get,
        "/api/v1/tickets/{ticket_id}/artifacts",
        Operation::Board(BoardOperation::Artifacts),
    ),
    endpoint(
        HttpMethod::Get,
        "/api/v1/operations",
        Operation::Board(BoardOperation::Operations),
    ),
    endpoint(
        HttpMethod::Get,
        "/api/v1/dead-letters",
        Operation::Board(BoardOperation::DeadLetters),
    ),
    endpoint(
        HttpMethod::Post,
        "/api/v1/dead-letters/{message_id}/replay",
        Operation::Board(BoardOperation::ReplayDeadLetter),
    ),
    endpoint(
        HttpMethod::Get,
        "/api/v1/agents",
        Operation::Agents(AgentOperation::List),
    ),
    endpoint(
        HttpMethod::Post,
        "/api/v1/agents",
        Operation::Agents(AgentOperation::Register),
    ),
    endpoint(
        HttpMethod::Get,
        "/api/v1/agents/{agent_id}",
        Operation::Agents(AgentOperation::Get),
    ),
    endpoint(
        HttpMethod::Post,
        "/api/v1/agents/{agent_id}/tokens",
        Operation::Agents(AgentOperation::IssueToken),
    ),
    endpoint(
        HttpMethod::Delete,
        "/api/v1/agents/{agent_id}/tokens",
        Operation::Agents(AgentOperation::RevokeTokens),
    ),
    endpoint(
        HttpMethod::Get,
        "/api/v1/stream",
        Operation::Board(BoardOperation::Stream),
    ),
];

/// How the API retries a transaction that failed for an infrastructure reason before it
/// answers 503: a few quick attempts, since a client is waiting.
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        min_delay: Duration::from_millis(50),
        max_delay: Duration::from_secs(1),
        max_attempts: Some(5),
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    workflow: Workflow,
    tokens: Arc<Tokens>,
    readiness: Arc<Readiness>,
    retry: RetryPolicy,
    max_body_bytes: usize,
    default_page_limit: usize,
    max_page_limit: usize,
    board_column_limit: usize,
    dead_letter_limit: usize,
    stream_keepalive: Duration,
    replica_report_interval: Duration,
    /// RabbitMQ, asked by the operations page
    broker: Broker,
    /// the published events, for live streams (`None`: this process serves none)
    feed: Option<EventFeed>,
    /// ends the live streams when the API stops
    stop: CancellationToken,
    /// requests being served and served, for this process's replica report
    requests: Arc<RequestCounts>,
    /// token revocations, for the live streams
    revocations: revocations::Revocations,
    /// where the board links trace ids to (`telemetry.trace_url`)
    telemetry: Arc<crate::config::TelemetrySettings>,
}

/// Requests being served and served since the process started.
#[derive(Debug, Default)]
pub struct RequestCounts {
    in_flight: AtomicU64,
    handled: AtomicU64,
}

impl ApiState {
    /// The state for a workflow (its pool is also the readiness check's) and settings; live
    /// streams read `feed`, and end when `stop` is cancelled.
    pub fn new(
        workflow: Workflow,
        settings: &Settings,
        feed: Option<EventFeed>,
        stop: CancellationToken,
    ) -> Self {
        ApiState {
            board_column_limit: settings.api.board_column_limit,
            dead_letter_limit: settings.api.dead_letter_limit,
            stream_keepalive: Duration::from_millis(settings.api.stream_keepalive_ms),
            replica_report_interval: settings.ops.replica_report_interval(),
            broker: Broker::new(settings.amqp.clone()),
            feed,
            stop,
            requests: Arc::new(RequestCounts::default()),
            revocations: revocations::Revocations::default(),
            telemetry: Arc::new(settings.telemetry.clone()),
            readiness: Arc::new(Readiness::new(
                workflow.pool().clone(),
                settings.amqp.clone(),
            )),
            workflow,
            tokens: Arc::new(Tokens::new(&settings.api.tokens)),
            retry: retry_policy(),
            max_body_bytes: settings.api.max_body_bytes,
            default_page_limit: settings.api.default_page_limit,
            max_page_limit: settings.api.max_page_limit,
        }
    }

    /// The workflow the API applies requests with.
    pub fn workflow(&self) -> &Workflow {
        &self.workflow
    }

    /// From now on `/readyz` answers 503.
    pub fn begin_shutdown(&self) {
        self.readiness.begin_shutdown();
    }
}

/// The API's routes, built from [`endpoints`]; every route counts its requests. The methods of
/// one path share its route, whose other methods are 405 (counted under the path's first
/// endpoint).
pub fn router(state: ApiState, mcp: crate::mcp::McpHttp) -> Router {
    let max_body_bytes = state.max_body_bytes;
    let mut routes: Vec<(&'static str, MethodRouter<ApiState>)> = Vec::new();
    let requests = state.requests.clone();
    for endpoint in endpoints() {
        let route = Tracked {
            route: endpoint.path,
            authenticated: endpoint.operation.authenticated(),
        };
        let tracked = middleware::from_fn_with_state((route, requests.clone()), track);
        let handler = endpoint
            .operation
            .handler(endpoint.method)
            .layer(tracked.clone());
        match routes.iter_mut().find(|(path, _)| *path == endpoint.path) {
            Some((_, route)) => *route = std::mem::take(route).merge(handler),
            None => {
                let refused = MethodRouter::new()
                    .fallback(method_not_allowed)
                    .layer(tracked);
                routes.push((endpoint.path, handler.merge(refused)));
            }
        }
    }
    let mut router = Router::new();
    for (path, route) in routes {
        router = router.route(path, route);
    }
    let mcp_route = Tracked {
        route: MCP_PATH,
        authenticated: true,
    };
    let mcp = Router::new()
        .route_service(MCP_PATH, mcp.service)
        .route_layer(middleware::from_fn_with_state(
            (state.clone(), mcp.calls),
            authenticate_mcp,
        ))
        .route_layer(middleware::from_fn_with_state((mcp_route, requests), track));
    router
        .merge(mcp)
        .merge(board::asset_routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Where the API serves the Model Context Protocol.
pub const MCP_PATH: &str = "/mcp";

/// Lets through to the MCP service only requests whose bearer token names an agent, which
/// it finds in the request's extensions; anything else is answered 401 here. A POST that
/// cancels a call of the agent's cancels it here, since the SDK's stateless service does not
/// hand notifications on (the POST still goes to it, which accepts it).
async fn authenticate_mcp(
    State((state, calls)): State<(ApiState, crate::mcp::Calls)>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let agent = match <Agent as axum::extract::FromRequestParts<ApiState>>::from_request_parts(
        &mut parts, &state,
    )
    .await
    {
        Ok(agent) => agent,
        Err(error) => return error.into_response(),
    };
    let body = if parts.method == Method::POST {
        let Ok(bytes) = axum::body::to_bytes(body, state.max_body_bytes).await else {
            return ApiError::payload_too_large(state.max_body_bytes).into_response();
        };
        if let Some(request_id) = crate::mcp::cancelled_request(&bytes) {
            let cancelled = calls.cancel(&(agent.id.clone(), request_id.clone()));
            tracing::debug!(cancelled, request_id, "MCP cancellation received");
        }
        axum::body::Body::from(bytes)
    } else {
        body
    };
    parts.extensions.insert(agent);
    next.run(Request::from_parts(parts, body)).await
}

/// The workflow as the API applies requests with (and `phaseflow mcp`): a pool of its own and
/// the configured definition and policies.
pub async fn open_workflow(settings: &Settings) -> anyhow::Result<Workflow> {
    let definition = settings.workflow_definition()?;
    let pool = store::connect(
        &settings.database.url,
        settings.database.max_connections,
        settings.acquire_timeout(),
    )
    .await?;
    Ok(Workflow::new(pool, definition, settings.context.max_tokens)
        .with_leases(settings.lease_policy())
        .with_budgets(settings.budget_policy())
        .with_agents(settings.agent_policy()))
}

/// Serves the API on `listener` until `stop` is cancelled, then lets in-flight requests finish
/// (for at most `worker.shutdown_grace_ms`). Opens its own Postgres pool; applies no migrations.
pub async fn serve(
    settings: Settings,
    listener: TcpListener,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    telemetry::metrics_handle();
    let workflow = open_workflow(&settings).await?;
    let pool = workflow.pool().clone();
    let (feed, feed_task) = EventFeed::start(
        settings.amqp.clone(),
        settings.api.stream_buffer,
        stop.clone(),
    );
    let state = ApiState::new(workflow.clone(), &settings, Some(feed), stop.clone());
    let revocations = tokio::spawn(
        state
            .revocations
            .clone()
            .listen(workflow.pool().clone(), stop.clone()),
    );
    let reports = {
        let requests = state.requests.clone();
        let ready = state.readiness.clone();
        tokio::spawn(crate::replicas::Replica::this_process("api").report(
            workflow,
            settings.ops.replica_report_interval(),
            stop.clone(),
            move || crate::replicas::Status {
                ready: !ready.shutting_down(),
                in_flight: requests.in_flight.load(Ordering::Relaxed),
                handled: requests.handled.load(Ordering::Relaxed),
            },
        ))
    };
    if state.tokens.is_empty() {
        tracing::warn!(
            "no API tokens configured (PHASEFLOW_API_TOKENS): only the tokens of registered agents are accepted"
        );
    }
    let addr = listener
        .local_addr()
        .context("the API listener has no address")?;
    tracing::info!(%addr, agents = state.tokens.len(), database = %redact_url(&settings.database.url), "HTTP API listening");

    let shutdown = {
        let (stop, state) = (stop.clone(), state.clone());
        async move {
            stop.cancelled().await;
            state.begin_shutdown();
            tracing::info!("HTTP API shutting down: finishing in-flight requests");
        }
    };
    let mcp = crate::mcp::http_service(
        state.clone(),
        crate::mcp::Wakeups::new(pool.clone(), stop.clone()),
        &settings,
        &stop,
    );
    let server = axum::serve(listener, router(state, mcp)).with_graceful_shutdown(shutdown);
    let grace = settings.shutdown_grace();
    let deadline = async {
        stop.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = std::future::IntoFuture::into_future(server) => result.context("the HTTP server failed")?,
        () = deadline => tracing::warn!(grace_ms = grace.as_millis() as u64, "in-flight HTTP requests did not finish in time"),
    }
    reports.await.ok();
    feed_task.await.ok();
    revocations.await.ok();
    if tokio::time::timeout(Duration::from_secs(2), pool.close())
        .await
        .is_err()
    {
        tracing::warn!("database connections still busy at exit");
    }
    tracing::info!("HTTP API stopped");
    Ok(())
}

/// The `api` command: applies pending migrations (unless `worker.migrate_on_start` is off),
/// binds `api.addr` and serves until `stop` is cancelled.
pub async fn run(settings: Settings, stop: CancellationToken) -> anyhow::Result<()> {
    if settings.worker.migrate_on_start {
        let postgres = OutageLog::new("Postgres");
        let migrated = store::migrate_when_reachable(
            &settings.database.url,
            settings.worker.retry_backoff(),
            &postgres,
        );
        tokio::select! {
            result = migrated => result.context("migrations failed")?,
            () = stop.cancelled() => return Ok(()),
        }
    }
    let addr = settings.api.addr;
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for the HTTP API (set PHASEFLOW_API_ADDR)")
    })?;
    serve(settings, listener, stop).await
}

/// A route as its requests are counted and logged.
#[derive(Debug, Clone, Copy)]
struct Tracked {
    route: &'static str,
    /// whether its requests are logged at `info` (else `debug`: the probes)
    authenticated: bool,
}

/// Counts and times every request of a route, in a span carrying its ids.
async fn track(
    State((endpoint, requests)): State<(Tracked, Arc<RequestCounts>)>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    requests.in_flight.fetch_add(1, Ordering::Relaxed);
    // the request's own method: a 405 is counted under the method that was refused
    let method = request.method().as_str().to_owned();
    let span = tracing::info_span!(
        "http",
        otel.name = format!("{method} {}", endpoint.route),
        otel.kind = "server",
        http.request.method = method.as_str(),
        http.route = endpoint.route,
        http.response.status_code = field::Empty,
        method = method.as_str(),
        route = endpoint.route,
        agent = field::Empty,
        request_id = field::Empty,
        message_id = field::Empty,
        correlation_id = field::Empty,
        ticket_id = field::Empty,
        trace_id = field::Empty,
    );
    // the caller's trace, from its `traceparent` and `tracestate` headers
    let caller = trace_headers(request.headers());
    trace::continue_trace(&span, caller.as_ref());
    if let Some(trace_id) = trace::trace_id_of(&span) {
        span.record("trace_id", trace_id.as_str());
    }
    let response = next.run(request).instrument(span.clone()).await;
    requests.in_flight.fetch_sub(1, Ordering::Relaxed);
    requests.handled.fetch_add(1, Ordering::Relaxed);
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    let elapsed = started.elapsed();
    metrics::counter!("phaseflow_http_requests_total", "method" => method.clone(), "route" => endpoint.route, "status" => status.as_str().to_owned())
        .increment(1);
    metrics::histogram!("phaseflow_http_request_duration_seconds", "method" => method, "route" => endpoint.route)
        .record(elapsed.as_secs_f64());
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if endpoint.authenticated {
            tracing::info!(status = status.as_u16(), duration_ms, "request handled");
        } else {
            tracing::debug!(status = status.as_u16(), duration_ms, "request handled");
        }
    });
    response
}

/// The W3C trace context of a request's `traceparent` and `tracestate` headers.
fn trace_headers(headers: &axum::http::HeaderMap) -> Option<TraceContext> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    TraceContext::read(header(trace::TRACEPARENT), header(trace::TRACESTATE))
}

async fn not_found(method: Method, uri: Uri) -> Response {
    metrics::counter!("phaseflow_http_requests_total", "method" => method.as_str().to_owned(), "route" => "unmatched", "status" => "404")
        .increment(1);
    ApiError::new(
        StatusCode::NOT_FOUND,
        error::code::NOT_FOUND,
        "no such route",
    )
    .with_reasons(vec![format!(
        "path: `{}` is not an endpoint of this API",
        uri.path()
    )])
    .into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        error::code::METHOD_NOT_ALLOWED,
        "this route does not take this method",
    )
    .into_response()
}
