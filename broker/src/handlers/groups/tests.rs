use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;

use super::*;
use crate::broker::testing;
use crate::handlers::testing::{call, wait_for_partitions};

fn join_request(version: i16, group: &str, member_id: &str) -> JoinGroupRequest {
    let request = JoinGroupRequest::default()
        .with_group_id(group_id(group.to_string()))
        .with_session_timeout_ms(10_000)
        .with_member_id(str_bytes(member_id))
        .with_protocol_type(str_bytes("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(str_bytes("range"))
            .with_metadata(Bytes::from_static(b"subscription"))]);
    if version >= 1 {
        request.with_rebalance_timeout_ms(10_000)
    } else {
        request
    }
}

/// One consumer's life in a group, every API at a version derived from `version`.
async fn consumer_flow(broker: &Arc<Broker>, version: i16) {
    let group = format!("group-v{version}");

    let find_version = version.min(4);
    let find = FindCoordinatorRequest::default();
    let find = if find_version >= 4 {
        find.with_coordinator_keys(vec![str_bytes(group.clone())])
    } else {
        find.with_key(str_bytes(group.clone()))
    };
    let found: FindCoordinatorResponse =
        call(broker, ApiKey::FindCoordinator, find_version, &find).await;
    let (node_id, port) = if find_version >= 4 {
        assert_eq!(found.coordinators.len(), 1);
        (found.coordinators[0].node_id.0, found.coordinators[0].port)
    } else {
        assert_eq!(found.error_code, 0);
        (found.node_id.0, found.port)
    };
    assert_eq!(node_id, broker.config.node_id);
    assert_eq!(port, broker.config.advertised_host_port().1);

    let mut joined: JoinGroupResponse = call(
        broker,
        ApiKey::JoinGroup,
        version,
        &join_request(version, &group, ""),
    )
    .await;
    if version >= 4 {
        assert_eq!(joined.error_code, ResponseError::MemberIdRequired.code());
        let member_id = joined.member_id.to_string();
        assert!(member_id.starts_with("handler-test-"), "{member_id}");
        joined = call(
            broker,
            ApiKey::JoinGroup,
            version,
            &join_request(version, &group, &member_id),
        )
        .await;
    }
    assert_eq!(joined.error_code, 0, "JoinGroup v{version}");
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, joined.member_id);
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    if version >= 7 {
        assert_eq!(joined.protocol_type.as_deref(), Some("consumer"));
    }
    let member_id = joined.member_id.clone();

    let sync_version = version.min(5);
    let synced: SyncGroupResponse = call(
        broker,
        ApiKey::SyncGroup,
        sync_version,
        &SyncGroupRequest::default()
            .with_group_id(group_id(group.clone()))
            .with_generation_id(1)
            .with_member_id(member_id.clone())
            .with_assignments(vec![SyncGroupRequestAssignment::default()
                .with_member_id(member_id.clone())
                .with_assignment(Bytes::from_static(b"t-0,t-1"))]),
    )
    .await;
    assert_eq!(synced.error_code, 0);
    assert_eq!(synced.assignment, Bytes::from_static(b"t-0,t-1"));
    if sync_version >= 5 {
        assert_eq!(synced.protocol_name.as_deref(), Some("range"));
    }

    let beat: HeartbeatResponse = call(
        broker,
        ApiKey::Heartbeat,
        version.min(4),
        &HeartbeatRequest::default()
            .with_group_id(group_id(group.clone()))
            .with_generation_id(1)
            .with_member_id(member_id.clone()),
    )
    .await;
    assert_eq!(beat.error_code, 0);
    let stale: HeartbeatResponse = call(
        broker,
        ApiKey::Heartbeat,
        version.min(4),
        &HeartbeatRequest::default()
            .with_group_id(group_id(group.clone()))
            .with_generation_id(0)
            .with_member_id(member_id.clone()),
    )
    .await;
    assert_eq!(stale.error_code, ResponseError::IllegalGeneration.code());

    let commit_version = (version + 1).clamp(2, 8);
    let partition = |index: i32, offset: i64| {
        let partition = OffsetCommitRequestPartition::default()
            .with_partition_index(index)
            .with_committed_offset(offset)
            .with_committed_metadata(Some(str_bytes("note")));
        if commit_version >= 6 {
            partition.with_committed_leader_epoch(2)
        } else {
            partition
        }
    };
    let committed: OffsetCommitResponse = call(
        broker,
        ApiKey::OffsetCommit,
        commit_version,
        &OffsetCommitRequest::default()
            .with_group_id(group_id(group.clone()))
            .with_generation_id_or_member_epoch(1)
            .with_member_id(member_id.clone())
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(topic_name("t"))
                    .with_partitions(vec![partition(0, 10), partition(1, 20)]),
                OffsetCommitRequestTopic::default()
                    .with_name(topic_name("missing"))
                    .with_partitions(vec![partition(0, 1)]),
            ]),
    )
    .await;
    let codes: Vec<Vec<i16>> = committed
        .topics
        .iter()
        .map(|t| t.partitions.iter().map(|p| p.error_code).collect())
        .collect();
    assert_eq!(
        codes,
        vec![
            vec![0, 0],
            vec![ResponseError::UnknownTopicOrPartition.code()]
        ]
    );

    let fetch_version = (version + 1).clamp(1, 8);
    let fetched: OffsetFetchResponse = if fetch_version >= 8 {
        call(
            broker,
            ApiKey::OffsetFetch,
            fetch_version,
            &OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(group_id(group.clone()))
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(topic_name("t"))
                    .with_partition_indexes(vec![0, 1, 5])]))]),
        )
        .await
    } else {
        call(
            broker,
            ApiKey::OffsetFetch,
            fetch_version,
            &OffsetFetchRequest::default()
                .with_group_id(group_id(group.clone()))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(topic_name("t"))
                    .with_partition_indexes(vec![0, 1, 5])])),
        )
        .await
    };
    let offsets: Vec<(i32, i64, Option<String>)> = if fetch_version >= 8 {
        assert_eq!(fetched.groups.len(), 1);
        fetched.groups[0].topics[0]
            .partitions
            .iter()
            .map(|p| {
                (
                    p.partition_index,
                    p.committed_offset,
                    p.metadata.as_deref().map(str::to_string),
                )
            })
            .collect()
    } else {
        fetched.topics[0]
            .partitions
            .iter()
            .map(|p| {
                (
                    p.partition_index,
                    p.committed_offset,
                    p.metadata.as_deref().map(str::to_string),
                )
            })
            .collect()
    };
    assert_eq!(
        offsets,
        vec![
            (0, 10, Some("note".to_string())),
            (1, 20, Some("note".to_string())),
            (5, -1, Some(String::new())),
        ],
        "OffsetFetch v{fetch_version}"
    );

    let describe_version = version.min(5);
    let described: DescribeGroupsResponse = call(
        broker,
        ApiKey::DescribeGroups,
        describe_version,
        &DescribeGroupsRequest::default().with_groups(vec![group_id(group.clone())]),
    )
    .await;
    let description = &described.groups[0];
    assert_eq!(description.group_state.as_str(), "Stable");
    assert_eq!(description.protocol_type.as_str(), "consumer");
    assert_eq!(description.protocol_data.as_str(), "range");
    assert_eq!(description.members[0].member_id, member_id);
    assert_eq!(
        description.members[0].member_assignment,
        Bytes::from_static(b"t-0,t-1")
    );
    assert_eq!(description.members[0].client_id.as_str(), "handler-test");

    let list_version = version.min(4);
    let list = ListGroupsRequest::default();
    let list = if list_version >= 4 {
        list.with_states_filter(vec![str_bytes("stable")])
    } else {
        list
    };
    let listed: ListGroupsResponse = call(broker, ApiKey::ListGroups, list_version, &list).await;
    let ours = listed
        .groups
        .iter()
        .find(|g| g.group_id.as_str() == group)
        .expect("listed");
    if list_version >= 4 {
        assert_eq!(ours.group_state.as_str(), "Stable");
    }

    let delete_version = version.min(2);
    let delete = DeleteGroupsRequest::default().with_groups_names(vec![group_id(group.clone())]);
    let refused: DeleteGroupsResponse =
        call(broker, ApiKey::DeleteGroups, delete_version, &delete).await;
    assert_eq!(
        refused.results[0].error_code,
        ResponseError::NonEmptyGroup.code()
    );

    let leave_version = version.min(4);
    let leave = LeaveGroupRequest::default().with_group_id(group_id(group.clone()));
    let leave = if leave_version >= 3 {
        leave.with_members(vec![
            MemberIdentity::default().with_member_id(member_id.clone())
        ])
    } else {
        leave.with_member_id(member_id.clone())
    };
    let left: LeaveGroupResponse = call(broker, ApiKey::LeaveGroup, leave_version, &leave).await;
    assert_eq!(left.error_code, 0);
    if leave_version >= 3 {
        assert_eq!(left.members[0].error_code, 0);
    }

    let deleted: DeleteGroupsResponse =
        call(broker, ApiKey::DeleteGroups, delete_version, &delete).await;
    assert_eq!(deleted.results[0].error_code, 0);
    let gone: DeleteGroupsResponse =
        call(broker, ApiKey::DeleteGroups, delete_version, &delete).await;
    assert_eq!(
        gone.results[0].error_code,
        ResponseError::GroupIdNotFound.code()
    );
}

