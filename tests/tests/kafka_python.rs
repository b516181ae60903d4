//! kafka-python 3.x (a pure-python client with its own protocol code) against the broker.

mod common;

use std::time::Duration;

use common::{run_python, BrokerOptions, BrokerProcess};

#[test]
fn kafka_python_each_codec_and_admin() {
    let mut broker = BrokerProcess::start(BrokerOptions::default());
    run_python(
        "kafka_python_round_trip.py",
        &[&broker.bootstrap(), "--require-all-codecs"],
        Duration::from_secs(180),
    );
    broker.assert_running("kafka-python round trips");
}
