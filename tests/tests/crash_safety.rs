//! Acknowledged records and committed offsets survive SIGKILL; SIGTERM exits cleanly.

mod common;

use std::time::Duration;

use common::{kcat, run_python, BrokerOptions, BrokerProcess};

const TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn acknowledged_records_and_offsets_survive_kill9() {
    let mut broker = BrokerProcess::start(BrokerOptions::default());
    let state_dir = tempfile::tempdir().unwrap();
    let first = state_dir.path().join("first.json");
    let first = first.to_str().unwrap();
    run_python(
        "durable_produce.py",
        &[&broker.bootstrap(), first, "durable", "20000"],
        TIMEOUT,
    );
    broker.kill9();
    broker.restart();
    run_python("durable_verify.py", &[&broker.bootstrap(), first], TIMEOUT);

    // After recovery the log keeps growing from where it was, and survives a second crash.
    let second = state_dir.path().join("second.json");
    let second = second.to_str().unwrap();
    run_python(
        "durable_produce.py",
        &[&broker.bootstrap(), second, "durable", "3000"],
        TIMEOUT,
    );
    broker.kill9();
    broker.restart();
    run_python(
        "durable_verify.py",
        &[&broker.bootstrap(), first, second],
        TIMEOUT,
    );
}

#[test]
fn sigterm_exits_zero_and_keeps_the_data() {
    // flush.ms of an hour: only the shutdown's own flush can write the recovery point.
    let mut broker = BrokerProcess::start(BrokerOptions::with_args(&[
        "--auto-create-topics",
        "--log-flush-ms",
        "3600000",
    ]));
    let lines: Vec<String> = (0..5000).map(|i| format!("graceful-{i:05}")).collect();
    let input = lines.join("\n") + "\n";
    kcat(
        &[
            "-b",
            &broker.bootstrap(),
            "-P",
            "-t",
            "graceful",
            "-X",
            "acks=all",
            // Order is kept across client retries only with idempotence (as in Kafka).
            "-X",
            "enable.idempotence=true",
        ],
        Some(input.as_bytes()),
        TIMEOUT,
    )
    .assert_success();

    let status = broker.sigterm_and_wait();
    assert!(
        status.success(),
        "SIGTERM: the broker exited with {status}; log:\n{}",
        broker.log_tail()
    );
    assert!(
        broker.log().contains("starting millrace-broker"),
        "the configuration is logged at start-up"
    );
    // The shutdown flushed every log: the recovery point is the log end, so that the next
    // start trusts every segment instead of re-reading the last one.
    let checkpoint = broker
        .data_dir()
        .join("logs/graceful-0/recovery-point-offset-checkpoint");
    let checkpoint = std::fs::read_to_string(&checkpoint)
        .unwrap_or_else(|e| panic!("{}: {e}", checkpoint.display()));
    assert_eq!(
        checkpoint.lines().nth(2),
        Some("5000"),
        "recovery point after SIGTERM: {checkpoint:?}"
    );
    broker.restart();
    let consumed = kcat(
        &[
            "-C",
            "-b",
            &broker.bootstrap(),
            "-t",
            "graceful",
            "-o",
            "beginning",
            "-e",
            "-q",
        ],
        None,
        TIMEOUT,
    )
    .assert_success();
    let stdout = consumed.stdout();
    let got: Vec<&str> = stdout.lines().collect();
    assert_eq!(got.len(), lines.len(), "records after a SIGTERM restart");
    if let Some(at) = got.iter().zip(&lines).position(|(got, want)| got != want) {
        panic!(
            "records differ after a SIGTERM restart from offset {at}: got {:?}, sent {:?}",
            &got[at..(at + 5).min(got.len())],
            &lines[at..(at + 5).min(lines.len())]
        );
    }
}
