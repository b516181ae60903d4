//! Consumer group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, ListGroups, DescribeGroups and DeleteGroups.
//!
//! Each handler turns the request into the coordinator's wire-free types, calls
//! [`crate::group::GroupCoordinator`], and renders the answer for the negotiated version:
//! fields a version lacks are left at their defaults, because the encoder refuses non-default
//! values it cannot carry.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tracing::{debug, info_span, Instrument};

use super::{str_bytes, topic_name};
use crate::broker::{Broker, OFFSETS_TOPIC};
use crate::group::{CommittedOffset, Committer, JoinMember, LeavingMember, Protocol, SyncMember};
use crate::partition::now_ms;

/// FindCoordinator key types.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Largest OffsetCommit metadata string accepted (Kafka's offset.metadata.max.bytes).
const MAX_OFFSET_METADATA_BYTES: usize = 4096;

/// DescribeGroups' authorized operations of a group without ACLs: READ (3), DELETE (6) and
/// DESCRIBE (8), as a bit field.
const GROUP_AUTHORIZED_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

/// Partition index -> the error it was refused with, if any.
type PartitionErrors = Vec<(i32, Option<ResponseError>)>;
/// Partition index -> its committed offset, if any.
type FetchedPartitions = Vec<(i32, Option<CommittedOffset>)>;

fn error_code(error: Option<ResponseError>) -> i16 {
    error.map_or(0, |error| error.code())
}

fn result_code(result: Result<(), ResponseError>) -> i16 {
    error_code(result.err())
}

fn group_id(value: String) -> GroupId {
    GroupId(str_bytes(value))
}

pub async fn find_coordinator(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let version = header.request_api_version;
    let key_type = if version >= 1 {
        request.key_type
    } else {
        KEY_TYPE_GROUP
    };
    if key_type == KEY_TYPE_GROUP && broker.topic(OFFSETS_TOPIC).is_none() {
        // Like Kafka, the offsets topic is created on the first coordinator lookup.
        broker.ensure_offsets_topic().await;
    }
    if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| match locate(broker, key_type, &key) {
                Ok((node_id, host, port)) => Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(node_id))
                    .with_host(str_bytes(host))
                    .with_port(port),
                Err((error, message)) => Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(-1))
                    .with_host(str_bytes(""))
                    .with_port(-1)
                    .with_error_code(error.code())
                    .with_error_message(Some(str_bytes(message))),
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match locate(broker, key_type, &request.key) {
        Ok((node_id, host, port)) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(node_id))
            .with_host(str_bytes(host))
            .with_port(port),
        Err((error, message)) => {
            let response = FindCoordinatorResponse::default()
                .with_error_code(error.code())
                .with_node_id(BrokerId(-1))
                .with_host(str_bytes(""))
                .with_port(-1);
            if version >= 1 {
                response.with_error_message(Some(str_bytes(message)))
            } else {
                response
            }
        }
    }
}

/// The coordinator of a group: the leader of the group's `__consumer_offsets` partition.
fn locate(
    broker: &Broker,
    key_type: i8,
    key: &str,
) -> Result<(i32, String, i32), (ResponseError, &'static str)> {
    match key_type {
        KEY_TYPE_GROUP => {}
        KEY_TYPE_TRANSACTION => {
            return Err((
                ResponseError::CoordinatorNotAvailable,
                "transactions are not supported by this broker",
            ))
        }
        _ => {
            return Err((
                ResponseError::InvalidRequest,
                "unknown coordinator key type",
            ))
        }
    }
    let metadata = broker.metadata();
    let unavailable = (
        ResponseError::CoordinatorNotAvailable,
        "the group's offsets partition has no leader yet",
    );
    let topic = metadata.topic(OFFSETS_TOPIC).ok_or(unavailable)?;
    if topic.partitions.is_empty() {
        return Err(unavailable);
    }
    let index = crate::group::offsets::partition_for(key, topic.partitions.len());
    let leader = topic.partitions[index].leader;
    let record = metadata.broker(leader).ok_or(unavailable)?;
    Ok((record.id, record.host.clone(), i32::from(record.port)))
}

