//! The API's one error shape, `{"error": {"code", "message", "reasons": [..]}}`,
//! and the mapping from workflow rejections and failures to HTTP statuses.
//!
//! This module decides statuses only; it must not decide workflow outcomes. A rejection keeps
//! the code and reasons the workflow gave it, exactly as the `….rejected` event carries them.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::protocol::{Rejection, RejectionCode};
use crate::workflow::WorkflowError;

use super::views::{ErrorBody, ErrorDetail};

/// Error codes of the API's own (not the workflow's) failures.
pub mod code {
    /// no valid bearer token (401)
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// the body, a header or a path parameter is not what the endpoint takes (422)
    pub const INVALID_REQUEST: &str = "invalid_request";
    /// the body is larger than `api.max_body_bytes` (413)
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// no such route (404)
    pub const NOT_FOUND: &str = "not_found";
    /// the route exists but not with this method (405)
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// this `Idempotency-Key` was applied before; nothing changed (409)
    pub const DUPLICATE_REQUEST: &str = "duplicate_request";
    /// Postgres is unreachable or kept conflicting: try again (503)
    pub const UNAVAILABLE: &str = "unavailable";
    /// a bug: the request could not be processed (500)
    pub const INTERNAL: &str = "internal";
    /// no dead letter with that message id (replayed already, or never dead-lettered)
    pub const DEAD_LETTER_NOT_FOUND: &str = "dead_letter_not_found";
    /// no registered agent with that id (404)
    pub const AGENT_NOT_FOUND: &str = "agent_not_found";
    /// an agent with that id is registered already (409)
    pub const AGENT_EXISTS: &str = "agent_exists";
}

/// A failed request, rendered as the API's one error body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub reasons: Vec<String>,
    /// `WWW-Authenticate` challenge (401 only)
    challenge: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            reasons: Vec::new(),
            challenge: None,
        }
    }

    pub fn with_reasons(mut self, reasons: Vec<String>) -> Self {
        self.reasons = reasons;
        self
    }

    /// 422 `invalid_request` whose reasons name the offending field.
    pub fn invalid(reasons: Vec<String>) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code::INVALID_REQUEST,
            "the request is invalid",
        )
        .with_reasons(reasons)
    }

    /// 401 with a Bearer challenge; `reason` says what was wrong, never the token itself.
    pub fn unauthorized(reason: &str, challenge: &'static str) -> Self {
        let mut error = ApiError::new(
            StatusCode::UNAUTHORIZED,
            code::UNAUTHORIZED,
            "a valid bearer token is required",
        )
        .with_reasons(vec![reason.to_owned()]);
        error.challenge = Some(challenge);
        error
    }

    pub fn payload_too_large(limit: usize) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::PAYLOAD_TOO_LARGE,
            "the request body is too large",
        )
        .with_reasons(vec![format!(
            "body: larger than the limit of {limit} bytes"
        )])
    }

    pub fn duplicate(key: &str) -> Self {
        ApiError::new(
            StatusCode::CONFLICT,
            code::DUPLICATE_REQUEST,
            "a request with this Idempotency-Key was applied before; nothing changed",
        )
        .with_reasons(vec![format!(
            "Idempotency-Key: `{key}` was used before by this agent"
        )])
    }

    /// The HTTP form of a workflow rejection: its code and reasons, a status per code.
    pub fn rejected(rejection: &Rejection) -> Self {
        let status = status_of(rejection.code);
        let reasons: Vec<String> = rejection
            .reasons
            .iter()
            .filter(|reason| !reason.is_empty())
            .cloned()
            .collect();
        let message = if reasons.is_empty() {
            default_message(rejection.code).to_owned()
        } else {
            reasons.join("; ")
        };
        ApiError {
            status,
            code: rejection.code.as_str(),
            message,
            reasons,
            challenge: None,
        }
    }

    /// A failure of the workflow itself: 503 when it was transient (after the retries), else 500.
    pub fn from_workflow(error: &WorkflowError) -> Self {
        if error.is_transient() {
            // the outage itself is logged once, as a warning, by the workflow's retries
            tracing::info!(%error, "database unavailable; answering 503");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                code::UNAVAILABLE,
                "the database is unavailable; try again",
            )
        } else {
            tracing::error!(error = format!("{error:#}"), "request failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                code::INTERNAL,
                "the request could not be processed",
            )
        }
    }
}

