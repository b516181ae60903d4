//! Coordinator tests: offsets persisted to real `__consumer_offsets` partitions in a temporary
//! directory, and the async JoinGroup / SyncGroup glue with its timer task.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use millrace_log::LogConfig;
use tokio::sync::watch;
use uuid::Uuid;

use super::*;
use crate::group::Protocol;
use crate::partition::FetchWakeups;
use crate::partition::{Partition, TopicPartition};

fn limits(initial_rebalance_delay_ms: i64) -> GroupLimits {
    GroupLimits {
        min_session_timeout_ms: 10,
        max_session_timeout_ms: 60_000,
        initial_rebalance_delay_ms,
    }
}

fn offsets_partitions(dir: &Path, count: i32) -> Vec<Arc<Partition>> {
    offsets_partitions_with(dir, count, LogConfig::default())
}

fn offsets_partitions_with(dir: &Path, count: i32, config: LogConfig) -> Vec<Arc<Partition>> {
    (0..count)
        .map(|partition| {
            let id = TopicPartition {
                topic: "__consumer_offsets".to_string(),
                partition,
            };
            let partition_dir = dir.join(format!("__consumer_offsets-{partition}"));
            Arc::new(
                Partition::open(
                    1,
                    id,
                    Uuid::from_u128(1),
                    &partition_dir,
                    config.clone(),
                    FetchWakeups::default(),
                )
                .expect("opening an offsets partition"),
            )
        })
        .collect()
}

/// Opens a coordinator over the offsets partitions in `dir`; the partitions are returned too so
/// that the test can flush them as a clean shutdown would.
fn open(dir: &Path, partitions: i32) -> (Arc<GroupCoordinator>, Vec<Arc<Partition>>) {
    let partitions = offsets_partitions(dir, partitions);
    let coordinator = GroupCoordinator::with_limits(limits(0), partitions.clone()).unwrap();
    (coordinator, partitions)
}

fn close(coordinator: Arc<GroupCoordinator>, partitions: Vec<Arc<Partition>>) {
    drop(coordinator);
    for partition in partitions {
        partition.flush().unwrap();
    }
}

fn committed(offset: i64, metadata: Option<&str>) -> CommittedOffset {
    CommittedOffset {
        offset,
        leader_epoch: 4,
        metadata: metadata.map(str::to_string),
        commit_timestamp_ms: 1_700_000_000_000,
    }
}

fn standalone() -> Committer {
    Committer {
        member_id: String::new(),
        group_instance_id: None,
        generation_id: -1,
    }
}

#[tokio::test]
async fn committed_offsets_survive_a_restart_and_deleted_groups_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let (coordinator, partitions) = open(dir.path(), 3);
    coordinator
        .commit_offsets(
            "payments",
            &standalone(),
            vec![
                ("orders".into(), 0, committed(42, Some("first"))),
                ("orders".into(), 1, committed(7, None)),
                ("audit".into(), 0, committed(1, Some(""))),
            ],
        )
        .await
        .unwrap();
    // The latest commit of a partition wins.
    coordinator
        .commit_offsets(
            "payments",
            &standalone(),
            vec![("orders".into(), 0, committed(43, Some("second")))],
        )
        .await
        .unwrap();
    coordinator
        .commit_offsets(
            "billing",
            &standalone(),
            vec![("invoices".into(), 2, committed(1_000, None))],
        )
        .await
        .unwrap();
    assert_eq!(
        coordinator.committed_offset("payments", "orders", 0),
        Some(committed(43, Some("second")))
    );
    close(coordinator, partitions);

    let (coordinator, partitions) = open(dir.path(), 3);
    assert_eq!(
        coordinator.committed_offset("payments", "orders", 0),
        Some(committed(43, Some("second")))
    );
    assert_eq!(
        coordinator.committed_offset("payments", "orders", 1),
        Some(committed(7, None))
    );
    assert_eq!(coordinator.committed_offset("payments", "orders", 2), None);
    assert_eq!(coordinator.committed_offsets("payments").len(), 2);
    assert_eq!(
        coordinator.committed_offset("billing", "invoices", 2),
        Some(committed(1_000, None))
    );
    let listed = coordinator.list_groups();
    assert_eq!(
        listed,
        vec![
            GroupListing {
                group_id: "billing".into(),
                protocol_type: String::new(),
                state: GroupState::Empty,
            },
            GroupListing {
                group_id: "payments".into(),
                protocol_type: String::new(),
                state: GroupState::Empty,
            },
        ]
    );

    coordinator.delete_group("payments").unwrap();
    assert!(coordinator.committed_offsets("payments").is_empty());
    assert_eq!(
        coordinator.delete_group("payments"),
        Err(ResponseError::GroupIdNotFound)
    );
    close(coordinator, partitions);

    let (coordinator, partitions) = open(dir.path(), 3);
    assert!(coordinator.committed_offsets("payments").is_empty());
    assert_eq!(
        coordinator.describe_group("payments").state,
        GroupState::Dead
    );
    assert_eq!(coordinator.list_groups().len(), 1);
    assert_eq!(
        coordinator.committed_offset("billing", "invoices", 2),
        Some(committed(1_000, None))
    );
    close(coordinator, partitions);
}

