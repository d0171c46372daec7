//! The one module that speaks MCP through the SDK (`rmcp`): the protocol handler over the
//! [`Toolbox`], `phaseflow mcp` on stdio, and the streamable HTTP service the API mounts at
//! `/mcp`. A newer SDK changes this module alone.
//!
//! Who calls is decided here, from what a token vouches for: on stdio, `PHASEFLOW_TOKEN`, checked
//! at start and again at every call (a revoked token stops working at once); over HTTP, the
//! bearer token of each request, checked by the API before the SDK sees the request, the agent
//! handed on in the request's extensions. Never from anything in a tool's arguments.
//!
//! The HTTP service is stateless (no MCP sessions; each call is one POST answered with JSON),
//! so any API replica answers any call and nothing is lost when one restarts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::http::request::Parts;
use rmcp::model::CancelledNotificationParam;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, GetPromptRequestParams,
    GetPromptResponse, GetPromptResult, Implementation, ListPromptsResult, ListToolsResult,
    PaginatedRequestParams, Prompt, PromptArgument, PromptMessage, Role, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::calls::Calls;
use super::prompts;
use super::tools::{Tool, Toolbox};
use super::wakeups::Wakeups;
use crate::api::{self, Agent, ApiError, ApiState};
use crate::config::{redact_url, Settings};

/// What the server tells a client about itself when it connects.
const INSTRUCTIONS: &str = "phaseflow runs the phases of software tickets (requirements, design, \
implementation, testing, deployment) for a team of agents. Your loop: claim_task (with wait_seconds \
to wait for work), do what its guidance and context say, heartbeat while you work, then \
complete_task with your artifacts and usage. A refused call is an error result whose code says \
why and whose reasons say what to do. whoami tells you your roles, limits and budget.";

/// The MCP server of one agent (stdio) or of the agents calling one API process (HTTP).
#[derive(Clone)]
pub struct McpService {
    toolbox: Toolbox,
    identity: Identity,
    /// the calls in progress, for their cancellation (shared by every instance)
    calls: Calls,
}

/// Where the calling agent comes from.
#[derive(Clone)]
enum Identity {
    /// `PHASEFLOW_TOKEN` of a stdio server; the secret stays in memory only
    Token(Arc<Vec<u8>>),
    /// the bearer token of each HTTP request, checked by the API
    Http,
}

impl McpService {
    /// The calling agent, or the refusal of its token.
    async fn agent(&self, context: &RequestContext<RoleServer>) -> Result<Agent, ApiError> {
        match &self.identity {
            Identity::Token(token) => api::authenticate(&self.toolbox.state, token).await,
            Identity::Http => context
                .extensions
                .get::<Parts>()
                .and_then(|parts| parts.extensions.get::<Agent>())
                .cloned()
                .ok_or_else(|| {
                    ApiError::unauthorized(
                        "Authorization: the request carried no agent",
                        "Bearer realm=\"phaseflow\"",
                    )
                }),
        }
    }

    fn tools(&self) -> Vec<rmcp::model::Tool> {
        Tool::ALL.iter().map(|tool| describe(*tool)).collect()
    }
}

/// A tool as `tools/list` shows it.
fn describe(tool: Tool) -> rmcp::model::Tool {
    let annotations = rmcp::model::ToolAnnotations::new()
        .read_only(tool.read_only())
        .destructive(false)
        .open_world(false);
    rmcp::model::Tool::new(
        tool.name(),
        tool.description(),
        Arc::new(tool.input_schema()),
    )
    .with_raw_output_schema(Arc::new(tool.output_schema()))
    .with_annotations(annotations)
}

/// A refusal as a tool result: `isError`, with the code, message and reasons.
fn refusal(error: &ApiError) -> CallToolResult {
    CallToolResult::structured_error(json!({
        "code": error.code,
        "message": error.message,
        "reasons": error.reasons,
    }))
}