/// The status of each rejection code (docs/reference.md, "Rejections").
pub fn status_of(code: RejectionCode) -> StatusCode {
    match code {
        RejectionCode::TicketNotFound | RejectionCode::TaskNotFound => StatusCode::NOT_FOUND,
        RejectionCode::InvalidTransition
        | RejectionCode::PhaseMismatch
        | RejectionCode::TaskAlreadyFinished
        | RejectionCode::AlreadyExists
        | RejectionCode::TaskNotClaimable
        | RejectionCode::LeaseLost
        | RejectionCode::TaskClaimedByOther
        | RejectionCode::StaleClaim
        | RejectionCode::ClaimLimitReached
        | RejectionCode::BudgetExhausted
        | RejectionCode::ReviewNotRequested
        | RejectionCode::ReviewerNotIndependent => StatusCode::CONFLICT,
        RejectionCode::Forbidden => StatusCode::FORBIDDEN,
        // the claim endpoint answers it as 204 No Content; elsewhere it cannot arise
        RejectionCode::NoTaskAvailable => StatusCode::NO_CONTENT,
        RejectionCode::GateNotMet | RejectionCode::InvalidRequest => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
    }
}

fn default_message(code: RejectionCode) -> &'static str {
    match code {
        RejectionCode::AlreadyExists => "the ticket already exists",
        RejectionCode::InvalidRequest => "the request is invalid",
        RejectionCode::TicketNotFound => "the ticket does not exist",
        RejectionCode::InvalidTransition => "the transition is not allowed",
        RejectionCode::GateNotMet => "the gate of the current phase is not met",
        RejectionCode::PhaseMismatch => "the ticket is not in the expected phase",
        RejectionCode::TaskNotFound => "the task does not exist",
        RejectionCode::TaskAlreadyFinished => "the task is already completed",
        RejectionCode::TaskNotClaimable => "the task cannot be claimed now",
        RejectionCode::NoTaskAvailable => "no task is available",
        RejectionCode::LeaseLost => "the agent holds no live lease on the task",
        RejectionCode::TaskClaimedByOther => "another agent holds the task",
        RejectionCode::ClaimLimitReached => "the agent holds as many leases as it may",
        RejectionCode::BudgetExhausted => "the ticket's or the agent's budget is used up",
        RejectionCode::StaleClaim => "the report's claim is no longer the task's live claim",
        RejectionCode::ReviewNotRequested => "no review of this phase is awaited",
        RejectionCode::ReviewerNotIndependent => "the reviewer worked on the phase",
        RejectionCode::Forbidden => "only an operator may do this",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                reasons: self.reasons,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rejection_code_has_its_documented_status() {
        use RejectionCode::*;
        assert_eq!(status_of(TicketNotFound), StatusCode::NOT_FOUND);
        assert_eq!(status_of(TaskNotFound), StatusCode::NOT_FOUND);
        for conflict in [
            InvalidTransition,
            PhaseMismatch,
            TaskAlreadyFinished,
            AlreadyExists,
        ] {
            assert_eq!(status_of(conflict), StatusCode::CONFLICT);
        }
        assert_eq!(status_of(GateNotMet), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(status_of(InvalidRequest), StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn a_rejection_keeps_its_code_and_reasons() {
        let rejection = Rejection::new(
            RejectionCode::GateNotMet,
            None,
            "test_coverage: percentage 62 is below 80",
        );
        let error = ApiError::rejected(&rejection);
        assert_eq!(error.code, "gate_not_met");
        assert_eq!(
            error.reasons,
            vec!["test_coverage: percentage 62 is below 80".to_owned()]
        );
        assert_eq!(error.message, "test_coverage: percentage 62 is below 80");
    }
}
