//! The end-to-end harness: builds the real `millrace-broker` binary, runs it on free ports over a
//! temporary data directory, and runs client commands (kcat, python scripts) against it with a
//! time limit.
//!
//! Every test file includes this module with `mod common;` and uses a part of it.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a broker may take to answer `/ready` after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of the broker's log printed when a test fails.
const LOG_TAIL_LINES: usize = 80;

/// The broker binary, built once per test process with the profile of the test executable.
pub fn broker_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test executable's path");
        let release = exe.components().any(|c| c.as_os_str() == "release");
        let mut build = Command::new(env!("CARGO"));
        build
            .args(["build", "-p", "millrace-broker", "--bin", "millrace-broker"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if release {
            build.arg("--release");
        }
        let output = build.output().expect("running cargo build");
        assert!(
            output.status.success(),
            "cargo build -p millrace-broker failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        // The test executable is target/<profile>/deps/<name>-<hash>.
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test executable lives in target/<profile>/deps");
        let binary = profile_dir.join("millrace-broker");
        assert!(binary.exists(), "{} was not built", binary.display());
        binary
    })
}

/// A raw connection to the broker's Kafka port, with 5-second read and write timeouts.
pub fn connect(broker: &BrokerProcess) -> TcpStream {
    let stream = TcpStream::connect_timeout(&broker.kafka_addr(), Duration::from_secs(5))
        .expect("connecting to the Kafka port");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// A request frame with a v1 header (no client id): length, api key, version, correlation id,
/// null client id, then `body`.
pub fn request(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&api_key.to_be_bytes());
    payload.extend_from_slice(&version.to_be_bytes());
    payload.extend_from_slice(&correlation_id.to_be_bytes());
    payload.extend_from_slice(&(-1i16).to_be_bytes());
    payload.extend_from_slice(body);
    let mut frame = (payload.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&payload);
    frame
}

/// Reads one response frame: its body after the length prefix.
pub fn read_response(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut length = [0u8; 4];
    stream
        .read_exact(&mut length)
        .unwrap_or_else(|error| panic!("{what}: no response: {error}"));
    let length = i32::from_be_bytes(length);
    assert!(
        (4..1 << 20).contains(&length),
        "{what}: response length {length}"
    );
    let mut body = vec![0u8; length as usize];
    stream
        .read_exact(&mut body)
        .unwrap_or_else(|error| panic!("{what}: truncated response: {error}"));
    body
}

/// A port nobody listens on right now, that stays free until a broker binds it: taken from
/// 12000-19999, below the kernel's ephemeral range (32768 and up here), so that no outgoing
/// connection is handed it in between, as could happen to a port the kernel chose; a
/// process-wide counter keeps this process's tests from choosing the same one twice.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 12_000;
    const COUNT: u32 = 8_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    // Start where another test binary running at the same time is unlikely to.
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id() * 97 % COUNT,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..COUNT {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}-{}", FIRST + COUNT - 1)
}

/// How a test wants its broker started.
#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    /// Flags added after the harness's own (`--data-dir`, `--listen`, `--admin-listen`,
    /// `--node-id`).
    pub args: Vec<String>,
    /// The broker's id (1 when unset).
    pub node_id: Option<i32>,
    /// The broker executable (the freshly built one when unset), e.g. an older version's.
    pub binary: Option<PathBuf>,
}

impl BrokerOptions {
    pub fn with_args(args: &[&str]) -> BrokerOptions {
        BrokerOptions {
            args: args.iter().map(|arg| arg.to_string()).collect(),
            node_id: None,
            binary: None,
        }
    }
}

/// One running `millrace-broker` process. Dropping it kills the process; dropping it while the
/// test panics prints the tail of the broker's log.
pub struct BrokerProcess {
    child: Option<Child>,
    dir: TempDir,
    port: u16,
    admin_port: u16,
    options: BrokerOptions,
}

