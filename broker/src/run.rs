//! Start-up and shutdown of the broker process.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::{admin, metadata, replication, server};

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

/// Starts the broker's background tasks: heartbeats, metadata sync, ISR maintenance, group
/// timers, offsets compaction, flush and retention. They stop when `shutdown` turns true.
pub fn spawn_tasks(
    broker: &Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(broker.clone().run_heartbeats(shutdown.clone())),
        tokio::spawn(metadata::sync::run(broker.clone(), shutdown.clone())),
        tokio::spawn(replication::isr::run(broker.clone(), shutdown.clone())),
        tokio::spawn(broker.groups.clone().run(shutdown.clone())),
        tokio::spawn(broker.groups.clone().run_offsets_compaction(
            Duration::from_millis(broker.config.retention_check_interval_ms.max(10)),
            broker.config.offsets_compaction_min_records as usize,
            shutdown.clone(),
        )),
        tokio::spawn(broker.clone().run_background(shutdown)),
    ]
}

/// Runs a broker until SIGTERM or SIGINT, then shuts it down gracefully: leaderships moved to
/// other in-sync replicas (controlled shutdown), no new connections, the requests in flight
/// answered, every log flushed.
pub async fn run(config: BrokerConfig) -> anyhow::Result<()> {
    config.validate()?;
    info!(config = ?config, "starting millrace-broker");
    // Every segment keeps its log and index files open: ask for as many descriptors as the
    // system allows, like Kafka's deployment guides do.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => info!(open_files_limit = limit, "file descriptor limit"),
        Err(error) => warn!(%error, "could not raise the file descriptor limit"),
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the Kafka listener on {}", config.listen))?;
    let admin_listener = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("binding the admin listener on {}", config.admin_listen))?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let admin_broker: admin::Shared = Arc::new(std::sync::OnceLock::new());
    let admin_task = tokio::spawn(admin::serve(
        admin_listener,
        admin_broker.clone(),
        shutdown_rx.clone(),
    ));

    let broker = Broker::start(config).await?;
    let _ = admin_broker.set(broker.clone());
    let tasks = spawn_tasks(&broker, shutdown_rx.clone());
    let serving = tokio::spawn(server::serve(broker.clone(), listener, shutdown_rx.clone()));
    {
        // Ready once the controller let this broker in: before that it can lead nothing.
        let broker = broker.clone();
        tokio::spawn(async move {
            while !broker.wait_unfenced(Duration::from_secs(5)).await {
                info!("waiting for the controller to register this broker");
            }
            broker.ready.send_replace(true);
            info!(
                listen = %broker.config.listen,
                admin = %broker.config.admin_listen,
                node_id = broker.config.node_id,
                "broker ready"
            );
        });
    }

    wait_for_signal().await;
    broker.ready.send_replace(false);
    controlled_shutdown(&broker).await;
    info!("shutting down: no new connections, finishing requests in flight");
    broker.stopping.send_replace(true);
    shutdown_tx.send_replace(true);
    serving.await.context("listener task")??;
    for task in tasks {
        let _ = task.await;
    }
    let flushing = broker.clone();
    tokio::task::spawn_blocking(move || flushing.partitions.flush_all()).await?;
    broker.quorum.shutdown().await;
    let _ = admin_task.await;
    info!("shutdown complete");
    Ok(())
}

/// Asks the controller to move this broker's leaderships to other in-sync replicas, so that
/// producers see no error while it stops. Bounded: a broker that cannot reach a controller
/// still stops.
pub async fn controlled_shutdown(broker: &Broker) {
    let others = broker.metadata().brokers.len() > 1;
    if !others {
        return;
    }
    info!("controlled shutdown: moving leaderships away");
    match tokio::time::timeout(
        Duration::from_secs(30),
        broker.quorum.controlled_shutdown(broker.config.node_id),
    )
    .await
    {
        Ok(Ok(())) => {
            // Let the metadata reach this broker so it stops acting as leader before closing.
            tokio::time::sleep(Duration::from_millis(300)).await;
            info!("controlled shutdown done");
        }
        Ok(Err(error)) => warn!(%error, "controlled shutdown failed; stopping anyway"),
        Err(_) => warn!("controlled shutdown timed out; stopping anyway"),
    }
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
