//! The committed OpenAPI document must be the one the code generates.

#[test]
fn committed_openapi_document_is_current() {
    let generated = millrace_control_plane::http::openapi()
        .to_pretty_json()
        .expect("serialise the document")
        + "\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run \
         `cargo run -p millrace-control-plane -- openapi > openapi/openapi.json` and commit it"
    );
}
