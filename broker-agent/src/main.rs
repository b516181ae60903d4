//! `millrace-agent`: supervises one broker on a node. Built by the control-plane issue; until then
//! the binary says so instead of pretending.
fn main() {
    eprintln!("millrace-agent: the broker-agent is not built yet; run `millrace-broker` directly (see README.md)");
    std::process::exit(2);
}
