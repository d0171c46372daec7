//! The agents endpoints: who the agents are, and their management by operators.
//!
//! - `GET /api/v1/agents` (any agent): every agent with its roles, limit, live claims (stalled
//!   ones marked), last request and finished tasks, and the latest entries of the record of what
//!   operators did to agents; `GET /api/v1/agents/{agent_id}`: one of them.
//! - `POST /api/v1/agents` registers an agent and answers with its first token,
//!   `POST /api/v1/agents/{agent_id}/tokens` issues another (`?rotate=true` revokes the others),
//!   `DELETE /api/v1/agents/{agent_id}/tokens` revokes all of them: operators only, else 403
//!   `forbidden`.
//!
//! A token appears in exactly one answer, the one that issued it; no answer, log line or event
//! shows a token or its hash. An agent listed without a record is one of the configured tokens
//! or `auth.operators`, or one that holds a claim without being registered.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Json;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::Agent;
use super::error::ApiError;
use super::request::{path_param, JsonBody, QueryParams};
use super::views::optional_time;
use super::ApiState;
use crate::domain::{ClaimId, TaskId, TicketId};
use crate::protocol::fields::Fields;
use crate::protocol::{Rejection, RejectionCode};
use crate::store::agents::{LiveClaim, RecordEntry};
use crate::workflow::{ListedAgent, Registration, RegistryError, WorkflowError, MAX_ROLES};
use phaseflow_client::limits::{NAME_MAX_CHARS, NAME_PATTERN};
use phaseflow_client::usage::UsageTotal;

/// The agents endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentOperation {
    List,
    Register,
    Get,
    IssueToken,
    RevokeTokens,
}

impl AgentOperation {
    /// The `operationId` in `openapi.json`.
    pub fn id(self) -> &'static str {
        match self {
            AgentOperation::List => "listAgents",
            AgentOperation::Register => "registerAgent",
            AgentOperation::Get => "getAgent",
            AgentOperation::IssueToken => "issueAgentToken",
            AgentOperation::RevokeTokens => "revokeAgentTokens",
        }
    }

    pub(super) fn handler(self, filter: MethodFilter) -> MethodRouter<ApiState> {
        match self {
            AgentOperation::List => on(filter, list),
            AgentOperation::Register => on(filter, register),
            AgentOperation::Get => on(filter, get),
            AgentOperation::IssueToken => on(filter, issue_token),
            AgentOperation::RevokeTokens => on(filter, revoke_tokens),
        }
    }
}

/// The query parameter of `POST /api/v1/agents/{agent_id}/tokens`.
pub const ISSUE_PARAMETERS: [&str; 1] = ["rotate"];

/// The entries of the record of what was done to agents that a listing shows.
pub const RECORD_ENTRIES: i64 = 50;

/// The most live claims per agent a listing shows.
pub const LIVE_CLAIMS_SHOWN: usize = 100;

/// An agent as the agents endpoints show it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Agent")]
pub struct AgentView {
    pub agent_id: String,
    /// role names; `*` is every role
    pub roles: Vec<String>,
    /// the live leases it may hold at once (its own, else `agents.default_max_claims`)
    pub max_claims: u32,
    pub operator: bool,
    /// its daily budget in US dollars (null: none)
    pub daily_cost_usd: Option<f64>,
    /// whether it has a record; an agent without one is a configured token's or operator's, or
    /// one that holds a claim without being registered
    pub registered: bool,
    /// the tasks it holds now, oldest claim first
    pub live_claims: Vec<LiveClaimView>,
    /// its latest request (written at most every few seconds; null: never, or not registered)
    #[serde(with = "optional_time")]
    #[schemars(with = "Option<DateTime<Utc>>")]
    pub last_seen_at: Option<DateTime<Utc>>,
    /// tasks it reported completed
    pub tasks_completed: i64,
    /// tasks that failed in its hands (reported failed, or failed when its lease ran out)
    pub tasks_failed: i64,
    /// what its work cost on the current UTC day, as it reported it (its claims are refused
    /// `budget_exhausted` once `cost_usd` reaches `daily_cost_usd`)
    pub spent_today: UsageTotal,
}

