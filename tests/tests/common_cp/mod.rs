//! The control-plane harness: builds `millrace`, `millrace-agent` and `millrace-broker`, runs
//! `millrace serve` on a free port over a temporary data directory (SQLite, or a fresh
//! PostgreSQL database), and drives it over HTTP with curl, like a user would.
#![allow(dead_code)]

pub mod old_version;
pub mod workload;

use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// The directory holding freshly built `millrace`, `millrace-agent` and `millrace-broker`
/// (built once per test process, with the test executable's profile).
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test executable's path");
        // Two builds: built in one invocation with the control plane, the agent would get
        // reqwest's `rustls-no-provider` feature (features unify across a build) and panic
        // building its HTTP client.
        for packages in [
            &["millrace-broker-agent", "millrace-broker"][..],
            &["millrace-control-plane"][..],
        ] {
            let mut build = Command::new(env!("CARGO"));
            build.arg("build").current_dir(env!("CARGO_MANIFEST_DIR"));
            for package in packages {
                build.args(["-p", package]);
            }
            build.arg("--bins");
            if exe.components().any(|c| c.as_os_str() == "release") {
                build.arg("--release");
            }
            let output = build.output().expect("running cargo build");
            assert!(
                output.status.success(),
                "cargo build {packages:?} failed ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test executable lives in target/<profile>/deps")
            .to_path_buf();
        for binary in ["millrace", "millrace-agent", "millrace-broker"] {
            assert!(dir.join(binary).is_file(), "{binary} was not built");
        }
        dir
    })
}

/// Whether the built broker runs a replicated metadata quorum (`--voters`); until it does,
/// each broker of a cluster is a single-node Kafka cluster of its own.
pub fn brokers_replicate() -> bool {
    let output = Command::new(bin_dir().join("millrace-broker"))
        .arg("--help")
        .output()
        .expect("running millrace-broker --help");
    String::from_utf8_lossy(&output.stdout).contains("--voters")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding an ephemeral port")
        .port()
}

/// A distinct block of node ports per control plane in this test process, so that control
/// planes running in parallel (separate platform roots) never hand out the same port; the
/// pid spreads test processes over different blocks.
fn node_port_block() -> String {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let block = NEXT.fetch_add(1, Ordering::SeqCst);
    let base = 20_000 + (std::process::id() % 10) as u16 * 1_200 + block * 200;
    format!("{base}-{}", base + 200)
}

#[derive(Debug, Clone, Copy)]
pub enum Database {
    Sqlite,
    Postgres,
}

/// A fresh database: SQLite under the data dir, or a new PostgreSQL database (dropped at the
/// end) on the server the store tests use.
pub struct TestDatabase {
    pub url: Option<String>,
    postgres: Option<(String, String)>,
}

