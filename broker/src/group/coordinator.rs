//! The group coordinator: the groups' state machines behind locks, parked JoinGroup and
//! SyncGroup requests as oneshot channels, a timer task that drives deadlines, and the
//! committed offsets.
//!
//! Locking: the map of groups is locked only to look a group up, insert or remove it; each
//! group has its own lock, taken after (never while holding) the map's, except when a group
//! removes itself from the map while holding its own lock. The offsets store's per-partition
//! locks are taken inside a group's lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch, Notify};
use tracing::{info, warn};
use uuid::Uuid;

use super::codec::CommittedOffset;
use super::offsets::{GroupOffsets, OffsetStore};
use super::state::{
    Group, GroupDescription, GroupLimits, GroupState, JoinMember, JoinResult, Outcome, Reply,
    SyncMember, SyncResult,
};
use crate::config::BrokerConfig;
use crate::partition::{Partition, ReplicationWait};

/// How long a group with no members and no committed offsets stays listed before it is
/// forgotten (Kafka drops such groups at its next offsets-expiration pass, every 10 minutes).
const EMPTY_GROUP_RETENTION_MS: i64 = 10 * 60 * 1000;
/// Longest the timer task sleeps without looking at the groups.
const MAX_TIMER_SLEEP_MS: i64 = 1000;

/// Who is committing offsets.
#[derive(Debug, Clone, Default)]
pub struct Committer {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// -1 for a consumer that manages its partitions itself.
    pub generation_id: i32,
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// A member named in a LeaveGroup: by member id, or (static members) by instance id.
#[derive(Debug, Clone)]
pub struct LeavingMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

struct GroupEntry {
    group: Group,
    join_waiters: HashMap<String, oneshot::Sender<JoinResult>>,
    sync_waiters: HashMap<String, oneshot::Sender<SyncResult>>,
}

impl GroupEntry {
    fn new(group: Group) -> GroupEntry {
        GroupEntry {
            group,
            join_waiters: HashMap::new(),
            sync_waiters: HashMap::new(),
        }
    }

    /// Answers parked requests. A reply nobody waits for (the client hung up) is dropped.
    fn deliver(&mut self, replies: Vec<Reply>) {
        for reply in replies {
            match reply {
                Reply::Join { member_id, result } => {
                    if let Some(waiter) = self.join_waiters.remove(&member_id) {
                        let _ = waiter.send(result);
                    }
                }
                Reply::Sync { member_id, result } => {
                    if let Some(waiter) = self.sync_waiters.remove(&member_id) {
                        let _ = waiter.send(result);
                    }
                }
            }
        }
    }
}

type GroupSlot = Arc<Mutex<GroupEntry>>;

/// How long an offset commit waits for its replication (Kafka's offsets.commit.timeout.ms).
const COMMIT_REPLICATION_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an offsets rewrite may take to replicate before its log start move is given up.
const OFFSETS_REWRITE_REPLICATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Kafka's classic group coordinator for every group of this broker.
pub struct GroupCoordinator {
    limits: GroupLimits,
    groups: Mutex<HashMap<String, GroupSlot>>,
    offsets: OffsetStore,
    /// Origin of the monotonic milliseconds the state machines run on.
    clock_origin: Instant,
    /// Wakes [`GroupCoordinator::run`] when a request may have moved a deadline earlier.
    timer_wakeup: Notify,
}

impl GroupCoordinator {
    /// Loads committed offsets from the `__consumer_offsets` partitions; every group with
    /// offsets starts Empty. Deadlines (session expiry, rebalance timeouts, the initial
    /// rebalance delay) only fire while [`GroupCoordinator::run`] runs.
    pub fn open(
        config: &BrokerConfig,
        offsets_partitions: Vec<Arc<Partition>>,
    ) -> anyhow::Result<Arc<GroupCoordinator>> {
        let limits = GroupLimits {
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            initial_rebalance_delay_ms: i64::try_from(config.group_initial_rebalance_delay_ms)
                .unwrap_or(i64::MAX),
        };
        Self::with_limits(limits, offsets_partitions)
    }

    pub fn with_limits(
        limits: GroupLimits,
        offsets_partitions: Vec<Arc<Partition>>,
    ) -> anyhow::Result<Arc<GroupCoordinator>> {
        let offsets = OffsetStore::load(offsets_partitions)?;
        let mut groups = HashMap::new();
        for group_id in offsets.group_ids() {
            let group = Group::new(&group_id, limits, 0);
            groups.insert(group_id, Arc::new(Mutex::new(GroupEntry::new(group))));
        }
        info!(groups = groups.len(), "group coordinator loaded");
        let coordinator = Arc::new(GroupCoordinator {
            limits,
            groups: Mutex::new(groups),
            offsets,
            clock_origin: Instant::now(),
            timer_wakeup: Notify::new(),
        });
        Ok(coordinator)
    }