impl BrokerProcess {
    /// Starts a broker on free ports over a fresh data directory and waits until it is ready.
    pub fn start(options: BrokerOptions) -> BrokerProcess {
        let mut broker = Self::launch(options);
        broker.wait_ready();
        broker
    }

    /// Starts a broker without waiting for it to be ready (a cluster's brokers only become
    /// ready together, once their metadata quorum formed); call [`BrokerProcess::wait_ready`].
    pub fn launch(options: BrokerOptions) -> BrokerProcess {
        let dir = tempfile::Builder::new()
            .prefix("millrace-e2e-")
            .tempdir()
            .expect("creating the broker's temp dir");
        let mut broker = BrokerProcess {
            child: None,
            dir,
            port: free_port(),
            admin_port: free_port(),
            options,
        };
        broker.spawn();
        broker
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the broker is running").id()
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "the broker is already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("opening the broker log");
        let binary = match &self.options.binary {
            Some(binary) => binary.as_path(),
            None => broker_binary(),
        };
        let child = Command::new(binary)
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--admin-listen", &format!("127.0.0.1:{}", self.admin_port)])
            .args(["--node-id", &self.options.node_id.unwrap_or(1).to_string()])
            .args(&self.options.args)
            .env_remove("MILLRACE_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .spawn()
            .expect("spawning millrace-broker");
        self.child = Some(child);
    }

    /// Waits until the broker's /ready answers 200.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "millrace-broker exited before it was ready ({status}); log:\n{}",
                    self.log_tail()
                );
            }
            if let Ok((200, _)) = http_get(self.admin_addr(), "/ready") {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "millrace-broker was not ready after {READY_TIMEOUT:?}; log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `host:port` for Kafka clients.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn kafka_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn admin_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.admin_port))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("broker.log")
    }

    /// GET on the admin endpoint: (status, body).
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        http_get(self.admin_addr(), path)
            .unwrap_or_else(|error| panic!("GET {path} on the admin endpoint failed: {error}"))
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Panics (with the broker's log) if the process has exited.
    pub fn assert_running(&mut self, context: &str) {
        if !self.is_running() {
            panic!(
                "millrace-broker is no longer running after {context}; log:\n{}",
                self.log_tail()
            );
        }
    }

    /// SIGKILL: the process dies without flushing anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` sends SIGKILL on Unix.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits (up to 30 s) for the process to exit.
    pub fn sigterm_and_wait(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the broker is not running");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("running kill -TERM");
        assert!(sent.success(), "kill -TERM {} failed", child.id());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("waiting for the broker") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "millrace-broker did not exit within 30 s of SIGTERM; log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the process again over the same data directory and ports (after `kill9` or
    /// `sigterm_and_wait`), and waits until it is ready.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.kill9();
        }
        let mut log = OpenOptions::new()
            .append(true)
            .open(self.log_path())
            .expect("opening the broker log");
        let _ = writeln!(log, "===== millrace-e2e: restarting the broker =====");
        self.spawn();
        self.wait_ready();
    }

    /// The executable the next (re)start runs (the freshly built one for `None`): with
    /// `sigterm_and_wait` and `restart`, an in-place version change over the same data.
    pub fn set_binary(&mut self, binary: Option<PathBuf>) {
        self.options.binary = binary;
    }

    /// The last lines the broker logged.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(self.log_path()) {
            let _ = file.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(LOG_TAIL_LINES);
        lines[start..].join("\n")
    }

    /// The whole broker log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- millrace-broker log ({}), last {LOG_TAIL_LINES} lines -----\n{}\n-----",
                self.log_path().display(),
                self.log_tail()
            );
        }
        self.kill9();
    }
}

/// A tiny HTTP/1.1 GET, enough for the admin endpoint: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: */*\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| invalid("no end of HTTP headers"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("no HTTP status code"))?;
    let chunked = head.lines().any(|line| {
        line.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body).ok_or_else(|| invalid("bad chunked body"))?
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size + 2..)?;
    }
}

