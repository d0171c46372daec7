//! The documents that describe phaseflow's interfaces, generated from the code: the AsyncAPI
//! document of the messaging protocol (`asyncapi.json`) from the request kinds' data types and
//! the event data types, and the OpenAPI document of the HTTP API (`openapi.json`) from the
//! router's table of routes and the types of its bodies. A test compares each committed
//! document with what the code generates, so a field added to a type without regenerating fails
//! the build's tests.
//!
//! Pure: builds JSON values; writing the files is the test's business.

use schemars::generate::SchemaSettings;
use schemars::SchemaGenerator;
use serde_json::{Map, Value};

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
}

impl Generators {
    /// Both generators, with the definitions at `definitions_path` of the document.
    pub fn new(settings: SchemaSettings, definitions_path: &'static str) -> Self {
        let settings =
            settings.with(|settings| settings.definitions_path = definitions_path.into());
        Generators {
            bodies: settings.clone().for_deserialize().into_generator(),
            answers: settings.for_serialize().into_generator(),
        }
    }

    /// Every schema either side refers to. A type both read and written must be described
    /// alike both ways, or the document could not name it once.
    pub fn definitions(mut self) -> Map<String, Value> {
        let mut schemas = self.answers.take_definitions(true);
        for (name, schema) in self.bodies.take_definitions(true) {
            if let Some(answered) = schemas.get(&name) {
                assert_eq!(
                    answered, &schema,
                    "{name} is described differently as a body and as an answer"
                );
            }
            schemas.insert(name, schema);
        }
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
