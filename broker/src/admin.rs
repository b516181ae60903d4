//! The broker's HTTP admin endpoint: `/health` (the process answers), `/ready` (recovery done,
//! serving clients) and `/metrics` (Prometheus text). The broker-agent and the control plane
//! read it.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;

pub type Shared = Arc<OnceLock<Arc<Broker>>>;

pub async fn serve(
    listener: TcpListener,
    broker: Shared,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(broker);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await?;
    Ok(())
}

async fn ready(State(broker): State<Shared>) -> impl IntoResponse {
    match broker.get() {
        Some(broker) if *broker.ready.borrow() => (StatusCode::OK, "ready\n"),
        Some(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not serving: joining the cluster or shutting down\n",
        ),
        None => (StatusCode::SERVICE_UNAVAILABLE, "recovering logs\n"),
    }
}

async fn metrics(State(broker): State<Shared>) -> impl IntoResponse {
    let Some(broker) = broker.get().cloned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain")],
            "recovering logs\n".to_string(),
        );
    };
    let body = tokio::task::spawn_blocking(move || {
        let partitions = broker.partitions.all();
        let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
        for partition in &partitions {
            *sizes.entry(partition.id.topic.clone()).or_default() += partition.size_bytes();
        }
        let sizes: Vec<(String, u64)> = sizes.into_iter().collect();
        broker.metrics.render(partitions.len(), &sizes)
    })
    .await
    .unwrap_or_else(|e| format!("# metrics unavailable: {e}\n"));
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}