/// A live claim.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "LiveClaim")]
pub struct LiveClaimView {
    pub task_id: TaskId,
    pub ticket_id: TicketId,
    pub task_type: String,
    pub claim_id: Option<ClaimId>,
    #[serde(with = "optional_time")]
    #[schemars(with = "Option<DateTime<Utc>>")]
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// whether it was reported stalled (`task.stalled`) and made no progress since
    pub stalled: bool,
    /// its last progress (the claim counts)
    #[serde(with = "optional_time")]
    #[schemars(with = "Option<DateTime<Utc>>")]
    pub last_progress_at: Option<DateTime<Utc>>,
}

impl From<&LiveClaim> for LiveClaimView {
    fn from(claim: &LiveClaim) -> Self {
        LiveClaimView {
            task_id: TaskId(claim.task_id),
            ticket_id: TicketId(claim.ticket_id),
            task_type: claim.task_type.clone(),
            claim_id: claim.claim_id.map(ClaimId),
            lease_expires_at: claim.lease_expires_at,
            stalled: claim.stalled_at.is_some_and(|stalled| {
                claim
                    .last_progress_at
                    .is_none_or(|progress| progress <= stalled)
            }),
            last_progress_at: claim.last_progress_at,
        }
    }
}

/// Every agent, and what operators did to agents lately.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Agents")]
pub struct AgentsView {
    /// by agent id
    pub agents: Vec<AgentView>,
    /// the latest registrations, tokens issued and revocations, newest first
    pub record: Vec<AgentRecordView>,
}

/// An entry of the record of what was done to agents.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "AgentRecordEntry")]
pub struct AgentRecordView {
    pub agent_id: String,
    /// `registered`, `token issued` or `tokens revoked`
    pub action: String,
    /// the operator who did it (`cli` for the command line)
    pub actor: String,
    #[serde(with = "crate::protocol::events::time")]
    #[schemars(with = "DateTime<Utc>")]
    pub at: DateTime<Utc>,
}

impl From<RecordEntry> for AgentRecordView {
    fn from(entry: RecordEntry) -> Self {
        AgentRecordView {
            agent_id: entry.agent_id,
            action: entry.action,
            actor: entry.actor,
            at: entry.at,
        }
    }
}

/// The body of `POST /api/v1/agents`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "AgentRegistration")]
pub struct RegistrationBody {
    /// 1 to 64 of a-z, 0-9, `.`, `_` and `-`
    #[schemars(length(min = 1, max = NAME_MAX_CHARS), pattern(NAME_PATTERN))]
    pub agent_id: String,
    /// role names (1 to 64 of a-z, 0-9, `.`, `_` and `-`), or `*` for every role; none: it may
    /// claim only tasks that need no role
    #[schemars(length(max = MAX_ROLES), inner(pattern(r"^([a-z0-9._-]{1,64}|\*)$")))]
    pub roles: Vec<String>,
    /// the live leases it may hold at once; default `agents.default_max_claims`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_CLAIMS))]
    pub max_claims: Option<u32>,
    /// whether it is an operator (default false)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<bool>,
    /// its daily budget in US dollars
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = crate::workflow::MAX_DAILY_COST_USD))]
    pub daily_cost_usd: Option<f64>,
}

/// The largest `max_claims` an agent may be given.
pub const MAX_CLAIMS: u32 = 10_000;

/// A registered agent and its first token.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "RegisteredAgent")]
pub struct RegisteredView {
    pub agent: AgentView,
    /// its bearer token: shown this once, stored only as a hash
    pub token: String,
}

/// A token issued.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "IssuedToken")]
pub struct IssuedView {
    pub agent_id: String,
    /// the bearer token: shown this once, stored only as a hash
    pub token: String,
    /// whether the agent's other tokens were revoked with it
    pub rotated: bool,
}

/// Tokens revoked.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "RevokedTokens")]
pub struct RevokedView {
    pub agent_id: String,
    /// how many live tokens were revoked (refused at once by every API process)
    pub revoked: u64,
}

/// An `{agent_id}` path parameter.
pub struct AgentIdPath(pub String);

impl FromRequestParts<ApiState> for AgentIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let text = path_param(parts, state, "agent_id").await?;
        if !phaseflow_client::limits::is_valid_name(&text) {
            return Err(ApiError::invalid(vec![format!(
                "agent_id: `{text}` is not an agent id: 1 to 64 of a-z, 0-9, `.`, `_` and `-`"
            )]));
        }
        Ok(AgentIdPath(text))
    }
}

