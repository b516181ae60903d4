//! The Kafka requests the control plane sends, one connection per request (they are rare):
//! Metadata v9 (all topics, and the group offsets topic by name), ElectLeaders v1 (preferred, every partition) and
//! IncrementalAlterConfigs v0 (a broker's dynamic settings).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ElectLeadersRequest, ElectLeadersResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, MetadataRequest, MetadataResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::BrokerError;

/// Metadata of a large cluster fits many times over.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
const METADATA_VERSION: i16 = 9;
/// Kafka's internal topic of committed group offsets.
const OFFSETS_TOPIC: &str = "__consumer_offsets";
const ELECT_LEADERS_VERSION: i16 = 1;
const PREFERRED_ELECTION: i8 = 0;
const INCREMENTAL_ALTER_CONFIGS_VERSION: i16 = 0;
const RESOURCE_BROKER: i8 = 4;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
/// Kafka's INVALID_REQUEST: what a broker without dynamic settings answers for a broker resource.
const INVALID_REQUEST: i16 = 42;
/// Kafka's INVALID_CONFIG: a setting or value the broker does not accept.
const INVALID_CONFIG: i16 = 40;

/// A broker's answer to a change of its dynamic settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterOutcome {
    Applied,
    /// The broker's version cannot change its own settings while it runs.
    NotSupported(String),
    /// The broker refused a setting or value (no retry cures it).
    Invalid(String),
}

/// One partition as the metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    pub topic: String,
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// The cluster's metadata as one broker serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    /// The active controller (the metadata quorum's leader), when there is one.
    pub controller_id: Option<i32>,
    /// Registered, unfenced brokers and their Kafka listeners.
    pub broker_addresses: BTreeMap<i32, String>,
    pub partitions: Vec<PartitionView>,
}

pub async fn metadata(address: &str, timeout: Duration) -> Result<ClusterView, BrokerError> {
    let request = MetadataRequest::default()
        .with_topics(None)
        .with_allow_auto_topic_creation(false);
    let mut response: MetadataResponse = call(
        address,
        ApiKey::Metadata,
        METADATA_VERSION,
        &request,
        timeout,
    )
    .await?;
    // Millrace brokers leave internal topics out of an all-topics answer; the group offsets
    // are partitions to keep in sync and to move like any other, so they are asked for by name.
    if !response
        .topics
        .iter()
        .any(|t| t.name.as_ref().is_some_and(|n| n.as_str() == OFFSETS_TOPIC))
    {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
                TopicName(StrBytes::from_static_str(OFFSETS_TOPIC)),
            ))]))
            .with_allow_auto_topic_creation(false);
        let offsets: MetadataResponse = call(
            address,
            ApiKey::Metadata,
            METADATA_VERSION,
            &request,
            timeout,
        )
        .await?;
        response.topics.extend(
            offsets
                .topics
                .into_iter()
                .filter(|t| t.error_code == 0 && !t.partitions.is_empty()),
        );
    }
    let broker_addresses = response
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
        .collect();
    let mut partitions = Vec::new();
    for topic in &response.topics {
        let Some(name) = &topic.name else { continue };
        for partition in &topic.partitions {
            partitions.push(PartitionView {
                topic: name.to_string(),
                partition: partition.partition_index,
                leader: partition.leader_id.0,
                replicas: partition.replica_nodes.iter().map(|b| b.0).collect(),
                isr: partition.isr_nodes.iter().map(|b| b.0).collect(),
            });
        }
    }
    Ok(ClusterView {
        controller_id: (response.controller_id.0 >= 0).then_some(response.controller_id.0),
        broker_addresses,
        partitions,
    })
}

/// Returns how many partitions got their preferred leader back.
pub async fn elect_preferred_leaders(
    address: &str,
    timeout: Duration,
) -> Result<usize, BrokerError> {
    let request = ElectLeadersRequest::default()
        .with_election_type(PREFERRED_ELECTION)
        .with_topic_partitions(None)
        .with_timeout_ms(timeout.as_millis() as i32);
    let response: ElectLeadersResponse = call(
        address,
        ApiKey::ElectLeaders,
        ELECT_LEADERS_VERSION,
        &request,
        timeout,
    )
    .await?;
    if response.error_code != 0 {
        return Err(BrokerError::Protocol {
            address: address.to_owned(),
            message: format!("ElectLeaders answered error code {}", response.error_code),
        });
    }
    Ok(response
        .replica_election_results
        .iter()
        .flat_map(|topic| &topic.partition_result)
        .filter(|p| p.error_code == 0)
        .count())
}

