//! Metadata: brokers and topics. On a single node this broker leads every partition.

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use millrace_quorum::{ClusterMetadata, TopicRecord, NO_LEADER};
use uuid::Uuid;

use super::{str_bytes, topic_name};
use crate::broker::Broker;
use crate::metadata::TopicError;

pub async fn handle(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: MetadataRequest,
) -> MetadataResponse {
    let version = header.request_api_version;
    // v0 has no null topic list: an empty list means "all topics".
    let all_topics = match &request.topics {
        None => true,
        Some(topics) => version == 0 && topics.is_empty(),
    };
    // Before v4 clients cannot say whether they want auto-creation; the broker setting rules.
    let may_create = version < 4 || request.allow_auto_topic_creation;
    let mut topics = Vec::new();
    if all_topics {
        let metadata = broker.metadata();
        topics.extend(
            metadata
                .topics
                .values()
                .filter(|t| !Broker::is_internal(&t.name))
                .map(|t| describe(&metadata, t)),
        );
    } else {
        for wanted in request.topics.unwrap_or_default() {
            let name = match (&wanted.name, wanted.topic_id) {
                (Some(name), _) => Some(name.to_string()),
                (None, id) if id != Uuid::nil() => {
                    broker.metadata().topic_by_id(id).map(|t| t.name.clone())
                }
                _ => None,
            };
            let Some(name) = name else {
                topics.push(
                    MetadataResponseTopic::default()
                        .with_error_code(ResponseError::UnknownTopicId.code())
                        .with_topic_id(wanted.topic_id),
                );
                continue;
            };
            let found = if may_create {
                broker.topic_or_auto_create(&name).await
            } else {
                broker
                    .topic(&name)
                    .ok_or_else(|| TopicError::UnknownTopic(name.clone()))
            };
            topics.push(match found {
                Ok(topic) => describe(&broker.metadata(), &topic),
                Err(error) => MetadataResponseTopic::default()
                    .with_error_code(error.code())
                    .with_name(Some(topic_name(&name))),
            });
        }
    }
    let metadata = broker.metadata();
    let brokers = metadata
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(str_bytes(b.host.clone()))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.clone().map(str_bytes))
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(broker.config.cluster_id.clone())))
        .with_controller_id(BrokerId(broker.quorum.leader_id().unwrap_or(-1)))
        .with_topics(topics)
}

fn describe(metadata: &ClusterMetadata, topic: &TopicRecord) -> MetadataResponseTopic {
    let ids = |ids: &[i32]| ids.iter().map(|&id| BrokerId(id)).collect::<Vec<_>>();
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            let offline: Vec<i32> = p
                .replicas
                .iter()
                .copied()
                .filter(|id| metadata.broker(*id).is_none_or(|b| b.fenced))
                .collect();
            let error = if p.leader == NO_LEADER {
                ResponseError::LeaderNotAvailable.code()
            } else {
                0
            };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(p.partition)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr))
                .with_offline_replicas(ids(&offline))
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(topic.id)
        .with_is_internal(Broker::is_internal(&topic.name))
        .with_partitions(partitions)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;

    use super::*;
    use crate::broker::testing;
    use crate::handlers::testing::{batch, call, produce, wait_for_partitions};

    fn asking_for(topic: &str) -> MetadataRequest {
        MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
            ]))
            .with_allow_auto_topic_creation(true)
    }

    #[tokio::test]
    async fn unknown_topics_are_created_only_when_auto_creation_is_on() {
        // Off by default: the client's wish is not enough, and a produce creates nothing either.
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::open(dir.path(), &[]).await;
        let answer: MetadataResponse =
            call(&broker, ApiKey::Metadata, 12, &asking_for("wished-for")).await;
        assert_eq!(
            answer.topics[0].error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
        let produced = produce(&broker, "wished-for", 0, batch(&[b"x"], None)).await;
        assert_eq!(
            produced.error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
        assert!(broker.topic("wished-for").is_none());

        // On: a Metadata request that allows it creates the topic, one that does not doesn't.
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::open(dir.path(), &["--auto-create-topics"]).await;
        let refused: MetadataResponse = call(
            &broker,
            ApiKey::Metadata,
            12,
            &asking_for("not-wished").with_allow_auto_topic_creation(false),
        )
        .await;
        assert_eq!(
            refused.topics[0].error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
        assert!(broker.topic("not-wished").is_none());
        let created: MetadataResponse =
            call(&broker, ApiKey::Metadata, 12, &asking_for("wished-for")).await;
        assert_eq!(created.topics[0].error_code, 0);
        assert!(broker.topic("wished-for").is_some());
        wait_for_partitions(&broker, "wished-for", 1).await;
    }
}
