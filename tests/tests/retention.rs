//! Retention by size and by time deletes old segments while the rest stays readable.

mod common;

use std::time::Duration;

use common::{run_python, BrokerOptions, BrokerProcess};

#[test]
fn retention_moves_the_earliest_offset() {
    let mut broker = BrokerProcess::start(BrokerOptions::with_args(&[
        "--retention-check-interval-ms",
        "200",
    ]));
    run_python(
        "retention.py",
        &[&broker.bootstrap()],
        Duration::from_secs(120),
    );
    broker.assert_running("retention");
}
