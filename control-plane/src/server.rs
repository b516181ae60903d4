//! `millrace serve`: open the store, make sure an admin token exists, start the local platform
//! and the reconciler, serve the API.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::ServeConfig;
use crate::domain::VersionCatalog;
use crate::http::{app, ApiConfig, AppState};
use crate::operator::{self, ControllerSettings};
use crate::platform::{install_tls_provider, LocalPlatform, LocalPlatformConfig, Platform};
use crate::reconciler::{Reconciler, ReconcilerConfig};
use crate::store::Store;

/// Creates the first admin token when there is none and prints it once to stdout; accepts
/// `MILLRACE_ADMIN_TOKEN` as an admin token when given (without printing it).
pub async fn bootstrap_admin_token(store: &Store, given: Option<&str>) -> anyhow::Result<()> {
    if let Some(token) = given {
        if store
            .ensure_admin_token("MILLRACE_ADMIN_TOKEN", token)
            .await?
        {
            tracing::info!("admin token from MILLRACE_ADMIN_TOKEN registered");
        }
        return Ok(());
    }
    if !store.has_admin_token().await? {
        let token = store.create_admin_token("first admin").await?;
        println!("Admin token (shown only this once; keep it): {token}");
        println!("  export MILLRACE_TOKEN={token}");
    }
    Ok(())
}

pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    tracing::info!(?config, "starting the control plane");
    install_tls_provider();
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let store = Store::connect(&config.database_url)
        .await
        .context("opening the store")?;
    bootstrap_admin_token(&store, config.admin_token.as_deref()).await?;
    // Without its binaries the platform cannot run: the API still serves (clusters stay
    // CREATING until a control plane with the binaries picks them up), loudly.
    let platform = match local_platform(&config) {
        Ok(platform) => Some(platform),
        Err(error) => {
            tracing::error!(
                "{error:#}; the API serves, but no cluster will be created, healed or deleted"
            );
            None
        }
    };
    let versions = match &platform {
        Some(platform) => platform.installed_versions(),
        None => VersionCatalog::builtin().versions().to_vec(),
    };
    if versions.is_empty() {
        tracing::warn!("no broker version is installed: clusters cannot be created");
    }
    tracing::info!(?versions, "broker versions installed");
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let address: SocketAddr = listener.local_addr()?;
    let state = AppState::new(
        store.clone(),
        VersionCatalog::new(versions),
        ApiConfig {
            cors_origins: config.cors_origins.clone(),
            request_timeout: config.request_timeout,
        },
    );
    let mut reconciler_config = ReconcilerConfig::new(control_plane_url(address));
    reconciler_config.ready_timeout = config.broker_ready_timeout;
    if let Some(platform) = platform {
        let reconciler = Reconciler::new(store, platform, reconciler_config);
        tokio::spawn(reconciler.run(state.reconcile_wakeup.clone()));
    }
    if let Some(scope) = config.kafkaclusters.clone() {
        let client = operator::kube_client().await?;
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(error) =
                operator::run(client, state, scope, ControllerSettings::default()).await
            {
                tracing::error!("the KafkaCluster controller stopped: {error:#}");
            }
        });
    }
    tracing::info!(%address, "REST API listening; OpenAPI at /openapi.json, viewer at /docs");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

/// The embedded platform: broker-agent processes on this machine, state under the data dir.
fn local_platform(config: &ServeConfig) -> anyhow::Result<Arc<dyn Platform>> {
    let root = config.data_dir.join("local-platform");
    let mut platform_config = match &config.bin_dir {
        Some(bin_dir) => LocalPlatformConfig::new(root, bin_dir),
        None => LocalPlatformConfig::beside_current_exe(root)?,
    };
    platform_config.port_range = config.node_ports.clone();
    tracing::info!(bin_dir = %platform_config.bin_dir.display(), root = %platform_config.root_dir.display(), "local platform");
    Ok(Arc::new(LocalPlatform::new(platform_config).context(
        "starting the local platform (build the agent and broker with \
         `cargo build --release --workspace --bins`, or pass --bin-dir)",
    )?))
}

/// The URL agents reach the API at: the listen address, with a wildcard replaced by loopback.
fn control_plane_url(address: SocketAddr) -> String {
    let host = match address.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}", address.port())
}

/// Ctrl-C or SIGTERM (what Kubernetes and systemd send).
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}
