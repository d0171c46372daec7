//! Bearer-token authentication: `Authorization: Bearer <token>` names the calling agent, whose
//! id becomes the actor of everything the request causes (`transitioned_by`, `collected_by`, the
//! events' `actor`).
//!
//! A token is either configured (`api.tokens`, for development: its agent has every role) or
//! issued to a registered agent, and then looked up by its hash in Postgres on every request,
//! so a revoked token is refused at once by every API process. Configured tokens are compared in
//! constant time, against every one of them without an early exit, so timing tells nothing about
//! how much of a guess was right or which agent it matched. Tokens are never logged, not even
//! in part: only the agent id they resolve to.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use super::error::ApiError;
use super::ApiState;
use crate::domain::AgentProfile;

/// The configured tokens, agent id by token.
pub struct Tokens {
    entries: Vec<(String, Vec<u8>)>,
}

impl Tokens {
    /// From `api.tokens` (agent id → token).
    pub fn new<'a>(tokens: impl IntoIterator<Item = (&'a String, &'a String)>) -> Self {
        Tokens {
            entries: tokens
                .into_iter()
                .map(|(agent, token)| (agent.clone(), token.as_bytes().to_vec()))
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The agent a token belongs to. Every configured token is compared, whatever matched.
    pub fn agent_of(&self, presented: &[u8]) -> Option<&str> {
        let mut found = None;
        for (agent, token) in &self.entries {
            if constant_time_eq(token, presented) {
                found = Some(agent.as_str());
            }
        }
        found
    }

    /// The token of a request's `Authorization` header, or the 401 to answer.
    pub fn presented(headers: &HeaderMap) -> Result<&[u8], ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized(
                "Authorization: the header is missing",
                CHALLENGE,
            ));
        };
        bearer_token(value.as_bytes()).ok_or_else(|| {
            ApiError::unauthorized("Authorization: expected `Bearer <token>`", INVALID_TOKEN)
        })
    }
}

const CHALLENGE: &str = "Bearer realm=\"phaseflow\"";
const INVALID_TOKEN: &str = "Bearer realm=\"phaseflow\", error=\"invalid_token\"";

/// The 401 of a token that is neither configured nor live.
fn unknown_token() -> ApiError {
    tracing::info!("request with an unknown or revoked bearer token refused");
    ApiError::unauthorized("Authorization: the token is not valid", INVALID_TOKEN)
}

/// The token of `Bearer <token>` (scheme case-insensitive, RFC 6750 token characters only).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let scheme = b"bearer ";
    if value.len() <= scheme.len() || !value[..scheme.len()].eq_ignore_ascii_case(scheme) {
        return None;
    }
    let token = value[scheme.len()..].trim_ascii();
    let token_char = |byte: &u8| byte.is_ascii_alphanumeric() || b"-._~+/=".contains(byte);
    (!token.is_empty() && token.iter().all(token_char)).then_some(token)
}

/// Equality whose running time depends only on the lengths, not on where the bytes differ.
fn constant_time_eq(expected: &[u8], presented: &[u8]) -> bool {
    let length = expected.len().max(presented.len());
    let mut difference = expected.len() ^ presented.len();
    for index in 0..length {
        let left = expected.get(index).copied().unwrap_or(0);
        let right = presented.get(index).copied().unwrap_or(0);
        difference |= usize::from(left ^ right);
    }
    std::hint::black_box(difference) == 0
}

/// The authenticated caller: the agent its token belongs to and what it may do.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    pub id: String,
    pub profile: AgentProfile,
    /// the token it presented, when issued to a registered agent (which can be revoked); kept
    /// only while the request lasts (a live stream checks it again after a revocation)
    pub(super) issued_token: Option<Vec<u8>>,
}

impl Agent {
    /// Whether it may act as an operator: registered as one, or listed in `auth.operators`.
    pub fn is_operator(&self) -> bool {
        self.profile.operator
    }
}

impl FromRequestParts<ApiState> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let token = Tokens::presented(&parts.headers)?;
        let agent = authenticate(state, token).await?;
        tracing::Span::current().record("agent", agent.id.as_str());
        Ok(agent)
    }
}

/// The agent a token belongs to: a configured token's, else a live issued token's; a token
/// that is neither is refused (401 `unauthorized`).
pub(crate) async fn authenticate(state: &ApiState, token: &[u8]) -> Result<Agent, ApiError> {
    if let Some(agent) = state.tokens.agent_of(token) {
        return Ok(Agent {
            id: agent.to_owned(),
            profile: state.workflow.configured_profile(agent),
            issued_token: None,
        });
    }
    match state.workflow.agent_of_token(token).await {
        Ok(Some(record)) => Ok(Agent {
            profile: state.workflow.registered_profile(&record),
            id: record.agent_id,
            issued_token: Some(token.to_vec()),
        }),
        Ok(None) => Err(unknown_token()),
        Err(error) => Err(ApiError::from_workflow(&error)),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn tokens() -> Tokens {
        let configured = [
            ("agent-1".to_owned(), "secret-one".to_owned()),
            ("agent-2".to_owned(), "s2".to_owned()),
        ];
        Tokens::new(configured.iter().map(|(agent, token)| (agent, token)))
    }

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn authenticate(value: &str) -> Result<Option<String>, ApiError> {
        let headers = headers(value);
        let token = Tokens::presented(&headers)?;
        Ok(tokens().agent_of(token).map(str::to_owned))
    }

    #[test]
    fn a_configured_token_names_its_agent() {
        assert_eq!(
            authenticate("Bearer secret-one").unwrap().as_deref(),
            Some("agent-1")
        );
        assert_eq!(
            authenticate("bearer s2").unwrap().as_deref(),
            Some("agent-2")
        );
    }

    #[test]
    fn missing_malformed_and_unknown_tokens_are_refused() {
        for value in [
            "Bearer secret-on",
            "Bearer secret-one2",
            "Basic c2VjcmV0",
            "Bearer",
            "Bearer  ",
            "secret-one",
            "Bearer a b",
        ] {
            let error = authenticate(value)
                .and_then(|agent| agent.ok_or_else(unknown_token))
                .unwrap_err();
            assert_eq!(
                error.status,
                axum::http::StatusCode::UNAUTHORIZED,
                "{value}"
            );
            assert!(
                !error.message.contains("secret") && !error.reasons.join(" ").contains("secret"),
                "{value}"
            );
        }
        assert!(Tokens::presented(&HeaderMap::new()).is_err());
    }

    #[test]
    fn constant_time_equality_is_plain_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(!constant_time_eq(b"ab\0", b"ab"));
    }
}
