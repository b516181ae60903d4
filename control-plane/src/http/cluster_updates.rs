//! Changes to a cluster: broker count, storage (and its auto-expansion), broker type, version,
//! configuration, reboot.
//!
//! Each endpoint parses its body into a domain [`ClusterChange`], finds the cluster, checks
//! `currentVersion` (409 when the body's differs; 412 when an `If-Match` header's does) and hands
//! the change to the clusters service, which refuses what cannot be done (not ACTIVE, another
//! operation running, a shrink, an unknown version) and otherwise stores it as an operation the
//! reconciler carries out. The answer is 200 with that operation; its progress is at
//! `GET /v1/operations/{operationId}`. Broker count and broker type changes are valid requests
//! this release does not carry out (501, nothing stored).

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::clusters::{load_cluster, ConfigurationInfo, EbsStorageInfo, StorageAutoExpansionBody};
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiJson, IfMatch};
use super::AppState;
use crate::domain::{
    At, BrokerCount, ClusterChange, ConfigurationRef, DomainError, InstanceType, OperationType,
    ReplicationThrottle, UpgradeStrategy,
};
use crate::store::ClusterRecord;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(update_broker_count))
        .routes(routes!(update_broker_storage))
        .routes(routes!(update_storage_auto_expansion))
        .routes(routes!(update_broker_type))
        .routes(routes!(update_cluster_kafka_version))
        .routes(routes!(update_cluster_configuration))
        .routes(routes!(reboot_broker))
        .routes(routes!(compatible_versions))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateBrokerCountRequest {
    pub current_version: String,
    /// 1 to 30, a multiple of the number of zones. More brokers: the new ones (numbered after
    /// the last) join and partitions are moved onto them. Fewer: the highest-numbered brokers
    /// leave once every partition has moved off them (down to the brokers the cluster was
    /// created with, the voters of its metadata quorum).
    pub target_number_of_broker_nodes: i64,
    /// How fast each leading broker copies moved partitions to their new replicas, in bytes per
    /// second (1 MiB/s to 10 GiB/s; default 50 MiB/s), so that clients keep their latency while
    /// data moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_throttle_bytes_per_second: Option<i64>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateBrokerStorageRequest {
    pub current_version: String,
    /// The new per-broker volume; it can only grow.
    pub target_ebs_storage_info: EbsStorageInfo,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateBrokerTypeRequest {
    pub current_version: String,
    pub target_instance_type: String,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateClusterKafkaVersionRequest {
    pub current_version: String,
    pub target_kafka_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_info: Option<ConfigurationInfo>,
    /// `inPlace` (default): one broker at a time, no produce errors; `downtime`: every broker
    /// restarted at once, faster, and the cluster is unavailable meanwhile.
    #[serde(default)]
    pub upgrade_strategy: UpgradeStrategy,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateClusterConfigurationRequest {
    pub current_version: String,
    pub configuration_info: ConfigurationInfo,
    /// How brokers restart for settings they read at start-up (see the version update).
    #[serde(default)]
    pub upgrade_strategy: UpgradeStrategy,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RebootBrokerRequest {
    pub current_version: String,
    /// The broker to restart (one at a time, as in MSK).
    pub broker_ids: Vec<i64>,
}

/// The operation a change started.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterUpdateResponse {
    pub cluster_id: Uuid,
    pub cluster_arn: String,
    /// Poll `GET /v1/operations/{operationId}` for its steps.
    pub operation_id: Uuid,
    pub operation_type: OperationType,
}

/// The checks every REST update shares, after the body parsed: the cluster exists and the
/// version the client read is current.
async fn updatable_cluster(
    state: &AppState,
    cluster_id: &str,
    if_match: &IfMatch,
    current_version: &str,
) -> ApiResult<ClusterRecord> {
    let cluster = load_cluster(state, cluster_id).await?;
    if let Some(expected) = &if_match.0 {
        if cluster.check_version(expected).is_err() {
            return Err(ApiError::PreconditionFailed(format!(
                "If-Match {expected:?} is not the current version {:?}",
                cluster.version_text()
            )));
        }
    }
    cluster.check_version(current_version)?;
    Ok(cluster)
}

/// Hands a parsed change to the clusters service and answers with its operation.
async fn start_change(
    state: &AppState,
    cluster: &ClusterRecord,
    change: ClusterChange,
) -> ApiResult<Json<ClusterUpdateResponse>> {
    let operation = state.clusters().change(cluster, &change).await?;
    Ok(Json(ClusterUpdateResponse {
        cluster_id: cluster.id,
        cluster_arn: cluster.arn.clone(),
        operation_id: operation.id,
        operation_type: operation.operation_type,
    }))
}

fn configuration_ref(info: &ConfigurationInfo) -> ConfigurationRef {
    ConfigurationRef {
        arn: info.arn.clone(),
        revision: info.revision,
    }
}

/// Change the number of brokers: add brokers and move partitions onto them, or move
/// partitions off the highest-numbered brokers and remove them.
#[utoipa::path(
    put,
    path = "/v1/clusters/{clusterId}/nodes/count",
    operation_id = "updateBrokerCount",
    tag = "cluster-updates",
    params(("clusterId" = Uuid, Path, description = "The cluster's id"), ("If-Match" = Option<String>, Header, description = "currentVersion; 412 on mismatch")),
    request_body = UpdateBrokerCountRequest,
    responses(
        (status = 200, description = "The change started; its operation", body = ClusterUpdateResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not ACTIVE, another operation running, or stale currentVersion", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Stale If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "Valid; carried out by a later release", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_broker_count(
    State(state): State<AppState>,
    Path(cluster_id): Path<String>,
    if_match: IfMatch,
    ApiJson(request): ApiJson<UpdateBrokerCountRequest>,
) -> ApiResult<Json<ClusterUpdateResponse>> {
    let cluster =
        updatable_cluster(&state, &cluster_id, &if_match, &request.current_version).await?;
    let target = BrokerCount::parse(
        request.target_number_of_broker_nodes,
        &cluster.spec.broker_node_group.zones,
    )
    .at("targetNumberOfBrokerNodes")?;
    let throttle = match request.replication_throttle_bytes_per_second {
        Some(rate) => ReplicationThrottle::parse(rate).at("replicationThrottleBytesPerSecond")?,
        None => ReplicationThrottle::DEFAULT,
    };
    start_change(
        &state,
        &cluster,
        ClusterChange::BrokerCount { target, throttle },
    )
    .await
}

/// Grow the brokers' volumes.
#[utoipa::path(
    put,
    path = "/v1/clusters/{clusterId}/nodes/storage",
    operation_id = "updateBrokerStorage",
    tag = "cluster-updates",
    params(("clusterId" = Uuid, Path, description = "The cluster's id"), ("If-Match" = Option<String>, Header, description = "currentVersion; 412 on mismatch")),
    request_body = UpdateBrokerStorageRequest,
    responses(
        (status = 200, description = "The change started; its operation", body = ClusterUpdateResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not ACTIVE, another operation running, or stale currentVersion", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Stale If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_broker_storage(
    State(state): State<AppState>,
    Path(cluster_id): Path<String>,
    if_match: IfMatch,
    ApiJson(request): ApiJson<UpdateBrokerStorageRequest>,
) -> ApiResult<Json<ClusterUpdateResponse>> {
    let cluster =
        updatable_cluster(&state, &cluster_id, &if_match, &request.current_version).await?;
    let target = request
        .target_ebs_storage_info
        .draft()
        .parse("targetEbsStorageInfo")?;
    if let Some(class) = &request.target_ebs_storage_info.storage_class {
        if Some(class) != cluster.spec.broker_node_group.storage_class.as_ref() {
            return Err(DomainError::new(
                "targetEbsStorageInfo.storageClass",
                "the volumes' storage class is fixed at create; leave it out",
            )
            .into());
        }
    }
    start_change(&state, &cluster, ClusterChange::BrokerStorage { target }).await
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateStorageAutoExpansionRequest {
    pub current_version: String,
    /// The new policy; null turns auto-expansion off.
    pub storage_auto_expansion: Option<StorageAutoExpansionBody>,
}

/// Set or turn off storage auto-expansion (an UPDATE_BROKER_STORAGE operation that grows
/// nothing itself; the volumes grow later, as they fill).
#[utoipa::path(
    put,
    path = "/v1/clusters/{clusterId}/storage-auto-expansion",
    operation_id = "updateStorageAutoExpansion",
    tag = "cluster-updates",
    params(("clusterId" = Uuid, Path, description = "The cluster's id"), ("If-Match" = Option<String>, Header, description = "currentVersion; 412 on mismatch")),
    request_body = UpdateStorageAutoExpansionRequest,
    responses(
        (status = 200, description = "The change started; its operation", body = ClusterUpdateResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not ACTIVE, another operation running, or stale currentVersion", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Stale If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_storage_auto_expansion(
    State(state): State<AppState>,
    Path(cluster_id): Path<String>,
    if_match: IfMatch,
    ApiJson(request): ApiJson<UpdateStorageAutoExpansionRequest>,
) -> ApiResult<Json<ClusterUpdateResponse>> {
    let cluster =
        updatable_cluster(&state, &cluster_id, &if_match, &request.current_version).await?;
    let policy = request
        .storage_auto_expansion
        .as_ref()
        .map(|body| body.draft().parse("storageAutoExpansion"))
        .transpose()?;
    start_change(
        &state,
        &cluster,
        ClusterChange::StorageAutoExpansion(policy),
    )
    .await
}

/// Change the broker size.
#[utoipa::path(
    put,
    path = "/v1/clusters/{clusterId}/nodes/type",
    operation_id = "updateBrokerType",
    tag = "cluster-updates",
    params(("clusterId" = Uuid, Path, description = "The cluster's id"), ("If-Match" = Option<String>, Header, description = "currentVersion; 412 on mismatch")),
    request_body = UpdateBrokerTypeRequest,
    responses(
        (status = 200, description = "The change started; its operation", body = ClusterUpdateResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not ACTIVE, another operation running, or stale currentVersion", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Stale If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_broker_type(
    State(state): State<AppState>,
    Path(cluster_id): Path<String>,
    if_match: IfMatch,
    ApiJson(request): ApiJson<UpdateBrokerTypeRequest>,
) -> ApiResult<Json<ClusterUpdateResponse>> {
    let cluster =
        updatable_cluster(&state, &cluster_id, &if_match, &request.current_version).await?;
    let target = InstanceType::parse(&request.target_instance_type).at("targetInstanceType")?;
    start_change(&state, &cluster, ClusterChange::BrokerType(target)).await
}

/// Upgrade (or downgrade) the broker software.
#[utoipa::path(
    put,
    path = "/v1/clusters/{clusterId}/version",
    operation_id = "updateClusterKafkaVersion",
    tag = "cluster-updates",
    params(("clusterId" = Uuid, Path, description = "The cluster's id"), ("If-Match" = Option<String>, Header, description = "currentVersion; 412 on mismatch")),
    request_body = UpdateClusterKafkaVersionRequest,
    responses(
        (status = 200, description = "The change started; its operation", body = ClusterUpdateResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not ACTIVE, another operation running, or stale currentVersion", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Stale If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_cluster_kafka_version(
    State(state): State<AppState>,
    Path(cluster_id): Path<String>,
    if_match: IfMatch,
    ApiJson(request): ApiJson<UpdateClusterKafkaVersionRequest>,
) -> ApiResult<Json<ClusterUpdateResponse>> {
    let cluster =
        updatable_cluster(&state, &cluster_id, &if_match, &request.current_version).await?;
    let target = state
        .versions
        .parse(&request.target_kafka_version)
        .at("targetKafkaVersion")?;
    let change = ClusterChange::KafkaVersion {
        target,
        strategy: request.upgrade_strategy,
        configuration: request.configuration_info.as_ref().map(configuration_ref),
    };
    start_change(&state, &cluster, change).await
}

/// Apply a configuration revision.
#[utoipa::path(
    put,
    path = "/v1/clusters/{clusterId}/configuration",
    operation_id = "updateClusterConfiguration",
    tag = "cluster-updates",
    params(("clusterId" = Uuid, Path, description = "The cluster's id"), ("If-Match" = Option<String>, Header, description = "currentVersion; 412 on mismatch")),
    request_body = UpdateClusterConfigurationRequest,
    responses(
        (status = 200, description = "The change started; its operation", body = ClusterUpdateResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not ACTIVE, another operation running, or stale currentVersion", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Stale If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_cluster_configuration(
    State(state): State<AppState>,
    Path(cluster_id): Path<String>,
    if_match: IfMatch,
    ApiJson(request): ApiJson<UpdateClusterConfigurationRequest>,
) -> ApiResult<Json<ClusterUpdateResponse>> {
    let cluster =
        updatable_cluster(&state, &cluster_id, &if_match, &request.current_version).await?;
    let change = ClusterChange::Configuration {
        configuration: configuration_ref(&request.configuration_info),
        strategy: request.upgrade_strategy,
    };
    start_change(&state, &cluster, change).await
}

/// Restart one broker.
#[utoipa::path(
    post,
    path = "/v1/clusters/{clusterId}/reboot-broker",
    operation_id = "rebootBroker",
    tag = "cluster-updates",
    params(("clusterId" = Uuid, Path, description = "The cluster's id"), ("If-Match" = Option<String>, Header, description = "currentVersion; 412 on mismatch")),
    request_body = RebootBrokerRequest,
    responses(
        (status = 200, description = "The change started; its operation", body = ClusterUpdateResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not ACTIVE, another operation running, or stale currentVersion", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Stale If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn reboot_broker(
    State(state): State<AppState>,
    Path(cluster_id): Path<String>,
    if_match: IfMatch,
    ApiJson(request): ApiJson<RebootBrokerRequest>,
) -> ApiResult<Json<ClusterUpdateResponse>> {
    let cluster =
        updatable_cluster(&state, &cluster_id, &if_match, &request.current_version).await?;
    let [broker_id] = request.broker_ids[..] else {
        return Err(ApiError::validation(
            "brokerIds",
            format!(
                "give exactly one broker id, not {}",
                request.broker_ids.len()
            ),
        ));
    };
    let broker_id = i32::try_from(broker_id)
        .map_err(|_| ApiError::validation("brokerIds", format!("no broker has id {broker_id}")))?;
    start_change(&state, &cluster, ClusterChange::RebootBroker { broker_id }).await
}

/// The versions this cluster may move to.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompatibleKafkaVersion {
    pub source_version: String,
    pub target_versions: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompatibleKafkaVersionsResponse {
    pub compatible_kafka_versions: Vec<CompatibleKafkaVersion>,
}

/// The installed versions a cluster may move to (MSK's GetCompatibleKafkaVersions).
///
/// Every installed broker version writes the same on-disk formats (log format 2, the same
/// checkpoints), so each may replace any other, downgrades included; a version with a newer
/// on-disk format will be listed only above the oldest format in use.
#[utoipa::path(
    get,
    path = "/v1/clusters/{clusterId}/compatible-versions",
    operation_id = "getCompatibleKafkaVersions",
    tag = "cluster-updates",
    params(("clusterId" = Uuid, Path, description = "The cluster's id")),
    responses(
        (status = 200, body = CompatibleKafkaVersionsResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn compatible_versions(
    State(state): State<AppState>,
    Path(cluster_id): Path<String>,
) -> ApiResult<Json<CompatibleKafkaVersionsResponse>> {
    let cluster = load_cluster(&state, &cluster_id).await?;
    let source = cluster.spec.kafka_version.to_string();
    let target_versions = state
        .versions
        .versions()
        .iter()
        .filter(|v| **v != source)
        .cloned()
        .collect();
    Ok(Json(CompatibleKafkaVersionsResponse {
        compatible_kafka_versions: vec![CompatibleKafkaVersion {
            source_version: source,
            target_versions,
        }],
    }))
}
