//! A steady workload with a history checker around an operation on a running cluster (an
//! upgrade, a rolling restart, a reboot): `tests/python/workload.py` produces with an
//! idempotent `acks=all` producer and consumes in a consumer group until told to stop, then
//! checks every acknowledged record against a read of the whole topic and reports.
//!
//! The script only reports; the judging is here, so that each test states which properties
//! it requires (nothing lost is always required; no produce error is a stronger promise an
//! operation may or may not make).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// Topic creation may retry for a minute while a cluster forms, then waits for leaders.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Flushing (up to 120 s), the group catching up (up to 60 s), and the verification read.
const STOP_TIMEOUT: Duration = Duration::from_secs(240);
/// Printed by the script once the topic exists and records are being sent.
const PRODUCING: &str = "producing to ";
const LOG_TAIL_LINES: usize = 60;

/// A running `workload.py`. Dropping it kills the script (and prints its log if the test is
/// panicking).
pub struct Workload {
    child: Option<Child>,
    dir: TempDir,
}

impl Workload {
    /// Starts the workload at 200 records/s and returns once it produces.
    pub fn start(bootstrap: &str, topic: &str) -> Workload {
        Self::start_at_rate(bootstrap, topic, 200)
    }

    pub fn start_at_rate(bootstrap: &str, topic: &str, records_per_second: u32) -> Workload {
        let dir = tempfile::Builder::new()
            .prefix("millrace-workload-")
            .tempdir()
            .expect("a temp dir");
        let log = File::create(dir.path().join("workload.log")).expect("creating the log");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/workload.py");
        let child = Command::new("python3")
            .arg("-u")
            .arg(script)
            .args([bootstrap, topic])
            .arg(dir.path().join("stop"))
            .arg(dir.path().join("report.json"))
            .arg(records_per_second.to_string())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .spawn()
            .expect("starting python3 workload.py");
        let mut workload = Workload {
            child: Some(child),
            dir,
        };
        workload.wait_producing();
        workload
    }

    fn wait_producing(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.log().contains(PRODUCING) {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "workload.py exited before producing ({status}):\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "workload.py was not producing after {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("workload.log")
    }

    /// Everything the script printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Stops producing, waits for the script's checks and returns its report.
    pub fn stop(mut self) -> WorkloadReport {
        File::create(self.dir.path().join("stop")).expect("creating the stop file");
        let mut child = self.child.take().expect("the workload is running");
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for workload.py") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "workload.py did not finish within {STOP_TIMEOUT:?} of the stop file:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            status.success(),
            "workload.py failed ({status}):\n{}",
            self.log()
        );
        let path = self.dir.path().join("report.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}\n{}", path.display(), self.log()));
        let json: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("workload.py's report is not JSON ({e}):\n{text}"));
        WorkloadReport::from_json(&json)
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "----- workload.py log, last {LOG_TAIL_LINES} lines -----\n{}\n-----",
                lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
            );
        }
    }
}

/// What the workload saw. Values are `<run id>-<sequence number>`; "lost", "duplicated" and
/// "misplaced" are judged against a read of every partition from its beginning to its high
/// watermark after the producer flushed.
#[derive(Debug, Clone)]
pub struct WorkloadReport {
    pub run_id: String,
    pub sent: u64,
    pub acknowledged: u64,
    /// Neither acknowledged nor failed when the flush gave up.
    pub unresolved: u64,
    pub produce_errors: u64,
    pub produce_error_samples: Vec<String>,
    /// Whether the verification read reached every partition's high watermark.
    pub verification_complete: bool,
    pub verified_records: u64,
    /// Acknowledged values absent from the verification read.
    pub lost: u64,
    pub lost_samples: Vec<String>,
    /// Values present at more than one offset.
    pub duplicated: u64,
    pub duplicated_samples: Vec<String>,
    /// Acknowledged values found, but not at the acknowledged partition and offset.
    pub misplaced: u64,
    pub misplaced_samples: Vec<String>,
    /// Distinct values of this run the consumer group received.
    pub group_consumed: u64,
    /// Acknowledged values the group never received.
    pub group_missing: u64,
    pub group_missing_samples: Vec<String>,
    /// Values the group received more than once (allowed: at-least-once delivery).
    pub group_redelivered: u64,
    /// The longest time records were outstanding without any acknowledgement arriving.
    pub longest_stall_ms: f64,
    /// Send-to-acknowledgement latencies (`None` without acknowledgements).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// How long records were produced.
    pub duration_s: f64,
}

