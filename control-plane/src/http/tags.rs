//! Tags on clusters, addressed by cluster id or cluster ARN (URL-encoded).

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ApiResult, Problem};
use super::extract::ApiJson;
use super::AppState;
use crate::domain::{At, Tags};
use crate::store::{ClusterRecord, StoreError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_tags, tag_resource, untag_resource))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TagsBody {
    pub tags: BTreeMap<String, String>,
}

async fn load_resource(state: &AppState, resource: &str) -> ApiResult<ClusterRecord> {
    let found = match Uuid::parse_str(resource) {
        Ok(id) => state.store.get_cluster(id).await,
        Err(_) => state.store.get_cluster_by_arn(resource).await,
    };
    match found {
        Err(StoreError::NotFound) => Err(ApiError::not_found(format!(
            "no cluster with id or ARN {resource:?}"
        ))),
        other => Ok(other?),
    }
}

/// A resource's tags.
#[utoipa::path(
    get,
    path = "/v1/tags/{resourceArn}",
    operation_id = "listTagsForResource",
    tag = "tags",
    params(("resourceArn" = String, Path, description = "Cluster ARN (URL-encoded) or cluster id")),
    responses(
        (status = 200, body = TagsBody),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_tags(
    State(state): State<AppState>,
    Path(resource): Path<String>,
) -> ApiResult<Json<TagsBody>> {
    let cluster = load_resource(&state, &resource).await?;
    Ok(Json(TagsBody {
        tags: cluster.tags.as_map().clone(),
    }))
}

/// Add or replace tags.
#[utoipa::path(
    post,
    path = "/v1/tags/{resourceArn}",
    operation_id = "tagResource",
    tag = "tags",
    params(("resourceArn" = String, Path, description = "Cluster ARN (URL-encoded) or cluster id")),
    request_body = TagsBody,
    responses(
        (status = 204, description = "Tagged"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn tag_resource(
    State(state): State<AppState>,
    Path(resource): Path<String>,
    ApiJson(body): ApiJson<TagsBody>,
) -> ApiResult<StatusCode> {
    let added = Tags::parse(body.tags).at("tags")?;
    let cluster = load_resource(&state, &resource).await?;
    let tags = cluster.tags.merged(&added).at("tags")?;
    state.store.set_cluster_tags(cluster.id, &tags).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove tags: `?tagKeys=a&tagKeys=b`.
#[utoipa::path(
    delete,
    path = "/v1/tags/{resourceArn}",
    operation_id = "untagResource",
    tag = "tags",
    params(
        ("resourceArn" = String, Path, description = "Cluster ARN (URL-encoded) or cluster id"),
        ("tagKeys" = Vec<String>, Query, description = "Keys to remove (repeat the parameter)"),
    ),
    responses(
        (status = 204, description = "Untagged"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn untag_resource(
    State(state): State<AppState>,
    Path(resource): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<StatusCode> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
            .map_err(|e| ApiError::validation("tagKeys", e.to_string()))?;
    let keys: Vec<String> = pairs
        .into_iter()
        .filter(|(name, _)| name == "tagKeys")
        .map(|(_, key)| key)
        .collect();
    if keys.is_empty() {
        return Err(ApiError::validation("tagKeys", "give at least one tag key"));
    }
    let cluster = load_resource(&state, &resource).await?;
    state
        .store
        .set_cluster_tags(cluster.id, &cluster.tags.without(&keys))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
