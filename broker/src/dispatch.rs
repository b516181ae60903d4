//! Decodes a request frame, routes it to its handler, and encodes the response.
//!
//! The table of supported APIs lives here, so what ApiVersions advertises is exactly what is
//! routed. Version ranges stay inside what the `kafka-protocol` crate can decode and inside what
//! the handlers implement.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use kafka_protocol::ResponseError;
use tracing::{debug, Instrument};

use crate::broker::Broker;
use crate::handlers;

/// Why a connection must be closed instead of answered.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("{0}")]
    Close(String),
}

/// One supported API and the versions this broker implements.
pub struct SupportedApi {
    pub key: ApiKey,
    pub min_version: i16,
    pub max_version: i16,
}

const fn api(key: ApiKey, min_version: i16, max_version: i16) -> SupportedApi {
    SupportedApi {
        key,
        min_version,
        max_version,
    }
}

/// Every API this broker answers, with the versions it implements.
pub const SUPPORTED_APIS: &[SupportedApi] = &[
    api(ApiKey::Produce, 3, 11),
    api(ApiKey::Fetch, 4, 12),
    api(ApiKey::ListOffsets, 1, 7),
    api(ApiKey::Metadata, 0, 12),
    api(ApiKey::OffsetCommit, 2, 8),
    api(ApiKey::OffsetFetch, 1, 8),
    api(ApiKey::FindCoordinator, 0, 4),
    api(ApiKey::JoinGroup, 0, 7),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 4),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::DescribeGroups, 0, 5),
    api(ApiKey::ListGroups, 0, 4),
    api(ApiKey::ApiVersions, 0, 3),
    api(ApiKey::CreateTopics, 2, 7),
    api(ApiKey::DeleteTopics, 1, 5),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::InitProducerId, 0, 4),
    api(ApiKey::DescribeConfigs, 1, 4),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::DescribeCluster, 0, 1),
    api(ApiKey::OffsetForLeaderEpoch, 2, 4),
    api(ApiKey::ElectLeaders, 0, 2),
    api(ApiKey::AlterPartitionReassignments, 0, 0),
    api(ApiKey::ListPartitionReassignments, 0, 0),
    api(ApiKey::UnregisterBroker, 0, 0),
];

pub fn supported(key: ApiKey) -> Option<&'static SupportedApi> {
    SUPPORTED_APIS.iter().find(|api| api.key == key)
}

