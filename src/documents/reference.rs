//! `docs/reference.md`: every request, event, rejection code, shared type and HTTP route, field
//! by field, rendered from the two generated documents (`asyncapi.json`, `openapi.json`), so
//! that it says exactly what they say and goes stale exactly when they do (the same drift test
//! checks it). `docs/protocol.md` is the guide that explains; this page only lists.
//!
//! Pure: builds markdown from JSON values; writing the file is the test's business.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{asyncapi, openapi, request_description};
use crate::protocol::events::event_docs;
use crate::workflow::RequestType;

/// The page, as committed in `docs/reference.md`.
pub fn document_text() -> String {
    let asyncapi = asyncapi::document();
    let openapi = openapi::document();
    let mut page = Page {
        text: String::new(),
        schemas: &asyncapi["components"]["schemas"],
        referenced: BTreeSet::new(),
    };
    page.line("# phaseflow reference");
    page.line("");
    page.line(
        "Generated from the code (`PHASEFLOW_WRITE_DOCUMENTS=1 cargo test --test integration \
         documents` writes it; a test fails when it is stale): the same facts as \
         [asyncapi.json](../asyncapi.json) and [openapi.json](../openapi.json), as tables. How \
         it all fits together is in [protocol.md](protocol.md).",
    );
    page.line("");
    page.line("- [Requests](#requests)");
    page.line("- [Consumed events](#consumed-events)");
    page.line("- [Events](#events)");
    page.line("- [Rejections](#rejections)");
    page.line("- [Types](#types)");
    page.line("- [HTTP routes](#http-routes)");
    page.requests(&asyncapi);
    page.events(&asyncapi);
    page.rejections();
    page.types();
    page.routes(&openapi);
    page.text
}

struct Page<'a> {
    text: String,
    /// the AsyncAPI document's schemas, which every `$ref` of the messages points into
    schemas: &'a Value,
    /// the shared types named so far, listed under "Types"
    referenced: BTreeSet<String>,
}