/// Each group commits `events`-0..2 at `round * 10 + partition`, for `rounds` rounds.
async fn commit_rounds(coordinator: &Arc<GroupCoordinator>, groups: &[&str], rounds: i64) {
    for round in 0..rounds {
        for group in groups {
            let offsets = (0..3)
                .map(|partition| {
                    (
                        "events".to_string(),
                        partition,
                        committed(round * 10 + i64::from(partition), None),
                    )
                })
                .collect();
            coordinator
                .commit_offsets(group, &standalone(), offsets)
                .await
                .unwrap();
        }
    }
}

/// Like [`open`], with segments of 2 KiB: a few commits fill one.
fn open_with_small_segments(
    dir: &Path,
    partitions: i32,
) -> (Arc<GroupCoordinator>, Vec<Arc<Partition>>) {
    let small_segments = LogConfig {
        segment_bytes: 2048,
        ..LogConfig::default()
    };
    let partitions = offsets_partitions_with(dir, partitions, small_segments);
    let coordinator = GroupCoordinator::with_limits(limits(0), partitions.clone()).unwrap();
    (coordinator, partitions)
}

/// Segment (`.log`) files in the partition's directory.
fn segment_files(partition: &Partition) -> usize {
    std::fs::read_dir(partition.dir())
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|e| e == "log")
        })
        .count()
}

#[tokio::test]
async fn offsets_reload_across_many_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (coordinator, partitions) = open_with_small_segments(dir.path(), 2);
    commit_rounds(&coordinator, &["alpha", "beta", "gamma"], 300).await;
    coordinator.delete_group("beta").unwrap();
    for partition in &partitions {
        let segments = segment_files(partition);
        assert!(segments > 3, "{} has {segments} segments", partition.id);
    }
    close(coordinator, partitions);

    let (coordinator, partitions) = open_with_small_segments(dir.path(), 2);
    for group in ["alpha", "gamma"] {
        for partition in 0..3 {
            assert_eq!(
                coordinator
                    .committed_offset(group, "events", partition)
                    .map(|c| c.offset),
                Some(2_990 + i64::from(partition)),
                "{group} events-{partition}"
            );
        }
    }
    assert!(coordinator.committed_offsets("beta").is_empty());
    let groups: Vec<String> = coordinator
        .list_groups()
        .into_iter()
        .map(|g| g.group_id)
        .collect();
    assert_eq!(groups, vec!["alpha".to_string(), "gamma".to_string()]);
    close(coordinator, partitions);
}

