//! The `millrace` binary end to end: `serve` on a fresh data directory (SQLite) or PostgreSQL,
//! the first admin token printed once, and the CLI driving the API.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Backend, TestDb};

const BINARY: &str = env!("CARGO_BIN_EXE_millrace");

struct Server {
    child: Child,
    endpoint: String,
    stdout: Arc<Mutex<Vec<String>>>,
    data_dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The reconciler may have started broker nodes (agents run in their own session and
        // outlive `serve` on purpose): stop every process started under this data dir.
        let needle = self.data_dir.to_string_lossy().into_owned();
        for pid in processes_mentioning(&needle) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// Pids whose command line contains `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|cmdline| String::from_utf8_lossy(&cmdline).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn serve(
    data_dir: &std::path::Path,
    database_url: Option<&str>,
    admin_token: Option<&str>,
) -> Server {
    let port = free_port();
    let mut command = Command::new(BINARY);
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("MILLRACE_ADMIN_TOKEN")
        .env_remove("MILLRACE_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(url) = database_url {
        command.args(["--database-url", url]);
    }
    if let Some(token) = admin_token {
        command.env("MILLRACE_ADMIN_TOKEN", token);
    }
    let mut child = command.spawn().expect("start millrace serve");
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let lines = BufReader::new(child.stdout.take().unwrap());
    let sink = stdout.clone();
    std::thread::spawn(move || {
        for line in lines.lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let _ = rustls::crypto::ring::default_provider().install_default();
        if let Ok(response) = reqwest::get(format!("{endpoint}/healthz")).await {
            if response.status().is_success() {
                break;
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("millrace serve exited early: {status}");
        }
        assert!(Instant::now() < deadline, "millrace serve did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Server {
        child,
        endpoint,
        stdout,
        data_dir: data_dir.to_path_buf(),
    }
}

fn printed_token(server: &Server) -> Option<String> {
    server
        .stdout
        .lock()
        .unwrap()
        .iter()
        .find_map(|line| line.strip_prefix("Admin token (shown only this once; keep it): "))
        .map(str::to_owned)
}

fn cli(server: &Server, token: &str, args: &[&str]) -> Output {
    Command::new(BINARY)
        .args(args)
        .env("MILLRACE_ENDPOINT", &server.endpoint)
        .env("MILLRACE_TOKEN", token)
        .output()
        .expect("run the CLI")
}

fn stdout_json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "CLI failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON output")
}

async fn first_start_prints_one_token_and_the_cli_works(backend: Backend) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let db = match backend {
        Backend::Postgres => Some(TestDb::new(Backend::Postgres).await),
        Backend::Sqlite => None,
    };
    let url = db.as_ref().map(|db| db.url.clone());

    let server = serve(&data_dir, url.as_deref(), None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let token = printed_token(&server).expect("the first start prints an admin token");
    if url.is_none() {
        assert!(
            data_dir.join("millrace.db").exists(),
            "SQLite under --data-dir"
        );
    }

    let created = stdout_json(&cli(
        &server,
        &token,
        &[
            "cluster",
            "create",
            "--name",
            "demo",
            "--brokers",
            "3",
            "--volume-size",
            "10",
        ],
    ));
    assert_eq!(created["state"], "CREATING");
    let id = created["clusterId"].as_str().unwrap().to_owned();
    let list = cli(&server, &token, &["cluster", "list"]);
    assert!(list.status.success());
    assert!(String::from_utf8_lossy(&list.stdout).contains("demo"));
    let described = stdout_json(&cli(&server, &token, &["cluster", "describe", &id]));
    assert_eq!(described["clusterName"], "demo");
    let bootstrap = cli(&server, &token, &["bootstrap", &id]);
    assert!(
        !bootstrap.status.success(),
        "no bootstrap brokers before ACTIVE"
    );
    let bad = cli(
        &server,
        &token,
        &["cluster", "create", "--name", "1bad", "--volume-size", "10"],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("clusterName"));
    let wrong_token = cli(&server, "mr_wrong", &["cluster", "list"]);
    assert!(String::from_utf8_lossy(&wrong_token.stderr).contains("401"));
    let deleted = stdout_json(&cli(&server, &token, &["cluster", "delete", &id]));
    assert_eq!(deleted["state"], "DELETING");
    drop(server);

    // A restart prints no token; the first one still works; MILLRACE_ADMIN_TOKEN adds one.
    let server = serve(&data_dir, url.as_deref(), Some("mr_from_the_environment")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(printed_token(&server), None);
    assert!(
        !server
            .stdout
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("mr_from_the_environment")),
        "a given token is never printed"
    );
    assert!(cli(&server, &token, &["cluster", "list"]).status.success());
    assert!(
        cli(&server, "mr_from_the_environment", &["cluster", "list"])
            .status
            .success()
    );
}

on_both_databases!(first_start_prints_one_token_and_the_cli_works);

#[test]
fn openapi_subcommand_prints_the_document() {
    let output = Command::new(BINARY).arg("openapi").output().unwrap();
    assert!(output.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
}
