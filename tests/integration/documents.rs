//! The committed interface documents are what the code generates: a field added to a request
//! or event type without regenerating fails here. To regenerate after a change:
//! `PHASEFLOW_WRITE_DOCUMENTS=1 cargo test --test integration documents`.

use std::path::Path;

#[test]
fn asyncapi_json_is_what_the_code_generates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("asyncapi.json");
    let generated = phaseflow::documents::asyncapi::document_text();
    if std::env::var_os("PHASEFLOW_WRITE_DOCUMENTS").is_some() {
        std::fs::write(&path, &generated).expect("asyncapi.json written");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "asyncapi.json differs from what the code generates; regenerate it with \
         `PHASEFLOW_WRITE_DOCUMENTS=1 cargo test --test integration documents` and commit it"
    );
}
