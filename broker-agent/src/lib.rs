//! `millrace-agent`: the process on each broker node. It supervises one `millrace-broker`
//! (start, restart with backoff, graceful stop, in-place upgrade), reports its health, version,
//! disk use and replication state, and serves a small HTTP API for the control plane.

pub mod api;
pub mod backoff;
pub mod config;
pub mod drain;
pub mod heartbeat;
pub mod probe;
pub mod process;
pub mod status;
pub mod supervisor;

use std::sync::Arc;

use anyhow::Context;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::info;

use crate::config::{broker_version_of, find_broker_binary, AgentConfig};
use crate::status::{BrokerState, NodeStatus};
use crate::supervisor::{BrokerBinary, Command, Supervisor};

/// Runs the agent until SIGTERM or SIGINT, then stops the broker gracefully and returns.
pub async fn run(config: AgentConfig) -> anyhow::Result<()> {
    config.validate()?;
    info!(config = ?config, "starting millrace-agent");
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let config = Arc::new(config);

    let binary = resolve_binary(&config)?;
    std::fs::create_dir_all(config.broker_data_dir())
        .with_context(|| format!("creating {}", config.broker_data_dir().display()))?;
    let listener = tokio::net::TcpListener::bind(config.agent_listen)
        .await
        .with_context(|| format!("binding the agent API on {}", config.agent_listen))?;

    let (status, _) = watch::channel(NodeStatus {
        cluster_id: config.cluster_id.clone(),
        node_id: config.node_id,
        state: BrokerState::Starting,
        broker_pid: None,
        version: binary.version.clone(),
        broker_binary: binary.path.display().to_string(),
        disk_used_bytes: 0,
        restarts: 0,
        under_replicated_partitions: 0,
        message: String::new(),
        drain: None,
    });
    // Whatever TLS features the build unified into reqwest, give rustls a crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .build()
        .context("building the HTTP client")?;
    let (commands, commands_rx) = mpsc::channel(16);

    let supervisor = Supervisor::new(config.clone(), binary, status.clone(), http.clone());
    let supervision = tokio::spawn(supervisor.run(commands_rx));
    tokio::spawn(probe::run(config.clone(), http.clone(), status.clone()));
    tokio::spawn(heartbeat::run(
        config.clone(),
        http.clone(),
        status.subscribe(),
    ));
    let app = api::router(api::AppState {
        config: config.clone(),
        status,
        commands: commands.clone(),
        http,
    });
    info!(listen = %config.agent_listen, "agent API listening");
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the agent API stopped");
        }
    });

    tokio::select! {
        _ = term.recv() => info!("SIGTERM received: stopping the broker"),
        _ = int.recv() => info!("SIGINT received: stopping the broker"),
    }
    let (done, finished) = oneshot::channel();
    if commands.send(Command::Shutdown { done }).await.is_ok() {
        let _ = finished.await;
    }
    supervision.abort();
    info!("agent stopped");
    Ok(())
}

fn resolve_binary(config: &AgentConfig) -> anyhow::Result<BrokerBinary> {
    let path = match (&config.broker_bin, &config.bin_dir) {
        (Some(path), _) => path.clone(),
        (None, Some(bin_dir)) => find_broker_binary(bin_dir, config.broker_version.as_deref())?,
        (None, None) => anyhow::bail!("give --broker-bin or --bin-dir"),
    };
    let path = path
        .canonicalize()
        .with_context(|| format!("the broker binary {}", path.display()))?;
    anyhow::ensure!(path.is_file(), "{} is not a file", path.display());
    let version = match &config.broker_version {
        Some(version) => version.clone(),
        None => broker_version_of(&path)?,
    };
    Ok(BrokerBinary { path, version })
}

/// Logs to stderr, in text or JSON.
pub fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
