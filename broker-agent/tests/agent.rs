//! The real `millrace-agent` supervising the real `millrace-broker`: readiness, a kcat round trip,
//! restart after kill -9 with the data intact, graceful stop on SIGTERM, the broker following a
//! SIGKILLed agent (PR_SET_PDEATHSIG), in-place restart and stop, and heartbeats to a fake control
//! plane.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(30);

/// `millrace-broker` and `millrace-agent`, built once, in the test executable's profile dir.
fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test executable's path");
        let mut build = Command::new(env!("CARGO"));
        build
            .args([
                "build",
                "-p",
                "millrace-broker",
                "-p",
                "millrace-broker-agent",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if exe.components().any(|c| c.as_os_str() == "release") {
            build.arg("--release");
        }
        let output = build.output().expect("running cargo build");
        assert!(
            output.status.success(),
            "cargo build failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // The test executable is target/<profile>/deps/<name>-<hash>.
        let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        assert!(dir.join("millrace-broker").is_file());
        assert!(dir.join("millrace-agent").is_file());
        dir
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Agent {
    child: Option<Child>,
    dir: TempDir,
    kafka_port: u16,
    agent_port: u16,
}

impl Agent {
    fn start(extra: &[String]) -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("millrace-agent-test-")
            .tempdir()
            .unwrap();
        let mut agent = Agent {
            child: None,
            dir,
            kafka_port: free_port(),
            agent_port: free_port(),
        };
        let log = std::fs::File::create(agent.log_path()).unwrap();
        let child = Command::new(bin_dir().join("millrace-agent"))
            .args(["--node-id", "1", "--cluster-id", "test-cluster"])
            .arg("--data-dir")
            .arg(agent.volume())
            .arg("--bin-dir")
            .arg(bin_dir())
            .arg("--broker-listen")
            .arg(format!("127.0.0.1:{}", agent.kafka_port))
            .arg("--broker-admin-listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--agent-listen")
            .arg(format!("127.0.0.1:{}", agent.agent_port))
            .args([
                "--broker-arg=--auto-create-topics",
                "--probe-interval-ms",
                "200",
            ])
            .args(extra)
            .env_remove("MILLRACE_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting millrace-agent");
        agent.child = Some(child);
        agent
    }

    fn volume(&self) -> PathBuf {
        self.dir.path().join("volume")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.kafka_port)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.agent_port)
    }

    async fn status(&self) -> Option<Value> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::get(self.url("/status"))
            .await
            .ok()?
            .json()
            .await
            .ok()
    }

    /// Waits until `/status` satisfies `predicate`, and returns it.
    async fn wait_status(&self, what: &str, predicate: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.status().await {
                if predicate(&status) {
                    return status;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the agent never reported {what}; status {:?}\nlog:\n{}",
                self.status().await,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_running(&self) -> Value {
        self.wait_status("state running", |s| s["state"] == "running")
            .await
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the agent process to exit and returns its exit code.
    async fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not exit; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // The broker follows through PR_SET_PDEATHSIG.
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("agent log:\n{}", self.log());
        }
    }
}

fn process_alive(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next()),
            Some("Z") | Some("X")
        ),
        Err(_) => false,
    }
}

