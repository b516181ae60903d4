//! Clusters: create, list, describe, delete, bootstrap brokers.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiJson, ApiQuery};
use super::AppState;
use crate::domain::{
    AutoExpansionDraft, BrokerNodeGroup, ClusterDraft, ClusterName, ClusterSpec, ClusterState,
    DomainError, EbsDraft, StorageAutoExpansion, StorageInfo, Tags, VersionCatalog,
};
use crate::store::{
    ClusterFilter, ClusterRecord, CreateOutcome, Cursor, Idempotency, NewCluster, StoreError,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_cluster, list_clusters))
        .routes(routes!(describe_cluster, delete_cluster))
        .routes(routes!(get_bootstrap_brokers))
}

// Request and response bodies. Request bodies refuse unknown fields.

/// Broker placement, size and storage.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BrokerNodeGroupInfo {
    /// A broker size from `GET /v1/broker-types`, e.g. `kafka.m5.large`.
    pub instance_type: String,
    /// Zone labels the brokers are spread over (each broker's rack); the number of brokers
    /// must be a multiple of their number. Default `["zone-a", "zone-b", "zone-c"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zones: Option<Vec<String>>,
    pub storage_info: StorageInfoBody,
}

/// Exactly one of `ebsStorageInfo` (persistent volumes) and `instanceStorageInfo` (ephemeral).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StorageInfoBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebs_storage_info: Option<EbsStorageInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_storage_info: Option<InstanceStorageInfo>,
}

/// An EBS-style volume per broker: it outlives the broker node.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EbsStorageInfo {
    /// GiB per broker, 1 to 16384.
    #[schema(minimum = 1, maximum = 16384)]
    pub volume_size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_throughput: Option<ProvisionedThroughputBody>,
    /// The Kubernetes StorageClass of the volumes (default: the platform's). Fixed at create;
    /// the local platform records it only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProvisionedThroughputBody {
    pub enabled: bool,
    /// MiB/s, 250 to 2375; required when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_throughput: Option<i64>,
}

/// Instance store: the volume lives and dies with the broker node.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceStorageInfo {}

/// A configuration revision to apply.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigurationInfo {
    pub arn: String,
    pub revision: i64,
}

/// Storage auto-expansion: when a broker's volume is fuller than the target, every broker's
/// volume grows (an UPDATE_BROKER_STORAGE operation the control plane starts by itself) to a
/// size that brings it back under the target, never past the maximum, and not again before the
/// cool-down has passed. Persistent (EBS) storage only.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StorageAutoExpansionBody {
    /// Disk use, in % of the volume, past which volumes grow: 10 to 80.
    #[schema(minimum = 10, maximum = 80)]
    pub target_utilization_percent: i64,
    /// The largest size auto-expansion grows a volume to, in GiB (at least the current size).
    #[schema(minimum = 1, maximum = 16384)]
    pub max_volume_size_gib: i64,
    /// Seconds after one growth before the next: 60 to 604800, default 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 60, maximum = 604800)]
    pub cooldown_seconds: Option<i64>,
}

impl StorageAutoExpansionBody {
    pub(super) fn draft(&self) -> AutoExpansionDraft {
        AutoExpansionDraft {
            target_utilization_percent: self.target_utilization_percent,
            max_volume_size_gib: self.max_volume_size_gib,
            cooldown_seconds: self.cooldown_seconds,
        }
    }
}

