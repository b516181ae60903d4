use super::partitions::*;
use super::test_support::cluster_with_brokers;
use crate::command::{ElectionKind, Rejection};
use crate::metadata::{ClusterMetadata, PartitionState, NO_LEADER};

fn three_brokers() -> ClusterMetadata {
    cluster_with_brokers(&[(1, None), (2, None), (3, None), (4, None)])
}

fn partition(replicas: &[i32], leader: i32, isr: &[i32]) -> PartitionState {
    PartitionState {
        leader,
        isr: isr.to_vec(),
        leader_epoch: 5,
        partition_epoch: 7,
        ..PartitionState::new(0, replicas.to_vec())
    }
}

fn fenced(mut cluster: ClusterMetadata, id: i32) -> ClusterMetadata {
    cluster.brokers.get_mut(&id).unwrap().fenced = true;
    cluster
}

#[test]
fn fencing_the_leader_elects_the_next_isr_member_in_replica_order() {
    let cluster = fenced(three_brokers(), 1);
    let before = partition(&[1, 2, 3], 1, &[1, 3, 2]);
    let after = on_broker_fenced(&before, 1, &cluster).unwrap();
    assert_eq!(after.leader, 2);
    assert_eq!(after.isr, vec![3, 2]);
    assert_eq!(after.leader_epoch, 6);
    assert_eq!(after.partition_epoch, 8);
}

#[test]
fn no_unclean_election_when_no_isr_member_is_alive() {
    let cluster = fenced(fenced(three_brokers(), 1), 2);
    // 3 is alive but out of sync: it must not become leader.
    let before = partition(&[1, 2, 3], 1, &[1, 2]);
    let after = on_broker_fenced(&before, 1, &cluster).unwrap();
    assert_eq!(after.leader, NO_LEADER);
    assert_eq!(after.isr, vec![2]);
}

#[test]
fn the_last_isr_member_stays_in_the_isr_when_fenced() {
    let cluster = fenced(three_brokers(), 1);
    let before = partition(&[1, 2, 3], 1, &[1]);
    let after = on_broker_fenced(&before, 1, &cluster).unwrap();
    assert_eq!(after.leader, NO_LEADER);
    assert_eq!(after.isr, vec![1]);
    // Back again: it is the only replica known to have everything, and leads again.
    let cluster = three_brokers();
    let back = on_broker_unfenced(&after, &cluster).unwrap();
    assert_eq!(back.leader, 1);
    assert_eq!(back.leader_epoch, after.leader_epoch + 1);
}

#[test]
fn fencing_a_follower_only_shrinks_the_isr() {
    let cluster = fenced(three_brokers(), 3);
    let before = partition(&[1, 2, 3], 1, &[1, 2, 3]);
    let after = on_broker_fenced(&before, 3, &cluster).unwrap();
    assert_eq!((after.leader, after.leader_epoch), (1, 5));
    assert_eq!(after.isr, vec![1, 2]);
    assert!(on_broker_fenced(&partition(&[1, 2], 1, &[1, 2]), 3, &cluster).is_none());
}

#[test]
fn controlled_shutdown_moves_leadership_and_leaves_isrs() {
    let mut cluster = three_brokers();
    cluster.brokers.get_mut(&1).unwrap().in_controlled_shutdown = true;
    let led = on_controlled_shutdown(&partition(&[1, 2, 3], 1, &[1, 2, 3]), 1, &cluster).unwrap();
    assert_eq!(led.leader, 2);
    assert_eq!(led.isr, vec![2, 3]);
    let followed = on_controlled_shutdown(&partition(&[2, 1], 2, &[2, 1]), 1, &cluster).unwrap();
    assert_eq!(followed.leader, 2);
    assert_eq!(followed.isr, vec![2]);
}

#[test]
fn controlled_shutdown_keeps_a_leadership_nobody_else_can_take() {
    let mut cluster = fenced(three_brokers(), 2);
    cluster.brokers.get_mut(&1).unwrap().in_controlled_shutdown = true;
    assert!(on_controlled_shutdown(&partition(&[1, 2], 1, &[1, 2]), 1, &cluster).is_none());
    assert!(on_controlled_shutdown(&partition(&[1], 1, &[1]), 1, &cluster).is_none());
}

#[test]
fn preferred_election_needs_the_preferred_replica_in_sync() {
    let cluster = three_brokers();
    let moved = partition(&[1, 2, 3], 2, &[1, 2, 3]);
    let elected = elect_leader(&moved, &cluster, ElectionKind::Preferred).unwrap();
    assert_eq!(
        (
            elected.leader,
            elected.leader_epoch,
            elected.partition_epoch
        ),
        (1, 6, 8)
    );
    assert_eq!(
        elect_leader(&elected, &cluster, ElectionKind::Preferred),
        Err(Rejection::ElectionNotNeeded)
    );
    let out_of_sync = partition(&[1, 2, 3], 2, &[2, 3]);
    assert_eq!(
        elect_leader(&out_of_sync, &cluster, ElectionKind::Preferred),
        Err(Rejection::PreferredLeaderNotAvailable)
    );
    let preferred_fenced = fenced(three_brokers(), 1);
    assert_eq!(
        elect_leader(&moved, &preferred_fenced, ElectionKind::Preferred),
        Err(Rejection::PreferredLeaderNotAvailable)
    );
}

