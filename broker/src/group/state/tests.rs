//! State machine tests with injected time: every call gets `now_ms` from the test.

use bytes::Bytes;
use kafka_protocol::ResponseError;

use super::*;
use crate::group::member::Protocol;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 20_000;

fn limits(initial_rebalance_delay_ms: i64) -> GroupLimits {
    GroupLimits {
        min_session_timeout_ms: 1_000,
        max_session_timeout_ms: 60_000,
        initial_rebalance_delay_ms,
    }
}

fn protocols(names: &[&str]) -> Vec<Protocol> {
    names
        .iter()
        .map(|name| Protocol {
            name: name.to_string(),
            metadata: Bytes::from(format!("{name}-subscription")),
        })
        .collect()
}

fn join_request(member_id: &str, names: &[&str]) -> JoinMember {
    JoinMember {
        member_id: member_id.to_string(),
        group_instance_id: None,
        client_id: "client".to_string(),
        client_host: "/127.0.0.1".to_string(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".to_string(),
        protocols: protocols(names),
        require_known_member_id: false,
    }
}

fn static_join(instance: &str, member_id: &str, names: &[&str]) -> JoinMember {
    JoinMember {
        group_instance_id: Some(instance.to_string()),
        ..join_request(member_id, names)
    }
}

fn sync_request(member_id: &str, generation_id: i32, assignments: &[(&str, &str)]) -> SyncMember {
    SyncMember {
        member_id: member_id.to_string(),
        group_instance_id: None,
        generation_id,
        protocol_type: None,
        protocol_name: None,
        assignments: assignments
            .iter()
            .map(|(member, assignment)| (member.to_string(), Bytes::from(assignment.to_string())))
            .collect(),
    }
}

fn join_reply(replies: &[Reply], member: &str) -> JoinResult {
    replies
        .iter()
        .find_map(|reply| match reply {
            Reply::Join { member_id, result } if member_id == member => Some(result.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no join reply for {member} in {replies:?}"))
}

fn sync_reply(replies: &[Reply], member: &str) -> SyncResult {
    replies
        .iter()
        .find_map(|reply| match reply {
            Reply::Sync { member_id, result } if member_id == member => Some(result.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no sync reply for {member} in {replies:?}"))
}

fn pending<T: std::fmt::Debug>(outcome: Outcome<T>) -> String {
    match outcome {
        Outcome::Pending { member_id } => member_id,
        Outcome::Ready(result) => panic!("expected a parked request, got {result:?}"),
    }
}

fn ready<T: std::fmt::Debug>(outcome: Outcome<T>) -> T {
    match outcome {
        Outcome::Ready(result) => result,
        Outcome::Pending { member_id } => panic!("expected an answer, parked for {member_id}"),
    }
}

/// Joins `count` dynamic members into an empty group with no initial delay and syncs them:
/// returns the member ids (the first is the leader) at generation `group.generation_id()`.
fn stable_group(count: usize) -> (Group, Vec<String>) {
    let mut group = Group::new("g", limits(3_000), 0);
    let mut ids = Vec::new();
    for i in 0..count {
        let (outcome, replies) = group.join(join_request("", &["range"]), format!("m{i}"), 0);
        assert!(replies.is_empty());
        ids.push(pending(outcome));
    }
    // The initial delay is extended once if more than one member arrived.
    let mut replies = group.tick(3_000);
    if replies.is_empty() {
        replies = group.tick(6_000);
    }
    assert_eq!(group.state(), GroupState::CompletingRebalance);
    for id in &ids {
        assert_eq!(join_reply(&replies, id).error, None);
    }
    let generation = group.generation_id();
    let leader = group.leader_id().unwrap().to_string();
    for id in ids.iter().filter(|id| **id != leader) {
        let (outcome, replies) = group.sync(sync_request(id, generation, &[]), 6_000);
        assert!(replies.is_empty());
        pending(outcome);
    }
    let assignments: Vec<(String, String)> = ids
        .iter()
        .map(|id| (id.clone(), format!("assignment-of-{id}")))
        .collect();
    let assignments: Vec<(&str, &str)> = assignments
        .iter()
        .map(|(m, a)| (m.as_str(), a.as_str()))
        .collect();
    let (outcome, replies) = group.sync(sync_request(&leader, generation, &assignments), 6_000);
    pending(outcome);
    for id in &ids {
        let result = sync_reply(&replies, id);
        assert_eq!(result.error, None);
        assert_eq!(
            result.assignment,
            Bytes::from(format!("assignment-of-{id}"))
        );
    }
    assert_eq!(group.state(), GroupState::Stable);
    (group, ids)
}

#[test]
fn two_members_form_one_generation_and_sync_distributes_assignments() {
    let mut group = Group::new("g", limits(3_000), 0);
    let (first, replies) = group.join(join_request("", &["range", "roundrobin"]), "m1".into(), 0);
    assert!(replies.is_empty());
    assert_eq!(pending(first), "m1");
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    let (second, _) = group.join(join_request("", &["roundrobin", "range"]), "m2".into(), 100);
    assert_eq!(pending(second), "m2");

    // The initial delay ran out, but a member arrived during it: wait once more.
    assert!(group.tick(3_000).is_empty());
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    let replies = group.tick(6_000);
    assert_eq!(group.state(), GroupState::CompletingRebalance);
    assert_eq!(group.generation_id(), 1);

    let leader = join_reply(&replies, "m1");
    let follower = join_reply(&replies, "m2");
    assert_eq!(leader.leader_id, "m1");
    assert_eq!(follower.leader_id, "m1");
    assert_eq!(leader.generation_id, 1);
    assert_eq!(follower.generation_id, 1);
    // A tie (one vote each) goes to the first member's preference.
    assert_eq!(leader.protocol_name.as_deref(), Some("range"));
    assert_eq!(leader.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(leader.members.len(), 2);
    assert_eq!(
        leader.members[1].metadata,
        Bytes::from("range-subscription")
    );
    assert!(follower.members.is_empty());

    // The follower's SyncGroup waits for the leader's.
    let (outcome, replies) = group.sync(sync_request("m2", 1, &[]), 6_100);
    assert_eq!(pending(outcome), "m2");
    assert!(replies.is_empty());
    let (outcome, replies) =
        group.sync(sync_request("m1", 1, &[("m1", "a1"), ("m2", "a2")]), 6_200);
    assert_eq!(pending(outcome), "m1");
    assert_eq!(sync_reply(&replies, "m1").assignment, Bytes::from("a1"));
    assert_eq!(sync_reply(&replies, "m2").assignment, Bytes::from("a2"));
    assert_eq!(group.state(), GroupState::Stable);

    // A late SyncGroup in the Stable group is answered at once.
    let result = ready(group.sync(sync_request("m2", 1, &[]), 6_300).0);
    assert_eq!(result.assignment, Bytes::from("a2"));

    let description = group.describe();
    assert_eq!(description.state.name(), "Stable");
    assert_eq!(description.protocol_name, "range");
    assert_eq!(description.members[0].assignment, Bytes::from("a1"));
}

#[test]
fn initial_delay_is_capped_by_the_rebalance_timeout() {
    let mut group = Group::new("g", limits(3_000), 0);
    let mut join = join_request("", &["range"]);
    join.rebalance_timeout_ms = 5_000;
    pending(group.join(join.clone(), "m1".into(), 0).0);
    pending(group.join(join.clone(), "m2".into(), 1_000).0);
    assert!(group.tick(3_000).is_empty());
    // Extended by only the 2 s left of the 5 s rebalance timeout, even though m3 arrives.
    pending(group.join(join, "m3".into(), 4_000).0);
    let replies = group.tick(5_000);
    assert_eq!(group.state(), GroupState::CompletingRebalance);
    assert_eq!(join_reply(&replies, "m1").members.len(), 3);
}

#[test]
fn third_member_triggers_a_rebalance_and_all_rejoin_into_a_new_generation() {
    let (mut group, ids) = stable_group(2);
    assert_eq!(group.generation_id(), 1);

    let (outcome, replies) = group.join(join_request("", &["range"]), "m2".into(), 7_000);
    assert_eq!(pending(outcome), "m2");
    assert!(replies.is_empty());
    assert_eq!(group.state(), GroupState::PreparingRebalance);

    // Existing members learn of the rebalance through their heartbeats.
    assert_eq!(
        group.heartbeat(&ids[0], None, 1, 7_100),
        Err(ResponseError::RebalanceInProgress)
    );
    pending(
        group
            .join(join_request(&ids[0], &["range"]), "unused".into(), 7_200)
            .0,
    );
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    let (outcome, replies) = group.join(join_request(&ids[1], &["range"]), "unused".into(), 7_300);
    pending(outcome);

    // Everyone rejoined: the rebalance completes without waiting for its timeout.
    assert_eq!(group.state(), GroupState::CompletingRebalance);
    assert_eq!(group.generation_id(), 2);
    let leader = join_reply(&replies, &ids[0]);
    assert_eq!(leader.members.len(), 3);
    assert_eq!(join_reply(&replies, "m2").leader_id, ids[0]);
    assert_eq!(join_reply(&replies, &ids[1]).generation_id, 2);
}

#[test]
fn leaving_member_triggers_a_rebalance() {
    let (mut group, ids) = stable_group(2);
    let mut replies = Vec::new();
    group.leave(&ids[1], None, 7_000, &mut replies).unwrap();
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(group.member_count(), 1);

    let (outcome, replies) = group.join(join_request(&ids[0], &["range"]), "unused".into(), 7_100);
    pending(outcome);
    let result = join_reply(&replies, &ids[0]);
    assert_eq!(result.generation_id, 2);
    assert_eq!(result.members.len(), 1);

    let mut replies = Vec::new();
    assert_eq!(
        group.leave(&ids[1], None, 7_200, &mut replies),
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn last_member_leaving_empties_the_group() {
    let (mut group, ids) = stable_group(1);
    let mut replies = Vec::new();
    group.leave(&ids[0], None, 7_000, &mut replies).unwrap();
    assert_eq!(group.state(), GroupState::Empty);
    assert_eq!(group.generation_id(), 2);
    assert!(group.has_no_members());
}

#[test]
fn session_expiry_removes_a_silent_member() {
    let (mut group, ids) = stable_group(2);
    // Sessions restarted at 6 000 when the rebalance completed; only ids[0] keeps heartbeating.
    for now in [9_000, 12_000, 15_000] {
        group.heartbeat(&ids[0], None, 1, now).unwrap();
        assert!(group.tick(now).is_empty());
    }
    assert_eq!(group.next_deadline_ms(), Some(16_000));
    group.tick(16_000);
    assert!(group.member(&ids[1]).is_none());
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(
        group.heartbeat(&ids[0], None, 1, 16_100),
        Err(ResponseError::RebalanceInProgress)
    );
    let (_, replies) = group.join(join_request(&ids[0], &["range"]), "unused".into(), 16_200);
    assert_eq!(join_reply(&replies, &ids[0]).generation_id, 2);
}

#[test]
fn rebalance_timeout_removes_members_that_did_not_rejoin() {
    let (mut group, ids) = stable_group(2);
    pending(
        group
            .join(join_request("", &["range"]), "m2".into(), 7_000)
            .0,
    );
    pending(
        group
            .join(join_request(&ids[0], &["range"]), "unused".into(), 7_100)
            .0,
    );
    // ids[1] keeps heartbeating, so its session stays alive, but it never rejoins.
    for now in (8_000..27_000).step_by(5_000) {
        assert_eq!(
            group.heartbeat(&ids[1], None, 1, now),
            Err(ResponseError::RebalanceInProgress)
        );
        assert!(group.tick(now).is_empty());
    }
    assert!(group.tick(26_999).is_empty());
    let replies = group.tick(7_000 + i64::from(REBALANCE_MS));
    assert_eq!(group.state(), GroupState::CompletingRebalance);
    assert!(group.member(&ids[1]).is_none());
    assert_eq!(join_reply(&replies, &ids[0]).members.len(), 2);
    assert_eq!(
        group.heartbeat(&ids[1], None, 1, 27_100),
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn heartbeat_errors() {
    let (mut group, ids) = stable_group(1);
    assert_eq!(group.heartbeat(&ids[0], None, 1, 7_000), Ok(()));
    assert_eq!(
        group.heartbeat(&ids[0], None, 0, 7_000),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        group.heartbeat("nobody", None, 1, 7_000),
        Err(ResponseError::UnknownMemberId)
    );
    let result = ready(group.sync(sync_request(&ids[0], 7, &[]), 7_000).0);
    assert_eq!(result.error, Some(ResponseError::IllegalGeneration));
}

#[test]
fn new_dynamic_member_must_rejoin_with_the_id_it_was_given() {
    let mut group = Group::new("g", limits(0), 0);
    let mut join = join_request("", &["range"]);
    join.require_known_member_id = true;
    let result = ready(group.join(join.clone(), "client-1".into(), 0).0);
    assert_eq!(result.error, Some(ResponseError::MemberIdRequired));
    assert_eq!(result.member_id, "client-1");
    assert_eq!(group.state(), GroupState::Empty);

    join.member_id = "made-up".into();
    let result = ready(group.join(join.clone(), "unused".into(), 10).0);
    assert_eq!(result.error, Some(ResponseError::UnknownMemberId));

    join.member_id = "client-1".into();
    let (outcome, replies) = group.join(join, "unused".into(), 20);
    assert_eq!(pending(outcome), "client-1");
    // No initial delay configured: a lone member forms generation 1 at once.
    assert_eq!(join_reply(&replies, "client-1").generation_id, 1);
}

#[test]
fn unused_member_ids_expire() {
    let mut group = Group::new("g", limits(0), 0);
    let mut join = join_request("", &["range"]);
    join.require_known_member_id = true;
    ready(group.join(join.clone(), "client-1".into(), 0).0);
    group.tick(i64::from(SESSION_MS));
    assert!(group.has_no_members());
    join.member_id = "client-1".into();
    let result = ready(group.join(join, "unused".into(), 20_000).0);
    assert_eq!(result.error, Some(ResponseError::UnknownMemberId));
}

#[test]
fn static_member_rejoin_keeps_the_generation_and_fences_the_old_id() {
    let mut group = Group::new("g", limits(0), 0);
    pending(
        group
            .join(static_join("instance-a", "", &["range"]), "a1".into(), 0)
            .0,
    );
    assert_eq!(group.state(), GroupState::CompletingRebalance);
    let (_, replies) = group.sync(sync_request("a1", 1, &[("a1", "partitions-of-a")]), 10);
    assert_eq!(
        sync_reply(&replies, "a1").assignment,
        Bytes::from("partitions-of-a")
    );
    assert_eq!(group.state(), GroupState::Stable);

    // The process restarts and joins without a member id.
    let result = ready(
        group
            .join(
                static_join("instance-a", "", &["range"]),
                "a2".into(),
                1_000,
            )
            .0,
    );
    assert_eq!(result.error, None);
    assert_eq!(result.member_id, "a2");
    assert_eq!(result.generation_id, 1);
    assert_eq!(result.leader_id, "a1");
    assert!(result.members.is_empty());
    assert_eq!(group.state(), GroupState::Stable);
    assert_eq!(group.generation_id(), 1);

    let sync = ready(group.sync(sync_request("a2", 1, &[]), 1_100).0);
    assert_eq!(sync.assignment, Bytes::from("partitions-of-a"));
    assert_eq!(
        group.heartbeat("a1", Some("instance-a"), 1, 1_200),
        Err(ResponseError::FencedInstanceId)
    );
    assert_eq!(group.heartbeat("a2", Some("instance-a"), 1, 1_200), Ok(()));
    let old = ready(
        group
            .join(
                static_join("instance-a", "a1", &["range"]),
                "x".into(),
                1_300,
            )
            .0,
    );
    assert_eq!(old.error, Some(ResponseError::FencedInstanceId));
}

#[test]
fn static_member_rejoin_with_new_metadata_rebalances() {
    let mut group = Group::new("g", limits(0), 0);
    pending(
        group
            .join(static_join("instance-a", "", &["range"]), "a1".into(), 0)
            .0,
    );
    group.sync(sync_request("a1", 1, &[("a1", "x")]), 10);
    let (outcome, replies) = group.join(
        static_join("instance-a", "", &["roundrobin"]),
        "a2".into(),
        1_000,
    );
    assert_eq!(pending(outcome), "a2");
    let result = join_reply(&replies, "a2");
    assert_eq!(result.generation_id, 2);
    assert_eq!(result.leader_id, "a2");
    assert_eq!(result.protocol_name.as_deref(), Some("roundrobin"));
}

#[test]
fn static_member_can_leave_by_instance_id() {
    let mut group = Group::new("g", limits(0), 0);
    pending(
        group
            .join(static_join("instance-a", "", &["range"]), "a1".into(), 0)
            .0,
    );
    let mut replies = Vec::new();
    assert_eq!(
        group.leave("other", Some("instance-a"), 10, &mut replies),
        Err(ResponseError::FencedInstanceId)
    );
    group
        .leave("", Some("instance-a"), 10, &mut replies)
        .unwrap();
    assert_eq!(group.state(), GroupState::Empty);
}

#[test]
fn join_validation_errors() {
    let (mut group, _) = stable_group(1);
    let mut join = join_request("", &["range"]);
    join.session_timeout_ms = 100;
    let result = ready(group.join(join, "x".into(), 7_000).0);
    assert_eq!(result.error, Some(ResponseError::InvalidSessionTimeout));

    let result = ready(
        group
            .join(join_request("", &["roundrobin"]), "x".into(), 7_000)
            .0,
    );
    assert_eq!(result.error, Some(ResponseError::InconsistentGroupProtocol));

    let mut join = join_request("", &["range"]);
    join.protocol_type = "connect".into();
    let result = ready(group.join(join, "x".into(), 7_000).0);
    assert_eq!(result.error, Some(ResponseError::InconsistentGroupProtocol));

    let result = ready(
        group
            .join(join_request("ghost", &["range"]), "x".into(), 7_000)
            .0,
    );
    assert_eq!(result.error, Some(ResponseError::UnknownMemberId));

    let mut empty = Group::new("e", limits(0), 0);
    let result = ready(empty.join(join_request("", &[]), "x".into(), 0).0);
    assert_eq!(result.error, Some(ResponseError::InconsistentGroupProtocol));
}

#[test]
fn protocol_is_chosen_by_votes_among_protocols_everyone_supports() {
    let mut group = Group::new("g", limits(1_000), 0);
    pending(
        group
            .join(join_request("", &["sticky", "range"]), "m1".into(), 0)
            .0,
    );
    pending(
        group
            .join(
                join_request("", &["roundrobin", "range", "sticky"]),
                "m2".into(),
                0,
            )
            .0,
    );
    pending(
        group
            .join(join_request("", &["roundrobin", "sticky"]), "m3".into(), 0)
            .0,
    );
    group.tick(1_000);
    let replies = group.tick(2_000);
    // Common: sticky (range is missing from m3). Votes do not matter with one candidate.
    assert_eq!(
        join_reply(&replies, "m1").protocol_name.as_deref(),
        Some("sticky")
    );
}

#[test]
fn follower_rejoin_in_a_stable_group_returns_the_current_generation() {
    let (mut group, ids) = stable_group(2);
    let result = ready(
        group
            .join(join_request(&ids[1], &["range"]), "x".into(), 7_000)
            .0,
    );
    assert_eq!(result.generation_id, 1);
    assert_eq!(result.leader_id, ids[0]);
    assert_eq!(group.state(), GroupState::Stable);
}

#[test]
fn rebalance_during_sync_fails_the_waiting_syncs() {
    let mut group = Group::new("g", limits(1_000), 0);
    pending(group.join(join_request("", &["range"]), "m1".into(), 0).0);
    pending(group.join(join_request("", &["range"]), "m2".into(), 0).0);
    group.tick(1_000);
    group.tick(2_000);
    assert_eq!(group.state(), GroupState::CompletingRebalance);
    pending(group.sync(sync_request("m2", 1, &[]), 2_100).0);
    let (_, replies) = group.join(join_request("", &["range"]), "m3".into(), 2_200);
    assert_eq!(
        sync_reply(&replies, "m2").error,
        Some(ResponseError::RebalanceInProgress)
    );
    assert_eq!(group.state(), GroupState::PreparingRebalance);
}

#[test]
fn members_that_never_sync_are_removed_after_the_rebalance_timeout() {
    let mut group = Group::new("g", limits(1_000), 0);
    pending(group.join(join_request("", &["range"]), "m1".into(), 0).0);
    pending(group.join(join_request("", &["range"]), "m2".into(), 0).0);
    group.tick(1_000);
    group.tick(2_000);
    // m2 syncs; the leader m1 heartbeats, so its session stays alive, but never syncs.
    pending(group.sync(sync_request("m2", 1, &[]), 2_100).0);
    let deadline = 2_000 + i64::from(REBALANCE_MS);
    for now in (5_000..deadline).step_by(5_000) {
        assert_eq!(group.heartbeat("m1", None, 1, now), Ok(()));
        assert!(group.tick(now).is_empty());
    }
    let replies = group.tick(deadline);
    assert!(group.member("m1").is_none());
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(
        sync_reply(&replies, "m2").error,
        Some(ResponseError::RebalanceInProgress)
    );
}

#[test]
fn offset_commit_validation() {
    let mut empty = Group::new("g", limits(0), 0);
    assert_eq!(empty.validate_offset_commit("", None, -1, 0), Ok(()));
    assert_eq!(
        empty.validate_offset_commit("someone", None, 3, 0),
        Err(ResponseError::UnknownMemberId)
    );

    let (mut group, ids) = stable_group(1);
    assert_eq!(
        group.validate_offset_commit(&ids[0], None, 1, 7_000),
        Ok(())
    );
    assert_eq!(
        group.validate_offset_commit(&ids[0], None, 0, 7_000),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        group.validate_offset_commit("", None, -1, 7_000),
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn dead_group_answers_parked_requests() {
    let mut group = Group::new("g", limits(1_000), 0);
    pending(group.join(join_request("", &["range"]), "m1".into(), 0).0);
    let replies = group.mark_dead(10);
    assert_eq!(
        join_reply(&replies, "m1").error,
        Some(ResponseError::CoordinatorNotAvailable)
    );
    assert_eq!(group.state(), GroupState::Dead);
}
