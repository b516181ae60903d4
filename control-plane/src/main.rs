//! `millrace`: the control plane and its CLI. The REST API, store and reconciler arrive with the
//! control-plane issue; until then the binary says so instead of pretending.
fn main() {
    eprintln!("millrace: the control plane is not built yet; run `millrace-broker` directly (see README.md)");
    std::process::exit(2);
}
