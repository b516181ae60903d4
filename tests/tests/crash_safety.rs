//! Acknowledged records and committed offsets survive SIGKILL; SIGTERM exits cleanly.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{connect, kcat, read_response, request, run_python, BrokerOptions, BrokerProcess};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};

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

#[test]
fn sigterm_answers_a_waiting_long_poll_at_once() {
    let mut broker = BrokerProcess::start(BrokerOptions::with_args(&["--auto-create-topics"]));
    kcat(
        &["-b", &broker.bootstrap(), "-P", "-t", "polled"],
        Some(b"one\n"),
        TIMEOUT,
    )
    .assert_success();

    // A consumer's fetch at the log end, willing to wait 20 s for data that never comes.
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(20_000)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("polled")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(1)
                .with_partition_max_bytes(1 << 20)])]);
    let mut body = bytes::BytesMut::new();
    fetch.encode(&mut body, 4).unwrap();
    let mut stream = connect(&broker);
    stream
        .write_all(&request(ApiKey::Fetch as i16, 4, 77, &body))
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    // The broker answers it (empty) and exits at once, rather than holding the shutdown until
    // the poll's end or its shutdown timeout (10 s), when the connection would be cut unanswered.
    let started = Instant::now();
    let status = broker.sigterm_and_wait();
    let took = started.elapsed();
    assert!(status.success(), "SIGTERM: exited with {status}");
    assert!(
        took < Duration::from_secs(8),
        "SIGTERM with a long poll in flight took {took:?}; log:\n{}",
        broker.log_tail()
    );
    let response = read_response(&mut stream, "the long poll in flight at SIGTERM");
    assert_eq!(i32::from_be_bytes(response[..4].try_into().unwrap()), 77);
}
