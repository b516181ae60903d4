//! Replica placement for new topics and partitions.
//!
//! Greedy and deterministic: each new partition takes as leader the eligible broker that leads
//! the fewest partitions (counting the existing ones), then followers from racks the partition
//! does not use yet, the least loaded first. Ties rotate from the leader's position so that
//! follower sets differ between partitions. With brokers spread evenly over racks this spreads
//! leaders and replicas evenly over brokers and racks.

use std::collections::BTreeMap;

use crate::command::Rejection;
use crate::metadata::ClusterMetadata;

/// Kafka's default: 3, or the number of eligible brokers when smaller.
pub fn default_replication_factor(cluster: &ClusterMetadata) -> usize {
    cluster.eligible_brokers().count().min(3)
}

#[derive(Debug, Clone, Copy, Default)]
struct Load {
    leaders: usize,
    replicas: usize,
}

/// Assignments (`result[i]` = replicas of the i-th new partition, preferred leader first) for
/// `count` new partitions with `replication_factor` replicas each, over the eligible brokers.
pub fn place_partitions(
    cluster: &ClusterMetadata,
    count: usize,
    replication_factor: usize,
) -> Result<Vec<Vec<i32>>, Rejection> {
    let brokers: Vec<(i32, Option<&str>)> = cluster
        .eligible_brokers()
        .map(|b| (b.id, b.rack.as_deref()))
        .collect();
    if replication_factor == 0 {
        return Err(Rejection::InvalidReplicationFactor(
            "must be at least 1".into(),
        ));
    }
    if replication_factor > brokers.len() {
        return Err(Rejection::InvalidReplicationFactor(format!(
            "{replication_factor} is larger than the {} available brokers",
            brokers.len()
        )));
    }
    let mut load: BTreeMap<i32, Load> = brokers
        .iter()
        .map(|(id, _)| (*id, Load::default()))
        .collect();
    for (_, partition) in cluster.partitions() {
        for (position, replica) in partition.replicas.iter().enumerate() {
            if let Some(l) = load.get_mut(replica) {
                l.replicas += 1;
                if position == 0 {
                    l.leaders += 1;
                }
            }
        }
    }

    let n = brokers.len();
    let mut assignments = Vec::with_capacity(count);
    for _ in 0..count {
        let leader_pos = (0..n)
            .min_by_key(|&i| {
                let l = load[&brokers[i].0];
                (l.leaders, l.replicas, i)
            })
            .expect("at least one broker");
        let mut chosen = vec![leader_pos];
        while chosen.len() < replication_factor {
            let next = (0..n)
                .filter(|i| !chosen.contains(i))
                .min_by_key(|&i| {
                    let rack_taken = brokers[i].1.is_some()
                        && chosen.iter().any(|c| brokers[*c].1 == brokers[i].1);
                    let l = load[&brokers[i].0];
                    (rack_taken, l.replicas, (i + n - leader_pos) % n)
                })
                .expect("replication factor checked against broker count");
            chosen.push(next);
        }
        let replicas: Vec<i32> = chosen.iter().map(|i| brokers[*i].0).collect();
        for (position, id) in replicas.iter().enumerate() {
            let l = load.get_mut(id).expect("eligible broker");
            l.replicas += 1;
            if position == 0 {
                l.leaders += 1;
            }
        }
        assignments.push(replicas);
    }
    Ok(assignments)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::controller::test_support::{cluster_with_brokers, count_by};

    fn spread(assignments: &[Vec<i32>]) -> (BTreeMap<i32, usize>, BTreeMap<i32, usize>) {
        let leaders = count_by(assignments.iter().map(|a| a[0]));
        let replicas = count_by(assignments.iter().flatten().copied());
        (leaders, replicas)
    }

    fn max_minus_min(counts: &BTreeMap<i32, usize>) -> usize {
        counts.values().max().unwrap() - counts.values().min().unwrap()
    }

    #[test]
    fn three_brokers_rf3_every_broker_leads_equally() {
        let cluster = cluster_with_brokers(&[(1, None), (2, None), (3, None)]);
        let assignments = place_partitions(&cluster, 6, 3).unwrap();
        let (leaders, replicas) = spread(&assignments);
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
        assert_eq!(
            replicas.values().copied().collect::<Vec<_>>(),
            vec![6, 6, 6]
        );
        for a in &assignments {
            assert_eq!(a.iter().collect::<BTreeSet<_>>().len(), 3);
        }
    }

    #[test]
    fn leaders_and_replicas_even_over_five_brokers() {
        let cluster =
            cluster_with_brokers(&[(1, None), (2, None), (3, None), (4, None), (5, None)]);
        let assignments = place_partitions(&cluster, 10, 3).unwrap();
        let (leaders, replicas) = spread(&assignments);
        assert_eq!(leaders.len(), 5);
        assert_eq!(max_minus_min(&leaders), 0);
        assert_eq!(max_minus_min(&replicas), 0, "{replicas:?}");
        // Follower sets differ: not every partition led by 1 has the same followers as another.
        let distinct: BTreeSet<Vec<i32>> = assignments.iter().cloned().collect();
        assert!(distinct.len() >= 5);
    }

    #[test]
    fn every_partition_spans_all_racks_when_rf_equals_rack_count() {
        let cluster = cluster_with_brokers(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("b")),
            (5, Some("c")),
            (6, Some("c")),
        ]);
        let racks: BTreeMap<i32, String> = cluster
            .brokers
            .values()
            .map(|b| (b.id, b.rack.clone().unwrap()))
            .collect();
        let assignments = place_partitions(&cluster, 12, 3).unwrap();
        for a in &assignments {
            let used: BTreeSet<&String> = a.iter().map(|b| &racks[b]).collect();
            assert_eq!(used.len(), 3, "partition {a:?} does not span 3 racks");
        }
        let (leaders, replicas) = spread(&assignments);
        assert_eq!(max_minus_min(&leaders), 0, "{leaders:?}");
        assert_eq!(max_minus_min(&replicas), 0, "{replicas:?}");
        let per_rack: BTreeMap<&String, usize> =
            assignments.iter().fold(BTreeMap::new(), |mut m, a| {
                *m.entry(&racks[&a[0]]).or_default() += 1;
                m
            });
        assert_eq!(
            per_rack.values().copied().collect::<Vec<_>>(),
            vec![4, 4, 4]
        );
    }

    #[test]
    fn two_racks_rf2_puts_one_replica_in_each_rack() {
        let cluster = cluster_with_brokers(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("b")),
        ]);
        for a in place_partitions(&cluster, 8, 2).unwrap() {
            let a_side = a.iter().filter(|b| **b <= 2).count();
            assert_eq!(a_side, 1, "{a:?}");
        }
    }

    #[test]
    fn new_partitions_fill_the_least_loaded_brokers() {
        let mut cluster = cluster_with_brokers(&[(1, None), (2, None), (3, None)]);
        crate::controller::test_support::add_topic(&mut cluster, "busy", &[vec![1, 2], vec![1, 2]]);
        let assignments = place_partitions(&cluster, 1, 1).unwrap();
        assert_eq!(assignments, vec![vec![3]]);
    }

    #[test]
    fn fenced_brokers_get_nothing_and_rf_is_bounded() {
        let mut cluster = cluster_with_brokers(&[(1, None), (2, None), (3, None)]);
        cluster.brokers.get_mut(&3).unwrap().fenced = true;
        assert_eq!(default_replication_factor(&cluster), 2);
        let assignments = place_partitions(&cluster, 4, 2).unwrap();
        assert!(assignments.iter().flatten().all(|b| *b != 3));
        assert!(matches!(
            place_partitions(&cluster, 1, 3),
            Err(Rejection::InvalidReplicationFactor(_))
        ));
        assert!(matches!(
            place_partitions(&cluster, 1, 0),
            Err(Rejection::InvalidReplicationFactor(_))
        ));
    }
}
