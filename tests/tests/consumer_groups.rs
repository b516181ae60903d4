//! A classic consumer group through two rebalances (a member joins, a member leaves), checked
//! for completeness and for no redelivery of committed records.

mod common;

use std::time::Duration;

use common::{run_python, BrokerOptions, BrokerProcess};

#[test]
fn group_rebalance_join_and_leave_range() {
    let mut broker = BrokerProcess::start(BrokerOptions::default());
    let run = run_python(
        "consumer_groups.py",
        &[&broker.bootstrap(), "range"],
        Duration::from_secs(120),
    );
    eprintln!("{}", run.stdout());
    broker.assert_running("the consumer group scenario");
}

#[test]
fn group_rebalance_join_and_leave_cooperative_sticky() {
    let mut broker = BrokerProcess::start(BrokerOptions::default());
    let run = run_python(
        "consumer_groups.py",
        &[&broker.bootstrap(), "cooperative-sticky"],
        Duration::from_secs(120),
    );
    eprintln!("{}", run.stdout());
    broker.assert_running("the consumer group scenario");
}
