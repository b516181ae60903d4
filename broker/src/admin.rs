//! The broker's HTTP admin endpoint: `/health` (the process answers), `/ready` (registered with
//! the controller, serving clients), `/metrics` (Prometheus text), `/admin/can-stop` (whether
//! stopping this broker now would take a partition below `min.insync.replicas` — the check a
//! safe roll makes) and `POST /admin/drain` (controlled shutdown: move leaderships away). The
//! broker-agent and the control plane use it.

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
        .route("/admin/can-stop", get(can_stop))
        .route("/admin/drain", axum::routing::post(drain))
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
        broker
            .metrics
            .render(partitions.len(), broker.quorum.is_leader(), &sizes)
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

/// What stopping this broker now would do to the partitions it is in sync for.
#[derive(Debug, Default, PartialEq)]
struct StopImpact {
    /// Partitions that would fall below `min.insync.replicas` and need not: they have more
    /// replicas than that, so waiting until the others catch up keeps them writable.
    blocking: Vec<String>,
    /// Partitions with no more replicas than `min.insync.replicas`: any restart of one of their
    /// replicas stops their acks=all writes for its duration (NOT_ENOUGH_REPLICAS; nothing
    /// acknowledged is lost), however long one waits. They do not block a stop, as Strimzi's
    /// KafkaRoller does not wait for them either; the answer names them.
    unavoidable: Vec<String>,
}

fn stop_impact(broker: &Broker) -> StopImpact {
    let me = broker.config.node_id;
    let metadata = broker.metadata();
    let mut impact = StopImpact::default();
    for topic in metadata.topics.values() {
        let min_insync = broker.topic_config(topic).min_insync_replicas();
        for partition in &topic.partitions {
            if !partition.isr.contains(&me) || (partition.isr.len() as i64 - 1) >= min_insync {
                continue;
            }
            let name = format!(
                "{}-{} (replicas {:?}, in sync {:?}, min.insync.replicas {min_insync})",
                topic.name, partition.partition, partition.replicas, partition.isr
            );
            if (partition.replicas.len() as i64) <= min_insync {
                impact.unavoidable.push(name);
            } else {
                impact.blocking.push(name);
            }
        }
    }
    impact
}

async fn can_stop(State(broker): State<Shared>) -> impl IntoResponse {
    let Some(broker) = broker.get().cloned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"canStop": false, "reason": "recovering logs"})),
        );
    };
    let impact = stop_impact(&broker);
    let status = if impact.blocking.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    (
        status,
        axum::Json(serde_json::json!({
            "canStop": impact.blocking.is_empty(),
            "underMinIsrIfStopped": impact.blocking,
            "unavailableWhileStopped": impact.unavoidable,
        })),
    )
}

async fn drain(State(broker): State<Shared>) -> impl IntoResponse {
    let Some(broker) = broker.get().cloned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "recovering logs\n".to_string(),
        );
    };
    crate::run::controlled_shutdown(&broker).await;
    let still_leading = broker.metadata().led_by(broker.config.node_id).count();
    (
        StatusCode::OK,
        format!("drained; still leading {still_leading} partition(s) nobody else can take\n"),
    )
}
