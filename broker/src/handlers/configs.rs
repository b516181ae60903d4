//! DescribeConfigs and IncrementalAlterConfigs for topics and for this broker (whose log
//! defaults, message.max.bytes and leader.replication.throttled.rate are dynamic; the rest is
//! read at start: described, never altered).

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
use crate::metadata::dynamic::{self, AlterError};
use crate::metadata::topic_config::ConfigSource;
use crate::metadata::{TopicConfig, TopicError};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DYNAMIC_BROKER: i8 = 2;
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
    let c = &*broker.defaults();
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
            "leader.replication.throttled.rate",
            c.leader_replication_throttled_rate.to_string(),
        ),
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
                    let overridden = broker.dynamic.overrides();
                    let configs = broker_configs(broker)
                        .into_iter()
                        .filter(|(name, _)| wanted(name))
                        .map(|(name, value)| {
                            let source = if overridden.contains_key(name) {
                                SOURCE_DYNAMIC_BROKER
                            } else {
                                SOURCE_STATIC_BROKER
                            };
                            entry(name, value, source, !dynamic::is_dynamic(name), None)
                        })
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
        let altered = match resource.resource_type {
            RESOURCE_BROKER => alter_broker(broker, &resource, request.validate_only),
            _ => alter_topic(broker, &resource, request.validate_only).await,
        };
        responses.push(match altered {
            Ok(()) => response,
            Err((error, message)) => response
                .with_error_code(error.code())
                .with_error_message(Some(str_bytes(message))),
        });
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
            format!(
                "resource type {} cannot be altered; topics and brokers can",
                resource.resource_type
            ),
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
    let (set, delete) = changes(resource)?;
    let mut configs: BTreeMap<String, String> = topic.configs.clone();
    for key in &delete {
        configs.remove(key);
    }
    configs.extend(set.clone());
    TopicConfig::validate(&configs).map_err(|e| refused(e.into()))?;
    if validate_only {
        return Ok(());
    }
    broker
        .alter_topic_configs(&name, set, delete)
        .await
        .map_err(refused)
}

type Refusal = (ResponseError, String);

/// The SET and DELETE operations of `resource` (APPEND and SUBTRACT are for list settings,
/// which neither topics nor brokers have here).
fn changes(
    resource: &incremental_alter_configs_request::AlterConfigsResource,
) -> Result<(BTreeMap<String, String>, Vec<String>), Refusal> {
    let mut set = BTreeMap::new();
    let mut delete = Vec::new();
    for change in &resource.configs {
        let key = change.name.to_string();
        match (change.config_operation, &change.value) {
            (OP_SET, Some(value)) => {
                set.insert(key, value.to_string());
            }
            (OP_SET, None) => {
                return Err((
                    ResponseError::InvalidConfig,
                    format!("{key}: SET needs a value"),
                ));
            }
            (OP_DELETE, _) => delete.push(key),
            (op, _) => {
                return Err((
                    ResponseError::InvalidConfig,
                    format!("{key}: operation {op} (APPEND/SUBTRACT) applies to list configs, which are not supported here"),
                ));
            }
        }
    }
    Ok((set, delete))
}

/// Changes this broker's dynamic settings. Only this broker's own id is accepted: cluster-wide
/// dynamic defaults (the empty name) are not kept in the metadata here.
fn alter_broker(
    broker: &Broker,
    resource: &incremental_alter_configs_request::AlterConfigsResource,
    validate_only: bool,
) -> Result<(), Refusal> {
    let me = broker.config.node_id.to_string();
    if *resource.resource_name != *me {
        let reason = if resource.resource_name.is_empty() {
            "cluster-wide broker defaults are not supported; alter each broker by its id".into()
        } else {
            format!("this is broker {me}, not {}", &*resource.resource_name)
        };
        return Err((ResponseError::InvalidRequest, reason));
    }
    let (set, delete) = changes(resource)?;
    let invalid = |e: crate::metadata::ConfigError| (ResponseError::InvalidConfig, e.to_string());
    if validate_only {
        let mut overrides = broker.dynamic.overrides();
        for key in &delete {
            overrides.remove(key);
        }
        overrides.extend(set);
        return dynamic::validate(&overrides).map_err(invalid);
    }
    let changed: Vec<String> = set.keys().chain(&delete).cloned().collect();
    match broker.dynamic.alter(set, &delete) {
        Ok(()) => {
            tracing::info!(settings = ?changed, "dynamic broker configuration changed");
            Ok(())
        }
        Err(AlterError::Invalid(error)) => Err(invalid(error)),
        Err(error @ AlterError::Storage(_)) => {
            tracing::warn!(%error, "dynamic broker configuration not saved");
            Err((ResponseError::UnknownServerError, error.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };

    use super::*;
    use crate::handlers::testing::call;

    const THROTTLE: &str = "leader.replication.throttled.rate";

    async fn alter(broker: &Arc<Broker>, op: i8, value: Option<&str>) -> i16 {
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(RESOURCE_BROKER)
                .with_resource_name(str_bytes(broker.config.node_id.to_string()))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(str_bytes(THROTTLE))
                    .with_config_operation(op)
                    .with_value(value.map(str_bytes))]),
        ]);
        let response: IncrementalAlterConfigsResponse =
            call(broker, ApiKey::IncrementalAlterConfigs, 1, &request).await;
        response.responses[0].error_code
    }

    /// The throttle's value and source as DescribeConfigs gives them.
    async fn described(broker: &Arc<Broker>) -> (String, i8, bool) {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(RESOURCE_BROKER)
                .with_resource_name(str_bytes(broker.config.node_id.to_string()))
                .with_configuration_keys(Some(vec![str_bytes(THROTTLE)])),
        ]);
        let response: DescribeConfigsResponse =
            call(broker, ApiKey::DescribeConfigs, 4, &request).await;
        let entry = &response.results[0].configs[0];
        (
            entry.value.as_deref().unwrap_or_default().to_string(),
            entry.config_source,
            entry.read_only,
        )
    }

    #[tokio::test]
    async fn the_replication_throttle_is_a_dynamic_broker_setting() {
        let dir = tempfile::tempdir().unwrap();
        let broker = crate::broker::testing::open(dir.path(), &[]).await;
        let unlimited = i64::MAX.to_string();
        assert_eq!(
            described(&broker).await,
            (unlimited.clone(), SOURCE_STATIC_BROKER, false)
        );

        assert_eq!(alter(&broker, OP_SET, Some("1048576")).await, 0);
        assert_eq!(
            described(&broker).await,
            ("1048576".to_string(), SOURCE_DYNAMIC_BROKER, false)
        );
        assert_eq!(broker.defaults().leader_replication_throttled_rate, 1 << 20);

        assert_eq!(
            alter(&broker, OP_SET, Some("-1")).await,
            ResponseError::InvalidConfig.code()
        );
        assert_eq!(broker.defaults().leader_replication_throttled_rate, 1 << 20);

        assert_eq!(alter(&broker, OP_DELETE, None).await, 0);
        assert_eq!(
            described(&broker).await,
            (unlimited, SOURCE_STATIC_BROKER, false)
        );
    }
}
