//! What an HTTP request becomes before the workflow sees it: the [`Caller`] (an authenticated
//! agent and the [`Origin`] its events will carry), the ids and phases in the path, the query
//! parameters, and the JSON body.
//!
//! Only the HTTP-level checks live here (headers, body size, content type, JSON syntax and
//! depth, UUID and phase path parameters, unknown or repeated query parameters). What the
//! body's members mean is checked by `protocol::parse_command`, exactly as for a message, so both
//! doors validate alike.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::{Phase, TaskId, TicketId};
use crate::workflow::Origin;

use super::auth::Agent;
use super::error::ApiError;
use super::ApiState;

/// Deepest accepted nesting of arrays and objects in a body.
pub const MAX_JSON_DEPTH: usize = 32;
/// Longest accepted `Idempotency-Key` and `X-Correlation-Id`, as for a message `id`.
pub const MAX_HEADER_ID_CHARS: usize = 128;
/// What `Idempotency-Key` and `X-Correlation-Id` are made of: visible ASCII (`!` to `~`), no
/// spaces; as a JSON Schema `pattern`, for 1 to [`MAX_HEADER_ID_CHARS`] of them.
pub const HEADER_ID_PATTERN: &str = "^[!-~]+$";
/// Longest `{message_id}` of a path, as an AMQP message id (a short string, 255 bytes).
pub const MAX_MESSAGE_ID_CHARS: usize = 255;
/// Header carrying a correlation id to put on every event the request causes.
pub const CORRELATION_HEADER: &str = "x-correlation-id";
/// Header that makes a write idempotent per agent.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Response header naming the request (the events' `causationid` unless an idempotency key was given).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// An authenticated write: who asks, and the origin of the events it causes.
///
/// `message_id` is a new UUID per request, so every request is applied; with an
/// `Idempotency-Key` it is `http:<agent>:<key>` and recorded in the inbox, so a retried request
/// with the same key is applied at most once. `correlation_id` is `X-Correlation-Id` when given,
/// else the request's id.
#[derive(Debug, Clone)]
pub struct Caller {
    pub origin: Origin,
    /// the request's own id (also the `X-Request-Id` response header)
    pub request_id: String,
    pub idempotency_key: Option<String>,
}

impl Caller {
    /// An authenticated agent's request that came another way than an HTTP route (a tool call
    /// over MCP): a new id, which is also its correlation id; applied every time.
    pub fn of_agent(agent: &str) -> Self {
        let request_id = Uuid::new_v4().to_string();
        Caller {
            origin: Origin {
                message_id: request_id.clone(),
                correlation_id: request_id.clone(),
                actor: agent.to_owned(),
                reply: None,
                authenticated: true,
                // the context of the request's span (the API's or a tool call's)
                trace: crate::telemetry::trace::context_of(&tracing::Span::current()),
            },
            request_id,
            idempotency_key: None,
        }
    }

    /// Whether the workflow must apply this request's id at most once.
    pub fn dedupe(&self) -> bool {
        self.idempotency_key.is_some()
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let agent = Agent::from_request_parts(parts, state).await?.id;
        let request_id = Uuid::new_v4().to_string();
        let mut reasons = Vec::new();
        let idempotency_key = header_id(
            &parts.headers,
            IDEMPOTENCY_HEADER,
            "Idempotency-Key",
            &mut reasons,
        );
        let correlation_id = header_id(
            &parts.headers,
            CORRELATION_HEADER,
            "X-Correlation-Id",
            &mut reasons,
        );
        if !reasons.is_empty() {
            return Err(ApiError::invalid(reasons));
        }
        let message_id = match &idempotency_key {
            Some(key) => format!("http:{agent}:{key}"),
            None => request_id.clone(),
        };
        let correlation_id = correlation_id.unwrap_or_else(|| request_id.clone());
        let span = tracing::Span::current();
        span.record("request_id", request_id.as_str());
        span.record("message_id", message_id.as_str());
        span.record("correlation_id", correlation_id.as_str());
        Ok(Caller {
            origin: Origin {
                message_id,
                correlation_id,
                actor: agent,
                reply: None,
                authenticated: true,
                // the context of the request's span (the API's or a tool call's)
                trace: crate::telemetry::trace::context_of(&tracing::Span::current()),
            },
            request_id,
            idempotency_key,
        })
    }
}

