//! Produce: appends each partition's batches as the partition leader.
//!
//! acks=0 and acks=1 answer once the leader appended. acks=-1 (all) refuses to append while the
//! in-sync replicas are fewer than `min.insync.replicas` (NOT_ENOUGH_REPLICAS), then waits until
//! the high watermark passes the appended records (every in-sync replica has them) or the
//! request's timeout runs out (REQUEST_TIMED_OUT).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use kafka_protocol::messages::produce_response::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use tracing::{debug, warn};

use super::str_bytes;
use crate::broker::Broker;
use crate::partition::{Partition, PartitionError, ReplicationWait};

pub async fn handle(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: ProduceRequest,
) -> ProduceResponse {
    let acks = request.acks;
    let deadline = Instant::now() + Duration::from_millis(request.timeout_ms.max(0) as u64);
    let mut responses = Vec::with_capacity(request.topic_data.len());
    let mut appended_any = false;
    // acks=all appends waiting for the high watermark: where their answer is, the partition,
    // the offset to reach and the topic's min.insync.replicas.
    let mut awaiting: Vec<(usize, usize, Arc<Partition>, i64, i32, i64)> = Vec::new();
    for topic_data in request.topic_data {
        let name = topic_data.name.to_string();
        let topic = if request.transactional_id.is_some() {
            Err(ResponseError::TransactionalIdAuthorizationFailed)
        } else if !(-1..=1).contains(&acks) {
            Err(ResponseError::InvalidRequiredAcks)
        } else {
            broker.topic_or_auto_create(&name).await.map_err(|e| {
                ResponseError::try_from_code(e.code()).unwrap_or(ResponseError::UnknownServerError)
            })
        };
        let min_insync = topic
            .as_ref()
            .map(|t| broker.topic_config(t).min_insync_replicas())
            .unwrap_or(1);
        let mut partition_responses = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let index = data.index;
            let result = match &topic {
                Err(error) => Err(PartitionError::from(*error)),
                Ok(t) if Broker::is_internal(&t.name) => {
                    Err(ResponseError::TopicAuthorizationFailed.into())
                }
                Ok(_) => match (broker.partitions.get(&name, index), &data.records) {
                    (None, _) => Err(ResponseError::UnknownTopicOrPartition.into()),
                    (Some(_), None) => Err(ResponseError::CorruptMessage.into()),
                    (Some(partition), Some(_))
                        if acks == -1
                            && (partition.in_sync_replica_count() as i64) < min_insync =>
                    {
                        Err(PartitionError {
                            error: ResponseError::NotEnoughReplicas,
                            message: format!(
                                "{} in-sync replica(s), min.insync.replicas is {min_insync}",
                                partition.in_sync_replica_count()
                            ),
                        })
                    }
                    (Some(partition), Some(records)) => {
                        // A full volume refuses new records before anything is appended.
                        let appended = partition.append_as_leader_if(records, |bytes| {
                            broker
                                .capacity
                                .admit(bytes)
                                .map_err(|message| PartitionError {
                                    error: ResponseError::KafkaStorageError,
                                    message,
                                })
                        });
                        if let Ok(outcome) = &appended {
                            broker.capacity.appended(outcome.bytes);
                        }
                        if let (Ok(outcome), -1) = (&appended, acks) {
                            awaiting.push((
                                responses.len(),
                                partition_responses.len(),
                                partition.clone(),
                                outcome.last_offset + 1,
                                outcome.leader_epoch,
                                min_insync,
                            ));
                        }
                        appended
                    }
                },
            };
            partition_responses.push(match result {
                Ok(outcome) => {
                    appended_any |= !outcome.duplicate;
                    broker
                        .metrics
                        .appended(&name, outcome.records, outcome.bytes);
                    PartitionProduceResponse::default()
                        .with_index(index)
                        .with_base_offset(outcome.base_offset)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(outcome.log_start_offset)
                }
                Err(error) => refused(&name, index, error),
            });
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partition_responses),
        );
    }
    if appended_any {
        broker.partitions.wake_fetches();
    }
    // The waits overlap in time: each is bounded by the one deadline of the request.
    for (topic_slot, partition_slot, partition, offset, leader_epoch, min_insync) in awaiting {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let wait = partition
            .wait_for_high_watermark(offset, leader_epoch, remaining)
            .await;
        let error = if wait == ReplicationWait::TimedOut {
            Some(PartitionError {
                error: ResponseError::RequestTimedOut,
                message: format!(
                    "in-sync replicas did not reach offset {offset} within the request timeout"
                ),
            })
        } else if wait == ReplicationWait::LeadershipMoved {
            Some(PartitionError {
                error: ResponseError::NotLeaderOrFollower,
                message: format!(
                    "the leadership moved (epoch {leader_epoch}) before the in-sync replicas \
                     reached offset {offset}; retry on the new leader"
                ),
            })
        } else if (partition.in_sync_replica_count() as i64) < min_insync {
            Some(PartitionError {
                error: ResponseError::NotEnoughReplicasAfterAppend,
                message: format!(
                    "appended, but the in-sync replicas fell below min.insync.replicas {min_insync}"
                ),
            })
        } else {
            None
        };
        if let Some(error) = error {
            let slot = &mut responses[topic_slot].partition_responses[partition_slot];
            *slot = refused(&partition.id.topic, slot.index, error);
        }
    }
    let node_endpoints = name_current_leaders(broker, &mut responses);
    ProduceResponse::default()
        .with_responses(responses)
        .with_node_endpoints(node_endpoints)
}

/// KIP-951 leader discovery: a partition refused because this broker does not lead it (any
/// more) names its current leader and that leader's listener, so that a client (librdkafka 2.4+,
/// the Java client 3.7+) sends its retry there instead of waiting for a metadata refresh that
/// may still come from a broker with the old view. Produce v10+; older versions do not carry
/// these tagged fields.
fn name_current_leaders(
    broker: &Broker,
    responses: &mut [TopicProduceResponse],
) -> Vec<NodeEndpoint> {
    let moved = [
        ResponseError::NotLeaderOrFollower.code(),
        ResponseError::FencedLeaderEpoch.code(),
    ];
    let metadata = broker.metadata();
    let mut leaders = BTreeSet::new();
    for topic in responses.iter_mut() {
        let Some(record) = metadata.topics.get(topic.name.as_str()) else {
            continue;
        };
        for answer in &mut topic.partition_responses {
            if !moved.contains(&answer.error_code) {
                continue;
            }
            let Some(state) = record
                .partitions
                .iter()
                .find(|p| p.partition == answer.index)
            else {
                continue;
            };
            if state.leader < 0 || state.leader == broker.config.node_id {
                continue;
            }
            answer.current_leader = LeaderIdAndEpoch::default()
                .with_leader_id(BrokerId(state.leader))
                .with_leader_epoch(state.leader_epoch);
            leaders.insert(state.leader);
        }
    }
    leaders
        .into_iter()
        .filter_map(|id| metadata.brokers.get(&id))
        .map(|b| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(b.id))
                .with_host(str_bytes(b.host.clone()))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.clone().map(str_bytes))
        })
        .collect()
}

fn refused(topic: &str, index: i32, error: PartitionError) -> PartitionProduceResponse {
    if error.error == ResponseError::KafkaStorageError {
        warn!(topic, partition = index, message = %error.message, "append failed");
    } else {
        debug!(topic, partition = index, code = ?error.error, message = %error.message, "append refused");
    }
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error.error.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(Some(str_bytes(error.message)))
}

#[cfg(test)]
mod tests;
