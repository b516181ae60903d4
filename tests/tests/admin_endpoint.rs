//! The HTTP admin endpoint: /health, /ready, /metrics.

mod common;

use std::time::Duration;

use common::{kcat, BrokerOptions, BrokerProcess};

/// The value of the sample `name{labels}` (or `name` without labels) in Prometheus text.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

#[test]
fn health_ready_and_metrics() {
    let mut broker = BrokerProcess::start(BrokerOptions::with_args(&["--auto-create-topics"]));
    let (status, body) = broker.admin_get("/health");
    assert_eq!((status, body.trim()), (200, "ok"), "/health");
    let (status, body) = broker.admin_get("/ready");
    assert_eq!((status, body.trim()), (200, "ready"), "/ready");
    assert_eq!(broker.admin_get("/no-such-page").0, 404, "an unknown path");

    let lines: Vec<String> = (0..100).map(|i| format!("metered-{i:03}")).collect();
    kcat(
        &[
            "-b",
            &broker.bootstrap(),
            "-P",
            "-t",
            "metered",
            "-X",
            "acks=all",
        ],
        Some((lines.join("\n") + "\n").as_bytes()),
        Duration::from_secs(60),
    )
    .assert_success();
    let consumed = kcat(
        &[
            "-C",
            "-b",
            &broker.bootstrap(),
            "-t",
            "metered",
            "-o",
            "beginning",
            "-e",
            "-q",
        ],
        None,
        Duration::from_secs(60),
    )
    .assert_success();
    assert_eq!(consumed.stdout().lines().count(), 100, "records read back");

    let (status, metrics) = broker.admin_get("/metrics");
    assert_eq!(status, 200, "/metrics status");
    let value = |series: &str| {
        sample(&metrics, series)
            .unwrap_or_else(|| panic!("/metrics has no sample {series}:\n{metrics}"))
    };
    assert!(value("millrace_bytes_in_total{topic=\"metered\"}") >= 100.0 * 10.0);
    assert_eq!(value("millrace_records_in_total{topic=\"metered\"}"), 100.0);
    assert!(value("millrace_bytes_out_total{topic=\"metered\"}") >= 100.0 * 10.0);
    assert!(value("millrace_records_out_total{topic=\"metered\"}") >= 100.0);
    assert!(value("millrace_log_size_bytes{topic=\"metered\"}") > 0.0);
    assert!(value("millrace_partitions") >= 1.0);
    // A single-node broker is its own metadata quorum, hence the active controller.
    assert_eq!(value("millrace_active_controller"), 1.0);
    assert!(
        metrics.contains("millrace_request_duration_seconds_bucket{"),
        "/metrics has no request duration histogram:\n{metrics}"
    );
    assert!(
        metrics.contains("api=\"Produce\"") && metrics.contains("api=\"Fetch\""),
        "/metrics has no Produce and Fetch request durations:\n{metrics}"
    );
    broker.assert_running("the admin endpoint checks");
}