pub(super) fn auto_expansion_body(policy: &StorageAutoExpansion) -> StorageAutoExpansionBody {
    StorageAutoExpansionBody {
        target_utilization_percent: i64::from(policy.target_utilization_percent),
        max_volume_size_gib: i64::from(policy.max_volume_size.gib()),
        cooldown_seconds: Some(i64::from(policy.cooldown_seconds)),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateClusterRequest {
    /// 1 to 64 characters of A-Z, a-z, 0-9 and -, starting with a letter.
    pub cluster_name: String,
    /// A version from `GET /v1/versions`; default the newest installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_version: Option<String>,
    /// 1 to 30, a multiple of the number of zones.
    pub number_of_broker_nodes: i64,
    pub broker_node_group_info: BrokerNodeGroupInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_info: Option<ConfigurationInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_auto_expansion: Option<StorageAutoExpansionBody>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Same role as the `Idempotency-Key` header (which wins if both are given and agree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_request_token: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateClusterResponse {
    pub cluster_id: Uuid,
    pub cluster_arn: String,
    pub cluster_name: String,
    pub state: ClusterState,
    pub current_version: String,
    /// The CREATE operation.
    pub operation_id: Option<Uuid>,
}

/// A cluster as stored: its desired spec and its state.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    pub cluster_id: Uuid,
    pub cluster_arn: String,
    pub cluster_name: String,
    pub state: ClusterState,
    /// Pass it back as `currentVersion` when changing the cluster.
    pub current_version: String,
    pub creation_time: DateTime<Utc>,
    pub kafka_version: String,
    pub number_of_broker_nodes: u32,
    pub broker_node_group_info: BrokerNodeGroupInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_info: Option<ConfigurationInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_auto_expansion: Option<StorageAutoExpansionBody>,
    pub tags: BTreeMap<String, String>,
}

/// A cluster's desired specification, as an operation's source or target.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpecInfo {
    pub kafka_version: String,
    pub number_of_broker_nodes: u32,
    pub broker_node_group_info: BrokerNodeGroupInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_info: Option<ConfigurationInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_auto_expansion: Option<StorageAutoExpansionBody>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListClustersResponse {
    pub cluster_info_list: Vec<ClusterInfo>,
    /// Pass as `nextToken` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListClustersQuery {
    /// Only clusters whose name starts with this.
    cluster_name_filter: Option<String>,
    /// Only clusters in this state.
    #[param(value_type = Option<ClusterState>)]
    state: Option<String>,
    /// Page size, 1 to 100 (default 10).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    max_results: Option<String>,
    next_token: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct DeleteClusterQuery {
    /// When given, the delete happens only if this is the cluster's `currentVersion`.
    current_version: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteClusterResponse {
    pub cluster_id: Uuid,
    pub cluster_arn: String,
    pub state: ClusterState,
    pub operation_id: Uuid,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapBrokersResponse {
    /// `host:port,host:port…`; absent until the cluster is first ACTIVE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_broker_string: Option<String>,
}

// Conversions between bodies and the domain.

impl EbsStorageInfo {
    pub(super) fn draft(&self) -> EbsDraft<'_> {
        EbsDraft {
            volume_size: self.volume_size,
            provisioned_throughput: self
                .provisioned_throughput
                .as_ref()
                .map(|t| (t.enabled, t.volume_throughput)),
            storage_class: self.storage_class.as_deref(),
        }
    }
}

pub(super) fn parse_create(
    request: &CreateClusterRequest,
    versions: &VersionCatalog,
) -> Result<(ClusterName, ClusterSpec, Tags), DomainError> {
    let group = &request.broker_node_group_info;
    ClusterDraft {
        cluster_name: &request.cluster_name,
        kafka_version: request.kafka_version.as_deref(),
        number_of_broker_nodes: request.number_of_broker_nodes,
        instance_type: &group.instance_type,
        zones: group.zones.as_deref(),
        ebs: group
            .storage_info
            .ebs_storage_info
            .as_ref()
            .map(EbsStorageInfo::draft),
        instance_store: group.storage_info.instance_storage_info.is_some(),
        configuration: request
            .configuration_info
            .as_ref()
            .map(|c| (c.arn.as_str(), c.revision)),
        storage_auto_expansion: request
            .storage_auto_expansion
            .as_ref()
            .map(StorageAutoExpansionBody::draft),
        tags: &request.tags,
    }
    .parse(versions)
}

pub(super) fn storage_body(group: &BrokerNodeGroup) -> StorageInfoBody {
    match &group.storage {
        StorageInfo::Ebs {
            volume_size,
            provisioned_throughput,
        } => StorageInfoBody {
            ebs_storage_info: Some(EbsStorageInfo {
                volume_size: i64::from(volume_size.gib()),
                provisioned_throughput: provisioned_throughput.map(|t| ProvisionedThroughputBody {
                    enabled: t.enabled,
                    volume_throughput: t.volume_throughput.map(i64::from),
                }),
                storage_class: group.storage_class.clone(),
            }),
            instance_storage_info: None,
        },
        StorageInfo::InstanceStore => StorageInfoBody {
            ebs_storage_info: None,
            instance_storage_info: Some(InstanceStorageInfo {}),
        },
    }
}

pub(super) fn spec_info(spec: &ClusterSpec) -> ClusterSpecInfo {
    let group = &spec.broker_node_group;
    ClusterSpecInfo {
        kafka_version: spec.kafka_version.to_string(),
        number_of_broker_nodes: spec.number_of_broker_nodes.get(),
        broker_node_group_info: BrokerNodeGroupInfo {
            instance_type: group.instance_type.name().to_owned(),
            zones: Some(group.zones.labels().to_vec()),
            storage_info: storage_body(group),
        },
        configuration_info: spec.configuration.as_ref().map(|c| ConfigurationInfo {
            arn: c.arn.clone(),
            revision: c.revision,
        }),
        storage_auto_expansion: spec
            .storage_auto_expansion
            .as_ref()
            .map(auto_expansion_body),
    }
}

pub(super) fn cluster_info(cluster: &ClusterRecord) -> ClusterInfo {
    let spec = spec_info(&cluster.spec);
    ClusterInfo {
        cluster_id: cluster.id,
        cluster_arn: cluster.arn.clone(),
        cluster_name: cluster.name.to_string(),
        state: cluster.state,
        current_version: cluster.version_text(),
        creation_time: cluster.created_at,
        kafka_version: spec.kafka_version,
        number_of_broker_nodes: spec.number_of_broker_nodes,
        broker_node_group_info: spec.broker_node_group_info,
        configuration_info: spec.configuration_info,
        storage_auto_expansion: spec.storage_auto_expansion,
        tags: cluster.tags.as_map().clone(),
    }
}

/// Loads the cluster a path's `clusterId` names; a malformed id is as absent as an unknown one.
pub(super) async fn load_cluster(state: &AppState, cluster_id: &str) -> ApiResult<ClusterRecord> {
    let not_found = || ApiError::not_found(format!("no cluster with id {cluster_id:?}"));
    let id = Uuid::parse_str(cluster_id).map_err(|_| not_found())?;
    match state.store.get_cluster(id).await {
        Err(StoreError::NotFound) => Err(not_found()),
        other => Ok(other?),
    }
}

const MAX_IDEMPOTENCY_KEY: usize = 128;

fn idempotency(
    headers: &HeaderMap,
    request: &CreateClusterRequest,
) -> ApiResult<Option<Idempotency>> {
    let header = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::validation("Idempotency-Key", "must be visible ASCII"))
        })
        .transpose()?;
    let key = match (header, &request.client_request_token) {
        (Some(h), Some(t)) if &h != t => {
            return Err(ApiError::validation(
                "clientRequestToken",
                "differs from the Idempotency-Key header",
            ))
        }
        (Some(h), _) => (h, "Idempotency-Key"),
        (None, Some(t)) => (t.clone(), "clientRequestToken"),
        (None, None) => return Ok(None),
    };
    let (key, field) = key;
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::validation(
            field,
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
        ));
    }
    // The fingerprint covers the request itself, not the key it came with.
    let mut canonical = request.clone();
    canonical.client_request_token = None;
    let json = serde_json::to_vec(&canonical).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(Some(Idempotency {
        key,
        fingerprint: hex::encode(Sha256::digest(&json)),
    }))
}