fn postgres_admin_url() -> String {
    std::env::var("MILLRACE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl TestDatabase {
    pub fn new(kind: Database) -> TestDatabase {
        match kind {
            Database::Sqlite => TestDatabase {
                url: None,
                postgres: None,
            },
            Database::Postgres => {
                let admin = postgres_admin_url();
                let name = format!(
                    "millrace_e2e_{}_{}",
                    std::process::id(),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_nanos()
                );
                psql(&admin, &format!("CREATE DATABASE {name}"));
                let base = admin
                    .rsplit_once('/')
                    .expect("admin URL names a database")
                    .0;
                TestDatabase {
                    url: Some(format!("{base}/{name}")),
                    postgres: Some((admin, name)),
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.postgres.take() {
            let _ = Command::new("psql")
                .args([
                    &admin,
                    "-q",
                    "-c",
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ])
                .output();
        }
    }
}

fn psql(url: &str, sql: &str) {
    let output = Command::new("psql")
        .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql (the PostgreSQL tests need it and a server; .ci/run installs both)");
    assert!(
        output.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// One `millrace serve` (restartable over the same data dir, database and port).
pub struct ControlPlane {
    child: Option<Child>,
    pub data_dir: TempDir,
    pub port: u16,
    pub token: String,
    database: TestDatabase,
    node_ports: String,
    /// More `millrace serve` arguments.
    extra_args: Vec<String>,
}

impl ControlPlane {
    pub fn start(kind: Database) -> ControlPlane {
        Self::start_with(kind, &[])
    }

    /// [`Self::start`] with more `millrace serve` arguments.
    pub fn start_with(kind: Database, extra_args: &[&str]) -> ControlPlane {
        let data_dir = tempfile::Builder::new()
            .prefix("millrace-cp-e2e-")
            .tempdir()
            .expect("a temp dir");
        let mut control_plane = ControlPlane {
            child: None,
            data_dir,
            port: free_port(),
            token: "mr_e2e_admin_token_0123456789abcdef".into(),
            database: TestDatabase::new(kind),
            node_ports: node_port_block(),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        };
        control_plane.spawn();
        control_plane
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.path().join("serve.log")
    }

    pub fn platform_root(&self) -> PathBuf {
        self.data_dir.path().join("data/local-platform")
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none());
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("opening the control plane's log");
        let mut command = Command::new(bin_dir().join("millrace"));
        command
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data-dir")
            .arg(self.data_dir.path().join("data"))
            .args(["--node-ports", &self.node_ports])
            .args(["--broker-ready-timeout-secs", "90"])
            .args(&self.extra_args)
            .env("MILLRACE_ADMIN_TOKEN", &self.token)
            .env("MILLRACE_LOG", "info,millrace_control_plane=debug")
            .env_remove("MILLRACE_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(url) = &self.database.url {
            command.args(["--database-url", url]);
        }
        self.child = Some(command.spawn().expect("starting millrace serve"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("millrace serve exited ({status}):\n{}", self.log_tail());
            }
            if self.request("GET", "/healthz", None).0 == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "millrace serve did not answer:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// kill -9, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(120)..].join("\n")
    }

    /// (status, body) of an API request (with the admin token).
    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
        let mut command = Command::new("curl");
        command
            .args(["-sS", "-m", "30", "-X", method, "-w", "\n%{http_code}"])
            .args(["-H", &format!("Authorization: Bearer {}", self.token)])
            .arg(format!("http://127.0.0.1:{}{path}", self.port));
        if let Some(body) = body {
            command
                .args(["-H", "Content-Type: application/json"])
                .args(["--data-binary", &body.to_string()]);
        }
        let output = command.output().expect("running curl");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (status.trim().parse().unwrap_or(0), body.to_owned())
    }

    /// The JSON body of a request that must answer `expected`.
    pub fn json(&self, method: &str, path: &str, body: Option<&Value>, expected: u16) -> Value {
        let (status, text) = self.request(method, path, body);
        assert_eq!(
            status,
            expected,
            "{method} {path} answered {status}: {text}\ncontrol plane log:\n{}",
            self.log_tail()
        );
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"))
    }

    /// Polls the cluster until `done` holds of its description, or panics after `timeout`.
    pub fn wait_cluster(
        &self,
        cluster_id: &str,
        timeout: Duration,
        what: &str,
        done: impl Fn(u16, &Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, text) = self.request("GET", &format!("/v1/clusters/{cluster_id}"), None);
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if done(status, &value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "cluster {cluster_id} not {what} after {timeout:?}: {status} {text}\noperations: {}\ncontrol plane log:\n{}",
                self.request("GET", &format!("/v1/clusters/{cluster_id}/operations"), None).1,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn wait_active(&self, cluster_id: &str, timeout: Duration) -> Value {
        self.wait_cluster(cluster_id, timeout, "ACTIVE", |status, cluster| {
            assert_ne!(
                cluster["state"],
                "FAILED",
                "the cluster FAILED: {cluster}\n{}",
                self.request(
                    "GET",
                    &format!("/v1/clusters/{cluster_id}/operations"),
                    None
                )
                .1
            );
            status == 200 && cluster["state"] == "ACTIVE"
        })
    }

    /// The platform's record of a node's agent pid.
    pub fn agent_pid(&self, cluster_id: &str, broker_id: i32) -> u32 {
        let path = self
            .platform_root()
            .join(format!("{cluster_id}/nodes/broker-{broker_id}/node.json"));
        let record: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        record["agentPid"].as_u64().unwrap() as u32
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- millrace serve log (tail) ---\n{}", self.log_tail());
        }
        self.kill9();
        // Leave no node behind, whatever the test did: every process started for a cluster of
        // this data dir carries the platform root in its arguments.
        let root = self.platform_root();
        for pid in processes_mentioning(&root.to_string_lossy()) {
            kill9_pid(pid);
        }
    }
}

/// Pids whose command line contains `needle` (a /proc scan).
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) && !is_zombie(pid) {
            pids.push(pid);
        }
    }
    pids
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
            Some(after == 'Z')
        })
        .unwrap_or(true)
}

/// kill -9 of one process.
pub fn kill9_pid(pid: u32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).output();
}