impl WorkloadReport {
    fn from_json(json: &Value) -> WorkloadReport {
        let field = |name: &str| {
            json.get(name)
                .unwrap_or_else(|| panic!("the workload report has no {name}: {json:#}"))
        };
        let count = |name: &str| {
            field(name)
                .as_u64()
                .unwrap_or_else(|| panic!("{name} is not a count: {json:#}"))
        };
        let number = |name: &str| field(name).as_f64();
        let samples = |name: &str| -> Vec<String> {
            field(name)
                .as_array()
                .unwrap_or_else(|| panic!("{name} is not a list: {json:#}"))
                .iter()
                .map(|sample| sample.as_str().unwrap_or_default().to_owned())
                .collect()
        };
        WorkloadReport {
            run_id: field("run_id").as_str().unwrap_or_default().to_owned(),
            sent: count("sent"),
            acknowledged: count("acknowledged"),
            unresolved: count("unresolved"),
            produce_errors: count("produce_errors"),
            produce_error_samples: samples("produce_error_samples"),
            verification_complete: field("verification_complete").as_bool() == Some(true),
            verified_records: count("verified_records"),
            lost: count("lost"),
            lost_samples: samples("lost_samples"),
            duplicated: count("duplicated"),
            duplicated_samples: samples("duplicated_samples"),
            misplaced: count("misplaced"),
            misplaced_samples: samples("misplaced_samples"),
            group_consumed: count("group_consumed"),
            group_missing: count("group_missing"),
            group_missing_samples: samples("group_missing_samples"),
            group_redelivered: count("group_redelivered"),
            longest_stall_ms: number("longest_stall_ms").unwrap_or(f64::NAN),
            p50_ms: number("p50_ms"),
            p99_ms: number("p99_ms"),
            max_ms: number("max_ms"),
            duration_s: number("duration_s").unwrap_or(f64::NAN),
        }
    }

    /// What broke the rule "every record sent was either acknowledged or reported failed, and
    /// every acknowledged one is in the log exactly once, where it was acknowledged, and
    /// reached the consumer group", one line per broken part.
    pub fn losses(&self) -> Vec<String> {
        let mut broken = Vec::new();
        if self.acknowledged == 0 {
            broken.push("nothing was acknowledged".to_owned());
        }
        if self.acknowledged + self.produce_errors != self.sent || self.unresolved != 0 {
            broken.push(format!(
                "{} sent, but {} acknowledged and {} failed ({} unresolved)",
                self.sent, self.acknowledged, self.produce_errors, self.unresolved
            ));
        }
        if !self.verification_complete {
            broken.push("the verification read did not reach every high watermark".to_owned());
        }
        for (count, what) in [
            (self.lost, "acknowledged records lost"),
            (self.duplicated, "records duplicated"),
            (self.misplaced, "acknowledged records at another offset"),
            (
                self.group_missing,
                "acknowledged records the group never received",
            ),
        ] {
            if count != 0 {
                broken.push(format!("{count} {what}"));
            }
        }
        broken
    }

    /// Panics with the whole report unless nothing acknowledged was lost (see [`Self::losses`]).
    pub fn assert_nothing_lost(&self) {
        let losses = self.losses();
        assert!(
            losses.is_empty(),
            "the workload lost records: {}\n{self:#?}",
            losses.join("; ")
        );
    }

    /// Panics with the whole report if a single record failed to be produced.
    pub fn assert_no_produce_errors(&self) {
        assert!(
            self.produce_errors == 0 && self.acknowledged == self.sent,
            "{} of {} records failed to be produced ({} acknowledged)\n{self:#?}",
            self.produce_errors,
            self.sent,
            self.acknowledged
        );
    }
}
