//! ApiVersions: the APIs and versions this broker implements (from `dispatch::SUPPORTED_APIS`).

use std::sync::Arc;

use bytes::BytesMut;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Encodable;
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::dispatch::SUPPORTED_APIS;

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|api| {
            ApiVersion::default()
                .with_api_key(api.key as i16)
                .with_min_version(api.min_version)
                .with_max_version(api.max_version)
        })
        .collect()
}

pub async fn handle(
    _broker: &Arc<Broker>,
    _header: &RequestHeader,
    _request: ApiVersionsRequest,
) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_keys())
}

/// The v0 answer to an ApiVersions request at a version this broker does not know (KIP-511).
pub fn unsupported_version_response(correlation_id: i32) -> BytesMut {
    let mut out = BytesMut::new();
    let response = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_keys());
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut out, 0)
        .and_then(|_| response.encode(&mut out, 0))
        .expect("a v0 ApiVersions response always encodes");
    out
}