/// Sets `set` and removes `delete` among broker `broker_id`'s dynamic settings (with
/// `validate_only`, only asks whether the broker would).
pub async fn alter_broker_configs(
    address: &str,
    broker_id: i32,
    set: &BTreeMap<String, String>,
    delete: &[String],
    validate_only: bool,
    timeout: Duration,
) -> Result<AlterOutcome, BrokerError> {
    let configs = set
        .iter()
        .map(|(name, value)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(name.clone()))
                .with_config_operation(OP_SET)
                .with_value(Some(StrBytes::from_string(value.clone())))
        })
        .chain(delete.iter().map(|name| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(name.clone()))
                .with_config_operation(OP_DELETE)
        }))
        .collect();
    let request = IncrementalAlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(RESOURCE_BROKER)
            .with_resource_name(StrBytes::from_string(broker_id.to_string()))
            .with_configs(configs)]);
    let response: IncrementalAlterConfigsResponse = call(
        address,
        ApiKey::IncrementalAlterConfigs,
        INCREMENTAL_ALTER_CONFIGS_VERSION,
        &request,
        timeout,
    )
    .await?;
    let Some(result) = response.responses.first() else {
        return Err(BrokerError::Protocol {
            address: address.to_owned(),
            message: "IncrementalAlterConfigs answered no resource".into(),
        });
    };
    let message = result
        .error_message
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    match result.error_code {
        0 => Ok(AlterOutcome::Applied),
        INVALID_REQUEST => Ok(AlterOutcome::NotSupported(message)),
        INVALID_CONFIG => Ok(AlterOutcome::Invalid(message)),
        code => Err(BrokerError::Protocol {
            address: address.to_owned(),
            message: format!("IncrementalAlterConfigs answered error code {code}: {message}"),
        }),
    }
}

pub(super) async fn call<Req, Resp>(
    address: &str,
    key: ApiKey,
    version: i16,
    request: &Req,
    timeout: Duration,
) -> Result<Resp, BrokerError>
where
    Req: Encodable,
    Resp: Decodable + HeaderVersion,
{
    let protocol = |message: String| BrokerError::Protocol {
        address: address.to_owned(),
        message,
    };
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("millrace-control-plane")))
        .encode(&mut body, key.request_header_version(version))
        .map_err(|e| protocol(format!("encoding the {key:?} header: {e}")))?;
    request
        .encode(&mut body, version)
        .map_err(|e| protocol(format!("encoding {key:?}: {e}")))?;
    let mut frame = BytesMut::with_capacity(body.len() + 4);
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    let exchange = async {
        let mut stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        stream.write_all(&frame).await?;
        let length = stream.read_i32().await?;
        if length < 0 || length as usize > MAX_RESPONSE_BYTES {
            return Err(std::io::Error::other(format!(
                "response of {length} bytes is out of bounds"
            )));
        }
        let mut response = vec![0u8; length as usize];
        stream.read_exact(&mut response).await?;
        Ok(Bytes::from(response))
    };
    let mut response = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| BrokerError::Unreachable {
            address: address.to_owned(),
            message: format!("{key:?} timed out after {timeout:?}"),
        })?
        .map_err(|e| BrokerError::Unreachable {
            address: address.to_owned(),
            message: format!("{key:?}: {e}"),
        })?;
    let header = ResponseHeader::decode(&mut response, Resp::header_version(version))
        .map_err(|e| protocol(format!("decoding the {key:?} response header: {e}")))?;
    if header.correlation_id != 1 {
        return Err(protocol(format!(
            "response for correlation id {}",
            header.correlation_id
        )));
    }
    let decoded = Resp::decode(&mut response, version)
        .map_err(|e| protocol(format!("decoding the {key:?} response: {e}")))?;
    if response.has_remaining() {
        return Err(protocol(format!(
            "{} bytes left after the {key:?} response",
            response.remaining()
        )));
    }
    Ok(decoded)
}