/// The 403 of an agent that is not an operator.
fn not_an_operator(agent: &Agent, what: &str) -> Response {
    ApiError::rejected(&Rejection::new(
        RejectionCode::Forbidden,
        None,
        format!(
            "only an operator may {what}, and {} is not one (operators are registered as such \
             or named in auth.operators)",
            agent.id
        ),
    ))
    .into_response()
}

fn agent_not_found(agent_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        super::error::code::AGENT_NOT_FOUND,
        format!("agent {agent_id} is not registered"),
    )
}

fn registry_error(error: RegistryError) -> Response {
    match error {
        RegistryError::Invalid(reasons) => ApiError::invalid(reasons).into_response(),
        RegistryError::Exists(agent_id) => ApiError::new(
            StatusCode::CONFLICT,
            super::error::code::AGENT_EXISTS,
            format!("agent {agent_id} is registered already: issue it a token instead"),
        )
        .into_response(),
        RegistryError::NotFound(agent_id) => agent_not_found(&agent_id).into_response(),
        RegistryError::Workflow(error) => ApiError::from_workflow(&error).into_response(),
    }
}

impl From<ListedAgent> for AgentView {
    fn from(agent: ListedAgent) -> Self {
        AgentView {
            agent_id: agent.agent_id,
            roles: agent.profile.roles,
            max_claims: agent.profile.max_claims,
            operator: agent.profile.operator,
            daily_cost_usd: agent.daily_cost_usd,
            registered: agent.profile.registered,
            live_claims: agent.live_claims.iter().map(LiveClaimView::from).collect(),
            last_seen_at: agent.last_seen_at,
            tasks_completed: agent.finished.completed,
            tasks_failed: agent.finished.failed,
            spent_today: agent.spent_today,
        }
    }
}

/// The agents named (every agent when `None`), as the endpoints show them.
async fn views(state: &ApiState, only: Option<&str>) -> Result<Vec<AgentView>, WorkflowError> {
    let agents = state
        .workflow
        .agent_listing(only, LIVE_CLAIMS_SHOWN)
        .await?;
    Ok(agents.into_iter().map(AgentView::from).collect())
}

/// `GET /api/v1/agents`.
async fn list(State(state): State<ApiState>, _agent: Agent, query: QueryParams) -> Response {
    let reasons = query.only(&[]);
    if !reasons.is_empty() {
        return ApiError::invalid(reasons).into_response();
    }
    let record = state.workflow.agent_record(RECORD_ENTRIES).await;
    match (views(&state, None).await, record) {
        (Ok(agents), Ok(record)) => Json(AgentsView {
            agents,
            record: record.into_iter().map(AgentRecordView::from).collect(),
        })
        .into_response(),
        (Err(error), _) | (_, Err(error)) => ApiError::from_workflow(&error).into_response(),
    }
}

/// `GET /api/v1/agents/{agent_id}`.
async fn get(
    State(state): State<ApiState>,
    _agent: Agent,
    AgentIdPath(agent_id): AgentIdPath,
) -> Response {
    match agent_view(&state, &agent_id).await {
        Ok(agent) => Json(agent).into_response(),
        Err(error) => error.into_response(),
    }
}

/// One agent as `GET /api/v1/agents/{agent_id}` shows it, or 404.
pub(crate) async fn agent_view(state: &ApiState, agent_id: &str) -> Result<AgentView, ApiError> {
    let agents = views(state, Some(agent_id))
        .await
        .map_err(|error| ApiError::from_workflow(&error))?;
    agents
        .into_iter()
        .find(|agent| agent.agent_id == agent_id)
        .ok_or_else(|| agent_not_found(agent_id))
}