    /// Drives the groups' deadlines until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            let next = self.tick_all();
            let sleep_ms = match next {
                Some(deadline) => (deadline - self.now_ms()).clamp(1, MAX_TIMER_SLEEP_MS),
                None => MAX_TIMER_SLEEP_MS,
            };
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(sleep_ms as u64)) => {}
                _ = self.timer_wakeup.notified() => {}
            }
        }
    }

    /// JoinGroup; waits until the rebalance it joined completes.
    pub async fn join(self: &Arc<Self>, group_id: &str, join: JoinMember) -> JoinResult {
        if group_id.is_empty() {
            return JoinResult::error(ResponseError::InvalidGroupId, &join.member_id);
        }
        if !self.coordinates(group_id) {
            return JoinResult::error(ResponseError::NotCoordinator, &join.member_id);
        }
        let member_id = join.member_id.clone();
        let fresh_member_id = format!(
            "{}-{}",
            join.group_instance_id.as_deref().unwrap_or(&join.client_id),
            Uuid::new_v4()
        );
        let slot = self.live_group_or_create(group_id);
        let receiver = {
            let mut entry = slot.lock();
            let (outcome, replies) = entry.group.join(join, fresh_member_id, self.now_ms());
            let receiver = match outcome {
                Outcome::Ready(result) => {
                    entry.deliver(replies);
                    drop(entry);
                    self.timer_wakeup.notify_one();
                    return result;
                }
                Outcome::Pending { member_id } => {
                    let (sender, receiver) = oneshot::channel();
                    entry.join_waiters.insert(member_id, sender);
                    receiver
                }
            };
            entry.deliver(replies);
            receiver
        };
        self.timer_wakeup.notify_one();
        receiver.await.unwrap_or_else(|_| {
            // Superseded by a newer JoinGroup of the same member, or the group was removed.
            JoinResult::error(ResponseError::CoordinatorNotAvailable, &member_id)
        })
    }

    /// SyncGroup; a follower waits until the leader's assignment arrives.
    pub async fn sync(self: &Arc<Self>, group_id: &str, sync: SyncMember) -> SyncResult {
        if group_id.is_empty() {
            return SyncResult::error(ResponseError::InvalidGroupId);
        }
        if !self.coordinates(group_id) {
            return SyncResult::error(ResponseError::NotCoordinator);
        }
        let Some(slot) = self.group(group_id) else {
            return SyncResult::error(ResponseError::UnknownMemberId);
        };
        let receiver = {
            let mut entry = slot.lock();
            let (outcome, replies) = entry.group.sync(sync, self.now_ms());
            let receiver = match outcome {
                Outcome::Ready(result) => {
                    entry.deliver(replies);
                    return result;
                }
                Outcome::Pending { member_id } => {
                    let (sender, receiver) = oneshot::channel();
                    entry.sync_waiters.insert(member_id, sender);
                    receiver
                }
            };
            entry.deliver(replies);
            receiver
        };
        self.timer_wakeup.notify_one();
        receiver
            .await
            .unwrap_or_else(|_| SyncResult::error(ResponseError::RebalanceInProgress))
    }

    pub fn heartbeat(
        self: &Arc<Self>,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        if !self.coordinates(group_id) {
            return Err(ResponseError::NotCoordinator);
        }
        let slot = self.group(group_id).ok_or(ResponseError::UnknownMemberId)?;
        let mut entry = slot.lock();
        entry
            .group
            .heartbeat(member_id, group_instance_id, generation_id, self.now_ms())
    }

    /// LeaveGroup: one result per member, in order.
    pub fn leave(
        self: &Arc<Self>,
        group_id: &str,
        members: &[LeavingMember],
    ) -> Result<Vec<Result<(), ResponseError>>, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        if !self.coordinates(group_id) {
            return Err(ResponseError::NotCoordinator);
        }
        let Some(slot) = self.group(group_id) else {
            return Ok(vec![Err(ResponseError::UnknownMemberId); members.len()]);
        };
        let mut entry = slot.lock();
        let now = self.now_ms();
        let mut replies = Vec::new();
        let results = members
            .iter()
            .map(|member| {
                entry.group.leave(
                    &member.member_id,
                    member.group_instance_id.as_deref(),
                    now,
                    &mut replies,
                )
            })
            .collect();
        entry.deliver(replies);
        drop(entry);
        self.timer_wakeup.notify_one();
        Ok(results)
    }

    /// OffsetCommit: checks that the committer may commit for the group, then writes the
    /// offsets durably; they are committed (and visible) only once the write succeeded.
    /// Commits offsets; answers once they are replicated to every in-sync replica of the
    /// group's offsets partition (Kafka writes offsets with acks=all), so a coordinator failover
    /// never loses an acknowledged commit.
    pub async fn commit_offsets(
        self: &Arc<Self>,
        group_id: &str,
        committer: &Committer,
        offsets: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<(), ResponseError> {
        let pending = {
            let slot = match self.group(group_id) {
                Some(slot) => slot,
                // Not using group management: the commit creates the group (as in Kafka).
                None if committer.generation_id < 0 => self.live_group_or_create(group_id),
                // A member of a generation this coordinator does not know.
                None => return Err(ResponseError::IllegalGeneration),
            };
            let mut entry = slot.lock();
            entry.group.validate_offset_commit(
                &committer.member_id,
                committer.group_instance_id.as_deref(),
                committer.generation_id,
                self.now_ms(),
            )?;
            self.offsets.commit(group_id, offsets)?
        };
        if let Some((partition, durable_at)) = pending {
            let leader_epoch = partition.leader_epoch();
            if partition
                .wait_for_high_watermark(durable_at, leader_epoch, COMMIT_REPLICATION_TIMEOUT)
                .await
                != ReplicationWait::Replicated
            {
                warn!(group = group_id, partition = %partition.id, "offset commit not replicated in time");
                return Err(ResponseError::CoordinatorNotAvailable);
            }
        }
        Ok(())
    }

    /// Rewrites the offsets partitions whose logs hold mostly superseded records (see
    /// [`OffsetStore::start_rewrites`]) and moves their log starts once the rewrites are
    /// replicated. Returns how many partitions were rewritten and had their log start moved.
    pub async fn compact_offsets(&self, min_records: usize) -> usize {
        let rewrites = self.offsets.start_rewrites(min_records);
        let mut finished = 0;
        for rewrite in rewrites {
            let leader_epoch = rewrite.partition.leader_epoch();
            if rewrite
                .partition
                .wait_for_high_watermark(
                    rewrite.durable_at,
                    leader_epoch,
                    OFFSETS_REWRITE_REPLICATION_TIMEOUT,
                )
                .await
                == ReplicationWait::Replicated
            {
                if self.offsets.finish_rewrite(&rewrite) {
                    finished += 1;
                }
            } else {
                warn!(partition = %rewrite.partition.id, "offsets rewrite not replicated in time; the log start stays");
                self.offsets.keep_superseded(&rewrite);
            }
        }
        finished
    }

    /// Compacts the offsets partitions this broker leads every `interval`, until `shutdown`
    /// turns true.
    pub async fn run_offsets_compaction(
        self: Arc<Self>,
        interval: Duration,
        min_records: usize,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = ticks.tick() => {
                    // A shutdown does not wait for rewrites to replicate: an unfinished rewrite
                    // leaves the log start where it was.
                    tokio::select! {
                        _ = shutdown.changed() => break,
                        _ = self.compact_offsets(min_records) => {}
                    }
                }
            }
        }
    }

    /// The group's committed offset for one partition, if any.
    pub fn committed_offset(
        &self,
        group_id: &str,
        topic: &str,
        partition: i32,
    ) -> Option<CommittedOffset> {
        self.offsets.fetch(group_id, topic, partition)
    }

    /// Every committed offset of the group.
    pub fn committed_offsets(&self, group_id: &str) -> GroupOffsets {
        self.offsets.fetch_all(group_id)
    }

    /// Every live group.
    pub fn list_groups(&self) -> Vec<GroupListing> {
        let mut listings: Vec<GroupListing> = self
            .slots()
            .into_iter()
            .filter_map(|(group_id, slot)| {
                let entry = slot.lock();
                let state = entry.group.state();
                (state != GroupState::Dead).then(|| GroupListing {
                    group_id,
                    protocol_type: entry.group.protocol_type().unwrap_or_default().to_string(),
                    state,
                })
            })
            .collect();
        listings.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        listings
    }

    /// The group's description; an unknown group is described as Dead with no members, as
    /// Kafka does.
    pub fn describe_group(&self, group_id: &str) -> GroupDescription {
        match self.group(group_id) {
            Some(slot) => slot.lock().group.describe(),
            None => GroupDescription {
                group_id: group_id.to_string(),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol_name: String::new(),
                members: Vec::new(),
            },
        }
    }

    /// DeleteGroups for one group: only an Empty group can be deleted. Its offsets are
    /// tombstoned in the offsets log before it is forgotten.
    pub fn delete_group(&self, group_id: &str) -> Result<(), ResponseError> {
        let slot = self.group(group_id).ok_or(ResponseError::GroupIdNotFound)?;
        let mut entry = slot.lock();
        match entry.group.state() {
            GroupState::Empty => {}
            GroupState::Dead => return Err(ResponseError::GroupIdNotFound),
            _ => return Err(ResponseError::NonEmptyGroup),
        }
        let deleted = self.offsets.delete_group(group_id)?;
        let replies = entry.group.mark_dead(self.now_ms());
        entry.deliver(replies);
        self.forget(group_id, &slot);
        info!(group = group_id, offsets = deleted, "group deleted");
        Ok(())
    }

    /// Number of `__consumer_offsets` partitions (0 when the topic is missing).
    pub fn offsets_partition_count(&self) -> usize {
        self.offsets.partition_count()
    }

    /// Offsets partitions this broker leads and has loaded.
    pub fn loaded_offsets_partitions(&self) -> usize {
        self.offsets.loaded_shards()
    }

    /// The offsets partition of `group_id` (its coordinator is that partition's leader).
    pub fn offsets_partition_of(&self, group_id: &str) -> Option<usize> {
        self.offsets.partition_of(group_id)
    }

    /// Whether this broker coordinates `group_id` (it leads the group's offsets partition).
    pub fn coordinates(&self, group_id: &str) -> bool {
        self.offsets.coordinates(group_id)
    }

    /// This broker became the leader of an offsets partition: load its offsets; its groups
    /// start Empty (their members rejoin here after FindCoordinator).
    pub fn lead_offsets_partition(&self, partition: Arc<Partition>, partition_count: usize) {
        match self.offsets.load_shard(partition.clone(), partition_count) {
            Ok(group_ids) => {
                let mut groups = self.groups.lock();
                for group_id in group_ids {
                    groups.entry(group_id.clone()).or_insert_with(|| {
                        Arc::new(Mutex::new(GroupEntry::new(Group::new(
                            &group_id,
                            self.limits,
                            0,
                        ))))
                    });
                }
            }
            Err(error) => warn!(partition = %partition.id, %error, "cannot load committed offsets"),
        }
    }

    /// This broker no longer leads an offsets partition: forget its groups here (their members
    /// get NOT_COORDINATOR and find the new coordinator).
    pub fn resign_offsets_partition(&self, index: usize) {
        if !self.offsets.unload_shard(index) {
            return;
        }
        let now = self.now_ms();
        let moved: Vec<(String, GroupSlot)> = self
            .slots()
            .into_iter()
            .filter(|(group_id, _)| self.offsets.partition_of(group_id) == Some(index))
            .collect();
        for (group_id, slot) in moved {
            let mut entry = slot.lock();
            let replies = entry.group.mark_dead(now);
            entry.deliver(replies);
            self.forget(&group_id, &slot);
        }
        info!(
            partition = index,
            "offsets partition resigned; its groups moved away"
        );
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(self.clock_origin.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    fn group(&self, group_id: &str) -> Option<GroupSlot> {
        self.groups.lock().get(group_id).cloned()
    }

    /// The group, created Empty if unknown. A group found Dead (deleted while we looked it up)
    /// has left the map by then, so looking again creates a fresh one.
    fn live_group_or_create(&self, group_id: &str) -> GroupSlot {
        loop {
            let slot = {
                let mut groups = self.groups.lock();
                groups
                    .entry(group_id.to_string())
                    .or_insert_with(|| {
                        let group = Group::new(group_id, self.limits, self.now_ms());
                        Arc::new(Mutex::new(GroupEntry::new(group)))
                    })
                    .clone()
            };
            if slot.lock().group.state() != GroupState::Dead {
                return slot;
            }
        }
    }

    fn slots(&self) -> Vec<(String, GroupSlot)> {
        self.groups
            .lock()
            .iter()
            .map(|(id, slot)| (id.clone(), slot.clone()))
            .collect()
    }

    /// Removes a group (whose lock the caller holds) from the map.
    fn forget(&self, group_id: &str, slot: &GroupSlot) {
        let mut groups = self.groups.lock();
        if groups
            .get(group_id)
            .is_some_and(|current| Arc::ptr_eq(current, slot))
        {
            groups.remove(group_id);
        }
    }

    /// Applies every due deadline; returns the earliest deadline still ahead.
    fn tick_all(&self) -> Option<i64> {
        let now = self.now_ms();
        let mut next: Option<i64> = None;
        for (group_id, slot) in self.slots() {
            let mut entry = slot.lock();
            let replies = entry.group.tick(now);
            entry.deliver(replies);
            let forgettable = entry.group.state() == GroupState::Empty
                && entry.group.has_no_members()
                && !self.offsets.has_offsets(&group_id);
            if forgettable {
                let forget_at = entry.group.state_since_ms() + EMPTY_GROUP_RETENTION_MS;
                if forget_at <= now {
                    let replies = entry.group.mark_dead(now);
                    entry.deliver(replies);
                    self.forget(&group_id, &slot);
                    info!(group = %group_id, "forgot an empty group without committed offsets");
                    continue;
                }
                next = Some(next.map_or(forget_at, |n| n.min(forget_at)));
            }
            if let Some(deadline) = entry.group.next_deadline_ms() {
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
            }
        }
        next
    }
}

#[cfg(test)]
mod tests;
