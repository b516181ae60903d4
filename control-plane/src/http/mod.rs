//! The REST API: one router per resource module, each an `OpenApiRouter` built with `routes!`,
//! so a route cannot exist without its OpenAPI description. This module assembles them, puts the
//! admin routes behind bearer authentication, and wraps everything in tower-http's layers.

mod agent;
mod auth;
mod catalog;
mod cluster_updates;
mod clusters;
mod configurations;
pub mod error;
pub mod extract;
mod health;
mod operations;
mod tags;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware;
use axum::Router;
use tokio::sync::Notify;
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::domain::VersionCatalog;
use crate::store::Store;
use error::ApiError;

pub use clusters::{
    BrokerNodeGroupInfo, ClusterInfo, ConfigurationInfo, CreateClusterRequest,
    CreateClusterResponse, EbsStorageInfo, InstanceStorageInfo, ListClustersResponse,
    ProvisionedThroughputBody, StorageAutoExpansionBody, StorageInfoBody,
};

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Origins a browser console may call from; empty means any `http://localhost:*` or
    /// `http://127.0.0.1:*` origin (the local console).
    pub cors_origins: Vec<String>,
    pub request_timeout: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            cors_origins: Vec::new(),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// What every handler gets: cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// The broker versions installed on the platform.
    pub versions: Arc<VersionCatalog>,
    /// Notified whenever a cluster's desired state changes, so the reconciler acts at once
    /// instead of at its next periodic pass.
    pub reconcile_wakeup: Arc<Notify>,
    pub config: Arc<ApiConfig>,
}

impl AppState {
    pub fn new(store: Store, versions: VersionCatalog, config: ApiConfig) -> Self {
        Self {
            store,
            versions: Arc::new(versions),
            reconcile_wakeup: Arc::new(Notify::new()),
            config: Arc::new(config),
        }
    }

    /// The use cases on clusters that both doors share.
    pub fn clusters(&self) -> crate::service::ClustersService {
        crate::service::ClustersService::new(
            self.store.clone(),
            self.versions.clone(),
            self.reconcile_wakeup.clone(),
        )
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Millrace control plane",
        description = "Managed Kafka-compatible clusters: create, describe, change and delete \
                       them. Errors are RFC 7807 problem+json documents naming the offending \
                       field. Every endpoint but /healthz needs `Authorization: Bearer <token>`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    security(("bearerAuth" = [])),
    tags(
        (name = "clusters", description = "Clusters, their nodes and bootstrap brokers"),
        (name = "cluster-updates", description = "Changes to a cluster, each carried out as an operation"),
        (name = "operations", description = "Cluster operations and their steps"),
        (name = "configurations", description = "Revisioned server.properties documents"),
        (name = "catalog", description = "Installed versions and broker sizes"),
        (name = "tags", description = "Resource tags"),
        (name = "internal", description = "Broker-agent reports (agent tokens only)"),
        (name = "health", description = "Liveness")
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An admin token (printed once by `millrace serve`)."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "agentAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A broker node's agent token, minted by the reconciler.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Routes that need an admin token.
fn admin_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(clusters::router())
        .merge(cluster_updates::router())
        .merge(operations::router())
        .merge(configurations::router())
        .merge(catalog::router())
        .merge(tags::router())
}

/// Routes that authenticate differently (agents) or not at all (health).
fn other_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(health::router())
        .merge(agent::router())
}

/// The OpenAPI document, generated from the routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
        .merge(admin_routes())
        .merge(other_routes())
        .into_openapi()
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let (admin, _) = admin_routes().split_for_parts();
    let admin = admin.route_layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_admin,
    ));
    let (other, _) = other_routes().split_for_parts();
    let docs: Router<AppState> = SwaggerUi::new("/docs")
        .url("/openapi.json", openapi())
        .into();

    let request_id = HeaderName::from_static("x-request-id");
    let layers = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let request_id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    request_id = %request_id,
                )
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id))
        .layer(cors(&state.config))
        .layer(CompressionLayer::new())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.config.request_timeout,
        ));

    Router::new()
        .merge(admin)
        .merge(other)
        .merge(docs)
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .with_state(state)
        .layer(layers)
}

fn cors(config: &ApiConfig) -> CorsLayer {
    let origins = if config.cors_origins.is_empty() {
        AllowOrigin::predicate(|origin: &HeaderValue, _| {
            let origin = origin.as_bytes();
            [
                b"http://localhost".as_slice(),
                b"http://127.0.0.1",
                b"http://[::1]",
            ]
            .iter()
            .any(|base| {
                origin.strip_prefix(*base).is_some_and(|rest| {
                    rest.is_empty() || (rest[0] == b':' && rest[1..].iter().all(u8::is_ascii_digit))
                })
            })
        })
    } else {
        AllowOrigin::list(
            config
                .cors_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([HeaderName::from_static("x-request-id")])
}
