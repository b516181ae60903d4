//! The committed CustomResourceDefinition must be the one the code generates.

#[test]
fn committed_crd_is_current() {
    let generated = millrace_control_plane::operator::crd_yaml().expect("serialise the CRD");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/crd.yaml");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "deploy/crd.yaml is stale: run \
         `cargo run -p millrace-control-plane -- crd > deploy/crd.yaml` and commit it"
    );
}
