//! The leader's view of a partition's replicas: who is in sync, how far each follower got, and
//! so where the high watermark may move. Pure logic; the partition applies its answers.
//!
//! Kafka's rules: the high watermark is the smallest log end offset among the in-sync replicas
//! (the leader included); a follower is caught up when it fetched at or beyond the leader's log
//! end offset of its previous fetch; a follower not caught up for `replica.lag.time.max.ms`
//! leaves the ISR, and one whose log end offset reached the high watermark joins it again. ISR
//! changes are proposed to the controller, never applied locally first.

use std::collections::BTreeMap;

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    pub log_end_offset: i64,
    /// Last time the follower had everything the leader had (ms since the epoch).
    pub last_caught_up_ms: i64,
    /// The leader's log end offset when this follower fetched last.
    leader_end_at_last_fetch: i64,
    /// The follower's log start offset as its last fetch reported it (-1: not yet).
    pub log_start_offset: i64,
}

/// Leadership and replica assignment of a partition, as known to this broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSet {
    pub local_id: i32,
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Replicas a reassignment is adding (also in `replicas`); they leave this list once the
    /// reassignment completes, which is when all of them are in the ISR.
    pub adding_replicas: Vec<i32>,
    followers: BTreeMap<i32, FollowerProgress>,
}

impl ReplicaSet {
    /// This broker as the only replica, leader and in-sync member (a single-node cluster).
    pub fn single(local_id: i32, leader_epoch: i32) -> ReplicaSet {
        ReplicaSet::new(
            local_id,
            local_id,
            leader_epoch,
            0,
            vec![local_id],
            vec![local_id],
            0,
        )
    }

    pub fn new(
        local_id: i32,
        leader_id: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        now_ms: i64,
    ) -> ReplicaSet {
        let followers = replicas
            .iter()
            .filter(|&&id| id != local_id)
            .map(|&id| {
                (
                    id,
                    FollowerProgress {
                        log_end_offset: -1,
                        // A new leader gives every follower a full lag period to show up.
                        last_caught_up_ms: now_ms,
                        leader_end_at_last_fetch: -1,
                        log_start_offset: -1,
                    },
                )
            })
            .collect();
        ReplicaSet {
            local_id,
            leader_id,
            leader_epoch,
            partition_epoch,
            replicas,
            isr,
            adding_replicas: Vec::new(),
            followers,
        }
    }

    /// The same, with the replicas a reassignment is adding.
    pub fn with_adding_replicas(mut self, adding_replicas: Vec<i32>) -> ReplicaSet {
        self.adding_replicas = adding_replicas;
        self
    }

    /// Takes a new ISR, partition epoch and replica list at the same leader epoch, keeping
    /// what is known of the followers.
    pub fn update_assignment(&mut self, next: ReplicaSet) {
        let mut followers = next.followers;
        for (id, progress) in followers.iter_mut() {
            if let Some(known) = self.followers.get(id) {
                *progress = *known;
            }
        }
        self.followers = followers;
        self.partition_epoch = next.partition_epoch;
        self.replicas = next.replicas;
        self.isr = next.isr;
        self.adding_replicas = next.adding_replicas;
    }

    pub fn is_leader(&self) -> bool {
        self.leader_id == self.local_id
    }

    pub fn is_replica(&self, broker: i32) -> bool {
        self.replicas.contains(&broker)
    }

    /// Whether `broker` is a replica a reassignment is adding that has not joined the ISR yet:
    /// it is copying the partition's data (the replication throttle's concern).
    pub fn is_catching_up_for_reassignment(&self, broker: i32) -> bool {
        self.adding_replicas.contains(&broker) && !self.isr.contains(&broker)
    }

    pub fn follower(&self, broker: i32) -> Option<FollowerProgress> {
        self.followers.get(&broker).copied()
    }

    /// Records a follower's fetch at `fetch_offset` (what it has) while the leader's log ends
    /// at `leader_end`.
    pub fn record_fetch(&mut self, broker: i32, fetch_offset: i64, leader_end: i64, now_ms: i64) {
        let Some(progress) = self.followers.get_mut(&broker) else {
            return;
        };
        if fetch_offset >= leader_end {
            progress.last_caught_up_ms = now_ms;
        } else if fetch_offset >= progress.leader_end_at_last_fetch
            && progress.leader_end_at_last_fetch >= 0
        {
            // It has everything the leader had at its previous fetch: caught up as of then.
            progress.last_caught_up_ms = progress.last_caught_up_ms.max(now_ms);
        }
        progress.log_end_offset = fetch_offset;
        progress.leader_end_at_last_fetch = leader_end;
    }

    /// Records the log start offset a follower reported in its fetch.
    pub fn record_log_start(&mut self, broker: i32, log_start_offset: i64) {
        if let Some(progress) = self.followers.get_mut(&broker) {
            progress.log_start_offset = log_start_offset;
        }
    }

    /// The smallest log start offset in the ISR (Kafka's low watermark), the leader's being
    /// `leader_start`: DeleteRecords is done once it reaches the requested offset.
    pub fn low_watermark(&self, leader_start: i64) -> i64 {
        self.isr_minimum(leader_start, |p| p.log_start_offset)
    }

