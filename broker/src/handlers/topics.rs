//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use tracing::info;
use uuid::Uuid;

use super::{str_bytes, topic_name};
use crate::broker::Broker;
use crate::metadata::TopicError;

/// Replicas a single-node broker can place.
const AVAILABLE_BROKERS: i16 = 1;

pub async fn create_topics(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|wanted| {
            let name = wanted.name.to_string();
            let result = CreatableTopicResult::default().with_name(wanted.name.clone());
            let partitions = if wanted.num_partitions == -1 {
                broker.config.default_partitions
            } else {
                wanted.num_partitions
            };
            let outcome = (|| {
                if wanted.replication_factor > AVAILABLE_BROKERS {
                    return Err((
                        ResponseError::InvalidReplicationFactor,
                        format!(
                            "replication factor {} is larger than the {AVAILABLE_BROKERS} available broker(s)",
                            wanted.replication_factor
                        ),
                    ));
                }
                if wanted.replication_factor == 0 || wanted.replication_factor < -1 {
                    return Err((
                        ResponseError::InvalidReplicationFactor,
                        format!("replication factor {} is invalid", wanted.replication_factor),
                    ));
                }
                if !wanted.assignments.is_empty() {
                    return Err((
                        ResponseError::InvalidReplicaAssignment,
                        "manual replica assignment is not supported".to_string(),
                    ));
                }
                let mut configs = BTreeMap::new();
                for config in &wanted.configs {
                    if let Some(value) = &config.value {
                        configs.insert(config.name.to_string(), value.to_string());
                    }
                }
                let refused = |e: TopicError| (ResponseError::try_from_code(e.code()).unwrap_or(ResponseError::UnknownServerError), e.to_string());
                if request.validate_only {
                    broker.topics.check_create(&name, partitions, &configs).map_err(refused)?;
                    return Ok(Uuid::nil());
                }
                broker.create_topic(&name, partitions, configs).map(|t| t.id).map_err(refused)
            })();
            match outcome {
                Ok(id) => result
                    .with_topic_id(id)
                    .with_num_partitions(partitions)
                    .with_replication_factor(AVAILABLE_BROKERS),
                Err((error, message)) => {
                    info!(topic = %name, %message, "topic creation refused");
                    result
                        .with_error_code(error.code())
                        .with_error_message(Some(str_bytes(message)))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1)
                }
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

pub async fn delete_topics(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // v0-5 name topics in `topic_names`; v6 in `topics` (by name or id).
    let wanted: Vec<(Option<String>, Uuid)> = if header.request_api_version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n.to_string()), Uuid::nil()))
            .collect()
    };
    let responses = wanted
        .into_iter()
        .map(|(name, id)| {
            let name = name.or_else(|| broker.topics.get_by_id(id).map(|t| t.name));
            let Some(name) = name else {
                return DeletableTopicResult::default()
                    .with_topic_id(id)
                    .with_error_code(ResponseError::UnknownTopicId.code());
            };
            let result = DeletableTopicResult::default().with_name(Some(topic_name(&name)));
            match broker.delete_topic(&name) {
                Ok(record) => result.with_topic_id(record.id),
                Err(error) => result
                    .with_error_code(error.code())
                    .with_error_message(Some(str_bytes(error.to_string()))),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let results = request
        .topics
        .into_iter()
        .map(|wanted| {
            let result = CreatePartitionsTopicResult::default().with_name(wanted.name.clone());
            if wanted.assignments.is_some() {
                return result
                    .with_error_code(ResponseError::InvalidReplicaAssignment.code())
                    .with_error_message(Some(str_bytes(
                        "manual replica assignment is not supported",
                    )));
            }
            match broker.add_partitions(&wanted.name, wanted.count, request.validate_only) {
                Ok(_) => result,
                Err(error) => result
                    .with_error_code(error.code())
                    .with_error_message(Some(str_bytes(error.to_string()))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

pub async fn delete_records(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .into_iter()
                .map(|wanted| {
                    let result = DeleteRecordsPartitionResult::default().with_partition_index(wanted.partition_index);
                    let deleted = match broker.partitions.get(&topic.name, wanted.partition_index) {
                        None => Err(ResponseError::UnknownTopicOrPartition.into()),
                        Some(partition) => partition.delete_records_before(wanted.offset),
                    };
                    match deleted {
                        Ok(low_watermark) => {
                            info!(topic = %topic.name.0, partition = wanted.partition_index, low_watermark, "records deleted");
                            result.with_low_watermark(low_watermark)
                        }
                        Err(error) => result.with_error_code(error.error.code()).with_low_watermark(-1),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