impl Page<'_> {
    fn line(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
    }

    fn requests(&mut self, asyncapi: &Value) {
        self.line("");
        self.line("## Requests");
        self.line("");
        self.line(
            "Published to the requests exchange with the type as routing key; each gets exactly \
             one outcome event, its success or its rejection.",
        );
        for kind in RequestType::ALL.iter().filter(|kind| kind.is_request()) {
            self.request(asyncapi, *kind);
        }
    }

    fn request(&mut self, asyncapi: &Value, kind: RequestType) {
        let name = kind.as_str();
        self.line("");
        self.line(&format!("### `{name}`"));
        self.line("");
        self.line(&format!("{}.", kind.title()));
        self.line("");
        self.line(&request_description(kind));
        self.line("");
        let payload = &asyncapi["components"]["messages"][asyncapi::message_name(name)]["payload"];
        let subject = &payload["allOf"][1]["properties"]["subject"];
        let subject = match subject["description"].as_str() {
            Some("The ticket id (required).") | None => "the ticket id (required)".to_owned(),
            Some(meaning) => format!("optional: {}", inline(meaning)),
        };
        self.line(&format!("- `subject`: {subject}"));
        if let Some(route) = kind.route() {
            self.line(&format!(
                "- HTTP: `{} {}`, {} on success",
                route.method.as_str(),
                route.path,
                route.success_status
            ));
        }
        self.line("");
        let data = payload["allOf"][1]["properties"]["data"].clone();
        self.fields(&data);
    }

    fn events(&mut self, asyncapi: &Value) {
        self.line("");
        self.line("## Consumed events");
        for kind in RequestType::ALL.iter().filter(|kind| !kind.is_request()) {
            self.line("");
            self.line(&format!("### `{}`", kind.as_str()));
            self.line("");
            self.line(&format!("{}.", kind.title()));
            self.line("");
            self.line(&request_description(*kind));
            self.line("");
            self.line(&format!(
                "Its `data` is the published [`{}`](#{}) event's.",
                kind.as_str(),
                anchor(kind.as_str())
            ));
        }
        self.line("");
        self.line("## Events");
        self.line("");
        self.line(
            "Published to the events exchange with the type as routing key; an outcome also goes \
             to the request's `reply_to` queue.",
        );
        let mut generator = schemars::SchemaGenerator::default();
        for event in event_docs(&mut generator) {
            self.line("");
            self.line(&format!("### `{}`", event.event_type));
            self.line("");
            self.line(&format!(
                "{}.",
                event
                    .description
                    .unwrap_or(event.title)
                    .trim_end_matches('.')
            ));
            let outcome_of: Vec<String> = RequestType::ALL
                .iter()
                .filter(|kind| kind.outcome_types().contains(&event.event_type))
                .map(|kind| format!("`{}`", kind.as_str()))
                .collect();
            if !outcome_of.is_empty() {
                self.line("");
                self.line(&format!("The outcome of {}.", outcome_of.join(", ")));
            }
            self.line("");
            let message = asyncapi::message_name(event.event_type);
            let data = asyncapi["components"]["messages"][message]["payload"]["allOf"][1]
                ["properties"]["data"]
                .clone();
            self.fields(&data);
        }
    }

    fn rejections(&mut self) {
        self.line("");
        self.line("## Rejections");
        self.line("");
        self.line(
            "A request that decoded but cannot be applied is answered with its `….rejected` \
             event, whose `data` is a [`RejectionData`](#rejectiondata). Its `code`:",
        );
        self.line("");
        self.line("| code | HTTP status | meaning | answers |");
        self.line("|---|---|---|---|");
        let codes = self.schemas["RejectionCode"]["oneOf"].clone();
        for code in codes.as_array().into_iter().flatten() {
            let name = code["const"].as_str().unwrap_or_default();
            let answers: Vec<String> = RequestType::ALL
                .iter()
                .filter(|kind| {
                    kind.rejection_codes()
                        .iter()
                        .any(|known| known.as_str() == name)
                })
                .filter_map(|kind| kind.rejection_type())
                .map(|rejection| format!("`{rejection}`"))
                .collect();
            let status = crate::protocol::RejectionCode::ALL
                .iter()
                .find(|known| known.as_str() == name)
                .map(|known| crate::api::status_of(*known).as_u16().to_string())
                .unwrap_or_default();
            self.line(&format!(
                "| `{name}` | {status} | {} | {} |",
                cell(code["description"].as_str().unwrap_or_default()),
                answers.join(", ")
            ));
        }
        self.referenced.insert("RejectionData".into());
    }

    /// Every shared type named by a field, each once; a type may name further types.
    fn types(&mut self) {
        self.line("");
        self.line("## Types");
        let mut listed = BTreeSet::new();
        while let Some(name) = self.referenced.difference(&listed).next().cloned() {
            listed.insert(name.clone());
            let schema = self.schemas[&name].clone();
            self.line("");
            self.line(&format!("### {name}"));
            self.line("");
            if let Some(description) = schema["description"].as_str() {
                self.line(&inline(description));
                self.line("");
            }
            self.fields(&schema);
        }
    }

    /// A table of an object's fields, or what a non-object is.
    fn fields(&mut self, schema: &Value) {
        let schema = match schema["$ref"].as_str() {
            Some(reference) => self.schemas[schema_name(reference)].clone(),
            None => schema.clone(),
        };
        let Some(properties) = schema["properties"].as_object() else {
            if let Some(variants) = schema["oneOf"].as_array() {
                self.line("One of these values:");
                self.line("");
                self.line("| value | meaning |");
                self.line("|---|---|");
                for variant in variants {
                    let value = variant["const"]
                        .as_str()
                        .or_else(|| variant["enum"][0].as_str())
                        .unwrap_or_default();
                    self.line(&format!(
                        "| `{value}` | {} |",
                        cell(variant["description"].as_str().unwrap_or_default())
                    ));
                }
            } else {
                let kind = self.type_of(&schema);
                self.line(&format!("A value of type {kind}."));
            }
            return;
        };
        let required: Vec<&str> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        self.line("| field | type | required | limits | description |");
        self.line("|---|---|---|---|---|");
        for (name, field) in properties {
            let kind = self.type_of(field);
            let required = if required.contains(&name.as_str()) {
                "yes"
            } else {
                "no"
            };
            let description = field["description"].as_str().unwrap_or_default();
            self.line(&format!(
                "| `{name}` | {kind} | {required} | {} | {} |",
                cell(&limits(field)),
                cell(description)
            ));
        }
    }

    /// What a field holds, in words, linking the shared types it names.
    fn type_of(&mut self, schema: &Value) -> String {
        if let Some(reference) = schema["$ref"].as_str() {
            let name = schema_name(reference).to_owned();
            let link = format!("[{name}](#{})", anchor(&name));
            self.referenced.insert(name);
            return link;
        }
        // a named type with a description of its own use: `allOf` holding the one reference
        if let Some([only]) = schema["allOf"].as_array().map(Vec::as_slice) {
            return self.type_of(only);
        }
        if let Some(alternatives) = schema["anyOf"].as_array() {
            return alternatives
                .iter()
                .map(|alternative| self.type_of(alternative))
                .collect::<Vec<_>>()
                .join(" or ");
        }
        if let Some(values) = schema["enum"].as_array() {
            return values
                .iter()
                .map(|value| format!("`{}`", value.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", ");
        }
        if schema["oneOf"].is_array() {
            return "one of the values below".into();
        }
        let one = |name: &str, schema: &Value, page: &mut Self| -> String {
            match (name, schema["format"].as_str()) {
                ("array", _) => format!("array of {}", page.type_of(&schema["items"])),
                ("string", Some("uuid")) => "UUID".into(),
                ("string", Some("date-time")) => "time (RFC 3339)".into(),
                ("integer", _) => "integer".into(),
                (name, _) => name.to_owned(),
            }
        };
        match &schema["type"] {
            Value::String(name) => one(name, schema, self),
            Value::Array(names) => names
                .iter()
                .filter_map(Value::as_str)
                .map(|name| one(name, schema, self))
                .collect::<Vec<_>>()
                .join(" or "),
            _ => "any JSON value".into(),
        }
    }

    fn routes(&mut self, openapi: &Value) {
        self.line("");
        self.line("## HTTP routes");
        self.line("");
        self.line(
            "Every `/api/v1` route but the OpenAPI document needs `Authorization: Bearer \
             <token>`. Errors have one body, `{\"error\": {\"code\", \"message\", \"reasons\"}}`; \
             the codes of a status are listed in the route's OpenAPI description.",
        );
        self.line("");
        self.line("| route | what | success | errors |");
        self.line("|---|---|---|---|");
        for (path, methods) in openapi["paths"].as_object().into_iter().flatten() {
            for (method, operation) in methods.as_object().into_iter().flatten() {
                let Some(responses) = operation["responses"].as_object() else {
                    continue;
                };
                let (success, errors): (Vec<&String>, Vec<&String>) =
                    responses.keys().partition(|status| status.starts_with('2'));
                let list = |statuses: Vec<&String>| {
                    statuses
                        .into_iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                self.line(&format!(
                    "| `{} {path}` | {} | {} | {} |",
                    method.to_uppercase(),
                    cell(operation["summary"].as_str().unwrap_or_default()),
                    list(success),
                    list(errors)
                ));
            }
        }
    }
}

/// The words for a field's limits (lengths, ranges, sizes), as the schema states them.
fn limits(schema: &Value) -> String {
    let mut words = Vec::new();
    let range =
        |low: &str, high: &str, unit: &str| match (schema[low].as_u64(), schema[high].as_u64()) {
            (Some(low), Some(high)) => Some(format!("{low}–{high}{unit}")),
            (Some(low), None) => Some(format!("at least {low}{unit}")),
            (None, Some(high)) => Some(format!("at most {high}{unit}")),
            (None, None) => None,
        };
    words.extend(range("minLength", "maxLength", " characters"));
    words.extend(range("minimum", "maximum", ""));
    words.extend(range("minItems", "maxItems", " items"));
    if let Some(pattern) = schema["pattern"].as_str() {
        words.push(format!("matches `{pattern}`"));
    }
    words.join(", ")
}

/// A schema's name from its `$ref`.
fn schema_name(reference: &str) -> &str {
    reference.rsplit('/').next().unwrap_or(reference)
}

/// The anchor GitHub gives a heading.
fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Text on one line, with the code's intra-doc links (``[`Phase::unblock_target`]``) shown as
/// the code they name.
fn inline(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut shown = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find("[`") {
        let Some(length) = rest[start + 2..].find("`]") else {
            break;
        };
        let end = start + 2 + length + 2;
        let is_markdown_link = rest[end..].starts_with('(');
        shown.push_str(&rest[..start]);
        if is_markdown_link {
            shown.push_str(&rest[start..end]);
        } else {
            shown.push_str(&rest[start + 1..end - 1]);
        }
        rest = &rest[end..];
    }
    shown.push_str(rest);
    shown
}

/// Text fit for a table cell.
fn cell(text: &str) -> String {
    inline(text).replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_kind_and_event_has_its_section() {
        let text = document_text();
        for kind in RequestType::ALL {
            assert!(
                text.contains(&format!("### `{}`", kind.as_str())),
                "{kind:?}"
            );
        }
        let mut generator = schemars::SchemaGenerator::default();
        for event in event_docs(&mut generator) {
            assert!(
                text.contains(&format!("### `{}`", event.event_type)),
                "{}",
                event.event_type
            );
        }
    }

    #[test]
    fn every_rejection_code_is_listed_with_its_status() {
        let text = document_text();
        for code in crate::protocol::RejectionCode::ALL {
            let status = crate::api::status_of(code).as_u16();
            assert!(
                text.contains(&format!("| `{}` | {status} |", code.as_str())),
                "{code:?}"
            );
        }
    }

    #[test]
    fn intra_doc_links_are_shown_as_code_and_markdown_links_are_kept() {
        assert_eq!(
            inline("see [`Phase::unblock_target`] and [`x`](y.md)\n now"),
            "see `Phase::unblock_target` and [`x`](y.md) now"
        );
    }

    #[test]
    fn anchors_are_what_github_makes_of_a_heading() {
        assert_eq!(anchor("ticket.created"), "ticketcreated");
        assert_eq!(anchor("RejectionData"), "rejectiondata");
    }
}