    /// Where the high watermark may be: the smallest log end offset in the ISR.
    pub fn high_watermark(&self, leader_end: i64) -> i64 {
        self.isr_minimum(leader_end, |p| p.log_end_offset).max(0)
    }

    /// The smallest of `leader_value` and `of` each in-sync follower (-1 for one not heard of).
    fn isr_minimum(&self, leader_value: i64, of: impl Fn(&FollowerProgress) -> i64) -> i64 {
        self.isr
            .iter()
            .map(|&id| {
                if id == self.local_id {
                    leader_value
                } else {
                    self.followers.get(&id).map_or(-1, &of)
                }
            })
            .min()
            .unwrap_or(leader_value)
    }

    /// The ISR without the followers that have not caught up for `max_lag_ms`, or None when
    /// nobody lags. The leader never removes itself.
    pub fn shrunk_isr(&self, now_ms: i64, max_lag_ms: i64) -> Option<Vec<i32>> {
        let keep: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|&id| {
                id == self.local_id
                    || self
                        .followers
                        .get(&id)
                        .is_some_and(|p| now_ms - p.last_caught_up_ms <= max_lag_ms)
            })
            .collect();
        (keep.len() < self.isr.len()).then_some(keep)
    }

    /// The ISR plus the replicas outside it whose log reached the high watermark, or None.
    pub fn expanded_isr(&self, high_watermark: i64, leader_end: i64) -> Option<Vec<i32>> {
        let joining: Vec<i32> = self
            .followers
            .iter()
            .filter(|(id, p)| {
                !self.isr.contains(id)
                    && p.log_end_offset >= high_watermark
                    && p.log_end_offset >= 0
                    && (high_watermark > 0 || leader_end == 0 || p.log_end_offset > 0)
            })
            .map(|(&id, _)| id)
            .collect();
        if joining.is_empty() {
            return None;
        }
        let mut isr = self.isr.clone();
        isr.extend(joining);
        isr.sort_unstable();
        Some(isr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> ReplicaSet {
        ReplicaSet::new(1, 1, 5, 0, vec![1, 2, 3], vec![1, 2, 3], 1_000)
    }

    #[test]
    fn high_watermark_is_the_smallest_end_in_the_isr() {
        let mut set = three();
        assert_eq!(set.high_watermark(100), 0);
        set.record_fetch(2, 80, 100, 1_100);
        set.record_fetch(3, 60, 100, 1_100);
        assert_eq!(set.high_watermark(100), 60);
        set.isr = vec![1, 2];
        assert_eq!(set.high_watermark(100), 80);
        assert_eq!(ReplicaSet::single(1, 0).high_watermark(42), 42);
    }

    #[test]
    fn lagging_followers_leave_and_caught_up_ones_return() {
        let mut set = three();
        set.record_fetch(2, 100, 100, 2_000);
        set.record_fetch(3, 10, 100, 2_000);
        assert_eq!(set.shrunk_isr(1_500 + 10_000, 10_000), Some(vec![1, 2]));
        assert_eq!(set.shrunk_isr(2_000, 10_000), None);
        set.isr = vec![1, 2];
        assert_eq!(set.expanded_isr(100, 100), None);
        set.record_fetch(3, 100, 100, 13_000);
        assert_eq!(set.expanded_isr(100, 100), Some(vec![1, 2, 3]));
    }

    #[test]
    fn the_low_watermark_is_the_smallest_log_start_in_the_isr() {
        let mut set = three();
        assert_eq!(set.low_watermark(40), -1, "followers not heard of yet");
        set.record_log_start(2, 40);
        set.record_log_start(3, 0);
        assert_eq!(set.low_watermark(40), 0);
        set.isr = vec![1, 2];
        assert_eq!(set.low_watermark(40), 40);
        assert_eq!(ReplicaSet::single(1, 0).low_watermark(7), 7);
    }

    #[test]
    fn an_added_replica_catches_up_for_its_reassignment_until_it_is_in_sync() {
        let mut set = ReplicaSet::new(1, 1, 5, 0, vec![1, 2, 3, 4], vec![1, 2, 3], 1_000)
            .with_adding_replicas(vec![4]);
        assert!(set.is_catching_up_for_reassignment(4));
        assert!(!set.is_catching_up_for_reassignment(2), "in sync");
        set.record_fetch(4, 100, 100, 2_000);
        let joined = ReplicaSet::new(1, 1, 5, 1, vec![1, 2, 3, 4], vec![1, 2, 3, 4], 2_000)
            .with_adding_replicas(vec![4]);
        set.update_assignment(joined);
        assert!(!set.is_catching_up_for_reassignment(4), "joined the ISR");
        assert_eq!(
            set.follower(4).unwrap().log_end_offset,
            100,
            "progress kept"
        );
    }

    #[test]
    fn a_follower_keeping_up_with_a_busy_leader_counts_as_caught_up() {
        let mut set = three();
        set.record_fetch(2, 50, 100, 2_000);
        // The leader moved on to 150, but the follower now has everything it had at 2_000.
        set.record_fetch(2, 100, 150, 9_000);
        assert_eq!(set.follower(2).unwrap().last_caught_up_ms, 9_000);
    }
}