pub async fn join_group(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: JoinGroupRequest,
) -> JoinGroupResponse {
    let version = header.request_api_version;
    let group = request.group_id.to_string();
    let join = JoinMember {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|id| id.to_string()),
        client_id: header.client_id.as_deref().unwrap_or_default().to_string(),
        client_host: String::new(),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout served as both.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|protocol| Protocol {
                name: protocol.name.to_string(),
                metadata: protocol.metadata,
            })
            .collect(),
        require_known_member_id: version >= 4,
    };
    let span = info_span!("join_group", group = %group, member = %join.member_id);
    let result = broker.groups.join(&group, join).instrument(span).await;
    debug!(
        group = %group,
        member = %result.member_id,
        generation = result.generation_id,
        error = ?result.error,
        "join group answered"
    );
    let members = result
        .members
        .into_iter()
        .map(|member| {
            let rendered = JoinGroupResponseMember::default()
                .with_member_id(str_bytes(member.member_id))
                .with_metadata(member.metadata);
            if version >= 5 {
                rendered.with_group_instance_id(member.group_instance_id.map(str_bytes))
            } else {
                rendered
            }
        })
        .collect();
    let response = JoinGroupResponse::default()
        .with_error_code(error_code(result.error))
        .with_generation_id(result.generation_id)
        .with_leader(str_bytes(result.leader_id))
        .with_member_id(str_bytes(result.member_id))
        .with_members(members);
    if version >= 7 {
        response
            .with_protocol_type(result.protocol_type.map(str_bytes))
            .with_protocol_name(result.protocol_name.map(str_bytes))
    } else {
        // Not nullable before v7: "no protocol" is the empty string.
        response.with_protocol_name(Some(str_bytes(result.protocol_name.unwrap_or_default())))
    }
}

pub async fn sync_group(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: SyncGroupRequest,
) -> SyncGroupResponse {
    let version = header.request_api_version;
    let group = request.group_id.to_string();
    let sync = SyncMember {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|id| id.to_string()),
        generation_id: request.generation_id,
        protocol_type: request.protocol_type.map(|t| t.to_string()),
        protocol_name: request.protocol_name.map(|n| n.to_string()),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let member_id = sync.member_id.clone();
    let generation_id = sync.generation_id;
    let span = info_span!(
        "sync_group",
        group = %group,
        member = %sync.member_id,
        generation = sync.generation_id
    );
    let result = broker.groups.sync(&group, sync).instrument(span).await;
    debug!(
        group = %group,
        member = %member_id,
        generation = generation_id,
        error = ?result.error,
        assignment_bytes = result.assignment.len(),
        "sync group answered"
    );
    let response = SyncGroupResponse::default()
        .with_error_code(error_code(result.error))
        .with_assignment(result.assignment);
    if version >= 5 {
        response
            .with_protocol_type(result.protocol_type.map(str_bytes))
            .with_protocol_name(result.protocol_name.map(str_bytes))
    } else {
        response
    }
}

pub async fn heartbeat(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    let instance = request.group_instance_id.as_deref();
    let result = broker.groups.heartbeat(
        &request.group_id,
        &request.member_id,
        instance,
        request.generation_id,
    );
    if let Err(error) = result {
        debug!(
            group = %request.group_id.as_str(),
            member = %request.member_id.as_str(),
            generation = request.generation_id,
            %error,
            "heartbeat refused"
        );
    }
    HeartbeatResponse::default().with_error_code(result_code(result))
}