/// Runs a command with stdin (if any), a time limit, and captured output. Returns the output,
/// successful or not; the process is killed on timeout (and the status says so).
pub fn run_with_timeout(
    command: &mut Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> RunResult {
    let description = format!("{command:?}");
    let mut child = command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {description}: {error}"));
    let feeder = stdin.map(|input| {
        let input = input.to_vec();
        let mut pipe = child.stdin.take().expect("piped stdin");
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        })
    });
    let mut stdout_pipe = child.stdout.take().expect("piped stdout");
    let mut stderr_pipe = child.stderr.take().expect("piped stderr");
    let stdout_reader = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = stdout_pipe.read_to_end(&mut buffer);
        buffer
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut buffer);
        buffer
    });
    let started = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for a child process") {
            break status;
        }
        if started.elapsed() > timeout {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("waiting for a killed child process");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    RunResult {
        description,
        output: Output {
            status,
            stdout: stdout_reader.join().unwrap_or_default(),
            stderr: stderr_reader.join().unwrap_or_default(),
        },
        timed_out,
        elapsed: started.elapsed(),
    }
}

/// What a command did.
pub struct RunResult {
    pub description: String,
    pub output: Output,
    pub timed_out: bool,
    pub elapsed: Duration,
}

impl RunResult {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub fn succeeded(&self) -> bool {
        !self.timed_out && self.output.status.success()
    }

    /// Everything a reader needs to understand a failure.
    pub fn report(&self) -> String {
        format!(
            "command: {}\nstatus: {}{}\nelapsed: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.description,
            self.output.status,
            if self.timed_out {
                " (killed: timed out)"
            } else {
                ""
            },
            self.elapsed,
            truncate_middle(&self.stdout(), 20_000),
            truncate_middle(&self.stderr(), 20_000),
        )
    }

    /// Panics with the full report unless the command exited 0 in time.
    pub fn assert_success(self) -> RunResult {
        assert!(self.succeeded(), "command failed\n{}", self.report());
        self
    }
}

fn truncate_middle(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut head_end = limit / 2;
    while !text.is_char_boundary(head_end) {
        head_end -= 1;
    }
    let mut tail_start = text.len() - limit / 2;
    while !text.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    format!(
        "{}\n[... {} bytes left out ...]\n{}",
        &text[..head_end],
        tail_start - head_end,
        &text[tail_start..]
    )
}

/// The folder of python client scripts.
pub fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// Runs `python3 tests/python/<script> <args...>`; panics with its output on failure.
pub fn run_python(script: &str, args: &[&str], timeout: Duration) -> RunResult {
    run_with_timeout(
        Command::new("python3")
            .arg("-u")
            .arg(python_dir().join(script))
            .args(args)
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        None,
        timeout,
    )
    .assert_success()
}

/// Runs kcat with `args`, stdin and a time limit; the result is not checked.
pub fn kcat(args: &[&str], stdin: Option<&[u8]>, timeout: Duration) -> RunResult {
    run_with_timeout(Command::new("kcat").args(args), stdin, timeout)
}

/// `kcat -L` succeeds and names the broker (and the given topics).
pub fn assert_kcat_metadata(broker: &BrokerProcess, topics: &[&str]) {
    let run = kcat(
        &["-b", &broker.bootstrap(), "-L", "-m", "10"],
        None,
        Duration::from_secs(20),
    )
    .assert_success();
    let listing = run.stdout();
    assert!(
        listing.contains(&format!("broker 1 at {}", broker.bootstrap())),
        "kcat -L does not list broker 1 at {}\n{}",
        broker.bootstrap(),
        run.report()
    );
    for topic in topics {
        assert!(
            listing.contains(&format!("topic \"{topic}\"")),
            "kcat -L does not list topic {topic}\n{}",
            run.report()
        );
    }
}
