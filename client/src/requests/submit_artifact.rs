//! `artifact.submit.requested`: its `data` and its wire facts (outcome events, rejection, HTTP
//! route, what it does). How the service applies it is the service's business.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{HttpRoute, Request};
use crate::events::event_type;
use crate::limits::{NOT_BLANK_PATTERN, SHORT_TEXT_MAX_CHARS};
use crate::{Phase, RejectionCode};

/// An artifact as a request or a task report carries it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArtifactData {
    /// 1 to 500 characters, not all whitespace; gates require artifacts by type
    #[schemars(length(min = 1, max = SHORT_TEXT_MAX_CHARS), pattern(NOT_BLANK_PATTERN))]
    pub artifact_type: String,
    /// up to 500 characters
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = SHORT_TEXT_MAX_CHARS))]
    pub artifact_path: Option<String>,
    /// what gate rules judge (e.g. `{"percentage": 85}`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_content: Option<Map<String, Value>>,
}

/// The `data` of `artifact.submit.requested`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubmitArtifactData {
    /// default: the ticket's current phase
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_id: Option<Phase>,
    #[serde(flatten)]
    pub artifact: ArtifactData,
}

impl Request for SubmitArtifactData {
    const TYPE: &'static str = "artifact.submit.requested";
    const OUTCOMES: &'static [&'static str] = &[event_type::ARTIFACT_COLLECTED];
    const REJECTION: Option<&'static str> = Some("artifact.submit.rejected");
    const REJECTION_CODES: &'static [RejectionCode] =
        &[RejectionCode::TicketNotFound, RejectionCode::InvalidRequest];
    const ROUTE: Option<HttpRoute> = Some(HttpRoute::post(
        "/api/v1/tickets/{ticket_id}/artifacts",
        201,
        "submitArtifact",
    ));
    const TITLE: &'static str = "Submit an artifact for a phase gate";
    const DESCRIPTION: &'static str = "Submit an artifact for a phase (default: the current \
        phase). The newest artifact of each type is the one a gate judges. Submitting does not \
        judge the gate.";
}
