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
