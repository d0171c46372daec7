//! CloudEvents 1.0 structured-mode JSON: decoding requests and shaping events.
//!
//! A body that is not a CloudEvent (or names a type phaseflow does not consume) is a
//! [`DecodeError`]: it goes to the dead-letter queue and is never retried. Problems inside `data`
//! are not decode errors: they become `invalid_request` rejections.

use serde::Serialize;
use serde_json::{Map, Value};

/// Longest accepted request `id`.
pub const MAX_ID_CHARS: usize = 128;

/// Why a body is not a request phaseflow can act on. The text is the `x-phaseflow-error` header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("body of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body is not a CloudEvent: {0}")]
    NotCloudEvent(String),
    #[error("unsupported CloudEvents specversion `{0}`; expected \"1.0\"")]
    UnsupportedSpecVersion(String),
    #[error("unknown request type `{name}`; expected one of {expected}")]
    UnknownType { name: String, expected: String },
}

/// A decoded request: the CloudEvent attributes phaseflow uses, with `data` still untyped.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestEnvelope {
    pub id: String,
    pub source: String,
    /// the `type` attribute; which types are known is the request table's business
    pub type_name: String,
    pub subject: Option<String>,
    pub actor: Option<String>,
    pub correlation_id: Option<String>,
    /// the W3C trace context of the caller (the distributed-tracing extension's `traceparent`
    /// and `tracestate`), when given as strings; one that is malformed is ignored where it is
    /// read, as W3C asks, and the request starts a trace of its own
    pub trace: Option<TraceContext>,
    /// the `time` attribute, when it is an RFC 3339 time (when the sender sent it; one that is
    /// not a time is ignored)
    pub time: Option<chrono::DateTime<chrono::Utc>>,
    /// `None` when the request had no `data` member.
    pub data: Option<Value>,
}

/// W3C trace context as it travels: a `traceparent` (`00-<trace id>-<span id>-<flags>`) and an
/// optional `tracestate`, on a request or an event (CloudEvents attributes, AMQP headers or HTTP
/// headers of the same names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub traceparent: String,
    pub tracestate: Option<String>,
}

/// The longest `traceparent` read (version 00 has 55 characters; later versions may add more).
pub const MAX_TRACEPARENT_CHARS: usize = 128;
/// The longest `tracestate` read (W3C: 32 members of at most 256 characters; 512 is what
/// implementations are asked to propagate at least).
pub const MAX_TRACESTATE_CHARS: usize = 512;

impl TraceContext {
    /// A context from `traceparent` and `tracestate` texts: `None` without a usable
    /// `traceparent` (absent, empty or too long); a `tracestate` too long is left out.
    pub fn read(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<TraceContext> {
        let traceparent = traceparent?.trim();
        if traceparent.is_empty() || traceparent.len() > MAX_TRACEPARENT_CHARS {
            return None;
        }
        Some(TraceContext {
            traceparent: traceparent.to_owned(),
            tracestate: tracestate
                .map(str::trim)
                .filter(|state| !state.is_empty() && state.len() <= MAX_TRACESTATE_CHARS)
                .map(str::to_owned),
        })
    }
}

impl RequestEnvelope {
    /// Decodes a structured-mode CloudEvent body.
    pub fn decode(body: &[u8], max_bytes: usize) -> Result<RequestEnvelope, DecodeError> {
        if body.len() > max_bytes {
            return Err(DecodeError::TooLarge {
                size: body.len(),
                limit: max_bytes,
            });
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|error| DecodeError::NotJson(error.to_string()))?;
        let Value::Object(mut object) = value else {
            return Err(DecodeError::NotCloudEvent(
                "the body is not a JSON object".into(),
            ));
        };
        let specversion = required_string(&object, "specversion")?;
        if specversion != "1.0" {
            return Err(DecodeError::UnsupportedSpecVersion(specversion));
        }
        let id = required_string(&object, "id")?;
        let id_chars = id.chars().count();
        if id_chars == 0 || id_chars > MAX_ID_CHARS {
            return Err(DecodeError::NotCloudEvent(format!(
                "`id` must be 1 to {MAX_ID_CHARS} characters, got {id_chars}"
            )));
        }
        let source = required_string(&object, "source")?;
        if source.is_empty() {
            return Err(DecodeError::NotCloudEvent("`source` is empty".into()));
        }
        let type_name = required_string(&object, "type")?;

        Ok(RequestEnvelope {
            id,
            source,
            type_name,
            subject: optional_string(&object, "subject")?,
            actor: optional_string(&object, "actor")?,
            correlation_id: optional_string(&object, "correlationid")?,
            trace: TraceContext::read(
                object.get("traceparent").and_then(Value::as_str),
                object.get("tracestate").and_then(Value::as_str),
            ),
            time: object
                .get("time")
                .and_then(Value::as_str)
                .and_then(|time| chrono::DateTime::parse_from_rfc3339(time).ok())
                .map(|time| time.with_timezone(&chrono::Utc)),
            data: object.remove("data"),
        })
    }

    /// The `id` of a body that [`RequestEnvelope::decode`] refused, when it still is a JSON
    /// object within `max_bytes` whose `id` is a string of 1 to [`MAX_ID_CHARS`] characters: for
    /// the log line of its dead letter, so that the two can be matched. Nothing else may rely
    /// on it.
    pub fn id_of_undecodable(body: &[u8], max_bytes: usize) -> Option<String> {
        if body.len() > max_bytes {
            return None;
        }
        let value: Value = serde_json::from_slice(body).ok()?;
        let id = value.get("id")?.as_str()?;
        (1..=MAX_ID_CHARS)
            .contains(&id.chars().count())
            .then(|| id.to_owned())
    }

