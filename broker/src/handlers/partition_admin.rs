//! Leadership and placement changes: ElectLeaders (preferred leader election),
//! AlterPartitionReassignments and ListPartitionReassignments. Each is a command to the active
//! controller; the brokers follow the resulting metadata.

use std::sync::Arc;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use millrace_quorum::command::{Command, ElectionKind};
use millrace_quorum::{QuorumError, Rejection};
use tracing::info;

use super::{str_bytes, topic_name};
use crate::broker::Broker;

const PREFERRED: i8 = 0;

/// The Kafka error for a controller's answer.
fn kafka_error(error: &QuorumError) -> ResponseError {
    match error {
        QuorumError::Rejected(rejection) => match rejection {
            Rejection::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
            Rejection::PreferredLeaderNotAvailable => ResponseError::PreferredLeaderNotAvailable,
            Rejection::ElectionNotNeeded => ResponseError::ElectionNotNeeded,
            Rejection::EligibleLeadersNotAvailable => ResponseError::EligibleLeadersNotAvailable,
            Rejection::NoReassignmentInProgress => ResponseError::NoReassignmentInProgress,
            Rejection::ReassignmentInProgress => ResponseError::ReassignmentInProgress,
            Rejection::InvalidReplicaAssignment(_) | Rejection::InvalidReplicationFactor(_) => {
                ResponseError::InvalidReplicaAssignment
            }
            Rejection::UnknownBroker(_) => ResponseError::BrokerIdNotRegistered,
            _ => ResponseError::InvalidRequest,
        },
        QuorumError::NotLeader { .. } | QuorumError::Unavailable(_) => ResponseError::NotController,
        QuorumError::Timeout => ResponseError::RequestTimedOut,
    }
}

pub async fn elect_leaders(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let election_type = if header.request_api_version >= 1 {
        request.election_type
    } else {
        PREFERRED
    };
    // Null: every partition whose leader is not its preferred replica.
    let wanted: Vec<(String, Vec<i32>)> = match request.topic_partitions {
        Some(topics) => topics
            .into_iter()
            .map(|t| (t.topic.to_string(), t.partitions))
            .collect(),
        None => broker
            .metadata()
            .topics
            .values()
            .map(|t| {
                let moved = t
                    .partitions
                    .iter()
                    .filter(|p| p.leader != p.preferred_leader())
                    .map(|p| p.partition)
                    .collect();
                (t.name.clone(), moved)
            })
            .filter(|(_, partitions): &(String, Vec<i32>)| !partitions.is_empty())
            .collect(),
    };
    let mut results = Vec::with_capacity(wanted.len());
    for (topic, partitions) in wanted {
        let mut partition_result = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let result = PartitionResult::default().with_partition_id(partition);
            if election_type != PREFERRED {
                partition_result.push(
                    result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(str_bytes(
                            "unclean leader election is not supported: no acknowledged record may be lost",
                        ))),
                );
                continue;
            }
            let command = Command::ElectLeader {
                topic: topic.clone(),
                partition,
                kind: ElectionKind::Preferred,
            };
            partition_result.push(match broker.quorum.submit(command).await {
                Ok(_) => {
                    info!(topic, partition, "preferred leader elected");
                    result
                }
                Err(error) => result
                    .with_error_code(kafka_error(&error).code())
                    .with_error_message(Some(str_bytes(error.to_string()))),
            });
        }
        results.push(
            ReplicaElectionResult::default()
                .with_topic(topic_name(&topic))
                .with_partition_result(partition_result),
        );
    }
    ElectLeadersResponse::default().with_replica_election_results(results)
}

pub async fn alter_partition_reassignments(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let mut responses = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for wanted in topic.partitions {
            let response = ReassignablePartitionResponse::default()
                .with_partition_index(wanted.partition_index);
            let Some(replicas) = wanted.replicas else {
                partitions.push(
                    response
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(str_bytes(
                            "cancelling a reassignment is not supported yet",
                        ))),
                );
                continue;
            };
            let command = Command::BeginReassignment {
                topic: topic.name.to_string(),
                partition: wanted.partition_index,
                target_replicas: replicas.iter().map(|id| id.0).collect(),
            };
            partitions.push(match broker.quorum.submit(command).await {
                Ok(_) => {
                    info!(topic = %topic.name.0, partition = wanted.partition_index, ?replicas, "reassignment started");
                    response
                }
                Err(error) => response
                    .with_error_code(kafka_error(&error).code())
                    .with_error_message(Some(str_bytes(error.to_string()))),
            });
        }
        responses.push(
            ReassignableTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    AlterPartitionReassignmentsResponse::default().with_responses(responses)
}

pub async fn list_partition_reassignments(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let metadata = broker.metadata();
    let ids = |ids: &[i32]| ids.iter().map(|&id| BrokerId(id)).collect::<Vec<_>>();
    let topics = metadata
        .topics
        .values()
        .filter_map(|topic| {
            let wanted: Option<&Vec<i32>> = match &request.topics {
                None => None,
                Some(topics) => Some(
                    &topics
                        .iter()
                        .find(|t| *t.name == *topic.name)?
                        .partition_indexes,
                ),
            };
            let partitions: Vec<OngoingPartitionReassignment> = topic
                .partitions
                .iter()
                .filter(|p| p.is_reassigning())
                .filter(|p| wanted.is_none_or(|w| w.contains(&p.partition)))
                .map(|p| {
                    OngoingPartitionReassignment::default()
                        .with_partition_index(p.partition)
                        .with_replicas(ids(&p.replicas))
                        .with_adding_replicas(ids(&p.adding_replicas))
                        .with_removing_replicas(ids(&p.removing_replicas))
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                OngoingTopicReassignment::default()
                    .with_name(topic_name(&topic.name))
                    .with_partitions(partitions)
            })
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}

/// Kafka's UnregisterBroker (what `kafka-cluster.sh unregister` sends): a broker taken out of
/// the cluster leaves the metadata, so that clients and DescribeCluster stop listing it. Refused
/// while a partition still has a replica on it.
pub async fn unregister_broker(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: UnregisterBrokerRequest,
) -> UnregisterBrokerResponse {
    let broker_id = request.broker_id.0;
    match broker.quorum.unregister_broker(broker_id).await {
        Ok(()) => {
            info!(broker_id, "broker unregistered");
            UnregisterBrokerResponse::default()
        }
        Err(error) => UnregisterBrokerResponse::default()
            .with_error_code(kafka_error(&error).code())
            .with_error_message(Some(str_bytes(error.to_string()))),
    }
}
