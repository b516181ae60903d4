//! Starting the brokers under test: millrace-broker (built in release mode on demand) or a peer
//! broker given as a command line.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Builds millrace-broker in release mode and returns its path (next to this benchmark).
pub fn build_broker() -> anyhow::Result<PathBuf> {
    let cargo = Path::new(env!("CARGO"));
    let mut build = Command::new(cargo);
    // The rustc beside the cargo that built this benchmark, not rustup's proxy: run outside
    // `cargo run`, the proxy would pick a toolchain from the directory it compiles in, and a
    // dependency that ships a rust-toolchain file (anyerror does) asks for one not installed.
    let rustc = cargo.with_file_name("rustc");
    if rustc.is_file() && std::env::var_os("RUSTC").is_none() {
        build.env("RUSTC", rustc);
    }
    let status = build
        .args([
            "build",
            "--release",
            "-p",
            "millrace-broker",
            "--bin",
            "millrace-broker",
        ])
        .status()
        .context("running cargo build for millrace-broker")?;
    if !status.success() {
        bail!("building millrace-broker failed");
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .context("benchmark executable has no directory")?;
    Ok(dir.join("millrace-broker"))
}

/// `tansu broker` on the local host when `tansu` is on PATH. Its storage engines (0.6.0) are
/// PostgreSQL, S3, SQLite and, with the `dynostore` feature the issue's `cargo install tansu
/// --features dynostore` builds, memory: the comparison is against a broker that keeps its
/// records in memory, not on disk. `--peer` runs any other command.
pub fn tansu_command() -> Option<String> {
    let found = std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .any(|dir| Path::new(dir).join("tansu").is_file());
    found.then(|| {
        "tansu broker --listener-url tcp://127.0.0.1:{port} --advertised-listener-url tcp://127.0.0.1:{port} --storage-engine memory://tansu/".to_string()
    })
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub struct BrokerProcess {
    child: Child,
    port: u16,
    /// The admin endpoint's port (0 for a peer broker).
    admin: u16,
    _dir: tempfile::TempDir,
}

impl BrokerProcess {
    pub fn start(binary: &Path, extra: &[&str]) -> anyhow::Result<BrokerProcess> {
        let (process, admin) = Self::launch(binary, 1, extra)?;
        let process = Self::wait_listening(process)?;
        wait_ready(admin)?;
        Ok(process)
    }

    /// Starts `count` brokers forming one replicated cluster (one metadata quorum), and waits
    /// until every one is ready.
    pub fn start_cluster(binary: &Path, count: i32) -> anyhow::Result<Vec<BrokerProcess>> {
        let voters = (1..=count)
            .map(|id| Ok(format!("{id}@127.0.0.1:{}", free_port()?)))
            .collect::<anyhow::Result<Vec<_>>>()?
            .join(",");
        let mut started = Vec::new();
        for id in 1..=count {
            let rack = format!("zone-{id}");
            started.push(Self::launch(
                binary,
                id,
                &["--voters", &voters, "--rack", &rack],
            )?);
        }
        let mut brokers = Vec::new();
        for (process, admin) in started {
            let process = Self::wait_listening(process)?;
            wait_ready(admin)?;
            brokers.push(process);
        }
        Ok(brokers)
    }

    fn launch(binary: &Path, node_id: i32, extra: &[&str]) -> anyhow::Result<(BrokerProcess, u16)> {
        let dir = tempfile::tempdir_in(".")?;
        let port = free_port()?;
        let admin = free_port()?;
        let child = Command::new(binary)
            .args(["--node-id", &node_id.to_string(), "--auto-create-topics"])
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .args(extra)
            .env("MILLRACE_LOG", "warn,openraft=error")
            .stdout(Stdio::null())
            .spawn()
            .context("starting millrace-broker")?;
        Ok((
            BrokerProcess {
                child,
                port,
                admin,
                _dir: dir,
            },
            admin,
        ))
    }

    /// kill -9.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn start_command(template: &str) -> anyhow::Result<BrokerProcess> {
        let dir = tempfile::tempdir_in(".")?;
        let port = free_port()?;
        let command = template
            .replace("{port}", &port.to_string())
            .replace("{dir}", &dir.path().display().to_string());
        let mut words = command.split_whitespace();
        let program = words.next().context("empty peer command")?;
        let child = Command::new(program)
            .args(words)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting peer broker: {command}"))?;
        Self::wait_listening(BrokerProcess {
            child,
            port,
            admin: 0,
            _dir: dir,
        })
    }

    fn wait_listening(mut process: BrokerProcess) -> anyhow::Result<BrokerProcess> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", process.port)).is_ok() {
                return Ok(process);
            }
            if let Some(status) = process.child.try_wait()? {
                bail!("broker exited during start-up: {status}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("broker did not listen within 30 s")
    }

    /// Whether this broker is the active controller (its `/metrics` say so).
    pub fn is_active_controller(&self) -> bool {
        admin_get(self.admin, "/metrics").is_some_and(|answer| {
            is_ok(&answer)
                && answer
                    .lines()
                    .any(|line| line.trim() == "millrace_active_controller 1")
        })
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn status_field_mib(&self, field: &str) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().next())
            .context("field missing from /proc status")?
            .parse()?;
        Ok(kib / 1024.0)
    }

    /// Peak resident memory since start (VmHWM).
    pub fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        self.status_field_mib("VmHWM:")
    }

    pub fn rss_mib(&self) -> anyhow::Result<f64> {
        self.status_field_mib("VmRSS:")
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the broker's admin `/ready` answers 200 (registered with its controller).
fn wait_ready(admin_port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if admin_get(admin_port, "/ready").is_some_and(|answer| is_ok(&answer)) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("broker was not ready within 30 s")
}

fn is_ok(answer: &str) -> bool {
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}

/// The raw HTTP answer of the admin endpoint to `GET path`, if it answered.
fn admin_get(admin_port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", admin_port)).ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}
