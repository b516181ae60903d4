//! What can be asked for: installed broker versions and broker sizes.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::Problem;
use super::AppState;
use crate::domain::BROKER_TYPES;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_versions))
        .routes(routes!(list_broker_types))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaVersionInfo {
    pub version: String,
    /// `ACTIVE` for every installed version.
    pub status: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListVersionsResponse {
    /// Oldest first; new clusters get the last one by default.
    pub kafka_versions: Vec<KafkaVersionInfo>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerTypeInfo {
    pub instance_type: String,
    pub vcpus: u32,
    pub memory_gib: u32,
    /// The local disk of an instance-store broker of this size.
    pub instance_store_gib: u32,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListBrokerTypesResponse {
    pub broker_types: Vec<BrokerTypeInfo>,
}

/// The broker versions installed on this control plane's platform.
#[utoipa::path(
    get,
    path = "/v1/versions",
    operation_id = "listKafkaVersions",
    tag = "catalog",
    responses(
        (status = 200, body = ListVersionsResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_versions(State(state): State<AppState>) -> Json<ListVersionsResponse> {
    Json(ListVersionsResponse {
        kafka_versions: state
            .versions
            .versions()
            .iter()
            .map(|v| KafkaVersionInfo {
                version: v.clone(),
                status: "ACTIVE".into(),
            })
            .collect(),
    })
}

/// The broker sizes on offer.
#[utoipa::path(
    get,
    path = "/v1/broker-types",
    operation_id = "listBrokerTypes",
    tag = "catalog",
    responses(
        (status = 200, body = ListBrokerTypesResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_broker_types(State(_state): State<AppState>) -> Json<ListBrokerTypesResponse> {
    Json(ListBrokerTypesResponse {
        broker_types: BROKER_TYPES
            .iter()
            .map(|t| BrokerTypeInfo {
                instance_type: t.name.to_owned(),
                vcpus: t.vcpus,
                memory_gib: t.memory_gib,
                instance_store_gib: t.instance_store_gib,
            })
            .collect(),
    })
}