    /// Who asked: the `actor` attribute, else the `source`.
    pub fn requester(&self) -> &str {
        self.actor
            .as_deref()
            .filter(|actor| !actor.is_empty())
            .unwrap_or(&self.source)
    }
}

fn required_string(object: &Map<String, Value>, name: &str) -> Result<String, DecodeError> {
    match object.get(name) {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(_) => Err(DecodeError::NotCloudEvent(format!(
            "attribute `{name}` must be a string"
        ))),
        None => Err(DecodeError::NotCloudEvent(format!(
            "required attribute `{name}` is missing"
        ))),
    }
}

fn optional_string(object: &Map<String, Value>, name: &str) -> Result<Option<String>, DecodeError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(DecodeError::NotCloudEvent(format!(
            "attribute `{name}` must be a string"
        ))),
    }
}

/// An event as published: a CloudEvents 1.0 structured-mode object with phaseflow's extension
/// attributes.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
#[schemars(rename = "EventEnvelope")]
pub struct CloudEvent {
    /// always `1.0`
    pub specversion: String,
    /// a new UUID per event; de-duplicate by it
    pub id: String,
    /// always `phaseflow`
    pub source: String,
    /// the event type; equals the routing key
    #[serde(rename = "type")]
    pub event_type: String,
    /// the ticket id; absent when the event is about no ticket (a rejected creation without
    /// `subject`, an alert about an agent's daily budget)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// RFC 3339, UTC
    pub time: String,
    /// always `application/json`
    pub datacontenttype: String,
    /// who caused it: the agent id, or `system` for automatic steps
    pub actor: String,
    /// the request's `correlationid`, else the request's `id`; unchanged through automatic
    /// steps
    pub correlationid: String,
    /// the `id` of the message that caused this one (a request, or a `phase.entered` event)
    pub causationid: String,
    /// per ticket, strictly increasing by 1 over all events about one existing ticket, in
    /// commit order: order and de-duplicate by it; absent on events about a ticket that does
    /// not exist
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticketseq: Option<i64>,
    /// W3C trace context (the CloudEvents distributed-tracing extension): the context of the
    /// span that created the event, a child of the request's `traceparent` when it had one, else
    /// of a trace of its own; also the event's AMQP header of the same name
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// the `tracestate` that goes with `traceparent`, when there is one
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
    /// the event's data, per type
    pub data: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 256 * 1024;

    #[test]
    fn a_well_formed_request_decodes_with_its_attributes() {
        let body = br#"{"specversion":"1.0","id":"r-1","source":"agent/a","type":"phase.transition.requested",
            "subject":"6f1c4c1e-0000-4000-8000-000000000000","actor":"agent-42","correlationid":"c-9",
            "data":{"to_phase":"PHASE_DESIGN","reason":"ready"}}"#;
        let envelope = RequestEnvelope::decode(body, LIMIT).unwrap();
        assert_eq!(envelope.type_name, "phase.transition.requested");
        assert_eq!(envelope.requester(), "agent-42");
        assert_eq!(envelope.correlation_id.as_deref(), Some("c-9"));
        assert!(envelope.data.is_some());
    }

    #[test]
    fn an_undecodable_body_still_names_its_id_when_it_has_one() {
        let no_source = br#"{"specversion":"1.0","id":"r-7","type":"ticket.create.requested"}"#;
        assert!(RequestEnvelope::decode(no_source, LIMIT).is_err());
        assert_eq!(
            RequestEnvelope::id_of_undecodable(no_source, LIMIT).as_deref(),
            Some("r-7")
        );
        assert_eq!(RequestEnvelope::id_of_undecodable(no_source, 10), None);
        assert_eq!(RequestEnvelope::id_of_undecodable(b"not json", LIMIT), None);
        assert_eq!(
            RequestEnvelope::id_of_undecodable(br#"{"id":42}"#, LIMIT),
            None
        );
        assert_eq!(
            RequestEnvelope::id_of_undecodable(br#"{"id":""}"#, LIMIT),
            None
        );
    }

    #[test]
    fn bodies_that_are_not_requests_say_why() {
        let cases: [(&[u8], &str); 5] = [
            (b"not json", "not JSON"),
            (b"[1,2]", "not a JSON object"),
            (
                br#"{"specversion":"1.0","source":"a","type":"ticket.create.requested"}"#,
                "`id`",
            ),
            (
                br#"{"specversion":"0.3","id":"x","source":"a","type":"ticket.create.requested"}"#,
                "specversion",
            ),
            (
                br#"{"specversion":"1.0","id":"","source":"a","type":"ticket.create.requested"}"#,
                "1 to 128",
            ),
        ];
        for (body, expected) in cases {
            let error = RequestEnvelope::decode(body, LIMIT)
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(expected),
                "{error} should mention {expected}"
            );
        }
    }

    #[test]
    fn oversized_bodies_are_refused_before_parsing() {
        let body = vec![b' '; 101];
        assert_eq!(
            RequestEnvelope::decode(&body, 100),
            Err(DecodeError::TooLarge {
                size: 101,
                limit: 100
            })
        );
    }

    #[test]
    fn the_requester_falls_back_to_the_source() {
        let body = br#"{"specversion":"1.0","id":"x","source":"agent/a","type":"ticket.create.requested"}"#;
        assert_eq!(
            RequestEnvelope::decode(body, LIMIT).unwrap().requester(),
            "agent/a"
        );
    }
}
