//! Bearer-token authentication: admin tokens for the public API (a route layer), agent tokens
//! for the internal API (an extractor that also says which node is calling).

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use uuid::Uuid;

use super::error::ApiError;
use super::AppState;
use crate::store::TokenIdentity;

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Lets a request through only with an admin token.
pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = bearer_token(request.headers()).ok_or(ApiError::Unauthorized)?;
    match state.store.authenticate(token).await? {
        Some(TokenIdentity::Admin { .. }) => Ok(next.run(request).await),
        _ => Err(ApiError::Unauthorized),
    }
}

/// The broker node an agent token belongs to.
pub struct AgentCaller {
    pub cluster_id: Uuid,
    pub broker_id: i32,
}

impl FromRequestParts<AppState> for AgentCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers).ok_or(ApiError::Unauthorized)?;
        match state.store.authenticate(token).await? {
            Some(TokenIdentity::Agent {
                cluster_id,
                broker_id,
            }) => Ok(AgentCaller {
                cluster_id,
                broker_id,
            }),
            _ => Err(ApiError::Unauthorized),
        }
    }
}