/// Handles one request frame. `Ok(None)` means the request wants no response (acks=0 produce).
pub async fn handle_frame(
    broker: &Arc<Broker>,
    mut frame: Bytes,
) -> Result<Option<BytesMut>, DispatchError> {
    if frame.len() < 8 {
        return Err(DispatchError::Close(format!(
            "request of {} bytes is shorter than a request header",
            frame.len()
        )));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let key = ApiKey::try_from(api_key)
        .map_err(|_| DispatchError::Close(format!("unknown API key {api_key}")))?;
    let Some(range) = supported(key) else {
        return Err(DispatchError::Close(format!(
            "API {key:?} is not supported by this broker"
        )));
    };
    if version < range.min_version || version > range.max_version {
        if key == ApiKey::ApiVersions {
            // KIP-511: a client newer than the broker sends ApiVersions at a version the broker
            // does not know; the broker answers at v0 with UNSUPPORTED_VERSION and its ranges,
            // and the client retries at a version both know.
            return Ok(Some(handlers::api_versions::unsupported_version_response(
                correlation_id,
            )));
        }
        return Err(DispatchError::Close(format!(
            "{key:?} v{version} is outside the supported range v{}-v{}",
            range.min_version, range.max_version
        )));
    }
    let header = RequestHeader::decode(&mut frame, key.request_header_version(version))
        .map_err(|error| DispatchError::Close(format!("undecodable request header: {error:#}")))?;
    let client_id = header.client_id.as_deref().unwrap_or("").to_string();
    let span = tracing::debug_span!("request", api = ?key, version, correlation_id, client_id);
    let started = Instant::now();
    let response = route(broker, key, &header, frame).instrument(span).await;
    broker
        .metrics
        .observe_request(key, started.elapsed().as_secs_f64());
    response
}

fn decode<T: Decodable>(key: ApiKey, body: &mut Bytes, version: i16) -> Result<T, DispatchError> {
    T::decode(body, version).map_err(|error| {
        DispatchError::Close(format!("undecodable {key:?} v{version} request: {error:#}"))
    })
}

/// Encodes a response with its header, or closes the connection when encoding fails (a broker
/// bug, e.g. a field the negotiated version cannot carry).
fn encode<T: Encodable + HeaderVersion>(
    key: ApiKey,
    header: &RequestHeader,
    response: &T,
) -> Result<Option<BytesMut>, DispatchError> {
    let version = header.request_api_version;
    let mut out = BytesMut::with_capacity(64);
    let response_header = ResponseHeader::default().with_correlation_id(header.correlation_id);
    let result = response_header
        .encode(&mut out, T::header_version(version))
        .and_then(|_| response.encode(&mut out, version));
    match result {
        Ok(()) => Ok(Some(out)),
        Err(error) => {
            debug!(%error, "response encoding failed");
            Err(DispatchError::Close(format!(
                "could not encode {key:?} v{version} response: {error:#}"
            )))
        }
    }
}

/// Routes each API to its handler: `handler(broker, header, request).await` returns the typed
/// response.
macro_rules! route_table {
    ($broker:expr, $key:expr, $header:expr, $body:expr; $($api:ident => $handler:path),* $(,)?) => {
        match $key {
            $(
                ApiKey::$api => {
                    let request = decode($key, &mut $body, $header.request_api_version)?;
                    let response = $handler($broker, $header, request).await;
                    encode($key, $header, &response)
                }
            )*
            other => Err(DispatchError::Close(format!("API {other:?} is not routed"))),
        }
    };
}

async fn route(
    broker: &Arc<Broker>,
    key: ApiKey,
    header: &RequestHeader,
    mut body: Bytes,
) -> Result<Option<BytesMut>, DispatchError> {
    if key == ApiKey::Produce {
        let request: ProduceRequest = decode(key, &mut body, header.request_api_version)?;
        let acks = request.acks;
        let response = handlers::produce::handle(broker, header, request).await;
        if acks == 0 {
            // acks=0 produce requests get no response at all. As in Kafka, a refused append
            // closes the connection instead, so that the client notices (it reconnects and
            // refreshes its metadata) rather than sending on into the void.
            return match produce_error(&response) {
                Some(reason) => Err(DispatchError::Close(format!(
                    "acks=0 produce refused: {reason}"
                ))),
                None => Ok(None),
            };
        }
        return encode(key, header, &response);
    }
    route_table!(broker, key, header, body;
        ApiVersions => handlers::api_versions::handle,
        Metadata => handlers::metadata::handle,
        Fetch => handlers::fetch::handle,
        ListOffsets => handlers::list_offsets::handle,
        CreateTopics => handlers::topics::create_topics,
        DeleteTopics => handlers::topics::delete_topics,
        CreatePartitions => handlers::topics::create_partitions,
        DeleteRecords => handlers::topics::delete_records,
        DescribeConfigs => handlers::configs::describe_configs,
        IncrementalAlterConfigs => handlers::configs::incremental_alter_configs,
        DescribeCluster => handlers::cluster::describe_cluster,
        OffsetForLeaderEpoch => handlers::offset_for_leader_epoch::handle,
        ElectLeaders => handlers::partition_admin::elect_leaders,
        AlterPartitionReassignments => handlers::partition_admin::alter_partition_reassignments,
        ListPartitionReassignments => handlers::partition_admin::list_partition_reassignments,
        UnregisterBroker => handlers::partition_admin::unregister_broker,
        InitProducerId => handlers::producer_id::init_producer_id,
        FindCoordinator => handlers::groups::find_coordinator,
        JoinGroup => handlers::groups::join_group,
        SyncGroup => handlers::groups::sync_group,
        Heartbeat => handlers::groups::heartbeat,
        LeaveGroup => handlers::groups::leave_group,
        OffsetCommit => handlers::groups::offset_commit,
        OffsetFetch => handlers::groups::offset_fetch,
        ListGroups => handlers::groups::list_groups,
        DescribeGroups => handlers::groups::describe_groups,
        DeleteGroups => handlers::groups::delete_groups,
    )
}

/// The first partition error in a produce response, as "topic-partition: error".
fn produce_error(response: &ProduceResponse) -> Option<String> {
    response.responses.iter().find_map(|topic| {
        topic.partition_responses.iter().find_map(|partition| {
            (partition.error_code != 0).then(|| {
                let error = ResponseError::try_from_code(partition.error_code).map_or_else(
                    || format!("error {}", partition.error_code),
                    |e| format!("{e:?}"),
                );
                format!("{}-{}: {error}", topic.name.as_str(), partition.index)
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use bytes::BufMut;

    use super::*;
    use crate::broker::testing;
    use crate::handlers::testing::request_frame;

    #[tokio::test]
    async fn api_versions_at_an_unknown_version_answers_v0_unsupported_version() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::open(dir.path(), &[]).await;
        let mut frame = BytesMut::new();
        frame.put_i16(ApiKey::ApiVersions as i16);
        frame.put_i16(99);
        frame.put_i32(7);
        frame.put_i16(-1);
        let response = handle_frame(&broker, frame.freeze())
            .await
            .unwrap()
            .unwrap();
        let mut body = response.freeze();
        let header = ResponseHeader::decode(&mut body, 0).unwrap();
        assert_eq!(header.correlation_id, 7);
        let decoded = ApiVersionsResponse::decode(&mut body, 0).unwrap();
        assert_eq!(decoded.error_code, 35);
        assert_eq!(decoded.api_keys.len(), SUPPORTED_APIS.len());
    }

    #[tokio::test]
    async fn unknown_keys_unsupported_versions_and_short_frames_close_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::open(dir.path(), &[]).await;
        for frame in [
            vec![0u8; 3],
            vec![0x27, 0x0f, 0, 0, 0, 0, 0, 1], // API key 9999
            vec![0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xff], // Produce v1 (below the range)
            vec![0, 8, 0, 99, 0, 0, 0, 1, 0xff, 0xff], // OffsetCommit v99
        ] {
            let result = handle_frame(&broker, Bytes::from(frame.clone())).await;
            assert!(matches!(result, Err(DispatchError::Close(_))), "{frame:?}");
        }
    }

    #[tokio::test]
    async fn every_supported_api_answers_its_default_request_at_every_version() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::open(dir.path(), &["--group-initial-rebalance-delay-ms", "0"]).await;
        for api in SUPPORTED_APIS {
            for version in api.min_version..=api.max_version {
                let frame = match api.key {
                    ApiKey::Produce => {
                        request_frame(api.key, version, &ProduceRequest::default().with_acks(1))
                    }
                    ApiKey::Fetch => request_frame(
                        api.key,
                        version,
                        &FetchRequest::default().with_max_wait_ms(0),
                    ),
                    ApiKey::Metadata => {
                        request_frame(api.key, version, &MetadataRequest::default())
                    }
                    ApiKey::ApiVersions => {
                        request_frame(api.key, version, &ApiVersionsRequest::default())
                    }
                    ApiKey::ListOffsets => {
                        request_frame(api.key, version, &ListOffsetsRequest::default())
                    }
                    ApiKey::CreateTopics => {
                        request_frame(api.key, version, &CreateTopicsRequest::default())
                    }
                    ApiKey::DeleteTopics => {
                        request_frame(api.key, version, &DeleteTopicsRequest::default())
                    }
                    ApiKey::CreatePartitions => {
                        request_frame(api.key, version, &CreatePartitionsRequest::default())
                    }
                    ApiKey::DeleteRecords => {
                        request_frame(api.key, version, &DeleteRecordsRequest::default())
                    }
                    ApiKey::DescribeConfigs => {
                        request_frame(api.key, version, &DescribeConfigsRequest::default())
                    }
                    ApiKey::IncrementalAlterConfigs => {
                        request_frame(api.key, version, &IncrementalAlterConfigsRequest::default())
                    }
                    ApiKey::DescribeCluster => {
                        request_frame(api.key, version, &DescribeClusterRequest::default())
                    }
                    ApiKey::OffsetForLeaderEpoch => {
                        request_frame(api.key, version, &OffsetForLeaderEpochRequest::default())
                    }
                    ApiKey::ElectLeaders => request_frame(
                        api.key,
                        version,
                        &ElectLeadersRequest::default().with_topic_partitions(Some(Vec::new())),
                    ),
                    ApiKey::AlterPartitionReassignments => request_frame(
                        api.key,
                        version,
                        &AlterPartitionReassignmentsRequest::default(),
                    ),
                    ApiKey::ListPartitionReassignments => request_frame(
                        api.key,
                        version,
                        &ListPartitionReassignmentsRequest::default(),
                    ),
                    ApiKey::UnregisterBroker => request_frame(
                        api.key,
                        version,
                        &UnregisterBrokerRequest::default().with_broker_id(BrokerId(99)),
                    ),
                    ApiKey::InitProducerId => {
                        request_frame(api.key, version, &InitProducerIdRequest::default())
                    }
                    ApiKey::ListGroups => {
                        request_frame(api.key, version, &ListGroupsRequest::default())
                    }
                    ApiKey::DescribeGroups => {
                        request_frame(api.key, version, &DescribeGroupsRequest::default())
                    }
                    ApiKey::DeleteGroups => {
                        request_frame(api.key, version, &DeleteGroupsRequest::default())
                    }
                    ApiKey::FindCoordinator => {
                        request_frame(api.key, version, &FindCoordinatorRequest::default())
                    }
                    ApiKey::OffsetFetch => {
                        request_frame(api.key, version, &OffsetFetchRequest::default())
                    }
                    ApiKey::OffsetCommit => {
                        request_frame(api.key, version, &OffsetCommitRequest::default())
                    }
                    ApiKey::Heartbeat => {
                        request_frame(api.key, version, &HeartbeatRequest::default())
                    }
                    ApiKey::LeaveGroup => {
                        request_frame(api.key, version, &LeaveGroupRequest::default())
                    }
                    ApiKey::SyncGroup => {
                        request_frame(api.key, version, &SyncGroupRequest::default())
                    }
                    // An empty JoinGroup is refused at once (invalid group id); it never waits.
                    ApiKey::JoinGroup => {
                        request_frame(api.key, version, &JoinGroupRequest::default())
                    }
                    other => panic!("no default request for {other:?}"),
                };
                let result = tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    handle_frame(&broker, frame),
                )
                .await
                .unwrap_or_else(|_| panic!("{:?} v{version} did not answer", api.key));
                assert!(
                    matches!(result, Ok(Some(_))),
                    "{:?} v{version}: {result:?}",
                    api.key
                );
            }
        }
    }

    /// Lengths read off the wire are checked against the bytes left before anything is
    /// allocated (the patched kafka-protocol in broker/vendor). Without the check the first frame,
    /// found by the fuzz target, makes the decoder ask for ~60 GB and the process aborts.
    #[tokio::test]
    async fn lengths_beyond_the_frame_are_refused_before_any_allocation() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::open(dir.path(), &[]).await;
        let header_v2 = |key: ApiKey, version: i16| {
            let mut frame = BytesMut::new();
            frame.put_i16(key as i16);
            frame.put_i16(version);
            frame.put_i32(1);
            frame.put_i16(-1); // client id: null
            frame.put_u8(0); // no tagged fields
            frame
        };
        // Metadata v12: topics as a compact array of 2^32 - 2 elements, in 6 bytes.
        let mut compact_array = header_v2(ApiKey::Metadata, 12);
        compact_array.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]);
        // ApiVersions v3: a client software name of 4 GiB, in 5 bytes (string fields that
        // borrow from the frame were already checked upstream).
        let mut compact_string = header_v2(ApiKey::ApiVersions, 3);
        compact_string.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        let frames = [
            (
                "fuzz/regressions/array-length-allocation.bin",
                Bytes::from_static(include_bytes!(
                    "../fuzz/regressions/array-length-allocation.bin"
                )),
                "Array length 761816428 exceeds the 1 bytes left in the buffer",
            ),
            (
                "compact array",
                compact_array.freeze(),
                "CompactArray length 4294967294 exceeds the 1 bytes left in the buffer",
            ),
            (
                "compact string",
                compact_string.freeze(),
                "Not enough bytes remaining in buffer",
            ),
        ];
        for (name, frame, expected) in frames {
            match handle_frame(&broker, frame).await {
                Err(DispatchError::Close(reason)) => {
                    assert!(reason.contains(expected), "{name}: {reason}")
                }
                other => panic!("{name}: expected a closed connection, got {other:?}"),
            }
        }
    }

    /// Random frames and random corruptions of valid frames never panic (the cargo-fuzz target
    /// in broker/fuzz explores the same path further).
    #[tokio::test]
    async fn random_and_corrupted_frames_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::open(dir.path(), &[]).await;
        let mut seed = 0x9e3779b97f4a7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let valid = [
            request_frame(ApiKey::Metadata, 12, &MetadataRequest::default()),
            request_frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()),
            request_frame(
                ApiKey::FindCoordinator,
                4,
                &FindCoordinatorRequest::default(),
            ),
            request_frame(ApiKey::Produce, 9, &ProduceRequest::default().with_acks(1)),
        ];
        for round in 0..3000 {
            let frame: Vec<u8> = if round % 2 == 0 {
                let mut frame = valid[round / 2 % valid.len()].to_vec();
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % frame.len().max(1);
                    if let Some(byte) = frame.get_mut(at) {
                        *byte = next() as u8;
                    }
                }
                frame.truncate(frame.len() - (next() as usize % 3).min(frame.len()));
                frame
            } else {
                let len = next() as usize % 64;
                let mut frame: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                if frame.len() >= 4 {
                    // Aim at real API keys and versions so decoding goes past the header.
                    let api = &SUPPORTED_APIS[next() as usize % SUPPORTED_APIS.len()];
                    frame[0..2].copy_from_slice(&(api.key as i16).to_be_bytes());
                    frame[2..4].copy_from_slice(&api.max_version.to_be_bytes());
                }
                frame
            };
            let _ = tokio::time::timeout(
                std::time::Duration::from_millis(200),
                handle_frame(&broker, Bytes::from(frame)),
            )
            .await;
        }
    }
}