/// An optional id-like header: 1–128 visible ASCII characters.
fn header_id(
    headers: &HeaderMap,
    name: &str,
    label: &str,
    reasons: &mut Vec<String>,
) -> Option<String> {
    let value = headers.get(name)?;
    let text = match value.to_str() {
        Ok(text) => text.trim(),
        Err(_) => {
            reasons.push(format!("{label}: must be visible ASCII"));
            return None;
        }
    };
    if text.is_empty()
        || text.len() > MAX_HEADER_ID_CHARS
        || !text.bytes().all(|byte| byte.is_ascii_graphic())
    {
        reasons.push(format!(
            "{label}: must be 1 to {MAX_HEADER_ID_CHARS} visible ASCII characters without spaces"
        ));
        return None;
    }
    Some(text.to_owned())
}

/// The `{ticket_id}` of a path. Not a UUID: 422 naming the parameter (no ticket can have it).
#[derive(Debug, Clone, Copy)]
pub struct TicketPath(pub TicketId);

impl FromRequestParts<ApiState> for TicketPath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let id = path_uuid(parts, state, "ticket_id").await?;
        tracing::Span::current().record("ticket_id", tracing::field::display(id));
        Ok(TicketPath(TicketId(id)))
    }
}

/// The `{task_id}` of a path. Not a UUID: 422 naming the parameter.
#[derive(Debug, Clone, Copy)]
pub struct TaskPath(pub TaskId);

impl FromRequestParts<ApiState> for TaskPath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        path_uuid(parts, state, "task_id")
            .await
            .map(|id| TaskPath(TaskId(id)))
    }
}

async fn path_uuid(parts: &mut Parts, state: &ApiState, name: &str) -> Result<Uuid, ApiError> {
    let text = path_param(parts, state, name).await?;
    Uuid::parse_str(&text)
        .map_err(|_| ApiError::invalid(vec![format!("{name}: `{text}` is not a UUID")]))
}

/// The path parameter `name` of the route.
pub(super) async fn path_param(
    parts: &mut Parts,
    state: &ApiState,
    name: &str,
) -> Result<String, ApiError> {
    let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
        .await
        .map_err(|error| ApiError::invalid(vec![format!("{name}: {error}")]))?;
    params
        .into_iter()
        .find(|(param, _)| param == name)
        .map(|(_, value)| value)
        .ok_or_else(|| ApiError::invalid(vec![format!("{name}: missing from the path")]))
}

/// The `{to_phase}` of a path. Not a phase: 422 naming the parameter.
#[derive(Debug, Clone, Copy)]
pub struct PhasePath(pub Phase);

impl FromRequestParts<ApiState> for PhasePath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let text = path_param(parts, state, "to_phase").await?;
        text.parse::<Phase>()
            .map(PhasePath)
            .map_err(|error| ApiError::invalid(vec![format!("to_phase: {error}")]))
    }
}

/// The `{phase_id}` of a path. Not a phase: 422 naming the parameter.
#[derive(Debug, Clone, Copy)]
pub struct PhaseIdPath(pub Phase);

impl FromRequestParts<ApiState> for PhaseIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let text = path_param(parts, state, "phase_id").await?;
        text.parse::<Phase>()
            .map(PhaseIdPath)
            .map_err(|error| ApiError::invalid(vec![format!("phase_id: {error}")]))
    }
}

/// The `{message_id}` of a path: 1 to [`MAX_MESSAGE_ID_CHARS`] characters. An AMQP message id
/// is at most 255 bytes, so a longer text in bytes names no dead letter (404) but is not refused:
/// the document can bound characters, not bytes.
#[derive(Debug, Clone)]
pub struct MessageIdPath(pub String);

impl FromRequestParts<ApiState> for MessageIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let text = path_param(parts, state, "message_id").await?;
        let chars = text.chars().count();
        if chars == 0 || chars > MAX_MESSAGE_ID_CHARS {
            return Err(ApiError::invalid(vec![format!(
                "message_id: {chars} characters; an AMQP message id has 1 to \
                 {MAX_MESSAGE_ID_CHARS}"
            )]));
        }
        Ok(MessageIdPath(text))
    }
}

