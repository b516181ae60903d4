//! Start-up and shutdown of the broker process.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::{admin, server};

pub fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MILLRACE_LOG")
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

/// Runs a broker until SIGTERM or SIGINT, then shuts it down gracefully: stop accepting, answer
/// the requests in flight, flush every log, return.
pub async fn run(config: BrokerConfig) -> anyhow::Result<()> {
    config.validate()?;
    info!(config = ?config, "starting millrace-broker");
    // Every segment keeps its log and index files open: ask for as many descriptors as the
    // system allows, like Kafka's deployment guides do.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => info!(open_files_limit = limit, "file descriptor limit"),
        Err(error) => tracing::warn!(%error, "could not raise the file descriptor limit"),
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the Kafka listener on {}", config.listen))?;
    let admin_listener = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("binding the admin listener on {}", config.admin_listen))?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let admin_broker: Arc<std::sync::OnceLock<Arc<Broker>>> = Arc::new(std::sync::OnceLock::new());
    let admin_task = tokio::spawn(admin::serve(
        admin_listener,
        admin_broker.clone(),
        shutdown_rx.clone(),
    ));

    let broker = tokio::task::spawn_blocking(move || Broker::open(config))
        .await
        .context("opening the data directory")??;
    let _ = admin_broker.set(broker.clone());
    let background = tokio::spawn(broker.clone().run_background(shutdown_rx.clone()));
    let groups = tokio::spawn(broker.groups.clone().run(shutdown_rx.clone()));
    broker.ready.send_replace(true);
    info!(
        listen = %broker.config.listen,
        admin = %broker.config.admin_listen,
        node_id = broker.config.node_id,
        "broker ready"
    );

    let serving = tokio::spawn(server::serve(broker.clone(), listener, shutdown_rx.clone()));
    wait_for_signal().await;
    info!("shutting down: no new connections, finishing requests in flight");
    broker.ready.send_replace(false);
    shutdown_tx.send_replace(true);
    serving.await.context("listener task")??;
    let _ = background.await;
    let _ = groups.await;
    let flushing = broker.clone();
    tokio::task::spawn_blocking(move || flushing.partitions.flush_all()).await?;
    let _ = admin_task.await;
    info!("shutdown complete");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing the SIGINT handler");
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received"),
        _ = int.recv() => info!("SIGINT received"),
    }
}
