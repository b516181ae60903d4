//! The internal API broker-agents report to, authenticated with per-node agent tokens.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::AgentCaller;
use super::error::{ApiError, ApiResult, Problem};
use super::extract::ApiJson;
use super::AppState;
use crate::domain::{AgentState, Heartbeat};
use crate::store::StoreError;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(heartbeat))
}

const MAX_MESSAGE: usize = 4096;
const MAX_VERSION: usize = 64;

/// What an agent reports about its broker.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HeartbeatRequest {
    /// The broker version running.
    pub version: String,
    pub state: AgentState,
    pub disk_used_bytes: u64,
    pub under_replicated_partitions: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Report a node's state (broker-agents only).
#[utoipa::path(
    post,
    path = "/internal/v1/clusters/{clusterId}/nodes/{brokerId}/heartbeat",
    operation_id = "postHeartbeat",
    tag = "internal",
    security(("agentAuth" = [])),
    params(
        ("clusterId" = Uuid, Path, description = "The cluster's id"),
        ("brokerId" = i32, Path, description = "The node's broker id"),
    ),
    request_body = HeartbeatRequest,
    responses(
        (status = 204, description = "Recorded"),
        (status = 401, description = "Missing or bad agent token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token belongs to another node", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such node", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn heartbeat(
    State(state): State<AppState>,
    caller: AgentCaller,
    Path((cluster_id, broker_id)): Path<(String, String)>,
    ApiJson(report): ApiJson<HeartbeatRequest>,
) -> ApiResult<StatusCode> {
    let same_node = Uuid::parse_str(&cluster_id).ok() == Some(caller.cluster_id)
        && broker_id.parse::<i32>().ok() == Some(caller.broker_id);
    if !same_node {
        return Err(ApiError::Forbidden(
            "this agent token belongs to another node".into(),
        ));
    }
    if report.version.is_empty() || report.version.len() > MAX_VERSION {
        return Err(ApiError::validation(
            "version",
            format!("must be 1 to {MAX_VERSION} characters"),
        ));
    }
    if report
        .message
        .as_ref()
        .is_some_and(|m| m.len() > MAX_MESSAGE)
    {
        return Err(ApiError::validation(
            "message",
            format!("must be at most {MAX_MESSAGE} bytes"),
        ));
    }
    let heartbeat = Heartbeat {
        version: report.version,
        state: report.state,
        disk_used_bytes: report.disk_used_bytes,
        under_replicated_partitions: report.under_replicated_partitions,
        broker_pid: report.broker_pid,
        message: report.message,
    };
    match state
        .store
        .record_heartbeat(caller.cluster_id, caller.broker_id, &heartbeat)
        .await
    {
        Err(StoreError::NotFound) => Err(ApiError::not_found(format!(
            "node {} of cluster {} is not recorded",
            caller.broker_id, caller.cluster_id
        ))),
        other => {
            other?;
            Ok(StatusCode::NO_CONTENT)
        }
    }
}
