//! The AsyncAPI 2.6 document of the messaging protocol: one channel per request type (on the
//! requests exchange) and per event type (on the events exchange), the reply and dead-letter
//! queues, and the JSON Schemas of every request's and event's `data`, generated from their
//! types. The prose that is not about one type lives in `asyncapi_intro.md` beside this file.

use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

use super::Generators;

use super::request_description;
use crate::protocol::events::event_docs;
use crate::protocol::{CloudEvent, RejectionData};
use crate::workflow::requests::{request_docs, RequestType};

/// The document's introduction (markdown): the model, outcomes, order, correlation.
const INTRO: &str = include_str!("asyncapi_intro.md");

/// Where the generated schemas live in the document.
const SCHEMAS: &str = "#/components/schemas/";

/// The whole document.
pub fn document() -> Value {
    let mut generators = Generators::new(SchemaSettings::draft07(), SCHEMAS);
    let requests = request_docs(&mut generators.bodies, &mut generators.answers);
    let events = event_docs(&mut generators.answers);
    let rejection = generators.answers.subschema_for::<RejectionData>();
    let event_envelope = generators.answers.subschema_for::<CloudEvent>();

    let mut channels = Map::new();
    let mut messages = Map::new();
    for request in &requests {
        let name = request.kind.as_str();
        let message = message_name(name);
        let channel = if request.kind.is_request() {
            name.to_owned()
        } else {
            // an event also consumed from the requests exchange: its own channel there
            format!("phaseflow.requests/{name}")
        };
        channels.insert(
            channel,
            json!({
                "description": request_description(request.kind),
                "bindings": {"amqp": {"$ref": "#/components/channelBindings/Requests/amqp"}},
                "publish": {
                    "operationId": operation_id("", name),
                    "bindings": {"amqp": {"$ref": "#/components/operationBindings/Request/amqp"}},
                    "message": {"$ref": format!("#/components/messages/{message}")},
                },
            }),
        );
        if request.kind.is_request() {
            let subject = match request.optional_subject {
                Some(meaning) => {
                    json!({"type": "string", "format": "uuid", "description": meaning})
                }
                None => {
                    json!({"type": "string", "format": "uuid", "description": "The ticket id (required)."})
                }
            };
            let mut required = vec!["type"];
            if request.optional_subject.is_none() {
                required.push("subject");
            }
            messages.insert(
                message,
                json!({
                    "name": name,
                    "title": request.kind.title(),
                    "traits": [{"$ref": "#/components/messageTraits/Request"}],
                    "payload": {"allOf": [
                        {"$ref": format!("{SCHEMAS}RequestEnvelope")},
                        {
                            "type": "object",
                            "required": required,
                            "properties": {
                                "type": {"const": name},
                                "subject": subject,
                                "data": request.data,
                            },
                        },
                    ]},
                }),
            );
        }
    }
    for event in &events {
        let message = message_name(event.event_type);
        let mut channel = Map::new();
        if let Some(description) = event.description {
            channel.insert("description".into(), description.into());
        }
        channel.insert(
            "bindings".into(),
            json!({"amqp": {"$ref": "#/components/channelBindings/Events/amqp"}}),
        );
        channel.insert("subscribe".into(), subscribe(event.event_type, &message));
        channels.insert(event.event_type.to_owned(), Value::Object(channel));
        messages.insert(
            message,
            event_message(event.event_type, event.title, event.data.as_value()),
        );
    }
    let rejection_types: Vec<&str> = RequestType::ALL
        .iter()
        .filter_map(|kind| kind.rejection_type())
        .collect();
    for event_type in &rejection_types {
        let message = message_name(event_type);
        channels.insert(
            (*event_type).to_owned(),
            json!({
                "bindings": {"amqp": {"$ref": "#/components/channelBindings/Events/amqp"}},
                "subscribe": subscribe(event_type, &message),
            }),
        );
        messages.insert(
            message,
            event_message(
                event_type,
                "A request was rejected",
                &Value::from(rejection.clone()),
            ),
        );
    }
    let outcomes: Vec<Value> = RequestType::all_outcome_types()
        .into_iter()
        .map(|event_type| json!({"$ref": format!("#/components/messages/{}", message_name(event_type))}))
        .collect();
    channels.insert("{replyTo}".into(), reply_channel(outcomes));
    channels.insert("phaseflow.dead-letter".into(), dead_letter_channel());
    messages.insert("DeadLetter".into(), dead_letter_message());

    let mut schemas = Map::new();
    schemas.insert("RequestEnvelope".into(), request_envelope());
    schemas.insert(
        "TicketEventEnvelope".into(),
        json!({
            "description": "An event about an existing ticket.",
            "allOf": [event_envelope, {"type": "object", "required": ["subject", "ticketseq"]}],
        }),
    );
    schemas.append(&mut generators.definitions());

    json!({
        "asyncapi": "2.6.0",
        "id": "urn:phaseflow:worker",
        "defaultContentType": "application/cloudevents+json",
        "info": {
            "title": "phaseflow",
            "version": env!("CARGO_PKG_VERSION"),
            "description": INTRO,
            "license": {"name": env!("CARGO_PKG_LICENSE")},
        },
        "tags": [
            {"name": "requests", "description": "Commands to phaseflow, on the exchange phaseflow.requests."},
            {"name": "events", "description": "Facts from phaseflow, on the exchange phaseflow.events."},
            {"name": "rejections", "description": "The outcome of a request that decoded but cannot be applied."},
        ],
        "servers": {
            "local": {
                "url": "127.0.0.1:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "The default broker (vhost `/`, guest/guest).",
                "security": [{"userPassword": []}],
            },
        },
        "channels": channels,
        "components": {
            "securitySchemes": {
                "userPassword": {
                    "type": "userPassword",
                    "description": "AMQP PLAIN authentication. The broker-validated `user_id` property, when set on a request, is its actor.",
                },
            },
            "channelBindings": {
                "Requests": {"amqp": exchange_binding("phaseflow.requests")},
                "Events": {"amqp": exchange_binding("phaseflow.events")},
            },
            "operationBindings": {
                "Request": {"amqp": persistent_publish()},
                "Event": {"amqp": persistent_publish()},
            },
            "messageTraits": message_traits(),
            "messages": messages,
            "schemas": schemas,
        },
    })
}