#[tokio::test]
async fn compaction_keeps_the_live_offsets_and_moves_the_log_start_past_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (coordinator, partitions) = open_with_small_segments(dir.path(), 1);
    commit_rounds(&coordinator, &["alpha", "beta", "gamma"], 100).await;
    coordinator.delete_group("beta").unwrap();
    let offsets_log = &partitions[0];
    let end_before = offsets_log.log_end_offset();
    let segments_before = segment_files(offsets_log);
    assert_eq!(offsets_log.log_start_offset(), 0);

    // 903 records (900 commits, 3 tombstones) for 6 live offsets: not below the threshold.
    assert_eq!(coordinator.compact_offsets(10_000).await, 0);
    assert_eq!(offsets_log.log_end_offset(), end_before);
    assert_eq!(coordinator.compact_offsets(500).await, 1);
    // The live offsets were written again at the log end, and the log starts there.
    assert_eq!(offsets_log.log_start_offset(), end_before);
    assert_eq!(offsets_log.log_end_offset(), end_before + 6);
    // Nothing superseded since: nothing to do, however low the threshold.
    assert_eq!(coordinator.compact_offsets(1).await, 0);
    offsets_log.apply_retention().unwrap();
    let segments_after = segment_files(offsets_log);
    assert!(
        segments_after < segments_before,
        "{segments_before} segments before, {segments_after} after"
    );

    // Commits after the compaction, then a restart: the replay starts at the rewrite.
    commit_rounds(&coordinator, &["gamma"], 101).await;
    close(coordinator, partitions);
    let (coordinator, partitions) = open_with_small_segments(dir.path(), 1);
    for (group, last_round) in [("alpha", 99), ("gamma", 100)] {
        for partition in 0..3 {
            assert_eq!(
                coordinator
                    .committed_offset(group, "events", partition)
                    .map(|c| c.offset),
                Some(last_round * 10 + i64::from(partition)),
                "{group} events-{partition}"
            );
        }
    }
    assert!(coordinator.committed_offsets("beta").is_empty());
    assert_eq!(partitions[0].log_start_offset(), end_before);
    close(coordinator, partitions);
}

#[tokio::test]
async fn commits_of_unknown_generations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (coordinator, _partitions) = open(dir.path(), 1);
    let member = Committer {
        member_id: "ghost".into(),
        group_instance_id: None,
        generation_id: 3,
    };
    assert_eq!(
        coordinator
            .commit_offsets("nobody", &member, vec![("t".into(), 0, committed(1, None))])
            .await,
        Err(ResponseError::IllegalGeneration)
    );
    assert!(coordinator.list_groups().is_empty());
}

#[tokio::test]
async fn without_an_offsets_topic_commits_are_refused() {
    let coordinator = GroupCoordinator::with_limits(limits(0), Vec::new()).unwrap();
    assert_eq!(
        coordinator
            .commit_offsets(
                "g",
                &standalone(),
                vec![("t".into(), 0, committed(1, None))]
            )
            .await,
        Err(ResponseError::CoordinatorNotAvailable)
    );
    assert_eq!(coordinator.offsets_partition_count(), 0);
}

fn join_request(member_id: &str, session_timeout_ms: i32) -> JoinMember {
    JoinMember {
        member_id: member_id.to_string(),
        group_instance_id: None,
        client_id: "consumer".to_string(),
        client_host: String::new(),
        session_timeout_ms,
        rebalance_timeout_ms: 5_000,
        protocol_type: "consumer".to_string(),
        protocols: vec![Protocol {
            name: "range".to_string(),
            metadata: Bytes::from_static(b"subscription"),
        }],
        require_known_member_id: true,
    }
}

/// JoinGroup v4+ as a client does it: first without a member id, then with the one given.
async fn join_as_new_member(
    coordinator: &Arc<GroupCoordinator>,
    session_timeout_ms: i32,
) -> JoinResult {
    let first = coordinator
        .join("g", join_request("", session_timeout_ms))
        .await;
    assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
    assert!(first.member_id.starts_with("consumer-"));
    coordinator
        .join("g", join_request(&first.member_id, session_timeout_ms))
        .await
}

fn sync_request(
    member_id: &str,
    generation_id: i32,
    assignments: Vec<(String, Bytes)>,
) -> SyncMember {
    SyncMember {
        member_id: member_id.to_string(),
        group_instance_id: None,
        generation_id,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments,
    }
}

