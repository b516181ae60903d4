//! Where every partition's replicas should be once a cluster's brokers change: pure, and
//! deterministic, so that a control plane restarted in the middle of a move computes the same
//! plan from what has moved so far.
//!
//! Three passes over the current assignment, each moving as little as it can:
//! 1. a replica on a broker that leaves goes to the least-loaded staying broker, preferring a zone
//!    the partition has no other replica in;
//! 2. while a broker holds at least two replicas more than another that could take one (not
//!    already a replica of that partition, in the same zone or a zone the partition lacks), one
//!    replica moves from the fuller to the emptier: replica counts end within one of each other;
//! 3. the same for preferred leaders (the first replica), by reordering a partition's replicas,
//!    which moves no data.
//!
//! An assignment that is already balanced is returned unchanged, so running the plan again after
//! it was carried out moves nothing. Balance is by replica count, not bytes (the control plane
//! does not see partition sizes).

use std::collections::{BTreeMap, BTreeSet};

/// One partition's replicas, first the preferred leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
}

/// Why no balanced assignment exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{topic}-{partition} has {replication_factor} replicas, more than the {brokers} brokers that would remain")]
pub struct TooFewBrokers {
    pub topic: String,
    pub partition: i32,
    pub replication_factor: usize,
    pub brokers: usize,
}

/// The balanced assignment of `current` over `brokers` (broker id -> zone): every partition in
/// the order given, with its target replicas.
pub fn balance(
    current: &[Placement],
    brokers: &BTreeMap<i32, String>,
) -> Result<Vec<Placement>, TooFewBrokers> {
    let mut target: Vec<Placement> = current.to_vec();
    let mut load: BTreeMap<i32, usize> = brokers.keys().map(|b| (*b, 0)).collect();
    for placement in &target {
        for replica in &placement.replicas {
            if let Some(count) = load.get_mut(replica) {
                *count += 1;
            }
        }
    }
    let zone = |b: i32| brokers.get(&b).map(String::as_str);
    // 1. Off the leaving brokers.
    for placement in &mut target {
        for index in 0..placement.replicas.len() {
            let leaving = placement.replicas[index];
            if brokers.contains_key(&leaving) {
                continue;
            }
            let others: Vec<i32> = placement
                .replicas
                .iter()
                .copied()
                .filter(|r| *r != leaving)
                .collect();
            let zones: BTreeSet<&str> = others.iter().filter_map(|r| zone(*r)).collect();
            let Some(chosen) = brokers
                .keys()
                .copied()
                .filter(|b| !others.contains(b))
                .min_by_key(|b| (zones.contains(zone(*b).unwrap_or("")), load[b], *b))
            else {
                return Err(TooFewBrokers {
                    topic: placement.topic.clone(),
                    partition: placement.partition,
                    replication_factor: placement.replicas.len(),
                    brokers: brokers.len(),
                });
            };
            placement.replicas[index] = chosen;
            *load.get_mut(&chosen).expect("a staying broker") += 1;
        }
    }
    // 2. Replica counts within one of each other. Each move lowers the sum of squared loads, so
    // the loop ends; the bound only guards against a bug.
    let mut moved = true;
    let mut rounds = 0;
    while moved && rounds < 1000 {
        moved = false;
        rounds += 1;
        for placement in &mut target {
            for index in 0..placement.replicas.len() {
                let from = placement.replicas[index];
                let others: Vec<i32> = placement
                    .replicas
                    .iter()
                    .copied()
                    .filter(|r| *r != from)
                    .collect();
                let zones: BTreeSet<&str> = others.iter().filter_map(|r| zone(*r)).collect();
                let keeps_zones =
                    |b: i32| zone(b) == zone(from) || !zones.contains(zone(b).unwrap_or(""));
                let candidate = brokers
                    .keys()
                    .copied()
                    .filter(|b| !placement.replicas.contains(b) && keeps_zones(*b))
                    .filter(|b| load[b] + 1 < load[&from])
                    .min_by_key(|b| (zone(*b) != zone(from), load[b], *b));
                if let Some(to) = candidate {
                    placement.replicas[index] = to;
                    *load.get_mut(&from).expect("a staying broker") -= 1;
                    *load.get_mut(&to).expect("a staying broker") += 1;
                    moved = true;
                }
            }
        }
    }
    // 3. Preferred leaders within one of each other.
    let mut leaders: BTreeMap<i32, usize> = brokers.keys().map(|b| (*b, 0)).collect();
    for placement in &target {
        if let Some(first) = placement.replicas.first() {
            *leaders.get_mut(first).expect("a staying broker") += 1;
        }
    }
    let mut moved = true;
    let mut rounds = 0;
    while moved && rounds < 1000 {
        moved = false;
        rounds += 1;
        for placement in &mut target {
            let Some(&first) = placement.replicas.first() else {
                continue;
            };
            let better = placement.replicas[1..]
                .iter()
                .copied()
                .filter(|r| leaders[r] + 1 < leaders[&first])
                .min_by_key(|r| (leaders[r], *r));
            if let Some(next) = better {
                let at = placement
                    .replicas
                    .iter()
                    .position(|r| *r == next)
                    .expect("a replica of the partition");
                placement.replicas.swap(0, at);
                *leaders.get_mut(&first).expect("a staying broker") -= 1;
                *leaders.get_mut(&next).expect("a staying broker") += 1;
                moved = true;
            }
        }
    }
    Ok(target)
}

