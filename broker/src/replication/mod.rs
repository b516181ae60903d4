//! Replication, Kafka's way: followers fetch from their partition's leader (a Fetch with their
//! replica id), append what they get with its offsets, and take the leader's high watermark;
//! the leader tracks their progress and proposes ISR changes to the controller.
//!
//! - [`fetcher`]: one task per leader broker, fetching every partition this broker follows
//!   there; before fetching at a new leader epoch it asks the leader where its own last epoch
//!   ended (OffsetForLeaderEpoch) and truncates a diverged tail.
//! - [`isr`]: the leader's periodic ISR shrink/expand proposals.
//! - [`throttle`]: the leader's limit on what it sends to replicas a reassignment is adding
//!   (`leader.replication.throttled.rate`).
//! - [`client`]: the broker-to-broker Kafka connection both use.

pub mod client;
pub mod fetcher;
pub mod isr;
pub mod throttle;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::partition::{Partition, TopicPartition};

/// What a follower needs to fetch one partition.
#[derive(Clone)]
pub struct FollowedPartition {
    pub partition: Arc<Partition>,
    pub leader_id: i32,
    pub leader_address: String,
    pub leader_epoch: i32,
    /// The epoch for which the log was checked against the leader's (None: check first).
    pub truncated_for_epoch: Option<i32>,
}

/// The partitions this broker follows, and one fetcher task per leader.
pub struct ReplicaFetchers {
    pub(crate) local_id: i32,
    pub(crate) followed: Mutex<BTreeMap<TopicPartition, FollowedPartition>>,
    tasks: Mutex<HashMap<i32, JoinHandle<()>>>,
    /// Per leader, a count of the changes to what this broker follows there: a fetcher in a
    /// long poll wakes when a partition or a new leader epoch joins its set.
    changes: Mutex<HashMap<i32, watch::Sender<u64>>>,
    /// Fetch rounds so far, to rotate the partitions' order in the fetch requests.
    fetch_rounds: AtomicUsize,
}

impl ReplicaFetchers {
    pub fn new(local_id: i32) -> ReplicaFetchers {
        ReplicaFetchers {
            local_id,
            followed: Mutex::new(BTreeMap::new()),
            tasks: Mutex::new(HashMap::new()),
            changes: Mutex::new(HashMap::new()),
            fetch_rounds: AtomicUsize::new(0),
        }
    }

    pub(crate) fn next_fetch_round(&self) -> usize {
        self.fetch_rounds.fetch_add(1, Ordering::Relaxed)
    }

    /// Follows `partition` from `leader_id` at `leader_epoch` (a new epoch re-checks the log
    /// against the leader's before fetching). Must run inside the tokio runtime.
    pub fn follow(
        self: &Arc<Self>,
        partition: Arc<Partition>,
        leader_id: i32,
        leader_address: String,
        leader_epoch: i32,
    ) {
        let id = partition.id.clone();
        {
            let mut followed = self.followed.lock();
            match followed.get_mut(&id) {
                Some(existing)
                    if existing.leader_id == leader_id
                        && existing.leader_epoch == leader_epoch
                        && existing.leader_address == leader_address => {}
                _ => {
                    followed.insert(
                        id,
                        FollowedPartition {
                            partition,
                            leader_id,
                            leader_address,
                            leader_epoch,
                            truncated_for_epoch: None,
                        },
                    );
                    self.changes
                        .lock()
                        .entry(leader_id)
                        .or_insert_with(|| watch::channel(0).0)
                        .send_modify(|count| *count += 1);
                }
            }
        }
        let mut tasks = self.tasks.lock();
        let running = tasks
            .get(&leader_id)
            .is_some_and(|task| !task.is_finished());
        if !running {
            let fetchers = self.clone();
            tasks.insert(leader_id, tokio::spawn(fetcher::run(fetchers, leader_id)));
        }
    }

    /// Stops following `id` (this broker leads it now, or no longer hosts it).
    pub fn unfollow(&self, id: &TopicPartition) {
        self.followed.lock().remove(id);
    }

    /// Changes to the partitions followed from `leader_id`, from now on.
    pub(crate) fn changes_from(&self, leader_id: i32) -> watch::Receiver<u64> {
        self.changes
            .lock()
            .entry(leader_id)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Partitions followed from `leader_id`.
    pub(crate) fn followed_from(&self, leader_id: i32) -> Vec<(TopicPartition, FollowedPartition)> {
        self.followed
            .lock()
            .iter()
            .filter(|(_, f)| f.leader_id == leader_id)
            .map(|(id, f)| (id.clone(), f.clone()))
            .collect()
    }

    /// Records that the log of `id` was checked against the leader at `epoch`; any other
    /// epoch (e.g. -1) asks for a new check before the next fetch.
    pub(crate) fn mark_truncated(&self, id: &TopicPartition, epoch: i32) {
        if let Some(followed) = self.followed.lock().get_mut(id) {
            followed.truncated_for_epoch = (followed.leader_epoch == epoch).then_some(epoch);
        }
    }

    /// Partitions this broker follows whose log is behind the leader's high watermark.
    pub fn followed_count(&self) -> usize {
        self.followed.lock().len()
    }
}