#[tokio::test]
async fn members_join_sync_commit_and_leave() {
    let dir = tempfile::tempdir().unwrap();
    let partitions = offsets_partitions(dir.path(), 2);
    let coordinator = GroupCoordinator::with_limits(limits(100), partitions).unwrap();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let timer = tokio::spawn(coordinator.clone().run(shutdown_rx));

    assert_eq!(
        coordinator.join("", join_request("", 10_000)).await.error,
        Some(ResponseError::InvalidGroupId)
    );

    let (a, b) = tokio::join!(
        join_as_new_member(&coordinator, 10_000),
        join_as_new_member(&coordinator, 10_000)
    );
    assert_eq!(a.error, None);
    assert_eq!(b.error, None);
    assert_eq!(a.generation_id, 1);
    assert_eq!(b.generation_id, 1);
    assert_eq!(a.leader_id, b.leader_id);
    let (leader, follower) = if a.leader_id == a.member_id {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(leader.members.len(), 2);
    assert!(follower.members.is_empty());

    let assignments = vec![
        (leader.member_id.clone(), Bytes::from_static(b"p0")),
        (follower.member_id.clone(), Bytes::from_static(b"p1")),
    ];
    let (follower_sync, leader_sync) = tokio::join!(
        coordinator.sync("g", sync_request(&follower.member_id, 1, Vec::new())),
        async {
            // Let the follower's SyncGroup arrive first and wait for the leader's.
            tokio::time::sleep(Duration::from_millis(20)).await;
            coordinator
                .sync("g", sync_request(&leader.member_id, 1, assignments))
                .await
        }
    );
    assert_eq!(follower_sync.error, None);
    assert_eq!(follower_sync.assignment, Bytes::from_static(b"p1"));
    assert_eq!(leader_sync.assignment, Bytes::from_static(b"p0"));
    assert_eq!(coordinator.describe_group("g").state, GroupState::Stable);

    assert_eq!(
        coordinator.heartbeat("g", &follower.member_id, None, 1),
        Ok(())
    );
    let member = Committer {
        member_id: follower.member_id.clone(),
        group_instance_id: None,
        generation_id: 1,
    };
    coordinator
        .commit_offsets("g", &member, vec![("t".into(), 1, committed(5, None))])
        .await
        .unwrap();
    let stale = Committer {
        generation_id: 0,
        ..member
    };
    assert_eq!(
        coordinator
            .commit_offsets("g", &stale, vec![("t".into(), 1, committed(6, None))])
            .await,
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        coordinator
            .commit_offsets(
                "g",
                &standalone(),
                vec![("t".into(), 1, committed(6, None))]
            )
            .await,
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        coordinator.committed_offset("g", "t", 1).map(|c| c.offset),
        Some(5)
    );
    assert_eq!(
        coordinator.delete_group("g"),
        Err(ResponseError::NonEmptyGroup)
    );

    let leaving = [
        LeavingMember {
            member_id: follower.member_id.clone(),
            group_instance_id: None,
        },
        LeavingMember {
            member_id: leader.member_id.clone(),
            group_instance_id: None,
        },
        LeavingMember {
            member_id: "stranger".into(),
            group_instance_id: None,
        },
    ];
    let results = coordinator.leave("g", &leaving).unwrap();
    assert_eq!(
        results,
        vec![Ok(()), Ok(()), Err(ResponseError::UnknownMemberId)]
    );
    assert_eq!(coordinator.describe_group("g").state, GroupState::Empty);
    coordinator.delete_group("g").unwrap();
    assert_eq!(coordinator.committed_offset("g", "t", 1), None);

    shutdown.send_replace(true);
    timer.await.unwrap();
}

#[tokio::test]
async fn the_timer_expires_silent_members() {
    let dir = tempfile::tempdir().unwrap();
    let partitions = offsets_partitions(dir.path(), 1);
    let coordinator = GroupCoordinator::with_limits(limits(0), partitions).unwrap();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let timer = tokio::spawn(coordinator.clone().run(shutdown_rx));

    let joined = join_as_new_member(&coordinator, 100).await;
    assert_eq!(joined.generation_id, 1);
    let synced = coordinator
        .sync(
            "g",
            sync_request(
                &joined.member_id,
                1,
                vec![(joined.member_id.clone(), Bytes::new())],
            ),
        )
        .await;
    assert_eq!(synced.error, None);
    assert_eq!(coordinator.describe_group("g").members.len(), 1);

    tokio::time::sleep(Duration::from_millis(400)).await;
    let description = coordinator.describe_group("g");
    assert_eq!(description.state, GroupState::Empty);
    assert!(description.members.is_empty());
    assert_eq!(
        coordinator.heartbeat("g", &joined.member_id, None, 1),
        Err(ResponseError::UnknownMemberId)
    );

    shutdown.send_replace(true);
    timer.await.unwrap();
}
