//! Metadata: brokers and topics. On a single node this broker leads every partition.

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::{str_bytes, topic_name};
use crate::broker::Broker;
use crate::metadata::{TopicError, TopicRecord};

pub async fn handle(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: MetadataRequest,
) -> MetadataResponse {
    let version = header.request_api_version;
    let (host, port) = broker.config.advertised_host_port();
    let node_id = BrokerId(broker.config.node_id);
    let brokers = vec![MetadataResponseBroker::default()
        .with_node_id(node_id)
        .with_host(str_bytes(host))
        .with_port(port)
        .with_rack(broker.config.rack.clone().map(str_bytes))];
    // v0 has no null topic list: an empty list means "all topics".
    let all_topics = match &request.topics {
        None => true,
        Some(topics) => version == 0 && topics.is_empty(),
    };
    // Before v4 clients cannot say whether they want auto-creation; the broker setting rules.
    let may_create = version < 4 || request.allow_auto_topic_creation;
    let topics = if all_topics {
        broker
            .topics
            .list()
            .into_iter()
            .filter(|t| !t.internal)
            .map(|t| describe(broker, &t, version))
            .collect()
    } else {
        request
            .topics
            .unwrap_or_default()
            .into_iter()
            .map(|wanted| {
                let name = match (&wanted.name, wanted.topic_id) {
                    (Some(name), _) => Some(name.to_string()),
                    (None, id) if id != Uuid::nil() => broker.topics.get_by_id(id).map(|t| t.name),
                    _ => None,
                };
                let Some(name) = name else {
                    return MetadataResponseTopic::default()
                        .with_error_code(ResponseError::UnknownTopicId.code())
                        .with_topic_id(wanted.topic_id);
                };
                let found = if may_create {
                    broker.topic_or_auto_create(&name)
                } else {
                    broker
                        .topics
                        .get(&name)
                        .ok_or_else(|| TopicError::UnknownTopic(name.clone()))
                };
                match found {
                    Ok(topic) => describe(broker, &topic, version),
                    Err(error) => MetadataResponseTopic::default()
                        .with_error_code(error.code())
                        .with_name(Some(topic_name(&name))),
                }
            })
            .collect()
    };
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(broker.config.cluster_id.clone())))
        .with_controller_id(node_id)
        .with_topics(topics)
}

fn describe(broker: &Broker, topic: &TopicRecord, version: i16) -> MetadataResponseTopic {
    let node_id = BrokerId(broker.config.node_id);
    let partitions = (0..topic.partitions)
        .map(|index| {
            let epoch = broker
                .partitions
                .get(&topic.name, index)
                .map(|p| p.leader_epoch())
                .unwrap_or(0);
            let partition = MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(node_id)
                .with_replica_nodes(vec![node_id])
                .with_isr_nodes(vec![node_id]);
            if version >= 7 {
                partition.with_leader_epoch(epoch)
            } else {
                partition
            }
        })
        .collect();
    let described = MetadataResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_is_internal(topic.internal)
        .with_partitions(partitions);
    if version >= 10 {
        described.with_topic_id(topic.id)
    } else {
        described
    }
}