impl ServerHandler for McpService {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .build(),
        )
        .with_server_info(Implementation::new("phaseflow", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        Tool::named(name).map(describe)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(tool) = Tool::named(&request.name) else {
            return Err(ErrorData::invalid_params(
                format!("no tool is named `{}`; tools/list names them", request.name),
                None,
            ));
        };
        let started = Instant::now();
        let result = match self.agent(&context).await {
            Ok(agent) => {
                let span =
                    tracing::info_span!("mcp", tool = tool.name(), agent = agent.id.as_str());
                let arguments = request.arguments.unwrap_or_default();
                let cancel = context.ct.child_token();
                let _registered = self
                    .calls
                    .register((agent.id.clone(), context.id.to_string()), &cancel);
                let called = self.toolbox.call(tool, &agent, arguments, &cancel);
                tracing::Instrument::instrument(called, span).await
            }
            Err(error) => Err(error),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => error.code,
        };
        metrics::counter!("phaseflow_mcp_tool_calls_total", "tool" => tool.name(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("phaseflow_mcp_tool_call_duration_seconds", "tool" => tool.name())
            .record(started.elapsed().as_secs_f64());
        Ok(match result {
            Ok(answer) => CallToolResult::structured(answer),
            Err(error) => refusal(&error),
        }
        .into())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let definition = self.toolbox.state.workflow().definition();
        let argument = PromptArgument::new(prompts::PHASE_ARGUMENT)
            .with_description("the phase, e.g. PHASE_DESIGN")
            .with_required(true);
        Ok(ListPromptsResult::with_all_items(vec![Prompt::new(
            prompts::PHASE_GUIDANCE,
            Some(prompts::description(definition)),
            Some(vec![argument]),
        )]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if request.name != prompts::PHASE_GUIDANCE {
            return Err(ErrorData::invalid_params(
                format!(
                    "no prompt is named `{}`; the prompt is {}",
                    request.name,
                    prompts::PHASE_GUIDANCE
                ),
                None,
            ));
        }
        let phase = request
            .arguments
            .as_ref()
            .and_then(|arguments| arguments.get(prompts::PHASE_ARGUMENT))
            .and_then(|value| value.as_str())
            .unwrap_or_default();
        let definition = self.toolbox.state.workflow().definition();
        let text = prompts::guidance_text(definition, phase)
            .map_err(|reason| ErrorData::invalid_params(reason, None))?;
        Ok(
            GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
                .with_description(format!("guidance for {phase}"))
                .into(),
        )
    }
}

/// What the API mounts at `/mcp`: the SDK's stateless service, answering each call with JSON,
/// and the calls in progress it serves.
pub struct McpHttp {
    pub service: StreamableHttpService<McpService, NeverSessionManager>,
    pub calls: Calls,
}

/// The request id a `notifications/cancelled` message names, when `body` is one. The SDK's
/// stateless service accepts notifications without handing them on, so the API looks for this
/// one before passing the request to it.
pub fn cancelled_request(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Notification {
        method: String,
        #[serde(default)]
        params: Option<CancelledNotificationParam>,
    }
    let notification: Notification = serde_json::from_slice(body).ok()?;
    if notification.method != "notifications/cancelled" {
        return None;
    }
    notification
        .params?
        .request_id
        .map(|request_id| request_id.to_string())
}

/// The service the API mounts at `/mcp`: stateless, answering each call with JSON; the API
/// authenticates each request and puts the [`Agent`] in its extensions first.
pub fn http_service(
    state: ApiState,
    wakeups: Wakeups,
    settings: &Settings,
    stop: &CancellationToken,
) -> McpHttp {
    let calls = Calls::default();
    let service = McpService {
        toolbox: Toolbox::new(state, wakeups, settings.mcp.recheck()),
        identity: Identity::Http,
        calls: calls.clone(),
    };
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(settings.api.max_body_bytes)
        .with_cancellation_token(stop.child_token());
    config = if settings.mcp.allowed_hosts.is_empty() {
        config.disable_allowed_hosts()
    } else {
        config.with_allowed_hosts(settings.mcp.allowed_hosts.clone())
    };
    McpHttp {
        service: StreamableHttpService::new(
            move || Ok(service.clone()),
            Arc::new(NeverSessionManager::default()),
            config,
        ),
        calls,
    }
}

/// `phaseflow mcp`: serves the agent whose token is `token` on stdin and stdout until the
/// client closes them or `stop` is cancelled. Logs go to stderr. Applies no migrations.
pub async fn run_stdio(
    settings: Settings,
    token: String,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let workflow = api::open_workflow(&settings).await?;
    let pool = workflow.pool().clone();
    let state = ApiState::new(workflow, &settings, None, stop.clone());
    let agent = api::authenticate(&state, token.as_bytes())
        .await
        .map_err(|error| match error.status {
            axum::http::StatusCode::UNAUTHORIZED => {
                anyhow::anyhow!("PHASEFLOW_TOKEN: {}", error.reasons.join("; "))
            }
            _ => anyhow::anyhow!(
                "cannot check PHASEFLOW_TOKEN against the agents in Postgres ({}): {}",
                redact_url(&settings.database.url),
                error.message
            ),
        })?;
    tracing::info!(agent = agent.id.as_str(), database = %redact_url(&settings.database.url), "MCP server on stdio");
    // the listener of new events ends with the session, before the pool closes
    let listening = stop.child_token();
    let service = McpService {
        toolbox: Toolbox::new(
            state,
            Wakeups::new(pool.clone(), listening.clone()),
            settings.mcp.recheck(),
        ),
        identity: Identity::Token(Arc::new(token.into_bytes())),
        calls: Calls::default(),
    };
    let running = service
        .serve(rmcp::transport::stdio())
        .await
        .context("the MCP client did not initialize")?;
    let cancel = running.cancellation_token();
    tokio::select! {
        quit = running.waiting() => {
            tracing::info!(reason = ?quit.ok(), "MCP client disconnected");
        }
        () = stop.cancelled() => cancel.cancel(),
    }
    listening.cancel();
    if tokio::time::timeout(Duration::from_secs(2), pool.close())
        .await
        .is_err()
    {
        tracing::warn!("database connections still busy at exit");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancellation_names_its_request_and_nothing_else_does() {
        let cancel = br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"user"}}"#;
        assert_eq!(cancelled_request(cancel).as_deref(), Some("7"));
        let named =
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"a-1"}}"#;
        assert_eq!(cancelled_request(named).as_deref(), Some("a-1"));
        let call = br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"whoami"}}"#;
        assert_eq!(cancelled_request(call), None);
        assert_eq!(cancelled_request(b"not json"), None);
    }
}
