//! DescribeConfigs and IncrementalAlterConfigs for topics (broker configuration is static:
//! described, never altered).

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::str_bytes;
use crate::broker::Broker;
use crate::metadata::topic_config::ConfigSource;
use crate::metadata::{TopicConfig, TopicError};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

fn entry(
    name: &str,
    value: String,
    source: i8,
    read_only: bool,
    doc: Option<&str>,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(value)))
        .with_config_source(source)
        .with_read_only(read_only)
        .with_documentation(doc.map(str_bytes))
}

fn broker_configs(broker: &Broker) -> Vec<(&'static str, String)> {
    let c = &broker.config;
    vec![
        ("node.id", c.node_id.to_string()),
        ("broker.rack", c.rack.clone().unwrap_or_default()),
        (
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
        ),
        ("num.partitions", c.default_partitions.to_string()),
        ("message.max.bytes", c.max_message_bytes.to_string()),
        ("socket.request.max.bytes", c.max_frame_bytes.to_string()),
        ("log.retention.ms", c.log_retention_ms.to_string()),
        ("log.retention.bytes", c.log_retention_bytes.to_string()),
        ("log.segment.bytes", c.log_segment_bytes.to_string()),
        ("log.roll.ms", c.log_segment_ms.to_string()),
        (
            "log.flush.interval.messages",
            c.log_flush_messages.to_string(),
        ),
        ("log.flush.interval.ms", c.log_flush_ms.to_string()),
        (
            "offsets.topic.num.partitions",
            c.offsets_topic_partitions.to_string(),
        ),
    ]
}

pub async fn describe_configs(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let with_docs = header.request_api_version >= 3 && request.include_documentation;
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let wanted = |name: &str| {
                resource
                    .configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|k| &**k == name))
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match resource.resource_type {
                RESOURCE_TOPIC => match broker.topic(&resource.resource_name) {
                    None => result
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_error_message(Some(str_bytes(format!(
                            "topic {:?} does not exist",
                            &*resource.resource_name
                        )))),
                    Some(topic) => {
                        let config = broker.topic_config(&topic);
                        let configs = config
                            .entries()
                            .iter()
                            .filter(|e| wanted(e.name))
                            .map(|e| {
                                let source = match e.source {
                                    ConfigSource::Topic => SOURCE_TOPIC,
                                    ConfigSource::Default => SOURCE_DEFAULT,
                                };
                                entry(
                                    e.name,
                                    e.value.clone(),
                                    source,
                                    false,
                                    with_docs.then_some(e.doc),
                                )
                            })
                            .collect();
                        result.with_configs(configs)
                    }
                },
                RESOURCE_BROKER
                    if resource.resource_name.is_empty()
                        || *resource.resource_name == broker.config.node_id.to_string() =>
                {
                    let configs = broker_configs(broker)
                        .into_iter()
                        .filter(|(name, _)| wanted(name))
                        .map(|(name, value)| entry(name, value, SOURCE_STATIC_BROKER, true, None))
                        .collect();
                    result.with_configs(configs)
                }
                RESOURCE_BROKER => result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes(format!(
                        "this is broker {}",
                        broker.config.node_id
                    )))),
                other => result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes(format!(
                        "resource type {other} is not supported"
                    )))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

pub async fn incremental_alter_configs(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let response = AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        responses.push(
            match alter_topic(broker, &resource, request.validate_only).await {
                Ok(()) => response,
                Err((error, message)) => response
                    .with_error_code(error.code())
                    .with_error_message(Some(str_bytes(message))),
            },
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

async fn alter_topic(
    broker: &Broker,
    resource: &incremental_alter_configs_request::AlterConfigsResource,
    validate_only: bool,
) -> Result<(), (ResponseError, String)> {
    if resource.resource_type != RESOURCE_TOPIC {
        return Err((
            ResponseError::InvalidRequest,
            "only topic configuration can be altered; broker configuration is static".into(),
        ));
    }
    let refused = |e: TopicError| {
        (
            ResponseError::try_from_code(e.code()).unwrap_or(ResponseError::UnknownServerError),
            e.to_string(),
        )
    };
    let name = resource.resource_name.to_string();
    let topic = broker
        .topic(&name)
        .ok_or_else(|| refused(TopicError::UnknownTopic(name.clone())))?;
    if Broker::is_internal(&name) {
        return Err(refused(TopicError::Internal(name)));
    }
    let mut configs: BTreeMap<String, String> = topic.configs.clone();
    let mut set = BTreeMap::new();
    let mut delete = Vec::new();
    for change in &resource.configs {
        let key = change.name.to_string();
        match (change.config_operation, &change.value) {
            (OP_SET, Some(value)) => {
                configs.insert(key.clone(), value.to_string());
                set.insert(key, value.to_string());
            }
            (OP_SET, None) => {
                return Err((
                    ResponseError::InvalidConfig,
                    format!("{key}: SET needs a value"),
                ));
            }
            (OP_DELETE, _) => {
                configs.remove(&key);
                delete.push(key);
            }
            (op, _) => {
                return Err((
                    ResponseError::InvalidConfig,
                    format!("{key}: operation {op} (APPEND/SUBTRACT) applies to list configs, which topics here do not have"),
                ));
            }
        }
    }
    TopicConfig::validate(&configs).map_err(|e| refused(e.into()))?;
    if validate_only {
        return Ok(());
    }
    broker
        .alter_topic_configs(&name, set, delete)
        .await
        .map_err(refused)
}
