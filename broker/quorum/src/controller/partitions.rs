//! Partition state transitions: leader election, ISR rules, controlled shutdown, reassignment.
//!
//! Pure functions from (partition, cluster view) to the next partition state; the state machine
//! calls them while applying commands, so every node computes the same result. Each one returns
//! `None`/an error when nothing changes, and bumps `partition_epoch` exactly once per change.

use crate::command::{ElectionKind, Rejection};
use crate::metadata::{ClusterMetadata, PartitionState, NO_LEADER};

/// The first replica, in assignment order, that is in the ISR and eligible to lead.
/// No unclean election: a replica outside the ISR is never chosen.
pub fn choose_leader(partition: &PartitionState, cluster: &ClusterMetadata) -> Option<i32> {
    partition
        .replicas
        .iter()
        .copied()
        .find(|r| partition.isr.contains(r) && cluster.is_eligible(*r))
}

fn set_leader(next: &mut PartitionState, leader: i32) {
    if next.leader != leader {
        next.leader = leader;
        next.leader_epoch += 1;
    }
}

fn changed(before: &PartitionState, mut next: PartitionState) -> Option<PartitionState> {
    if &next == before {
        None
    } else {
        next.partition_epoch = before.partition_epoch + 1;
        Some(next)
    }
}

/// `broker` was fenced (already marked so in `cluster`): it leaves the ISR unless it is the last
/// member (kept so that it can lead again when it comes back, since no other replica is known to
/// have every acknowledged record), and its leadership moves to the rest of the ISR, or to
/// nobody.
pub fn on_broker_fenced(
    partition: &PartitionState,
    broker: i32,
    cluster: &ClusterMetadata,
) -> Option<PartitionState> {
    let mut next = partition.clone();
    if next.isr.len() > 1 {
        next.isr.retain(|r| *r != broker);
    }
    if next.leader == broker {
        let leader = choose_leader(&next, cluster).unwrap_or(NO_LEADER);
        set_leader(&mut next, leader);
    }
    changed(partition, next)
}

/// `broker` begins a controlled shutdown (already marked so in `cluster`). Unlike a fence it is
/// still running: it keeps a leadership that no other eligible ISR member can take, and it stays
/// in the ISR of such a partition.
pub fn on_controlled_shutdown(
    partition: &PartitionState,
    broker: i32,
    cluster: &ClusterMetadata,
) -> Option<PartitionState> {
    let mut next = partition.clone();
    if next.leader == broker {
        if let Some(leader) = choose_leader(&next, cluster) {
            set_leader(&mut next, leader);
            next.isr.retain(|r| *r != broker);
        }
    } else if next.isr.len() > 1 {
        next.isr.retain(|r| *r != broker);
    }
    changed(partition, next)
}

/// `broker` was unfenced: a leaderless partition whose ISR it is in gets it back as leader.
pub fn on_broker_unfenced(
    partition: &PartitionState,
    cluster: &ClusterMetadata,
) -> Option<PartitionState> {
    if partition.leader != NO_LEADER {
        return None;
    }
    let mut next = partition.clone();
    let leader = choose_leader(&next, cluster)?;
    set_leader(&mut next, leader);
    changed(partition, next)
}

/// Kafka's ElectLeaders.
pub fn elect_leader(
    partition: &PartitionState,
    cluster: &ClusterMetadata,
    kind: ElectionKind,
) -> Result<PartitionState, Rejection> {
    let mut next = partition.clone();
    match kind {
        ElectionKind::Preferred => {
            let preferred = partition.preferred_leader();
            if partition.leader == preferred {
                return Err(Rejection::ElectionNotNeeded);
            }
            if !partition.isr.contains(&preferred) || !cluster.is_eligible(preferred) {
                return Err(Rejection::PreferredLeaderNotAvailable);
            }
            set_leader(&mut next, preferred);
        }
        ElectionKind::FromIsr => {
            if partition.leader != NO_LEADER && cluster.is_eligible(partition.leader) {
                return Err(Rejection::ElectionNotNeeded);
            }
            let leader =
                choose_leader(partition, cluster).ok_or(Rejection::EligibleLeadersNotAvailable)?;
            set_leader(&mut next, leader);
        }
    }
    changed(partition, next).ok_or(Rejection::ElectionNotNeeded)
}