async fn wait_dead(pid: u64, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if !process_alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn kcat(args: Vec<String>, input: Option<&'static str>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new("timeout")
            .arg("30")
            .arg("kcat")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running kcat");
        let mut stdin = child.stdin.take().unwrap();
        if let Some(input) = input {
            std::io::Write::write_all(&mut stdin, input.as_bytes()).unwrap();
        }
        drop(stdin);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

async fn produce(bootstrap: &str, topic: &str, input: &'static str) {
    let args = ["-b", bootstrap, "-P", "-t", topic, "-X", "acks=all"];
    let output = kcat(args.map(String::from).to_vec(), Some(input)).await;
    assert!(output.status.success(), "kcat -P failed: {output:?}");
}

async fn consume(bootstrap: &str, topic: &str) -> String {
    let args = [
        "-b",
        bootstrap,
        "-C",
        "-t",
        topic,
        "-o",
        "beginning",
        "-e",
        "-q",
    ];
    let output = kcat(args.map(String::from).to_vec(), None).await;
    assert!(output.status.success(), "kcat -C failed: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_runs_and_is_restarted_after_kill_9_with_its_data() {
    let agent = Agent::start(&[]);
    let status = agent.wait_running().await;
    assert_eq!(status["version"], "millrace-0.1.0");
    assert_eq!(status["restarts"], 0);
    assert_eq!(status["underReplicatedPartitions"], 0);
    let first_pid = status["brokerPid"].as_u64().expect("a broker pid");

    produce(&agent.bootstrap(), "orders", "order-1\norder-2\n").await;
    assert_eq!(
        consume(&agent.bootstrap(), "orders").await,
        "order-1\norder-2\n"
    );

    Command::new("kill")
        .args(["-9", &first_pid.to_string()])
        .status()
        .unwrap();
    let status = agent
        .wait_status("a restarted broker", |s| {
            s["state"] == "running" && s["brokerPid"].as_u64() != Some(first_pid)
        })
        .await;
    assert_eq!(status["restarts"], 1);
    assert!(
        status["message"].as_str().unwrap().contains("signal 9"),
        "{status}"
    );
    assert!(status["diskUsedBytes"].as_u64().unwrap() > 0, "{status}");
    assert_eq!(
        consume(&agent.bootstrap(), "orders").await,
        "order-1\norder-2\n",
        "the restarted broker lost data"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_broker_gracefully_and_exits_zero() {
    let mut agent = Agent::start(&[]);
    let status = agent.wait_running().await;
    let broker_pid = status["brokerPid"].as_u64().unwrap();
    agent.signal("-TERM");
    assert_eq!(agent.wait_exit().await, Some(0), "log:\n{}", agent.log());
    assert!(
        !process_alive(broker_pid),
        "the broker outlived the agent's graceful exit"
    );
    assert!(
        agent.log().contains("shutdown complete"),
        "no controlled shutdown:\n{}",
        agent.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_agent_takes_its_broker_down() {
    let mut agent = Agent::start(&[]);
    let status = agent.wait_running().await;
    let broker_pid = status["brokerPid"].as_u64().unwrap();
    agent.signal("-KILL");
    agent.wait_exit().await;
    assert!(
        wait_dead(broker_pid, Duration::from_secs(15)).await,
        "the broker outlived its SIGKILLed agent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_and_stop_on_request() {
    let agent = Agent::start(&[]);
    let status = agent.wait_running().await;
    let first_pid = status["brokerPid"].as_u64().unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();

    let unknown = http
        .post(agent.url("/restart"))
        .json(&serde_json::json!({ "brokerVersion": "millrace-99.0.0" }))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 422);
    let bad = http
        .post(agent.url("/restart"))
        .body("{\"brokerVersoin\": \"x\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let restart = http
        .post(agent.url("/restart"))
        .json(&serde_json::json!({ "brokerVersion": "millrace-0.1.0" }))
        .send()
        .await
        .unwrap();
    assert_eq!(restart.status(), 202);
    let status = agent
        .wait_status("a broker restarted in place", |s| {
            s["state"] == "running" && s["brokerPid"].as_u64() != Some(first_pid)
        })
        .await;
    assert_eq!(status["restarts"], 0, "a requested restart is not a crash");
    assert!(!process_alive(first_pid));

    let drain = http.post(agent.url("/drain")).send().await.unwrap();
    assert_eq!(drain.status(), 202);
    let drain: Value = drain.json().await.unwrap();
    // The broker moves its leaderships away (POST /admin/drain, a controlled shutdown).
    assert_eq!(drain["supported"], true, "{drain}");

    let stop = http.post(agent.url("/stop")).send().await.unwrap();
    assert_eq!(stop.status(), 202);
    let status = agent
        .wait_status("state stopped", |s| s["state"] == "stopped")
        .await;
    assert!(status["brokerPid"].is_null());
    let restart = http.post(agent.url("/restart")).send().await.unwrap();
    assert_eq!(restart.status(), 202);
    agent.wait_running().await;
}

/// What the fake control plane received: (path, authorization header, body).
type Received = Arc<Mutex<Vec<(String, String, Value)>>>;

async fn fake_control_plane() -> (String, Received) {
    use axum::extract::{Request, State};
    let received: Received = Arc::default();
    let app = axum::Router::new()
        .fallback(
            |State(received): State<Received>, request: Request| async move {
                let path = request.uri().path().to_string();
                let auth = request
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let body = axum::body::to_bytes(request.into_body(), 1 << 20)
                    .await
                    .unwrap();
                let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                received.lock().unwrap().push((path, auth, body));
                axum::http::StatusCode::NO_CONTENT
            },
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_reach_the_control_plane() {
    let (url, received) = fake_control_plane().await;
    let agent = Agent::start(&[
        "--control-plane-url".into(),
        url,
        "--agent-token".into(),
        "agent-secret-token".into(),
        "--heartbeat-interval-ms".into(),
        "200".into(),
    ]);
    let status = agent.wait_running().await;
    let deadline = Instant::now() + WAIT;
    let beat = loop {
        let running = received
            .lock()
            .unwrap()
            .iter()
            .find(|(_, _, body)| body["state"] == "running")
            .cloned();
        if let Some(beat) = running {
            break beat;
        }
        assert!(
            Instant::now() < deadline,
            "no running heartbeat; got {:?}",
            received.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (path, auth, body) = beat;
    assert_eq!(path, "/internal/v1/clusters/test-cluster/nodes/1/heartbeat");
    assert_eq!(auth, "Bearer agent-secret-token");
    assert_eq!(body["version"], "millrace-0.1.0");
    assert_eq!(body["brokerPid"], status["brokerPid"]);
    assert!(body["diskUsedBytes"].is_u64());
    assert_eq!(body["underReplicatedPartitions"], 0);
    assert!(body["message"].is_string());
    assert!(
        !agent.log().contains("agent-secret-token"),
        "the token was logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_control_plane_changes_nothing() {
    let agent = Agent::start(&[
        "--control-plane-url".into(),
        format!("http://127.0.0.1:{}", free_port()),
        "--agent-token".into(),
        "t".into(),
        "--heartbeat-interval-ms".into(),
        "100".into(),
    ]);
    let status = agent.wait_running().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = agent.wait_running().await;
    assert_eq!(status["brokerPid"], later["brokerPid"]);
    assert_eq!(
        agent.log().matches("heartbeat failed").count(),
        1,
        "one warning per outage:\n{}",
        agent.log()
    );
}