/// Create a cluster.
///
/// Stores the cluster in CREATING with a PENDING CREATE operation; the reconciler provisions
/// it. With an `Idempotency-Key` header (or `clientRequestToken`), repeating the same request
/// returns the same cluster with 200; reusing the key with a different body is a 422.
#[utoipa::path(
    post,
    path = "/v1/clusters",
    operation_id = "createCluster",
    tag = "clusters",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: 1 to 128 visible ASCII characters")),
    request_body = CreateClusterRequest,
    responses(
        (status = 201, description = "Created", body = CreateClusterResponse),
        (status = 200, description = "Replay of an earlier identical request", body = CreateClusterResponse),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Name taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_cluster(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CreateClusterRequest>,
) -> ApiResult<(StatusCode, Json<CreateClusterResponse>)> {
    let idempotency = idempotency(&headers, &request)?;
    let (name, spec, tags) = parse_create(&request, &state.versions)?;
    let outcome = state
        .clusters()
        .create(NewCluster {
            name,
            spec,
            tags,
            idempotency,
            kubernetes_uid: None,
        })
        .await?;
    let (status, cluster, operation_id) = match outcome {
        CreateOutcome::Created { cluster, operation } => {
            (StatusCode::CREATED, cluster, Some(operation.id))
        }
        CreateOutcome::Replayed { cluster, operation } => {
            (StatusCode::OK, cluster, operation.map(|op| op.id))
        }
    };
    Ok((
        status,
        Json(CreateClusterResponse {
            cluster_id: cluster.id,
            cluster_arn: cluster.arn,
            cluster_name: cluster.name.to_string(),
            state: cluster.state,
            current_version: cluster.current_version.to_string(),
            operation_id,
        }),
    ))
}

const DEFAULT_PAGE: u32 = 10;
const MAX_PAGE: u32 = 100;

/// List clusters, oldest first, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/clusters",
    operation_id = "listClusters",
    tag = "clusters",
    params(ListClustersQuery),
    responses(
        (status = 200, body = ListClustersResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_clusters(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListClustersQuery>,
) -> ApiResult<Json<ListClustersResponse>> {
    let state_filter = query
        .state
        .as_deref()
        .map(ClusterState::parse)
        .transpose()
        .map_err(|e| ApiError::validation("state", e))?;
    let limit = match query.max_results.as_deref() {
        None => DEFAULT_PAGE,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::validation(
                    "maxResults",
                    format!("must be 1 to {MAX_PAGE}, not {text:?}"),
                )
            })?,
    };
    let after = query
        .next_token
        .as_deref()
        .map(|token| {
            Cursor::decode(token)
                .ok_or_else(|| ApiError::validation("nextToken", "not a token this API gave out"))
        })
        .transpose()?;
    let filter = ClusterFilter {
        name_prefix: query.cluster_name_filter.filter(|p| !p.is_empty()),
        state: state_filter,
    };
    let page = state
        .store
        .list_clusters(&filter, limit, after.as_ref())
        .await?;
    Ok(Json(ListClustersResponse {
        cluster_info_list: page.clusters.iter().map(cluster_info).collect(),
        next_token: page.next.map(|c| c.encode()),
    }))
}

/// Describe a cluster.
#[utoipa::path(
    get,
    path = "/v1/clusters/{clusterId}",
    operation_id = "describeCluster",
    tag = "clusters",
    params(("clusterId" = Uuid, Path, description = "The cluster's id")),
    responses(
        (status = 200, body = ClusterInfo),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn describe_cluster(
    State(state): State<AppState>,
    Path(cluster_id): Path<String>,
) -> ApiResult<Json<ClusterInfo>> {
    let cluster = load_cluster(&state, &cluster_id).await?;
    Ok(Json(cluster_info(&cluster)))
}

/// Delete a cluster.
///
/// Accepted from ACTIVE, FAILED and CREATING (an unfinished create is abandoned); the cluster
/// goes to DELETING with a DELETE operation and disappears once the reconciler has removed its
/// brokers and instance-store volumes.
#[utoipa::path(
    delete,
    path = "/v1/clusters/{clusterId}",
    operation_id = "deleteCluster",
    tag = "clusters",
    params(("clusterId" = Uuid, Path, description = "The cluster's id"), DeleteClusterQuery),
    responses(
        (status = 200, body = DeleteClusterResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Wrong state or currentVersion", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_cluster(
    State(state): State<AppState>,
    Path(cluster_id): Path<String>,
    ApiQuery(query): ApiQuery<DeleteClusterQuery>,
) -> ApiResult<Json<DeleteClusterResponse>> {
    let cluster = load_cluster(&state, &cluster_id).await?;
    let (cluster, operation) = state
        .clusters()
        .delete(cluster.id, query.current_version.as_deref())
        .await?;
    Ok(Json(DeleteClusterResponse {
        cluster_id: cluster.id,
        cluster_arn: cluster.arn,
        state: cluster.state,
        operation_id: operation.id,
    }))
}

/// The addresses Kafka clients bootstrap from.
#[utoipa::path(
    get,
    path = "/v1/clusters/{clusterId}/bootstrap-brokers",
    operation_id = "getBootstrapBrokers",
    tag = "clusters",
    params(("clusterId" = Uuid, Path, description = "The cluster's id")),
    responses(
        (status = 200, body = BootstrapBrokersResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_bootstrap_brokers(
    State(state): State<AppState>,
    Path(cluster_id): Path<String>,
) -> ApiResult<Json<BootstrapBrokersResponse>> {
    let cluster = load_cluster(&state, &cluster_id).await?;
    Ok(Json(BootstrapBrokersResponse {
        bootstrap_broker_string: cluster.bootstrap_brokers,
    }))
}