#[tokio::test]
async fn a_consumer_flow_works_at_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let broker = testing::open(dir.path(), &["--group-initial-rebalance-delay-ms", "0"]).await;
    broker
        .create_topic("t", 2, None, BTreeMap::new())
        .await
        .unwrap();
    wait_for_partitions(&broker, "t", 2).await;
    for version in 0..=7 {
        consumer_flow(&broker, version).await;
    }
}

#[tokio::test]
async fn transaction_coordinators_and_empty_group_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = testing::open(dir.path(), &[]).await;
    let found: FindCoordinatorResponse = call(
        &broker,
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_coordinator_keys(vec![str_bytes("txn")]),
    )
    .await;
    assert_eq!(
        found.coordinators[0].error_code,
        ResponseError::CoordinatorNotAvailable.code()
    );
    let found: FindCoordinatorResponse = call(
        &broker,
        ApiKey::FindCoordinator,
        2,
        &FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_key(str_bytes("txn")),
    )
    .await;
    assert_eq!(
        found.error_code,
        ResponseError::CoordinatorNotAvailable.code()
    );

    let joined: JoinGroupResponse =
        call(&broker, ApiKey::JoinGroup, 7, &join_request(7, "", "")).await;
    assert_eq!(joined.error_code, ResponseError::InvalidGroupId.code());
}
