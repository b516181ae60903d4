//! The HTTP server side (axum), on `--controller-listen`.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};

use super::{
    ControllerRequest, RaftRpc, PATH_APPEND, PATH_CONTROLLER, PATH_SNAPSHOT, PATH_STATUS, PATH_VOTE,
};
use crate::quorum::MetadataQuorum;
use crate::raft::{NodeKey, TypeConfig};

/// Raft messages carry log entries and snapshot chunks (at most 1 MiB each, see the Raft config).
const MAX_BODY_BYTES: usize = 32 << 20;

pub fn router(quorum: Arc<MetadataQuorum>) -> Router {
    Router::new()
        .route(PATH_APPEND, post(append))
        .route(PATH_VOTE, post(vote))
        .route(PATH_SNAPSHOT, post(snapshot))
        .route(PATH_STATUS, get(status).post(status))
        .route(PATH_CONTROLLER, post(controller))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(quorum)
}

/// Refuses a Raft RPC meant for another member key (the directory this node lost, or a
/// misrouted address), as if that member were down.
fn refuse_other_target(quorum: &MetadataQuorum, target: NodeKey) -> Option<Response> {
    if target == quorum.key() {
        return None;
    }
    quorum.stats().record_refused_rpc();
    tracing::debug!(%target, own = %quorum.key(), "refusing a Raft RPC for another member key");
    Some(
        (
            StatusCode::CONFLICT,
            format!("this node is {}, not {target}", quorum.key()),
        )
            .into_response(),
    )
}

async fn append(
    State(quorum): State<Arc<MetadataQuorum>>,
    Json(request): Json<RaftRpc<AppendEntriesRequest<TypeConfig>>>,
) -> Response {
    if let Some(refused) = refuse_other_target(&quorum, request.target) {
        return refused;
    }
    Json(quorum.raft().append_entries(request.rpc).await).into_response()
}

async fn vote(
    State(quorum): State<Arc<MetadataQuorum>>,
    Json(request): Json<RaftRpc<VoteRequest<NodeKey>>>,
) -> Response {
    if let Some(refused) = refuse_other_target(&quorum, request.target) {
        return refused;
    }
    let answer = quorum.raft().vote(request.rpc).await;
    if let Ok(response) = &answer {
        if response.vote_granted {
            quorum.stats().record_vote_granted(quorum.has_joined());
        }
    }
    Json(answer).into_response()
}

async fn snapshot(
    State(quorum): State<Arc<MetadataQuorum>>,
    Json(request): Json<RaftRpc<InstallSnapshotRequest<TypeConfig>>>,
) -> Response {
    if let Some(refused) = refuse_other_target(&quorum, request.target) {
        return refused;
    }
    Json(quorum.raft().install_snapshot(request.rpc).await).into_response()
}

async fn status(State(quorum): State<Arc<MetadataQuorum>>) -> Response {
    Json(quorum.status().await).into_response()
}

async fn controller(
    State(quorum): State<Arc<MetadataQuorum>>,
    Json(request): Json<ControllerRequest>,
) -> Response {
    Json(quorum.serve_controller_request(request).await).into_response()
}
