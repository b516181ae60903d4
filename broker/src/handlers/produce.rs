//! Produce: appends each partition's batches as the partition leader.
//!
//! acks=0 and acks=1 answer once the leader appended; acks=-1 (all) additionally requires the
//! in-sync replicas to reach `min.insync.replicas`. On a single node the in-sync set is this
//! broker, so acks=all succeeds exactly when the topic's min.insync.replicas is 1.

use std::sync::Arc;

use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use tracing::{debug, warn};

use super::str_bytes;
use crate::broker::Broker;
use crate::metadata::TopicConfig;
use crate::partition::PartitionError;

/// Replicas in sync for every partition of a single-node broker.
const IN_SYNC_REPLICAS: i64 = 1;

pub async fn handle(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: ProduceRequest,
) -> ProduceResponse {
    let acks = request.acks;
    let mut responses = Vec::with_capacity(request.topic_data.len());
    let mut appended_any = false;
    for topic_data in request.topic_data {
        let name = topic_data.name.to_string();
        let topic = if request.transactional_id.is_some() {
            Err(ResponseError::TransactionalIdAuthorizationFailed)
        } else if !(-1..=1).contains(&acks) {
            Err(ResponseError::InvalidRequiredAcks)
        } else {
            broker.topic_or_auto_create(&name).map_err(|e| {
                ResponseError::try_from_code(e.code()).unwrap_or(ResponseError::UnknownServerError)
            })
        };
        let min_insync = topic
            .as_ref()
            .map(|t| TopicConfig::resolve(&broker.config, &t.configs).min_insync_replicas())
            .unwrap_or(1);
        let partition_responses = topic_data
            .partition_data
            .into_iter()
            .map(|data| {
                let index = data.index;
                let result = match &topic {
                    Err(error) => Err(PartitionError::from(*error)),
                    Ok(t) if t.internal => Err(ResponseError::TopicAuthorizationFailed.into()),
                    Ok(_) if acks == -1 && IN_SYNC_REPLICAS < min_insync => {
                        Err(ResponseError::NotEnoughReplicas.into())
                    }
                    Ok(_) => match (broker.partitions.get(&name, index), &data.records) {
                        (None, _) => Err(ResponseError::UnknownTopicOrPartition.into()),
                        (Some(_), None) => Err(ResponseError::CorruptMessage.into()),
                        (Some(partition), Some(records)) => partition.append_as_leader(records),
                    },
                };
                match result {
                    Ok(outcome) => {
                        appended_any |= !outcome.duplicate;
                        broker.metrics.appended(&name, outcome.records, outcome.bytes);
                        PartitionProduceResponse::default()
                            .with_index(index)
                            .with_base_offset(outcome.base_offset)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(outcome.log_start_offset)
                    }
                    Err(error) => {
                        if error.error == ResponseError::KafkaStorageError {
                            warn!(topic = %name, partition = index, message = %error.message, "append failed");
                        } else {
                            debug!(topic = %name, partition = index, code = ?error.error, message = %error.message, "append refused");
                        }
                        PartitionProduceResponse::default()
                            .with_index(index)
                            .with_error_code(error.error.code())
                            .with_base_offset(-1)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(-1)
                            .with_error_message(Some(str_bytes(error.message)))
                    }
                }
            })
            .collect();
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partition_responses),
        );
    }
    if appended_any {
        broker.partitions.notify_appended();
    }
    ProduceResponse::default().with_responses(responses)
}