pub async fn leave_group(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let version = header.request_api_version;
    let members: Vec<LeavingMember> = if version >= 3 {
        request
            .members
            .iter()
            .map(|member| LeavingMember {
                member_id: member.member_id.to_string(),
                group_instance_id: member.group_instance_id.as_ref().map(|id| id.to_string()),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: request.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let group = request.group_id.to_string();
    let results = {
        let _span = info_span!("leave_group", group = %group).entered();
        broker.groups.leave(&group, &members)
    };
    let results = match results {
        Ok(results) => results,
        Err(error) => return LeaveGroupResponse::default().with_error_code(error.code()),
    };
    if version < 3 {
        // One member per request: its error is the response's.
        let code = results.into_iter().next().map_or(0, result_code);
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let members = members
        .into_iter()
        .zip(results)
        .map(|(member, result)| {
            MemberResponse::default()
                .with_member_id(str_bytes(member.member_id))
                .with_group_instance_id(member.group_instance_id.map(str_bytes))
                .with_error_code(result_code(result))
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}

pub async fn offset_commit(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let version = header.request_api_version;
    let group = request.group_id.to_string();
    let committer = Committer {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|id| id.to_string()),
        generation_id: request.generation_id_or_member_epoch,
    };
    let commit_timestamp_ms = now_ms();

    // Partitions refused up front keep their own error; the others share the commit's result.
    let mut rendered: Vec<(TopicName, PartitionErrors)> = Vec::new();
    let mut offsets = Vec::new();
    for topic in request.topics {
        let partition_count = broker
            .topic(&topic.name)
            .map(|record| record.partitions.len() as i32);
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for partition in topic.partitions {
            let index = partition.partition_index;
            let metadata = partition.committed_metadata.map(|m| m.to_string());
            let refused = if !partition_count.is_some_and(|count| (0..count).contains(&index)) {
                Some(ResponseError::UnknownTopicOrPartition)
            } else if metadata
                .as_ref()
                .is_some_and(|m| m.len() > MAX_OFFSET_METADATA_BYTES)
            {
                Some(ResponseError::OffsetMetadataTooLarge)
            } else {
                None
            };
            if refused.is_none() {
                offsets.push((
                    topic.name.to_string(),
                    index,
                    CommittedOffset {
                        offset: partition.committed_offset,
                        leader_epoch: if version >= 6 {
                            partition.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata,
                        commit_timestamp_ms,
                    },
                ));
            }
            partitions.push((index, refused));
        }
        rendered.push((topic.name, partitions));
    }

    let outcome = if offsets.is_empty() {
        Ok(())
    } else {
        let span = info_span!(
            "offset_commit",
            group = %group,
            member = %committer.member_id,
            generation = committer.generation_id
        );
        let outcome = broker
            .groups
            .commit_offsets(&group, &committer, offsets)
            .instrument(span)
            .await;
        if outcome.is_ok() {
            broker.partitions.wake_fetches();
        } else {
            debug!(group = %group, error = ?outcome, "offset commit refused");
        }
        outcome
    };
    let topics = rendered
        .into_iter()
        .map(|(name, partitions)| {
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, refused)| {
                            let error = refused.or(outcome.err());
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(index)
                                .with_error_code(error_code(error))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// Committed offsets of one group, for the requested partitions (`None`: every committed one).
/// A partition without a committed offset answers offset -1 and no error.
fn fetch_group_offsets(
    broker: &Broker,
    group: &str,
    requested: Option<Vec<(String, Vec<i32>)>>,
) -> Vec<(String, FetchedPartitions)> {
    match requested {
        Some(topics) => topics
            .into_iter()
            .map(|(topic, partitions)| {
                let offsets = partitions
                    .into_iter()
                    .map(|partition| {
                        let committed = broker.groups.committed_offset(group, &topic, partition);
                        (partition, committed)
                    })
                    .collect();
                (topic, offsets)
            })
            .collect(),
        None => broker
            .groups
            .committed_offsets(group)
            .into_iter()
            .map(|(topic, partitions)| {
                let offsets = partitions
                    .into_iter()
                    .map(|(partition, committed)| (partition, Some(committed)))
                    .collect();
                (topic, offsets)
            })
            .collect(),
    }
}

/// (offset, leader epoch, metadata) as OffsetFetch reports them.
fn fetched(committed: Option<CommittedOffset>) -> (i64, i32, Option<StrBytes>) {
    match committed {
        Some(committed) => (
            committed.offset,
            committed.leader_epoch,
            Some(str_bytes(committed.metadata.unwrap_or_default())),
        ),
        None => (-1, -1, Some(str_bytes(""))),
    }
}

pub async fn offset_fetch(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let version = header.request_api_version;
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|wanted| {
                let requested = wanted.topics.map(|topics| {
                    topics
                        .into_iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes))
                        .collect()
                });
                let topics = fetch_group_offsets(broker, &wanted.group_id, requested)
                    .into_iter()
                    .map(|(topic, partitions)| {
                        let partitions = partitions
                            .into_iter()
                            .map(|(index, committed)| {
                                let (offset, leader_epoch, metadata) = fetched(committed);
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(index)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(leader_epoch)
                                    .with_metadata(metadata)
                            })
                            .collect();
                        OffsetFetchResponseTopics::default()
                            .with_name(topic_name(&topic))
                            .with_partitions(partitions)
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(wanted.group_id)
                    .with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let requested = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    let topics = fetch_group_offsets(broker, &request.group_id, requested)
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, committed)| {
                    let (offset, leader_epoch, metadata) = fetched(committed);
                    let partition = OffsetFetchResponsePartition::default()
                        .with_partition_index(index)
                        .with_committed_offset(offset)
                        .with_metadata(metadata);
                    if version >= 5 {
                        partition.with_committed_leader_epoch(leader_epoch)
                    } else {
                        partition
                    }
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(topic_name(&topic))
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

pub async fn list_groups(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    let version = header.request_api_version;
    let states: Vec<String> = if version >= 4 {
        request
            .states_filter
            .iter()
            .map(|state| state.to_ascii_lowercase())
            .collect()
    } else {
        Vec::new()
    };
    let groups = broker
        .groups
        .list_groups()
        .into_iter()
        .filter(|listing| {
            states.is_empty() || states.contains(&listing.state.name().to_ascii_lowercase())
        })
        .map(|listing| {
            let listed = ListedGroup::default()
                .with_group_id(group_id(listing.group_id))
                .with_protocol_type(str_bytes(listing.protocol_type));
            if version >= 4 {
                listed.with_group_state(str_bytes(listing.state.name()))
            } else {
                listed
            }
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub async fn describe_groups(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let version = header.request_api_version;
    let with_operations = version >= 3 && request.include_authorized_operations;
    let groups = request
        .groups
        .into_iter()
        .map(|id| {
            let description = broker.groups.describe_group(&id);
            let members = description
                .members
                .into_iter()
                .map(|member| {
                    let described = DescribedGroupMember::default()
                        .with_member_id(str_bytes(member.member_id))
                        .with_client_id(str_bytes(member.client_id))
                        .with_client_host(str_bytes(member.client_host))
                        .with_member_metadata(member.metadata)
                        .with_member_assignment(member.assignment);
                    if version >= 4 {
                        described.with_group_instance_id(member.group_instance_id.map(str_bytes))
                    } else {
                        described
                    }
                })
                .collect();
            let described = DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(str_bytes(description.state.name()))
                .with_protocol_type(str_bytes(description.protocol_type))
                .with_protocol_data(str_bytes(description.protocol_name))
                .with_members(members);
            if with_operations {
                described.with_authorized_operations(GROUP_AUTHORIZED_OPERATIONS)
            } else {
                described
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub async fn delete_groups(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let results = request
        .groups_names
        .into_iter()
        .map(|id| {
            let result = broker.groups.delete_group(&id);
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(result_code(result))
        })
        .collect();
    broker.partitions.wake_fetches();
    DeleteGroupsResponse::default().with_results(results)
}
#[cfg(test)]
mod tests;