/// The document as committed: pretty JSON with a final newline.
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

/// `ticket.create.requested` -> `TicketCreateRequested`.
pub(crate) fn message_name(event_type: &str) -> String {
    event_type
        .split(['.', '_'])
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// `task.completed` with prefix `on` -> `onTaskCompleted`; without a prefix, lower camel case.
fn operation_id(prefix: &str, event_type: &str) -> String {
    let name = message_name(event_type);
    if prefix.is_empty() {
        let mut chars = name.chars();
        chars
            .next()
            .map(|first| first.to_lowercase().chain(chars).collect())
            .unwrap_or_default()
    } else {
        format!("{prefix}{name}")
    }
}

fn subscribe(event_type: &str, message: &str) -> Value {
    json!({
        "operationId": operation_id("on", event_type),
        "bindings": {"amqp": {"$ref": "#/components/operationBindings/Event/amqp"}},
        "message": {"$ref": format!("#/components/messages/{message}")},
    })
}

fn event_message(event_type: &str, title: &str, data: &Value) -> Value {
    json!({
        "name": event_type,
        "title": title,
        "traits": [{"$ref": "#/components/messageTraits/Event"}],
        "payload": {"allOf": [
            {"$ref": format!("{SCHEMAS}TicketEventEnvelope")},
            {"type": "object", "properties": {"type": {"const": event_type}, "data": data}},
        ]},
    })
}

fn exchange_binding(exchange: &str) -> Value {
    json!({
        "is": "routingKey",
        "exchange": {"name": exchange, "type": "topic", "durable": true, "autoDelete": false, "vhost": "/"},
        "bindingVersion": "0.2.0",
    })
}

fn persistent_publish() -> Value {
    json!({"deliveryMode": 2, "mandatory": true, "bindingVersion": "0.2.0"})
}

fn message_traits() -> Value {
    json!({
        "Request": {
            "contentType": "application/cloudevents+json",
            "correlationId": {
                "description": "The `correlationid` attribute (optional); without it, the request's `id` correlates its events.",
                "location": "$message.payload#/correlationid",
            },
            "headers": {
                "type": "object",
                "description": "No AMQP headers are required. Properties used when present are reply_to, correlation_id and user_id.",
            },
        },
        "Event": {
            "contentType": "application/cloudevents+json",
            "correlationId": {
                "description": "The request's `correlationid`, else the request's `id`; unchanged through automatic steps.",
                "location": "$message.payload#/correlationid",
            },
            "headers": {
                "type": "object",
                "description": "No AMQP headers. AMQP properties: delivery_mode 2, content_type application/cloudevents+json, message_id = the event `id`, type = the event `type`, app_id `phaseflow`, timestamp.",
            },
        },
    })
}

/// A request as phaseflow reads it. Written here rather than derived: requests are read
/// attribute by attribute, so that every problem is named.
fn request_envelope() -> Value {
    json!({
        "type": "object",
        "description": "A CloudEvents 1.0 structured-mode request.",
        "required": ["specversion", "id", "source", "type"],
        "properties": {
            "specversion": {"type": "string", "const": "1.0"},
            "id": {
                "type": "string", "minLength": 1, "maxLength": crate::protocol::cloudevent::MAX_ID_CHARS,
                "description": "Unique per message; the worker applies a request id at most once, however often it is delivered.",
            },
            "source": {
                "type": "string", "minLength": 1,
                "description": "Who sent it, e.g. `agent/agent-42`. The actor when `actor` is absent.",
            },
            "type": {"type": "string", "description": "The request type; equals the routing key. A request is processed by its `type`."},
            "subject": {"type": "string", "format": "uuid", "description": "The ticket id."},
            "time": {"type": "string", "format": "date-time", "description": "Optional; not validated."},
            "datacontenttype": {"type": "string", "const": "application/json", "description": "Optional; not validated."},
            "actor": {
                "type": "string",
                "description": "The agent id, recorded as `transitioned_by` and `collected_by`. Overridden by the broker-validated AMQP `user_id`.",
            },
            "correlationid": {"type": "string", "description": "Follows the whole causal chain; default is the request's `id`."},
            "data": {"type": "object"},
        },
    })
}

fn reply_channel(outcomes: Vec<Value>) -> Value {
    json!({
        "description": "The requester's reply queue, named by the request's AMQP `reply_to` property. The outcome event of that request (exactly one of the messages below) is published to the default exchange (`\"\"`) with `reply_to` as routing key, with the AMQP `correlation_id` of the request (else its `correlationid`, else its `id`). The body is the same CloudEvent that goes to `phaseflow.events`. Declare the queue before publishing (e.g. exclusive and auto-delete) and publish with publisher confirms.",
        "parameters": {"replyTo": {"description": "The request's AMQP `reply_to` property.", "schema": {"type": "string"}}},
        "bindings": {"amqp": {
            "is": "queue",
            "queue": {"name": "{replyTo}", "durable": false, "exclusive": true, "autoDelete": true, "vhost": "/"},
            "bindingVersion": "0.2.0",
        }},
        "subscribe": {
            "operationId": "onReply",
            "bindings": {"amqp": persistent_publish()},
            "message": {"oneOf": outcomes},
        },
    })
}

fn dead_letter_channel() -> Value {
    json!({
        "description": "Messages that can never be processed: undecodable requests (dead-lettered at once), a `phase.entered` whose data cannot be read, and messages whose processing failed `amqp.delivery_limit` times (failed attempts are counted in Postgres; redeliveries after a stop or a lost connection are not) for a reason other than an outage. The worker publishes them, unchanged but for added headers, to the durable fanout exchange `phaseflow.dead-letter`, bound to this durable quorum queue. Messages that exceed the worker queue's broker-side `x-delivery-limit` (10 × `amqp.delivery_limit`, a backstop for a message that kills the worker process) are dead-lettered here by RabbitMQ itself, with its `x-death` header instead of `x-phaseflow-error`. Inspect with the management UI or `rabbitmqadmin get queue=phaseflow.dead-letter`; replay by publishing the body again to `phaseflow.requests` (routing key = its type) once the cause is fixed.",
        "bindings": {"amqp": {
            "is": "queue",
            "queue": {"name": "phaseflow.dead-letter", "durable": true, "exclusive": false, "autoDelete": false, "vhost": "/"},
            "bindingVersion": "0.2.0",
        }},
        "subscribe": {
            "operationId": "onDeadLetter",
            "bindings": {"amqp": persistent_publish()},
            "message": {"$ref": "#/components/messages/DeadLetter"},
        },
    })
}

fn dead_letter_message() -> Value {
    json!({
        "name": "dead-letter",
        "title": "A message that can never be processed",
        "summary": "The original body and AMQP properties, unchanged, with headers saying why.",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "properties": {
                "x-phaseflow-error": {
                    "type": "string",
                    "description": "Why it was dead-lettered, e.g. \"body is not JSON: …\", \"body is not a CloudEvent: required attribute `id` is missing\", \"unknown request type `x`; expected one of …\", \"body of 300000 bytes exceeds the limit of 262144 bytes\", \"processing failed 10 times; last error: …\". Absent on messages RabbitMQ dead-lettered itself (see `x-death`).",
                },
                "x-phaseflow-queue": {"type": "string", "enum": ["requests"], "description": "The worker queue it came from."},
                "x-phaseflow-routing-key": {"type": "string", "description": "Its original routing key."},
                "x-phaseflow-dead-lettered-at": {"type": "string", "format": "date-time"},
                "x-death": {
                    "type": "array",
                    "description": "Set by RabbitMQ when the broker-side `x-delivery-limit` dead-lettered it (reason `delivery_limit`).",
                },
            },
        },
        "payload": {"description": "The original body, whatever it was."},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_and_operation_names_follow_the_type() {
        assert_eq!(
            message_name("ticket.create.requested"),
            "TicketCreateRequested"
        );
        assert_eq!(message_name("phase.entered"), "PhaseEntered");
        assert_eq!(operation_id("on", "task.completed"), "onTaskCompleted");
        assert_eq!(
            operation_id("", "ticket.create.requested"),
            "ticketCreateRequested"
        );
    }

    #[test]
    fn every_reference_in_the_document_resolves() {
        let document = document();
        let mut references = Vec::new();
        collect_references(&document, &mut references);
        assert!(references.len() > 50, "{}", references.len());
        for reference in references {
            let pointer = reference.trim_start_matches('#');
            assert!(
                document.pointer(pointer).is_some(),
                "{reference} does not resolve"
            );
        }
    }

    fn collect_references(value: &Value, into: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("$ref", Value::String(reference)) => into.push(reference.clone()),
                        _ => collect_references(value, into),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| collect_references(item, into)),
            _ => {}
        }
    }
}
