//! A cluster's nodes and operations.

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::clusters::{load_cluster, spec_info, ClusterSpecInfo};
use super::error::{ApiError, ApiResult, Problem};
use super::AppState;
use crate::domain::{
    AgentState, OperationState, OperationStep, OperationType, StepProgress, StepStatus,
};
use crate::store::{NodeRecord, OperationRecord, StoreError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_nodes))
        .routes(routes!(list_cluster_operations))
        .routes(routes!(describe_operation))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeVolumeInfo {
    /// True for an EBS-style volume that outlives the node.
    pub persistent: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_gib: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// The broker-agent's last report.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatInfo {
    pub version: String,
    pub state: AgentState,
    pub disk_used_bytes: u64,
    pub under_replicated_partitions: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    pub broker_id: i32,
    /// `host:port` of the broker, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The zone label, which is also the broker's rack.
    pub zone: String,
    pub version: String,
    pub volume: NodeVolumeInfo,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<HeartbeatInfo>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListNodesResponse {
    pub node_info_list: Vec<NodeInfo>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationStepInfo {
    pub step_name: String,
    pub step_status: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How far a long step is (e.g. partitions moved of those to move).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<StepProgress>,
}

/// A cluster operation: one change, its steps, and the spec before and after.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterOperationInfo {
    pub operation_id: Uuid,
    pub cluster_id: Uuid,
    pub operation_type: OperationType,
    pub operation_state: OperationState,
    pub operation_steps: Vec<OperationStepInfo>,
    /// The desired spec before the change (absent for CREATE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_cluster_info: Option<ClusterSpecInfo>,
    /// The desired spec after the change (absent for DELETE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_cluster_info: Option<ClusterSpecInfo>,
    /// Why the control plane started this operation by itself (storage auto-expansion);
    /// absent for an operation a user asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// For a change that brings a new configuration revision: which settings change and how
    /// they reach the brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings_change: Option<SettingsChangeInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_info: Option<String>,
    pub creation_time: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<DateTime<Utc>>,
}

/// How a new configuration revision reaches the brokers: dynamic settings are given to the
/// running brokers; settings read only at start need a rolling restart.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettingsChangeInfo {
    /// Settings added, removed or given another value.
    pub changed_settings: Vec<String>,
    /// Those of them read only at start, for which brokers restart one at a time (all at once
    /// with the downtime strategy). Empty: applied without restarting any broker.
    pub restart_required_by: Vec<String>,
    /// What the operation does, and why, in one line.
    pub description: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListClusterOperationsResponse {
    pub cluster_operation_info_list: Vec<ClusterOperationInfo>,
}

fn node_info(node: NodeRecord) -> NodeInfo {
    NodeInfo {
        broker_id: node.broker_id,
        endpoint: node.endpoint,
        zone: node.zone,
        version: node.version,
        volume: NodeVolumeInfo {
            persistent: node.volume.persistent,
            size_gib: node.volume.size_gib,
            location: node.volume.location,
        },
        state: node.state,
        last_heartbeat: node
            .last_heartbeat
            .zip(node.last_heartbeat_at)
            .map(|(beat, at)| HeartbeatInfo {
                version: beat.version,
                state: beat.state,
                disk_used_bytes: beat.disk_used_bytes,
                under_replicated_partitions: beat.under_replicated_partitions,
                broker_pid: beat.broker_pid,
                message: beat.message,
                received_at: at,
            }),
    }
}

fn step_info(step: OperationStep) -> OperationStepInfo {
    OperationStepInfo {
        step_name: step.name,
        step_status: step.status,
        start_time: step.started_at,
        end_time: step.ended_at,
        message: step.message,
        progress: step.progress,
    }
}

fn operation_info(operation: OperationRecord) -> ClusterOperationInfo {
    ClusterOperationInfo {
        operation_id: operation.id,
        cluster_id: operation.cluster_id,
        operation_type: operation.operation_type,
        operation_state: operation.state,
        operation_steps: operation.steps.into_iter().map(step_info).collect(),
        source_cluster_info: operation.source_spec.as_ref().map(spec_info),
        target_cluster_info: operation.target_spec.as_ref().map(spec_info),
        trigger: operation.parameters.trigger.clone(),
        settings_change: operation.parameters.settings.as_ref().map(|settings| {
            SettingsChangeInfo {
                changed_settings: settings.changed.clone(),
                restart_required_by: settings.needs_restart.clone(),
                description: settings
                    .describe(operation.operation_type == OperationType::UpdateClusterKafkaVersion),
            }
        }),
        error_info: operation.error,
        creation_time: operation.created_at,
        start_time: operation.started_at,
        end_time: operation.ended_at,
    }
}

/// List a cluster's broker nodes.
#[utoipa::path(
    get,
    path = "/v1/clusters/{clusterId}/nodes",
    operation_id = "listNodes",
    tag = "clusters",
    params(("clusterId" = Uuid, Path, description = "The cluster's id")),
    responses(
        (status = 200, body = ListNodesResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_nodes(
    State(state): State<AppState>,
    Path(cluster_id): Path<String>,
) -> ApiResult<Json<ListNodesResponse>> {
    let cluster = load_cluster(&state, &cluster_id).await?;
    let nodes = state.store.list_nodes(cluster.id).await?;
    Ok(Json(ListNodesResponse {
        node_info_list: nodes.into_iter().map(node_info).collect(),
    }))
}

/// List a cluster's operations, newest first.
#[utoipa::path(
    get,
    path = "/v1/clusters/{clusterId}/operations",
    operation_id = "listClusterOperations",
    tag = "operations",
    params(("clusterId" = Uuid, Path, description = "The cluster's id")),
    responses(
        (status = 200, body = ListClusterOperationsResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_cluster_operations(
    State(state): State<AppState>,
    Path(cluster_id): Path<String>,
) -> ApiResult<Json<ListClusterOperationsResponse>> {
    let cluster = load_cluster(&state, &cluster_id).await?;
    let operations = state.store.list_operations(cluster.id).await?;
    Ok(Json(ListClusterOperationsResponse {
        cluster_operation_info_list: operations.into_iter().map(operation_info).collect(),
    }))
}

/// Describe one operation (also after its cluster was deleted).
#[utoipa::path(
    get,
    path = "/v1/operations/{operationId}",
    operation_id = "describeClusterOperation",
    tag = "operations",
    params(("operationId" = Uuid, Path, description = "The operation's id")),
    responses(
        (status = 200, body = ClusterOperationInfo),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn describe_operation(
    State(state): State<AppState>,
    Path(operation_id): Path<String>,
) -> ApiResult<Json<ClusterOperationInfo>> {
    let not_found = || ApiError::not_found(format!("no operation with id {operation_id:?}"));
    let id = Uuid::parse_str(&operation_id).map_err(|_| not_found())?;
    match state.store.get_operation(id).await {
        Err(StoreError::NotFound) => Err(not_found()),
        other => Ok(Json(operation_info(other?))),
    }
}
