//! Scenarios driven by confluent-kafka (librdkafka 2.16) scripts in `tests/python/`. Each test
//! starts its own broker; the script prints every check and exits non-zero at the first failure.

mod common;

use std::time::Duration;

use common::{run_python, BrokerOptions, BrokerProcess};

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs one script against a fresh broker, then checks that the broker survived it.
fn run_script(script: &str, broker_args: &[&str]) {
    let mut broker = BrokerProcess::start(BrokerOptions::with_args(broker_args));
    run_python(script, &[&broker.bootstrap()], SCRIPT_TIMEOUT);
    broker.assert_running(script);
    assert_eq!(broker.admin_get("/health").0, 200, "/health after {script}");
}

#[test]
fn admin_create_partitions_delete_recreate() {
    run_script("admin_topics.py", &[]);
}

#[test]
fn produce_consume_each_compression_type() {
    run_script("compression.py", &[]);
}

#[test]
fn idempotent_producer_no_duplicates_in_order() {
    run_script("idempotent_producer.py", &[]);
}

#[test]
fn offsets_for_times_and_list_offsets_specs() {
    run_script("offsets_for_times.py", &[]);
}

#[test]
fn delete_records_moves_the_earliest_offset() {
    run_script("delete_records.py", &[]);
}

#[test]
fn describe_and_alter_topic_configs() {
    run_script("topic_configs.py", &[]);
}

#[test]
fn dynamic_broker_configs_apply_without_a_restart() {
    run_script("broker_configs.py", &[]);
}

#[test]
fn invalid_topic_names_are_refused() {
    // Auto-creation on: a bad name must still be refused, not created.
    run_script("invalid_topic_names.py", &["--auto-create-topics"]);
}