/// The parameters of the query string, in order. [`QueryParams::only`] refuses names an
/// endpoint does not take and names given twice; an empty value (`?phase=`) is a value like any
/// other, which the parameter's reader refuses.
#[derive(Debug, Clone, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    /// Parameters given as name and value pairs, in order.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        QueryParams(pairs)
    }

    /// Reasons against parameters that are not among `known`, or given more than once.
    pub fn only(&self, known: &[&str]) -> Vec<String> {
        let mut reasons = Vec::new();
        for (index, (name, _)) in self.0.iter().enumerate() {
            if !known.contains(&name.as_str()) {
                reasons.push(format!(
                    "{name}: unknown query parameter; expected {}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        format!("one of {}", known.join(", "))
                    }
                ));
            } else if self.0[..index].iter().any(|(earlier, _)| earlier == name) {
                reasons.push(format!("{name}: given more than once"));
            }
        }
        reasons
    }

    /// The value of `name`, unless it is absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(param, _)| param == name)
            .map(|(_, value)| value.as_str())
    }
}

impl FromRequestParts<ApiState> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map(|Query(params)| QueryParams(params))
            .map_err(|error| ApiError::invalid(vec![format!("query: {error}")]))
    }
}

/// A request body: `None` when empty, else a JSON object.
///
/// Larger than `api.max_body_bytes`: 413. Not `application/json`, not JSON, nested deeper than
/// [`MAX_JSON_DEPTH`], or not an object: 422 with a reason naming the body.
#[derive(Debug, Clone)]
pub struct JsonBody(pub Option<Value>);

impl FromRequest<ApiState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &ApiState) -> Result<Self, Self::Rejection> {
        let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::payload_too_large(state.max_body_bytes)
                } else {
                    ApiError::invalid(vec![format!("body: cannot be read: {rejection}")])
                }
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(None));
        }
        if let Err(reason) =
            check_content_type(content_type.as_ref().and_then(|value| value.to_str().ok()))
        {
            return Err(ApiError::invalid(vec![reason]));
        }
        parse_json_object(&bytes)
            .map(|value| JsonBody(Some(value)))
            .map_err(|reason| ApiError::invalid(vec![reason]))
    }
}

/// `application/json` or any `application/*+json`, parameters allowed.
fn check_content_type(content_type: Option<&str>) -> Result<(), String> {
    let Some(content_type) = content_type else {
        return Err("Content-Type: is required with a body; expected application/json".to_owned());
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if json {
        Ok(())
    } else {
        Err(format!("Content-Type: `{essence}` is not application/json"))
    }
}

/// Parses a body that must be a JSON object no deeper than [`MAX_JSON_DEPTH`].
pub fn parse_json_object(bytes: &[u8]) -> Result<Value, String> {
    if nesting_exceeds(bytes, MAX_JSON_DEPTH) {
        return Err(format!(
            "body: JSON nested deeper than {MAX_JSON_DEPTH} levels"
        ));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err("body: must be a JSON object".to_owned()),
        Err(error) => Err(format!("body: not valid JSON: {error}")),
    }
}

/// Whether arrays and objects nest deeper than `limit`, counted on the raw bytes (brackets
/// inside strings do not count), before anything is allocated for them.
fn nesting_exceeds(bytes: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        let deep = format!("{}{}", "[".repeat(33), "]".repeat(33));
        assert!(nesting_exceeds(deep.as_bytes(), 32));
        let limit = format!("{}{}", "[".repeat(32), "]".repeat(32));
        assert!(!nesting_exceeds(limit.as_bytes(), 32));
        let in_string = format!("{{\"a\": \"{}\\\"{}\"}}", "[".repeat(40), "{".repeat(40));
        assert!(!nesting_exceeds(in_string.as_bytes(), 32));
    }

    #[test]
    fn bodies_must_be_json_objects() {
        assert!(parse_json_object(br#"{"title": "x"}"#).is_ok());
        assert_eq!(
            parse_json_object(b"[1]").unwrap_err(),
            "body: must be a JSON object"
        );
        assert!(parse_json_object(b"{\"title\": ")
            .unwrap_err()
            .starts_with("body: not valid JSON"));
        let deep = format!("{{\"a\": {}{}}}", "[".repeat(40), "]".repeat(40));
        assert!(parse_json_object(deep.as_bytes())
            .unwrap_err()
            .contains("deeper than 32"));
    }

    #[test]
    fn json_content_types_are_accepted() {
        assert!(check_content_type(Some("application/json")).is_ok());
        assert!(check_content_type(Some("application/json; charset=utf-8")).is_ok());
        assert!(check_content_type(Some("application/merge-patch+json")).is_ok());
        assert!(check_content_type(Some("text/plain"))
            .unwrap_err()
            .contains("text/plain"));
        assert!(check_content_type(None).is_err());
    }
}
