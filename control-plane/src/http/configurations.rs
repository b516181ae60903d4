//! Configurations: named server.properties documents; an update adds a revision.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, Problem};
use super::extract::ApiJson;
use super::AppState;
use crate::domain::{At, ConfigurationName, ServerProperties};
use crate::store::{ConfigurationRecord, Conflict, NewConfiguration, RevisionRecord, StoreError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_configuration, list_configurations))
        .routes(routes!(
            describe_configuration,
            update_configuration,
            delete_configuration
        ))
        .routes(routes!(describe_configuration_revision))
}

const MAX_DESCRIPTION: usize = 1024;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateConfigurationRequest {
    /// 1 to 64 characters of A-Z, a-z, 0-9 and -.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Versions this configuration may be used with; empty means any.
    #[serde(default)]
    pub kafka_versions: Vec<String>,
    /// The server.properties text (plain text, not base64 as in MSK), at most 32 KiB.
    pub server_properties: String,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateConfigurationRequest {
    /// Describes the new revision.
    #[serde(default)]
    pub description: String,
    pub server_properties: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationRevisionInfo {
    pub revision: i64,
    pub description: String,
    pub creation_time: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationInfoResponse {
    pub arn: String,
    pub name: String,
    pub description: String,
    pub kafka_versions: Vec<String>,
    pub creation_time: DateTime<Utc>,
    pub latest_revision: ConfigurationRevisionInfo,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListConfigurationsResponse {
    pub configurations: Vec<ConfigurationInfoResponse>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DescribeRevisionResponse {
    pub arn: String,
    pub revision: i64,
    pub description: String,
    pub creation_time: DateTime<Utc>,
    pub server_properties: String,
}

fn configuration_info(record: ConfigurationRecord) -> ConfigurationInfoResponse {
    ConfigurationInfoResponse {
        arn: record.arn,
        name: record.name,
        description: record.description,
        kafka_versions: record.kafka_versions,
        creation_time: record.created_at,
        latest_revision: ConfigurationRevisionInfo {
            revision: record.latest_revision,
            description: record.latest_revision_description,
            creation_time: record.latest_revision_created_at,
        },
    }
}

fn revision_info(record: RevisionRecord) -> DescribeRevisionResponse {
    DescribeRevisionResponse {
        arn: record.configuration_arn,
        revision: record.revision,
        description: record.description,
        creation_time: record.created_at,
        server_properties: record.server_properties,
    }
}

fn parse_description(description: &str) -> ApiResult<()> {
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(ApiError::validation(
            "description",
            format!("must be at most {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(())
}

fn not_found(key: &str) -> ApiError {
    ApiError::not_found(format!("no configuration {key:?}"))
}

/// Create a configuration (revision 1).
#[utoipa::path(
    post,
    path = "/v1/configurations",
    operation_id = "createConfiguration",
    tag = "configurations",
    request_body = CreateConfigurationRequest,
    responses(
        (status = 201, body = ConfigurationInfoResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Name taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_configuration(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateConfigurationRequest>,
) -> ApiResult<(StatusCode, Json<ConfigurationInfoResponse>)> {
    let name = ConfigurationName::parse(&request.name).at("name")?;
    parse_description(&request.description)?;
    let server_properties =
        ServerProperties::parse(&request.server_properties).at("serverProperties")?;
    for (i, version) in request.kafka_versions.iter().enumerate() {
        state
            .versions
            .parse(version)
            .at(&format!("kafkaVersions[{i}]"))?;
    }
    let created = state
        .store
        .create_configuration(NewConfiguration {
            name,
            description: request.description,
            kafka_versions: request.kafka_versions,
            server_properties,
        })
        .await
        .map_err(|e| match e {
            StoreError::Conflict(Conflict::NameTaken(name)) => ApiError::Conflict {
                detail: format!("a configuration named {name:?} exists"),
                field: Some("name".into()),
            },
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(configuration_info(created))))
}

/// List configurations.
#[utoipa::path(
    get,
    path = "/v1/configurations",
    operation_id = "listConfigurations",
    tag = "configurations",
    responses(
        (status = 200, body = ListConfigurationsResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_configurations(
    State(state): State<AppState>,
) -> ApiResult<Json<ListConfigurationsResponse>> {
    let all = state.store.list_configurations().await?;
    Ok(Json(ListConfigurationsResponse {
        configurations: all.into_iter().map(configuration_info).collect(),
    }))
}

/// Describe a configuration, by ARN (URL-encoded) or name.
#[utoipa::path(
    get,
    path = "/v1/configurations/{configuration}",
    operation_id = "describeConfiguration",
    tag = "configurations",
    params(("configuration" = String, Path, description = "ARN (URL-encoded) or name")),
    responses(
        (status = 200, body = ConfigurationInfoResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn describe_configuration(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult<Json<ConfigurationInfoResponse>> {
    match state.store.get_configuration(&key).await {
        Err(StoreError::NotFound) => Err(not_found(&key)),
        other => Ok(Json(configuration_info(other?))),
    }
}

/// Add a revision to a configuration.
#[utoipa::path(
    put,
    path = "/v1/configurations/{configuration}",
    operation_id = "updateConfiguration",
    tag = "configurations",
    params(("configuration" = String, Path, description = "ARN (URL-encoded) or name")),
    request_body = UpdateConfigurationRequest,
    responses(
        (status = 200, description = "The new revision", body = ConfigurationRevisionInfo),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Revised concurrently", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_configuration(
    State(state): State<AppState>,
    Path(key): Path<String>,
    ApiJson(request): ApiJson<UpdateConfigurationRequest>,
) -> ApiResult<Json<ConfigurationRevisionInfo>> {
    parse_description(&request.description)?;
    let server_properties =
        ServerProperties::parse(&request.server_properties).at("serverProperties")?;
    match state
        .store
        .add_configuration_revision(&key, &request.description, &server_properties)
        .await
    {
        Err(StoreError::NotFound) => Err(not_found(&key)),
        other => {
            let revision = other?;
            Ok(Json(ConfigurationRevisionInfo {
                revision: revision.revision,
                description: revision.description,
                creation_time: revision.created_at,
            }))
        }
    }
}

/// Delete a configuration that no cluster uses.
#[utoipa::path(
    delete,
    path = "/v1/configurations/{configuration}",
    operation_id = "deleteConfiguration",
    tag = "configurations",
    params(("configuration" = String, Path, description = "ARN (URL-encoded) or name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A cluster uses it", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_configuration(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    match state.store.delete_configuration(&key).await {
        Err(StoreError::NotFound) => Err(not_found(&key)),
        other => {
            other?;
            Ok(StatusCode::NO_CONTENT)
        }
    }
}

/// Describe one revision, with its server.properties.
#[utoipa::path(
    get,
    path = "/v1/configurations/{configuration}/revisions/{revision}",
    operation_id = "describeConfigurationRevision",
    tag = "configurations",
    params(
        ("configuration" = String, Path, description = "ARN (URL-encoded) or name"),
        ("revision" = i64, Path, description = "Revision number, from 1"),
    ),
    responses(
        (status = 200, body = DescribeRevisionResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    )
)]
async fn describe_configuration_revision(
    State(state): State<AppState>,
    Path((key, revision)): Path<(String, String)>,
) -> ApiResult<Json<DescribeRevisionResponse>> {
    let missing =
        || ApiError::not_found(format!("no revision {revision:?} of configuration {key:?}"));
    let number: i64 = revision.parse().map_err(|_| missing())?;
    match state.store.get_configuration_revision(&key, number).await {
        Err(StoreError::NotFound) => Err(missing()),
        other => Ok(Json(revision_info(other?))),
    }
}
