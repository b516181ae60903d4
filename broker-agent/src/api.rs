//! The agent's HTTP API, for the control plane: `GET /health`, `GET /status`, `POST /drain`,
//! `POST /restart` (optionally `{"brokerVersion": "..."}`: in-place upgrade), `POST /stop`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{find_broker_binary, AgentConfig};
use crate::status::NodeStatus;
use crate::supervisor::{BrokerBinary, Command};

/// Largest request body accepted (the only body is a small JSON object).
const BODY_LIMIT: usize = 16 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<AgentConfig>,
    pub status: watch::Sender<NodeStatus>,
    pub commands: mpsc::Sender<Command>,
    pub http: reqwest::Client,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/status", get(status))
        .route("/drain", post(drain))
        .route("/restart", post(restart))
        .route("/stop", post(stop))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

async fn status(State(state): State<AppState>) -> Json<NodeStatus> {
    Json(state.status.borrow().clone())
}

async fn drain(State(state): State<AppState>) -> Response {
    match crate::drain::request_drain(&state.http, &state.config).await {
        Ok(drain) => {
            state
                .status
                .send_modify(|status| status.drain = Some(drain.clone()));
            (
                StatusCode::ACCEPTED,
                Json(json!({ "supported": drain.supported, "message": drain.message })),
            )
                .into_response()
        }
        Err(error) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "the broker could not be asked to drain",
            &error,
        ),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RestartRequest {
    broker_version: Option<String>,
}

async fn restart(State(state): State<AppState>, body: Bytes) -> Response {
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        RestartRequest {
            broker_version: None,
        }
    } else {
        match serde_json::from_slice::<RestartRequest>(&body) {
            Ok(request) => request,
            Err(error) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "invalid restart request",
                    &error.to_string(),
                )
            }
        }
    };
    let binary = match request.broker_version {
        None => None,
        Some(version) if version == state.status.borrow().version => None,
        Some(version) => {
            let Some(bin_dir) = &state.config.bin_dir else {
                return problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "brokerVersion cannot be changed",
                    "this agent was started with --broker-bin and no --bin-dir to find other versions in",
                );
            };
            match find_broker_binary(bin_dir, Some(&version)) {
                Ok(path) => Some(BrokerBinary { path, version }),
                Err(error) => {
                    return problem(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "brokerVersion is not installed",
                        &format!("{error:#}"),
                    )
                }
            }
        }
    };
    let version = binary.as_ref().map(|binary| binary.version.clone());
    send(&state, |done| Command::Restart { binary, done }).await;
    (
        StatusCode::ACCEPTED,
        Json(json!({ "restart": "accepted", "brokerVersion": version })),
    )
        .into_response()
}

async fn stop(State(state): State<AppState>) -> Response {
    send(&state, |done| Command::Stop { done }).await;
    (StatusCode::ACCEPTED, Json(json!({ "stop": "accepted" }))).into_response()
}

/// Queues a command; the supervisor carries it out in the background (a graceful stop can take
/// the whole stop timeout, longer than a caller should hold a request open).
async fn send(state: &AppState, command: impl FnOnce(oneshot::Sender<()>) -> Command) {
    let (done, _finished) = oneshot::channel();
    let _ = state.commands.send(command(done)).await;
}

/// An RFC 7807 problem document.
fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        Json(json!({ "type": "about:blank", "title": title, "status": status.as_u16(), "detail": detail })),
    )
        .into_response()
}