/// Kafka's AlterPartition: the leader proposes a new ISR, based on the epochs it knows. A
/// proposal from a deposed leader or built on an old partition state is refused, so ISR changes
/// can never race with elections.
pub fn alter_partition(
    partition: &PartitionState,
    cluster: &ClusterMetadata,
    leader_id: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    new_isr: &[i32],
) -> Result<PartitionState, Rejection> {
    if leader_id != partition.leader {
        return Err(Rejection::NotLeaderOrFollower);
    }
    if leader_epoch != partition.leader_epoch {
        return Err(Rejection::FencedLeaderEpoch);
    }
    if partition_epoch != partition.partition_epoch {
        return Err(Rejection::InvalidUpdateVersion);
    }
    validate_replica_list(new_isr).map_err(Rejection::InvalidIsr)?;
    if !new_isr.contains(&leader_id) {
        return Err(Rejection::InvalidIsr(
            "the leader must be in the ISR".into(),
        ));
    }
    if let Some(stranger) = new_isr.iter().find(|r| !partition.replicas.contains(r)) {
        return Err(Rejection::InvalidIsr(format!(
            "{stranger} is not a replica"
        )));
    }
    if let Some(ineligible) = new_isr
        .iter()
        .find(|r| !partition.isr.contains(r) && !cluster.is_eligible(**r))
    {
        return Err(Rejection::IneligibleReplica(*ineligible));
    }
    let mut next = partition.clone();
    next.isr = new_isr.to_vec();
    try_complete_reassignment(&mut next, cluster);
    next.partition_epoch = partition.partition_epoch + 1;
    Ok(next)
}

/// Starts moving a partition to `target` (Kafka's AlterPartitionReassignments): the replicas
/// become target ∪ current until every added replica is in the ISR, then the removed ones go.
/// A new target replaces a reassignment already in progress.
pub fn begin_reassignment(
    partition: &PartitionState,
    cluster: &ClusterMetadata,
    target: &[i32],
) -> Result<PartitionState, Rejection> {
    validate_replica_list(target).map_err(Rejection::InvalidReplicaAssignment)?;
    if let Some(unknown) = target.iter().find(|b| cluster.broker(**b).is_none()) {
        return Err(Rejection::UnknownBroker(*unknown));
    }
    let original: Vec<i32> = partition
        .replicas
        .iter()
        .copied()
        .filter(|r| !partition.adding_replicas.contains(r))
        .collect();
    let mut next = partition.clone();
    next.adding_replicas = target
        .iter()
        .copied()
        .filter(|r| !original.contains(r))
        .collect();
    next.removing_replicas = original
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    next.replicas = target.to_vec();
    next.replicas.extend(next.removing_replicas.iter().copied());
    // Replicas of a cancelled earlier target leave the ISR, unless that would empty it.
    let isr: Vec<i32> = next
        .isr
        .iter()
        .copied()
        .filter(|r| next.replicas.contains(r))
        .collect();
    if !isr.is_empty() {
        next.isr = isr;
    }
    if !next.replicas.contains(&next.leader) {
        let leader = choose_leader(&next, cluster).unwrap_or(NO_LEADER);
        set_leader(&mut next, leader);
    }
    try_complete_reassignment(&mut next, cluster);
    Ok(changed(partition, next).unwrap_or_else(|| partition.clone()))
}

/// Completes the reassignment in `next` if every adding replica is in the ISR: the replicas
/// become the target, removed replicas leave the ISR, and a removed leader hands over to the
/// first eligible target replica in the ISR. Returns whether it completed.
pub fn try_complete_reassignment(next: &mut PartitionState, cluster: &ClusterMetadata) -> bool {
    if !next.is_reassigning() || !next.adding_replicas.iter().all(|r| next.isr.contains(r)) {
        return false;
    }
    let target: Vec<i32> = next
        .replicas
        .iter()
        .copied()
        .filter(|r| !next.removing_replicas.contains(r))
        .collect();
    let isr: Vec<i32> = next
        .isr
        .iter()
        .copied()
        .filter(|r| target.contains(r))
        .collect();
    if isr.is_empty() {
        // No target replica has the data yet: keep the old replicas serving.
        return false;
    }
    next.replicas = target;
    next.isr = isr;
    next.adding_replicas.clear();
    next.removing_replicas.clear();
    if !next.replicas.contains(&next.leader) || next.leader == NO_LEADER {
        let leader = choose_leader(next, cluster).unwrap_or(NO_LEADER);
        set_leader(next, leader);
    }
    true
}

/// Non-empty, no duplicates, no negative ids.
pub fn validate_replica_list(replicas: &[i32]) -> Result<(), String> {
    if replicas.is_empty() {
        return Err("empty replica list".into());
    }
    if let Some(negative) = replicas.iter().find(|r| **r < 0) {
        return Err(format!("invalid broker id {negative}"));
    }
    for (i, r) in replicas.iter().enumerate() {
        if replicas[..i].contains(r) {
            return Err(format!("broker {r} listed twice"));
        }
    }
    Ok(())
}

/// How many partitions `broker` leads that another eligible ISR member could lead: zero means
/// its controlled shutdown is done.
pub fn leaderships_to_move(cluster: &ClusterMetadata, broker: i32) -> usize {
    cluster
        .led_by(broker)
        .filter(|(_, p)| {
            p.isr
                .iter()
                .any(|r| *r != broker && cluster.is_eligible(*r))
        })
        .count()
}
