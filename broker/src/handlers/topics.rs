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
use crate::metadata::{check_new_topic, TopicError};

pub async fn create_topics(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut topics = Vec::with_capacity(request.topics.len());
    for wanted in request.topics {
        let name = wanted.name.to_string();
        let result = CreatableTopicResult::default().with_name(wanted.name.clone());
        let partitions = if wanted.num_partitions == -1 {
            broker.config.default_partitions
        } else {
            wanted.num_partitions
        };
        let outcome = create_one(broker, &name, partitions, &wanted, request.validate_only).await;
        topics.push(match outcome {
            Ok((id, replication)) => result
                .with_topic_id(id)
                .with_num_partitions(partitions)
                .with_replication_factor(replication),
            Err(error) => {
                info!(topic = %name, %error, "topic creation refused");
                result
                    .with_error_code(error.code())
                    .with_error_message(Some(str_bytes(error.to_string())))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
            }
        });
    }
    CreateTopicsResponse::default().with_topics(topics)
}

async fn create_one(
    broker: &Broker,
    name: &str,
    partitions: i32,
    wanted: &create_topics_request::CreatableTopic,
    validate_only: bool,
) -> Result<(Uuid, i16), TopicError> {
    if wanted.replication_factor == 0 || wanted.replication_factor < -1 {
        return Err(TopicError::InvalidReplicationFactor(format!(
            "{} is not a replication factor",
            wanted.replication_factor
        )));
    }
    if !wanted.assignments.is_empty() {
        return Err(TopicError::InvalidReplicaAssignment(
            "manual replica assignment is not supported".into(),
        ));
    }
    let configs: BTreeMap<String, String> = wanted
        .configs
        .iter()
        .filter_map(|c| {
            c.value
                .as_ref()
                .map(|v| (c.name.to_string(), v.to_string()))
        })
        .collect();
    let replication = (wanted.replication_factor != -1).then_some(wanted.replication_factor);
    if validate_only {
        check_new_topic(name, partitions, &configs)?;
        if broker.topic(name).is_some() {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        let eligible = broker.metadata().eligible_brokers().count() as i16;
        let replication = replication.unwrap_or(eligible.min(3));
        if replication > eligible {
            return Err(TopicError::InvalidReplicationFactor(format!(
                "{replication} is larger than the {eligible} available brokers"
            )));
        }
        return Ok((Uuid::nil(), replication));
    }
    let topic = broker
        .create_topic(name, partitions, replication, configs)
        .await?;
    let replication = topic.partitions.first().map_or(0, |p| p.replicas.len()) as i16;
    Ok((topic.id, replication))
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
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let name = name.or_else(|| broker.metadata().topic_by_id(id).map(|t| t.name.clone()));
        let Some(name) = name else {
            responses.push(
                DeletableTopicResult::default()
                    .with_topic_id(id)
                    .with_error_code(ResponseError::UnknownTopicId.code()),
            );
            continue;
        };
        let result = DeletableTopicResult::default().with_name(Some(topic_name(&name)));
        responses.push(match broker.delete_topic(&name).await {
            Ok(record) => result.with_topic_id(record.id),
            Err(error) => result
                .with_error_code(error.code())
                .with_error_message(Some(str_bytes(error.to_string()))),
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(request.topics.len());
    for wanted in request.topics {
        let result = CreatePartitionsTopicResult::default().with_name(wanted.name.clone());
        if wanted.assignments.is_some() {
            results.push(
                result
                    .with_error_code(ResponseError::InvalidReplicaAssignment.code())
                    .with_error_message(Some(str_bytes(
                        "manual replica assignment is not supported",
                    ))),
            );
            continue;
        }
        results.push(
            match broker
                .add_partitions(&wanted.name, wanted.count, request.validate_only)
                .await
            {
                Ok(()) => result,
                Err(error) => result
                    .with_error_code(error.code())
                    .with_error_message(Some(str_bytes(error.to_string()))),
            },
        );
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// DeleteRecords: each leader moves its log start, then the answer waits (up to the request's
/// timeout) until every in-sync follower has moved its own, as Kafka's does, so that the
/// deleted records cannot come back with a leader change. A follower that is out of sync
/// catches up with the leader's log start when it fetches again.
pub async fn delete_records(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let deadline = tokio::time::Instant::now()
        + std::time::Duration::from_millis(request.timeout_ms.clamp(0, 300_000) as u64);
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for wanted in topic.partitions {
            let result = DeleteRecordsPartitionResult::default()
                .with_partition_index(wanted.partition_index);
            let Some(partition) = broker.partitions.get(&topic.name, wanted.partition_index) else {
                partitions.push(
                    result
                        .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_low_watermark(-1),
                );
                continue;
            };
            let result = match partition.delete_records_before(wanted.offset) {
                Ok(low_watermark) => {
                    if wait_for_low_watermark(&partition, low_watermark, deadline).await {
                        info!(topic = %topic.name.0, partition = wanted.partition_index, low_watermark, "records deleted");
                        result.with_low_watermark(low_watermark)
                    } else {
                        info!(topic = %topic.name.0, partition = wanted.partition_index, low_watermark, "records deleted on the leader; in-sync followers did not follow in time");
                        result
                            .with_error_code(ResponseError::RequestTimedOut.code())
                            .with_low_watermark(partition.low_watermark())
                    }
                }
                Err(error) => result
                    .with_error_code(error.error.code())
                    .with_low_watermark(-1),
            };
            partitions.push(result);
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Whether every in-sync replica's log starts at `offset` or later before `deadline`.
async fn wait_for_low_watermark(
    partition: &crate::partition::Partition,
    offset: i64,
    deadline: tokio::time::Instant,
) -> bool {
    loop {
        if partition.low_watermark() >= offset {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
