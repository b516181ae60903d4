//! Changes to a cluster: broker count, storage, broker type, version, configuration, reboot.
//!
//! Each endpoint does everything short of the change: it parses the body, finds the cluster,
//! checks `currentVersion` (409 when the body's differs; 412 when an `If-Match` header's does),
//! checks that the cluster is ACTIVE (MSK's rule: one change at a time) and that the change
//! makes sense for this cluster. Carrying the change out is the work of a later release, so a
//! valid request is answered 501 and nothing is stored: no fake success.

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::clusters::{
    check_configuration, load_cluster, parse_ebs, ConfigurationInfo, EbsStorageInfo,
};
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiJson, IfMatch};
use super::AppState;
use crate::domain::{At, BrokerCount, ConfigurationRef, InstanceType, OperationType, StorageInfo};
use crate::store::{ClusterRecord, Conflict};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(update_broker_count))
        .routes(routes!(update_broker_storage))
        .routes(routes!(update_broker_type))
        .routes(routes!(update_cluster_kafka_version))
        .routes(routes!(update_cluster_configuration))
        .routes(routes!(reboot_broker))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateBrokerCountRequest {
    pub current_version: String,
    /// 1 to 30, a multiple of the number of zones.
    pub target_number_of_broker_nodes: i64,
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
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateClusterConfigurationRequest {
    pub current_version: String,
    pub configuration_info: ConfigurationInfo,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RebootBrokerRequest {
    pub current_version: String,
    /// The broker to restart (one at a time, as in MSK).
    pub broker_ids: Vec<i64>,
}

/// A change to a cluster's desired spec, as one update endpoint (or a KafkaCluster spec change)
/// asks for it.
#[derive(Debug, Clone)]
pub(crate) enum ClusterChange {
    BrokerCount {
        target_number_of_broker_nodes: i64,
    },
    BrokerStorage {
        target_ebs_storage_info: EbsStorageInfo,
    },
    BrokerType {
        target_instance_type: String,
    },
    KafkaVersion {
        target_kafka_version: String,
        configuration_info: Option<ConfigurationInfo>,
    },
    Configuration {
        configuration_info: ConfigurationInfo,
    },
}

/// The update path both doors share, after the cluster was found and its `currentVersion`
/// checked: the cluster must be ACTIVE and the change must make sense for it. Carrying the
/// change out is the work of a later release, so a valid change is refused as not implemented
/// and nothing is stored.
pub(crate) async fn apply_change(
    state: &AppState,
    cluster: &ClusterRecord,
    change: &ClusterChange,
) -> ApiResult<()> {
    require_active(cluster)?;
    let operation = check_change(state, cluster, change).await?;
    Err(not_yet(operation))
}

/// MSK's rule: one change at a time, only on an ACTIVE cluster.
fn require_active(cluster: &ClusterRecord) -> ApiResult<()> {
    if cluster.state.accepts_updates() {
        Ok(())
    } else {
        Err(Conflict::WrongState {
            state: cluster.state,
            action: "be changed until it is ACTIVE",
        }
        .into())
    }
}

/// Checks that a change makes sense for this cluster; the operation that would carry it out.
async fn check_change(
    state: &AppState,
    cluster: &ClusterRecord,
    change: &ClusterChange,
) -> ApiResult<OperationType> {
    match change {
        ClusterChange::BrokerCount {
            target_number_of_broker_nodes,
        } => {
            let target = BrokerCount::parse(
                *target_number_of_broker_nodes,
                &cluster.spec.broker_node_group.zones,
            )
            .at("targetNumberOfBrokerNodes")?;
            if target == cluster.spec.number_of_broker_nodes {
                return Err(ApiError::validation(
                    "targetNumberOfBrokerNodes",
                    format!("the cluster already has {} brokers", target.get()),
                ));
            }
            Ok(OperationType::UpdateBrokerCount)
        }
        ClusterChange::BrokerStorage {
            target_ebs_storage_info,
        } => {
            let target = parse_ebs(target_ebs_storage_info, "targetEbsStorageInfo")?;
            let (
                StorageInfo::Ebs {
                    volume_size: current,
                    ..
                },
                StorageInfo::Ebs {
                    volume_size: wanted,
                    ..
                },
            ) = (cluster.spec.broker_node_group.storage, target)
            else {
                return Err(ApiError::validation(
                    "targetEbsStorageInfo",
                    "the cluster uses instance storage, which has no volume to grow",
                ));
            };
            if wanted <= current {
                return Err(ApiError::validation(
                    "targetEbsStorageInfo.volumeSize",
                    format!(
                        "volumes can only grow: must be more than the current {} GiB",
                        current.gib()
                    ),
                ));
            }
            Ok(OperationType::UpdateBrokerStorage)
        }
        ClusterChange::BrokerType {
            target_instance_type,
        } => {
            let target = InstanceType::parse(target_instance_type).at("targetInstanceType")?;
            if target == cluster.spec.broker_node_group.instance_type {
                return Err(ApiError::validation(
                    "targetInstanceType",
                    format!("the cluster already uses {}", target.name()),
                ));
            }
            Ok(OperationType::UpdateBrokerType)
        }
        ClusterChange::KafkaVersion {
            target_kafka_version,
            configuration_info,
        } => {
            let target = state
                .versions
                .parse(target_kafka_version)
                .at("targetKafkaVersion")?;
            if target == cluster.spec.kafka_version {
                return Err(ApiError::validation(
                    "targetKafkaVersion",
                    format!("the cluster already runs {target}"),
                ));
            }
            if let Some(configuration) = configuration_info {
                let configuration = ConfigurationRef {
                    arn: configuration.arn.clone(),
                    revision: configuration.revision,
                };
                check_configuration(state, &configuration, target.as_str(), "configurationInfo")
                    .await?;
            }
            Ok(OperationType::UpdateClusterKafkaVersion)
        }
        ClusterChange::Configuration { configuration_info } => {
            let configuration = ConfigurationRef {
                arn: configuration_info.arn.clone(),
                revision: configuration_info.revision,
            };
            check_configuration(
                state,
                &configuration,
                cluster.spec.kafka_version.as_str(),
                "configurationInfo",
            )
            .await?;
            if cluster.spec.configuration.as_ref() == Some(&configuration) {
                return Err(ApiError::validation(
                    "configurationInfo",
                    "the cluster already uses this configuration revision",
                ));
            }
            Ok(OperationType::UpdateClusterConfiguration)
        }
    }
}

/// The checks every REST update shares, after the body parsed: the cluster exists and the
/// version the client read is current ([`apply_change`] does the rest).
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

fn not_yet(operation: OperationType) -> ApiError {
    ApiError::NotImplemented(format!(
        "not implemented yet: {operation} is carried out by a later release; the request was \
         valid and nothing was changed"
    ))
}

/// Change the number of brokers.
#[utoipa::path(
    put,
    path = "/v1/clusters/{clusterId}/nodes/count",
    operation_id = "updateBrokerCount",
    tag = "cluster-updates",
    params(("clusterId" = Uuid, Path, description = "The cluster's id"), ("If-Match" = Option<String>, Header, description = "currentVersion; 412 on mismatch")),
    request_body = UpdateBrokerCountRequest,
    responses(
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not ACTIVE, or stale currentVersion", body = Problem, content_type = "application/problem+json"),
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
) -> ApiResult<()> {
    let cluster =
        updatable_cluster(&state, &cluster_id, &if_match, &request.current_version).await?;
    apply_change(
        &state,
        &cluster,
        &ClusterChange::BrokerCount {
            target_number_of_broker_nodes: request.target_number_of_broker_nodes,
        },
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
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not ACTIVE, or stale currentVersion", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Stale If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "Valid; carried out by a later release", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_broker_storage(
    State(state): State<AppState>,
    Path(cluster_id): Path<String>,
    if_match: IfMatch,
    ApiJson(request): ApiJson<UpdateBrokerStorageRequest>,
) -> ApiResult<()> {
    let cluster =
        updatable_cluster(&state, &cluster_id, &if_match, &request.current_version).await?;
    apply_change(
        &state,
        &cluster,
        &ClusterChange::BrokerStorage {
            target_ebs_storage_info: request.target_ebs_storage_info,
        },
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
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not ACTIVE, or stale currentVersion", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Stale If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "Valid; carried out by a later release", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_broker_type(
    State(state): State<AppState>,
    Path(cluster_id): Path<String>,
    if_match: IfMatch,
    ApiJson(request): ApiJson<UpdateBrokerTypeRequest>,
) -> ApiResult<()> {
    let cluster =
        updatable_cluster(&state, &cluster_id, &if_match, &request.current_version).await?;
    apply_change(
        &state,
        &cluster,
        &ClusterChange::BrokerType {
            target_instance_type: request.target_instance_type,
        },
    )
    .await
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
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not ACTIVE, or stale currentVersion", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Stale If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "Valid; carried out by a later release", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_cluster_kafka_version(
    State(state): State<AppState>,
    Path(cluster_id): Path<String>,
    if_match: IfMatch,
    ApiJson(request): ApiJson<UpdateClusterKafkaVersionRequest>,
) -> ApiResult<()> {
    let cluster =
        updatable_cluster(&state, &cluster_id, &if_match, &request.current_version).await?;
    apply_change(
        &state,
        &cluster,
        &ClusterChange::KafkaVersion {
            target_kafka_version: request.target_kafka_version,
            configuration_info: request.configuration_info,
        },
    )
    .await
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
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not ACTIVE, or stale currentVersion", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Stale If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "Valid; carried out by a later release", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_cluster_configuration(
    State(state): State<AppState>,
    Path(cluster_id): Path<String>,
    if_match: IfMatch,
    ApiJson(request): ApiJson<UpdateClusterConfigurationRequest>,
) -> ApiResult<()> {
    let cluster =
        updatable_cluster(&state, &cluster_id, &if_match, &request.current_version).await?;
    apply_change(
        &state,
        &cluster,
        &ClusterChange::Configuration {
            configuration_info: request.configuration_info,
        },
    )
    .await
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
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not ACTIVE, or stale currentVersion", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "Stale If-Match", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "Valid; carried out by a later release", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn reboot_broker(
    State(state): State<AppState>,
    Path(cluster_id): Path<String>,
    if_match: IfMatch,
    ApiJson(request): ApiJson<RebootBrokerRequest>,
) -> ApiResult<()> {
    let cluster =
        updatable_cluster(&state, &cluster_id, &if_match, &request.current_version).await?;
    require_active(&cluster)?;
    let [broker_id] = request.broker_ids[..] else {
        return Err(ApiError::validation(
            "brokerIds",
            format!(
                "give exactly one broker id, not {}",
                request.broker_ids.len()
            ),
        ));
    };
    let known = state.store.list_nodes(cluster.id).await?;
    if !known.iter().any(|n| i64::from(n.broker_id) == broker_id) {
        let ids: Vec<String> = known.iter().map(|n| n.broker_id.to_string()).collect();
        return Err(ApiError::validation(
            "brokerIds",
            format!(
                "the cluster has no broker {broker_id} (its brokers: {})",
                if ids.is_empty() {
                    "none yet".to_owned()
                } else {
                    ids.join(", ")
                }
            ),
        ));
    }
    Err(not_yet(OperationType::RebootNode))
}
