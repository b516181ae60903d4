//! The API's one error type, rendered once as RFC 7807 `application/problem+json`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::DomainError;
use crate::service::ServiceError;
use crate::store::{Conflict, StoreError};

/// An RFC 7807 problem document. `field` names the offending request field (dotted camelCase
/// path, or a header or query parameter name) when there is one.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI identifying the kind of problem, e.g. `urn:millrace:problem:validation`.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    MalformedJson(String),
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{detail}")]
    Conflict {
        detail: String,
        field: Option<String>,
    },
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    #[error("{field}: {detail}")]
    Validation { field: String, detail: String },
    #[error("{0}")]
    NotImplemented(String),
    #[error("internal error: {0}")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn validation(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::Validation {
            field: field.into(),
            detail: detail.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::NotFound(what.into())
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed-json",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::Conflict { .. } => "conflict",
            ApiError::PreconditionFailed(_) => "precondition-failed",
            ApiError::PayloadTooLarge { .. } => "payload-too-large",
            ApiError::UnsupportedMediaType => "unsupported-media-type",
            ApiError::Validation { .. } => "validation",
            ApiError::NotImplemented(_) => "not-implemented",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn to_problem(&self) -> Problem {
        let status = self.status_code();
        let (detail, field) = match self {
            ApiError::Validation { field, detail } => (detail.clone(), Some(field.clone())),
            ApiError::Conflict { detail, field } => (detail.clone(), field.clone()),
            // The cause is logged, never shown.
            ApiError::Internal(_) => (
                "an internal error occurred; see the server log".into(),
                None,
            ),
            other => (other.to_string(), None),
        };
        Problem {
            problem_type: format!("urn:millrace:problem:{}", self.kind()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            instance: None,
            field,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = ?cause, "request failed");
        }
        let problem = self.to_problem();
        let body = serde_json::to_vec(&problem).expect("a problem always serialises");
        let mut response = (self.status_code(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if matches!(self, ApiError::Unauthorized) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        ApiError::Validation {
            field: e.field,
            detail: e.message,
        }
    }
}

impl From<Conflict> for ApiError {
    fn from(conflict: Conflict) -> Self {
        let field = match &conflict {
            Conflict::NameTaken(_) => Some("clusterName"),
            Conflict::IdempotencyKeyReused => Some("Idempotency-Key"),
            Conflict::VersionMismatch { .. } => Some("currentVersion"),
            Conflict::WrongState { .. } => Some("state"),
            Conflict::InUse(_) => None,
        };
        if let Conflict::IdempotencyKeyReused = conflict {
            // The draft IETF Idempotency-Key specification answers a reused key with a
            // different payload with 422.
            return ApiError::validation(
                "Idempotency-Key",
                "this idempotency key was already used with a different request body",
            );
        }
        ApiError::Conflict {
            detail: conflict.to_string(),
            field: field.map(str::to_owned),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(invalid) => invalid.into(),
            ServiceError::Conflict(conflict) => conflict.into(),
            ServiceError::NotFound(what) => ApiError::NotFound(what),
            ServiceError::NotSupported(detail) => ApiError::NotImplemented(detail),
            ServiceError::Store(store) => store.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("no such resource".into()),
            StoreError::Conflict(conflict) => conflict.into(),
            other => ApiError::Internal(other.into()),
        }
    }
}

/// The problem responses a route can give, for its OpenAPI document.
pub type ApiResult<T> = Result<T, ApiError>;
