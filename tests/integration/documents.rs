//! The committed interface documents are what the code generates: a field added to a request
//! or event type, or a route added to the API, without regenerating fails here. To regenerate
//! after a change: `PHASEFLOW_WRITE_DOCUMENTS=1 cargo test --test integration documents`.

use std::path::Path;

/// Writes the generated text when asked to, then compares it with the committed file.
fn check(file: &str, generated: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    if std::env::var_os("PHASEFLOW_WRITE_DOCUMENTS").is_some() {
        std::fs::write(&path, generated).unwrap_or_else(|error| panic!("{file}: {error}"));
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{file} differs from what the code generates; regenerate it with \
         `PHASEFLOW_WRITE_DOCUMENTS=1 cargo test --test integration documents` and commit it"
    );
}

#[test]
fn asyncapi_json_is_what_the_code_generates() {
    check(
        "asyncapi.json",
        &phaseflow::documents::asyncapi::document_text(),
    );
}

#[test]
fn openapi_json_is_what_the_code_generates() {
    check(
        "openapi.json",
        &phaseflow::documents::openapi::document_text(),
    );
}

#[test]
fn the_reference_page_is_what_the_code_generates() {
    check(
        "docs/reference.md",
        &phaseflow::documents::reference::document_text(),
    );
}

/// Every event a request kind's table line names as its outcome or rejection is one of the
/// messages the reply channel of `asyncapi.json` may carry.
#[test]
fn the_reply_channel_lists_every_outcome_of_every_request_kind() {
    let document = phaseflow::documents::asyncapi::document();
    let listed: Vec<String> = document["channels"]["{replyTo}"]["subscribe"]["message"]["oneOf"]
        .as_array()
        .expect("the reply channel lists its messages")
        .iter()
        .map(|message| {
            let reference = message["$ref"].as_str().expect("a message reference");
            let name = reference.rsplit('/').next().unwrap_or_default();
            document["components"]["messages"][name]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    for kind in phaseflow::workflow::RequestType::ALL {
        let outcomes = kind.outcome_types().iter().copied();
        for event_type in outcomes.chain(kind.rejection_type()) {
            assert!(
                listed.iter().any(|name| name == event_type),
                "{event_type} (an outcome of {}) is missing from the reply channel: {listed:?}",
                kind.as_str()
            );
        }
    }
}