/// Reads a registration, one reason per bad field.
fn parse_registration(body: Option<&Value>) -> Result<Registration, ApiError> {
    let mut fields = Fields::new(body);
    let agent_id = fields.required_text("agent_id", NAME_MAX_CHARS);
    let roles = match fields.get("roles") {
        None => {
            fields.reasons.push("roles: is required".to_owned());
            None
        }
        Some(_) => fields.optional_text_list("roles", MAX_ROLES, NAME_MAX_CHARS),
    };
    let max_claims = fields.optional_integer_in("max_claims", 1..=MAX_CLAIMS);
    let bad_claims = fields.get("max_claims").is_some() && max_claims.is_none();
    let operator = fields.optional_bool("operator");
    let bad_operator = fields.get("operator").is_some() && operator.is_none();
    let daily_cost_usd = match fields.get("daily_cost_usd") {
        None => None,
        Some(value) => match value.as_f64() {
            Some(cost) => Some(cost),
            None => {
                fields
                    .reasons
                    .push("daily_cost_usd: must be a number".to_owned());
                None
            }
        },
    };
    // the names' own rules too, so that one answer names every bad field
    let named = Registration {
        agent_id: agent_id.clone().unwrap_or_else(|| "x".to_owned()),
        roles: roles.clone().unwrap_or_default(),
        max_claims: None,
        operator: false,
        daily_cost_usd,
    };
    fields.reasons.extend(named.problems());
    let parsed = match (agent_id, roles) {
        (Some(agent_id), Some(roles)) if !bad_claims && !bad_operator => Some(Registration {
            agent_id,
            roles,
            max_claims,
            operator: operator.unwrap_or(false),
            daily_cost_usd,
        }),
        _ => None,
    };
    let registration = fields
        .finish(parsed)
        .map_err(|invalid| ApiError::invalid(invalid.reasons))?;
    let problems = registration.problems();
    if problems.is_empty() {
        Ok(registration)
    } else {
        Err(ApiError::invalid(problems))
    }
}

/// `POST /api/v1/agents`: operators only.
async fn register(State(state): State<ApiState>, agent: Agent, body: JsonBody) -> Response {
    if !agent.is_operator() {
        return not_an_operator(&agent, "register agents");
    }
    let registration = match parse_registration(body.0.as_ref()) {
        Ok(registration) => registration,
        Err(error) => return error.into_response(),
    };
    let (record, token) = match state
        .workflow
        .register_agent(&registration, &agent.id)
        .await
    {
        Ok(registered) => registered,
        Err(error) => return registry_error(error),
    };
    match views(&state, Some(&record.agent_id)).await {
        Ok(mut agents) if !agents.is_empty() => (
            StatusCode::CREATED,
            Json(RegisteredView {
                agent: agents.remove(0),
                token: token.reveal().to_owned(),
            }),
        )
            .into_response(),
        Ok(_) => agent_not_found(&record.agent_id).into_response(),
        Err(error) => ApiError::from_workflow(&error).into_response(),
    }
}

/// `POST /api/v1/agents/{agent_id}/tokens[?rotate=true]`: operators only.
async fn issue_token(
    State(state): State<ApiState>,
    agent: Agent,
    AgentIdPath(agent_id): AgentIdPath,
    query: QueryParams,
) -> Response {
    let mut reasons = query.only(&ISSUE_PARAMETERS);
    let rotate = super::discovery::parse(&query, "rotate", &mut reasons, |text| match text {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("`{other}` is neither true nor false")),
    })
    .unwrap_or(false);
    if !reasons.is_empty() {
        return ApiError::invalid(reasons).into_response();
    }
    if !agent.is_operator() {
        return not_an_operator(&agent, "issue tokens");
    }
    match state
        .workflow
        .issue_token(&agent_id, rotate, &agent.id)
        .await
    {
        Ok(token) => (
            StatusCode::CREATED,
            Json(IssuedView {
                agent_id,
                token: token.reveal().to_owned(),
                rotated: rotate,
            }),
        )
            .into_response(),
        Err(error) => registry_error(error),
    }
}

/// `DELETE /api/v1/agents/{agent_id}/tokens`: operators only.
async fn revoke_tokens(
    State(state): State<ApiState>,
    agent: Agent,
    AgentIdPath(agent_id): AgentIdPath,
) -> Response {
    if !agent.is_operator() {
        return not_an_operator(&agent, "revoke tokens");
    }
    match state.workflow.revoke_tokens(&agent_id, &agent.id).await {
        Ok(revoked) => Json(RevokedView { agent_id, revoked }).into_response(),
        Err(error) => registry_error(error),
    }
}