#[test]
fn election_from_isr_only_when_leaderless() {
    let cluster = fenced(three_brokers(), 1);
    let leaderless = partition(&[1, 2, 3], NO_LEADER, &[1, 3]);
    assert_eq!(
        elect_leader(&leaderless, &cluster, ElectionKind::FromIsr)
            .unwrap()
            .leader,
        3
    );
    let led = partition(&[1, 2, 3], 2, &[2, 3]);
    assert_eq!(
        elect_leader(&led, &cluster, ElectionKind::FromIsr),
        Err(Rejection::ElectionNotNeeded)
    );
    let nobody = partition(&[1, 2, 3], NO_LEADER, &[1]);
    assert_eq!(
        elect_leader(&nobody, &cluster, ElectionKind::FromIsr),
        Err(Rejection::EligibleLeadersNotAvailable)
    );
}

#[test]
fn alter_partition_checks_leader_and_epochs() {
    let cluster = three_brokers();
    let p = partition(&[1, 2, 3], 1, &[1, 2, 3]);
    assert_eq!(
        alter_partition(&p, &cluster, 2, 5, 7, &[2, 3]),
        Err(Rejection::NotLeaderOrFollower)
    );
    assert_eq!(
        alter_partition(&p, &cluster, 1, 4, 7, &[1, 2]),
        Err(Rejection::FencedLeaderEpoch)
    );
    assert_eq!(
        alter_partition(&p, &cluster, 1, 5, 6, &[1, 2]),
        Err(Rejection::InvalidUpdateVersion)
    );
    assert!(matches!(
        alter_partition(&p, &cluster, 1, 5, 7, &[2, 3]),
        Err(Rejection::InvalidIsr(_))
    ));
    assert!(matches!(
        alter_partition(&p, &cluster, 1, 5, 7, &[1, 4]),
        Err(Rejection::InvalidIsr(_))
    ));
    assert!(matches!(
        alter_partition(&p, &cluster, 1, 5, 7, &[1, 1]),
        Err(Rejection::InvalidIsr(_))
    ));
    let shrunk = alter_partition(&p, &cluster, 1, 5, 7, &[1, 2]).unwrap();
    assert_eq!(
        (
            shrunk.isr.clone(),
            shrunk.partition_epoch,
            shrunk.leader_epoch
        ),
        (vec![1, 2], 8, 5)
    );
    // The same proposal again is stale now.
    assert_eq!(
        alter_partition(&shrunk, &cluster, 1, 5, 7, &[1]),
        Err(Rejection::InvalidUpdateVersion)
    );
}

#[test]
fn alter_partition_refuses_to_add_a_fenced_replica() {
    let cluster = fenced(three_brokers(), 3);
    let p = partition(&[1, 2, 3], 1, &[1, 2]);
    assert_eq!(
        alter_partition(&p, &cluster, 1, 5, 7, &[1, 2, 3]),
        Err(Rejection::IneligibleReplica(3))
    );
}

#[test]
fn reassignment_adds_catches_up_then_drops() {
    let cluster = three_brokers();
    let p = partition(&[1, 2, 3], 1, &[1, 2, 3]);
    let moving = begin_reassignment(&p, &cluster, &[2, 3, 4]).unwrap();
    assert_eq!(moving.replicas, vec![2, 3, 4, 1]);
    assert_eq!(moving.adding_replicas, vec![4]);
    assert_eq!(moving.removing_replicas, vec![1]);
    assert_eq!(moving.leader, 1);
    assert_eq!(moving.partition_epoch, 8);
    // 4 caught up: the leader adds it to the ISR, which completes the move.
    let done = alter_partition(&moving, &cluster, 1, 5, 8, &[1, 2, 3, 4]).unwrap();
    assert_eq!(done.replicas, vec![2, 3, 4]);
    assert_eq!(done.isr, vec![2, 3, 4]);
    assert!(!done.is_reassigning());
    assert_eq!(done.leader, 2);
    assert_eq!(done.leader_epoch, 6);
}

#[test]
fn reassignment_waits_while_an_added_replica_is_out_of_sync() {
    let cluster = three_brokers();
    let p = partition(&[1, 2, 3], 1, &[1, 2, 3]);
    let moving = begin_reassignment(&p, &cluster, &[2, 3, 4]).unwrap();
    let mut attempt = moving.clone();
    assert!(!try_complete_reassignment(&mut attempt, &cluster));
    assert_eq!(attempt, moving);
    assert!(matches!(
        begin_reassignment(&p, &cluster, &[2, 9]),
        Err(Rejection::UnknownBroker(9))
    ));
    assert!(matches!(
        begin_reassignment(&p, &cluster, &[]),
        Err(Rejection::InvalidReplicaAssignment(_))
    ));
}

#[test]
fn a_new_target_replaces_a_reassignment_in_progress() {
    let cluster = three_brokers();
    let p = partition(&[1, 2], 1, &[1, 2]);
    let first = begin_reassignment(&p, &cluster, &[3, 4]).unwrap();
    assert_eq!(first.replicas, vec![3, 4, 1, 2]);
    let second = begin_reassignment(&first, &cluster, &[1, 3]).unwrap();
    assert_eq!(second.replicas, vec![1, 3, 2]);
    assert_eq!(second.adding_replicas, vec![3]);
    assert_eq!(second.removing_replicas, vec![2]);
}

#[test]
fn shrinking_the_replica_set_completes_at_once() {
    let cluster = three_brokers();
    let p = partition(&[1, 2, 3], 1, &[1, 2, 3]);
    let done = begin_reassignment(&p, &cluster, &[2, 3]).unwrap();
    assert_eq!(
        (done.replicas.clone(), done.isr.clone(), done.leader),
        (vec![2, 3], vec![2, 3], 2)
    );
    assert!(!done.is_reassigning());
}
