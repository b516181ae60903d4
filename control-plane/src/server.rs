//! `millrace serve`: open the store, make sure an admin token exists, start the platform (local
//! or Kubernetes) and the reconciler, serve the API.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::{PlatformKind, ServeConfig};
use crate::domain::VersionCatalog;
use crate::http::{app, ApiConfig, AppState};
use crate::operator::{self, ControllerSettings};
use crate::platform::{
    install_tls_provider, KubernetesPlatform, LocalPlatform, LocalPlatformConfig, Platform,
};
use crate::reconciler::{Reconciler, ReconcilerConfig};
use crate::service::auto_expansion;
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
    // Without its binaries the local platform cannot run: the API still serves (clusters stay
    // CREATING until a control plane with the binaries picks them up), loudly. The Kubernetes
    // platform needs only its settings and an API server; without them there is nothing to do.
    let mut pod_changes = None;
    let platform: Option<Arc<dyn Platform>> = match config.platform {
        PlatformKind::Local => match local_platform(&config) {
            Ok(platform) => Some(platform),
            Err(error) => {
                tracing::error!(
                    "{error:#}; the API serves, but no cluster will be created, healed or deleted"
                );
                None
            }
        },
        PlatformKind::Kubernetes => {
            let platform = kubernetes_platform(&config).await?;
            pod_changes = Some(platform.pod_changes());
            Some(platform)
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
    let agents_reach_us_at = config
        .control_plane_url
        .clone()
        .unwrap_or_else(|| control_plane_url(address));
    let mut reconciler_config = ReconcilerConfig::new(agents_reach_us_at);
    reconciler_config.ready_timeout = config.broker_ready_timeout;
    reconciler_config.roll_step_timeout = config.roll_step_timeout;
    if let Some(platform) = platform {
        tokio::spawn(auto_expansion::run(
            state.clusters(),
            platform.volume_gib_bytes(),
            config.storage_check_interval,
        ));
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
    if let Some(pod_changes) = pod_changes {
        // Watch events drive the planner: a pod that changes wakes the reconciler.
        let wakeup = state.reconcile_wakeup.clone();
        tokio::spawn(async move {
            loop {
                pod_changes.notified().await;
                wakeup.notify_one();
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
    platform_config.volume_gib_bytes = config.local_volume_gib_bytes;
    tracing::info!(bin_dir = %platform_config.bin_dir.display(), root = %platform_config.root_dir.display(), "local platform");
    Ok(Arc::new(LocalPlatform::new(platform_config).context(
        "starting the local platform (build the agent and broker with \
         `cargo build --release --workspace --bins`, or pass --bin-dir)",
    )?))
}

/// Broker-agent Pods, through the API server of the in-cluster configuration or KUBECONFIG.
async fn kubernetes_platform(config: &ServeConfig) -> anyhow::Result<Arc<KubernetesPlatform>> {
    let settings = &config.kubernetes;
    let agent_image = settings
        .agent_image
        .clone()
        .filter(|image| !image.trim().is_empty())
        .context("--agent-image (MILLRACE_AGENT_IMAGE) is required with --platform kubernetes")?;
    if config.control_plane_url.is_none() {
        tracing::warn!(
            "--control-plane-url is not set: broker agents are told to reach the control plane \
             at its listen address, which pods cannot reach"
        );
    }
    let platform = KubernetesPlatform::connect(
        settings.kubernetes_namespace.clone(),
        settings.namespace_per_cluster,
        |platform| {
            platform.agent_image = agent_image;
            platform.storage_class = settings.storage_class.clone();
            platform.agent_bin_dir = settings.agent_bin_dir.clone();
            if !settings.broker_versions.is_empty() {
                platform.installed_versions = settings.broker_versions.clone();
            }
        },
    )
    .await
    .context("starting the Kubernetes platform")?;
    Ok(Arc::new(platform))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::KubernetesArgs;

    fn kubernetes_config(agent_image: Option<&str>) -> ServeConfig {
        ServeConfig {
            data_dir: "d".into(),
            listen: "127.0.0.1:8080".parse().unwrap(),
            database_url: "sqlite://d/millrace.db?mode=rwc".into(),
            cors_origins: vec![],
            request_timeout: Duration::from_secs(1),
            admin_token: None,
            bin_dir: None,
            node_ports: 20_000..32_000,
            broker_ready_timeout: Duration::from_secs(120),
            roll_step_timeout: Duration::from_secs(300),
            storage_check_interval: Duration::from_secs(60),
            local_volume_gib_bytes: 1 << 30,
            kafkaclusters: None,
            platform: PlatformKind::Kubernetes,
            control_plane_url: Some("http://millrace.millrace-system.svc:8080".into()),
            kubernetes: KubernetesArgs {
                agent_image: agent_image.map(str::to_owned),
                agent_bin_dir: "/opt/millrace/bin".into(),
                ..KubernetesArgs::default()
            },
        }
    }

    #[tokio::test]
    async fn the_kubernetes_platform_needs_an_agent_image_before_anything_else() {
        for image in [None, Some("  ")] {
            let error = kubernetes_platform(&kubernetes_config(image))
                .await
                .err()
                .expect("refused");
            assert!(format!("{error:#}").contains("--agent-image"), "{error:#}");
        }
    }

    #[test]
    fn agents_reach_a_wildcard_listener_on_loopback() {
        assert_eq!(
            control_plane_url("0.0.0.0:8080".parse().unwrap()),
            "http://127.0.0.1:8080"
        );
    }
}
