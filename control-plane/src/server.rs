//! `millrace serve`: open the store, make sure an admin token exists, serve the API.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::ServeConfig;
use crate::domain::VersionCatalog;
use crate::http::{app, ApiConfig, AppState};
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
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let store = Store::connect(&config.database_url)
        .await
        .context("opening the store")?;
    bootstrap_admin_token(&store, config.admin_token.as_deref()).await?;
    let state = AppState::new(
        store,
        VersionCatalog::builtin(),
        ApiConfig {
            cors_origins: config.cors_origins.clone(),
            request_timeout: config.request_timeout,
        },
    );
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let address: SocketAddr = listener.local_addr()?;
    tracing::info!(%address, "REST API listening; OpenAPI at /openapi.json, viewer at /docs");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
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
