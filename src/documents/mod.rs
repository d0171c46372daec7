//! The documents that describe phaseflow's interfaces, generated from the code: the AsyncAPI
//! document of the messaging protocol (`asyncapi.json`) from the request kinds' data types and
//! the event data types, and the OpenAPI document of the HTTP API (`openapi.json`) from the
//! router's table of routes and the types of its bodies. A test compares each committed
//! document with what the code generates, so a field added to a type without regenerating fails
//! the build's tests.
//!
//! Pure: builds JSON values; writing the files is the test's business.

use schemars::generate::SchemaSettings;
use schemars::transform::{transform_subschemas, Transform};
use schemars::{Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::protocol::fields::NUL_PATTERN;

use crate::workflow::RequestType;

pub mod asyncapi;
pub mod openapi;
pub mod reference;

/// What phaseflow reads is described as it reads it (a member with a default may be left out),
/// what it writes as it writes it (a member that may be `null` is still always there).
pub(crate) struct Generators {
    /// for requests and bodies
    pub bodies: SchemaGenerator,
    /// for events and answers
    pub answers: SchemaGenerator,
    /// where the documents keep their definitions (`#/components/schemas/`)
    definitions_path: &'static str,
    /// what marks a body's schemas
    storable: Storable,
}

/// A string holding U+0000: what a schema refuses with `not` (the `type` keeps `not` from
/// refusing a value that is no string at all).
pub(crate) fn holding_nul() -> Value {
    json!({"type": "string", "pattern": NUL_PATTERN})
}

/// The definition of any JSON value phaseflow stores, named in the documents' definitions.
const STORABLE_JSON: &str = "StorableJson";

/// Marks what no stored text or JSON may hold, U+0000, in a body's schemas: a string says `not`
/// [`holding_nul`]; an object open to any member, and a member of any value, take
/// [`STORABLE_JSON`] (defined by [`Generators::definitions`]).
#[derive(Clone)]
struct Storable {
    any_value: Value,
}

impl Transform for Storable {
    fn transform(&mut self, schema: &mut Schema) {
        transform_subschemas(self, schema);
        let Some(object) = schema.as_object_mut() else {
            return;
        };
        let any_value = object
            .keys()
            .all(|key| ["description", "title", "default", "examples"].contains(&key.as_str()));
        if any_value {
            object.extend(self.any_value.as_object().cloned().unwrap_or_default());
            return;
        }
        if object.get("items") == Some(&Value::Bool(true)) {
            object.insert("items".into(), self.any_value.clone());
        }
        if let Some(Value::Object(properties)) = object.get_mut("properties") {
            for property in properties.values_mut() {
                if *property == Value::Bool(true) {
                    *property = self.any_value.clone();
                }
            }
        }
        let types: Vec<&str> = match object.get("type") {
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(types)) => types.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let (string, open_object) = (
            types.contains(&"string"),
            types.contains(&"object")
                && matches!(object.get("additionalProperties"), Some(Value::Bool(true))),
        );
        let free_text = ["enum", "const", "format"]
            .iter()
            .all(|key| !object.contains_key(*key));
        if string && free_text && !object.contains_key("not") {
            object.insert("not".into(), holding_nul());
        }
        if open_object {
            object.insert("propertyNames".into(), json!({"not": holding_nul()}));
            object.insert("additionalProperties".into(), self.any_value.clone());
        }
    }
}

impl Generators {
    /// Both generators, with the definitions at `definitions_path` of the document.
    pub fn new(settings: SchemaSettings, definitions_path: &'static str) -> Self {
        let storable = Storable {
            any_value: json!({"$ref": format!("{definitions_path}{STORABLE_JSON}")}),
        };
        let settings =
            settings.with(|settings| settings.definitions_path = definitions_path.into());
        Generators {
            bodies: settings
                .clone()
                .for_deserialize()
                .with_transform(storable.clone())
                .into_generator(),
            answers: settings.for_serialize().into_generator(),
            definitions_path,
            storable,
        }
    }

    /// Every schema either side refers to. A type both read and written must be described
    /// alike both ways, or the document could not name it once; it is described as read (an
    /// answer's text may quote a request's, U+0000 and all, so only what is read is marked
    /// [`Storable`]).
    pub fn definitions(mut self) -> Map<String, Value> {
        let mut schemas = self.answers.take_definitions(true);
        for (name, schema) in self.bodies.take_definitions(true) {
            if let Some(answered) = schemas.get(&name) {
                let mut answered =
                    Schema::try_from(answered.clone()).expect("a definition is a schema");
                self.storable.transform(&mut answered);
                assert_eq!(
                    answered.as_value(),
                    &schema,
                    "{name} is described differently as a body and as an answer"
                );
            }
            schemas.insert(name, schema);
        }
        let reference = json!({"$ref": format!("{}{STORABLE_JSON}", self.definitions_path)});
        let no_nul = json!({"not": holding_nul()});
        schemas.insert(
            STORABLE_JSON.into(),
            json!({
                "description": "Any JSON value whose strings and member names do not hold \
                    U+0000 (which cannot be stored; a request with one is `invalid_request`)",
                "anyOf": [
                    {"type": ["null", "boolean", "number"]},
                    {"type": "string", "not": no_nul["not"]},
                    {"type": "array", "items": reference},
                    {"type": "object", "propertyNames": no_nul, "additionalProperties": reference},
                ],
            }),
        );
        schemas
    }
}

/// A request kind's description as every document gives it: what it does, then its outcome
/// and its rejection with the codes it may carry, all read from the request table.
pub(crate) fn request_description(kind: RequestType) -> String {
    let quoted = |names: &mut dyn Iterator<Item = &str>| {
        names
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut text = kind.description().to_owned();
    let outcomes = kind.outcome_types();
    if !outcomes.is_empty() {
        let one_of = if outcomes.len() > 1 { "one of " } else { "" };
        text.push_str(&format!(
            " Outcome: {one_of}{}.",
            quoted(&mut outcomes.iter().copied())
        ));
    }
    if let Some(rejection) = kind.rejection_type() {
        text.push_str(&format!(
            " Rejection: `{rejection}` ({}).",
            quoted(&mut kind.rejection_codes().iter().map(|code| code.as_str()))
        ));
    }
    text
}
