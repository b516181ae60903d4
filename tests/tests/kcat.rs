//! kcat (librdkafka 2.0, Debian's build) produces and consumes through the broker with every
//! compression codec.

mod common;

use std::time::Duration;

use common::{assert_kcat_metadata, kcat, BrokerOptions, BrokerProcess};

const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];
const LINES: usize = 1_000;

fn lines_for(codec: &str) -> Vec<String> {
    (0..LINES)
        .map(|i| format!("{codec} line {i:05} {}", "x".repeat(i % 97)))
        .collect()
}

#[test]
fn kcat_round_trip_each_codec() {
    let mut broker = BrokerProcess::start(BrokerOptions::with_args(&["--auto-create-topics"]));
    let bootstrap = broker.bootstrap();
    for codec in CODECS {
        let topic = format!("topic-{codec}");
        let lines = lines_for(codec);
        let input = lines.join("\n") + "\n";
        let produced = kcat(
            &[
                "-b",
                &bootstrap,
                "-P",
                "-t",
                &topic,
                "-z",
                codec,
                "-X",
                "acks=all",
                // Lines are compared in order, and only an idempotent producer keeps its order
                // when it retries a batch (the first may arrive while the auto-created topic's
                // partition is still opening).
                "-X",
                "enable.idempotence=true",
            ],
            Some(input.as_bytes()),
            Duration::from_secs(60),
        );
        assert!(
            produced.succeeded(),
            "producing with {codec} failed\n{}",
            produced.report()
        );
        broker.assert_running(&format!("producing with {codec}"));

        let consumed = kcat(
            &[
                "-C",
                "-b",
                &bootstrap,
                "-t",
                &topic,
                "-o",
                "beginning",
                "-e",
                "-q",
            ],
            None,
            Duration::from_secs(60),
        );
        assert!(
            consumed.succeeded(),
            "consuming {topic} failed\n{}",
            consumed.report()
        );
        let stdout = consumed.stdout();
        let got: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            got.len(),
            lines.len(),
            "{topic}: consumed {} lines, produced {}\n{}",
            got.len(),
            lines.len(),
            consumed.report()
        );
        for (i, (got, want)) in got.iter().zip(&lines).enumerate() {
            assert_eq!(got, want, "{topic}: line {i} differs");
        }
    }
    let topics: Vec<String> = CODECS
        .iter()
        .map(|codec| format!("topic-{codec}"))
        .collect();
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    assert_kcat_metadata(&broker, &topics);
}