/// The partitions whose replicas differ between `current` and `target` (the same partitions in
/// the same order, as [`balance`] returns them).
pub fn moves(current: &[Placement], target: &[Placement]) -> Vec<Placement> {
    current
        .iter()
        .zip(target)
        .filter(|(now, then)| now.replicas != then.replicas)
        .map(|(_, then)| then.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(count: i32, zones: usize) -> BTreeMap<i32, String> {
        (1..=count)
            .map(|b| (b, format!("zone-{}", (b as usize - 1) % zones)))
            .collect()
    }

    /// `partitions` partitions of RF 3 spread evenly over brokers 1..=3.
    fn three_broker_topic(partitions: i32) -> Vec<Placement> {
        (0..partitions)
            .map(|p| Placement {
                topic: "t".into(),
                partition: p,
                replicas: (0..3).map(|i| (p + i) % 3 + 1).collect(),
            })
            .collect()
    }

    fn counts(target: &[Placement], leaders_only: bool) -> BTreeMap<i32, usize> {
        let mut counts = BTreeMap::new();
        for placement in target {
            let replicas = if leaders_only {
                &placement.replicas[..1]
            } else {
                &placement.replicas[..]
            };
            for r in replicas {
                *counts.entry(*r).or_default() += 1;
            }
        }
        counts
    }

    fn zones_of(placement: &Placement, brokers: &BTreeMap<i32, String>) -> usize {
        placement
            .replicas
            .iter()
            .map(|r| &brokers[r])
            .collect::<BTreeSet<_>>()
            .len()
    }

    #[test]
    fn scaling_out_spreads_replicas_and_leaders_evenly_and_keeps_every_zone() {
        let current = three_broker_topic(12);
        let six = brokers(6, 3);
        let target = balance(&current, &six).unwrap();
        let replicas = counts(&target, false);
        assert_eq!(replicas.values().copied().collect::<Vec<_>>(), vec![6; 6]);
        let leaders = counts(&target, true);
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2; 6]);
        for placement in &target {
            assert_eq!(zones_of(placement, &six), 3, "{placement:?}");
            let distinct: BTreeSet<_> = placement.replicas.iter().collect();
            assert_eq!(distinct.len(), 3);
        }
        // Only what must move: half of the 36 replicas.
        let moved: usize = current
            .iter()
            .zip(&target)
            .map(|(a, b)| {
                b.replicas
                    .iter()
                    .filter(|r| !a.replicas.contains(r))
                    .count()
            })
            .sum();
        assert_eq!(moved, 18);
    }

    #[test]
    fn a_balanced_assignment_is_left_alone() {
        let current = three_broker_topic(12);
        let three = brokers(3, 3);
        assert_eq!(balance(&current, &three).unwrap(), current);
        let six = brokers(6, 3);
        let once = balance(&current, &six).unwrap();
        let twice = balance(&once, &six).unwrap();
        assert!(
            moves(&once, &twice).is_empty(),
            "{:?}",
            moves(&once, &twice)
        );
    }

    #[test]
    fn scaling_in_moves_every_replica_off_the_leaving_brokers() {
        let six = brokers(6, 3);
        let spread = balance(&three_broker_topic(12), &six).unwrap();
        let three = brokers(3, 3);
        let target = balance(&spread, &three).unwrap();
        for placement in &target {
            assert!(placement.replicas.iter().all(|r| *r <= 3), "{placement:?}");
            assert_eq!(zones_of(placement, &three), 3);
        }
        assert_eq!(
            counts(&target, false).values().copied().collect::<Vec<_>>(),
            vec![12; 3]
        );
        assert_eq!(
            counts(&target, true).values().copied().collect::<Vec<_>>(),
            vec![4; 3]
        );
    }

    #[test]
    fn too_few_brokers_for_a_replication_factor_is_refused() {
        let current = vec![Placement {
            topic: "wide".into(),
            partition: 0,
            replicas: vec![1, 2, 3, 4],
        }];
        let error = balance(&current, &brokers(3, 3)).unwrap_err();
        assert_eq!(error.replication_factor, 4);
        assert_eq!(error.brokers, 3);
    }

    #[test]
    fn uneven_counts_end_within_one() {
        // 7 partitions of RF 2 on brokers 1 and 2, spread over 4 brokers in 2 zones.
        let current: Vec<Placement> = (0..7)
            .map(|p| Placement {
                topic: "t".into(),
                partition: p,
                replicas: if p % 2 == 0 { vec![1, 2] } else { vec![2, 1] },
            })
            .collect();
        let four = brokers(4, 2);
        let target = balance(&current, &four).unwrap();
        let replicas = counts(&target, false);
        let (min, max) = (
            replicas.values().min().unwrap(),
            replicas.values().max().unwrap(),
        );
        assert!(max - min <= 1, "{replicas:?}");
        for placement in &target {
            assert_eq!(zones_of(placement, &four), 2, "{placement:?}");
        }
    }
}
