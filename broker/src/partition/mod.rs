//! Partitions: a log plus what the broker knows about it beyond storage (high watermark, leader
//! epoch, idempotent-producer state), and the manager that holds every partition of this broker.
//!
//! On a single node this broker leads every partition and is its only in-sync replica, so the
//! high watermark follows the log end offset. Replication adds followers that advance it; the
//! produce and fetch handlers already go through [`Partition::append_as_leader`] and
//! [`Partition::read`], which take it into account.

pub mod manager;
mod producer_snapshot;
pub mod producer_state;
pub mod replicas;
mod wakeups;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use millrace_log::{Log, LogConfig, LogError, ValidatedBatches};
use parking_lot::Mutex;
use tokio::sync::watch;
use uuid::Uuid;

pub use manager::PartitionManager;
use producer_snapshot::{ProducerSnapshot, ProducerSnapshots};
use producer_state::{ProducerStateTable, SequenceCheck};
use replicas::ReplicaSet;
pub use wakeups::{FetchWakeups, Fetcher};

/// A partition's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Why an append or a read failed, as a Kafka error code plus a message for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionError {
    pub error: ResponseError,
    pub message: String,
}

impl From<LogError> for PartitionError {
    fn from(error: LogError) -> Self {
        PartitionError {
            error: ResponseError::try_from_code(error.kafka_error_code())
                .unwrap_or(ResponseError::UnknownServerError),
            message: error.to_string(),
        }
    }
}

impl From<ResponseError> for PartitionError {
    fn from(error: ResponseError) -> Self {
        PartitionError {
            error,
            message: error.to_string(),
        }
    }
}

/// What a produce to one partition did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub base_offset: i64,
    /// Offset of the last record appended (acks=all waits for the high watermark to pass it).
    pub last_offset: i64,
    pub log_start_offset: i64,
    pub records: i64,
    pub bytes: usize,
    /// True when every batch was a retry of one already appended.
    pub duplicate: bool,
    /// The leader epoch the batches were appended at: an acks=all wait ends when the
    /// partition's leadership moves on from it.
    pub leader_epoch: i32,
}

/// What a fetch from one partition returned.
#[derive(Debug, Clone)]
pub struct ReadOutcome {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

struct PartitionState {
    log: Log,
    producers: ProducerStateTable,
}

/// One partition hosted by this broker.
pub struct Partition {
    pub id: TopicPartition,
    pub topic_id: Uuid,
    dir: PathBuf,
    state: Mutex<PartitionState>,
    high_watermark: AtomicI64,
    leader_epoch: AtomicI32,
    replicas: Mutex<ReplicaSet>,
    /// Publishes every high watermark move, for acks=all produces waiting on it.
    high_watermark_moved: watch::Sender<i64>,
    /// Bumped at every new leadership or replica assignment, so that acks=all waits notice
    /// that this broker no longer leads the epoch they appended at.
    assignment_changed: watch::Sender<u64>,
    /// Consumers' fetches waiting for data, woken when the high watermark moves.
    fetch_wakeups: FetchWakeups,
    /// The idempotent-producer table's snapshot on disk.
    producer_snapshots: ProducerSnapshots,
}

/// How an acks=all wait for the high watermark ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicationWait {
    /// Every in-sync replica has the records.
    Replicated,
    /// This broker no longer leads the epoch the records were appended at.
    LeadershipMoved,
    TimedOut,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Partition {
    /// Opens (recovering if needed) the partition's log in `dir` and rebuilds its producer state
    /// from its last snapshot and the batch headers after it (all of them without one). It starts as a single-replica partition led by `local_id`;
    /// [`Partition::set_replicas`] gives it its real assignment. `fetch_wakeups` is woken
    /// whenever its high watermark moves.
    pub fn open(
        local_id: i32,
        id: TopicPartition,
        topic_id: Uuid,
        dir: &Path,
        config: LogConfig,
        fetch_wakeups: FetchWakeups,
    ) -> Result<Partition, LogError> {
        let started = std::time::Instant::now();
        let log = Log::open(dir, config, now_ms())?;
        let (producer_snapshots, snapshot) = ProducerSnapshots::open(dir)?;
        let (mut producers, replay_from) = match snapshot {
            Some(snapshot) if snapshot.offset <= log.log_end_offset() => {
                (snapshot.table, snapshot.offset)
            }
            Some(_) => {
                // Describes records the recovery cut off.
                producer_snapshots.discard()?;
                (ProducerStateTable::default(), log.log_start_offset())
            }
            None => (ProducerStateTable::default(), log.log_start_offset()),
        };
        let headers = log.batch_headers_from(replay_from)?;
        let replayed_batches = headers.len();
        for header in headers {
            producers.record(&header);
        }
        producers.remove_before(log.log_start_offset());
        // A clean shutdown leaves nothing to replay; after a crash, or for a slow disk, say
        // what the start-up took.
        let elapsed = started.elapsed();
        if replayed_batches > 0 || elapsed >= std::time::Duration::from_millis(100) {
            tracing::info!(
                partition = %id,
                replayed_batches,
                replayed_from = replay_from,
                log_end = log.log_end_offset(),
                elapsed_ms = elapsed.as_millis() as u64,
                "partition opened"
            );
        }
        let high_watermark = log.log_end_offset();
        let leader_epoch = log.latest_epoch().unwrap_or(0);
        Ok(Partition {
            id,
            topic_id,
            dir: dir.to_path_buf(),
            state: Mutex::new(PartitionState { log, producers }),
            high_watermark: AtomicI64::new(high_watermark),
            leader_epoch: AtomicI32::new(leader_epoch),
            replicas: Mutex::new(ReplicaSet::single(local_id, leader_epoch)),
            high_watermark_moved: watch::channel(high_watermark).0,
            assignment_changed: watch::channel(0).0,
            fetch_wakeups,
            producer_snapshots,
        })
    }

    /// The partition's leadership and replicas as this broker knows them.
    pub fn replicas(&self) -> ReplicaSet {
        self.replicas.lock().clone()
    }

    pub fn is_leader(&self) -> bool {
        self.replicas.lock().is_leader()
    }

    /// Applies a new leadership or replica assignment (from the cluster metadata). A broker
    /// that becomes leader keeps its high watermark and lets followers move it; a follower's
    /// high watermark follows what its leader reports. Followers' progress is kept while the
    /// leader epoch stays the same (an ISR change only).
    pub fn set_replicas(&self, replicas: ReplicaSet) {
        self.leader_epoch
            .store(replicas.leader_epoch, Ordering::Release);
        {
            let mut current = self.replicas.lock();
            if current.leader_epoch == replicas.leader_epoch
                && current.leader_id == replicas.leader_id
            {
                current.update_assignment(replicas);
            } else {
                *current = replicas;
            }
        }
        self.advance_high_watermark();
        // Produces and fetches waiting on a partition this broker no longer leads answer
        // NOT_LEADER now.
        self.assignment_changed
            .send_modify(|generation| *generation += 1);
        self.fetch_wakeups.all();
    }

    /// Applies the partition's state from the cluster metadata.
    pub fn update_leadership(&self, state: &millrace_quorum::PartitionState, local_id: i32) {
        let mut replicas = state.replicas.clone();
        for adding in &state.adding_replicas {
            if !replicas.contains(adding) {
                replicas.push(*adding);
            }
        }
        self.set_replicas(
            ReplicaSet::new(
                local_id,
                state.leader,
                state.leader_epoch,
                state.partition_epoch,
                replicas,
                state.isr.clone(),
                now_ms(),
            )
            .with_adding_replicas(state.adding_replicas.clone()),
        );
    }

    /// Moves the high watermark to the smallest log end offset of the in-sync replicas, when
    /// this broker leads. Returns the high watermark.
    fn advance_high_watermark(&self) -> i64 {
        let log_end = self.log_end_offset();
        let candidate = {
            let replicas = self.replicas.lock();
            if !replicas.is_leader() {
                return self.high_watermark();
            }
            replicas.high_watermark(log_end).min(log_end)
        };
        let previous = self.high_watermark.fetch_max(candidate, Ordering::AcqRel);
        if candidate > previous {
            self.high_watermark_moved.send_replace(candidate);
            self.fetch_wakeups.high_watermark_moved();
            candidate
        } else {
            previous
        }
    }

    /// Waits until the high watermark reaches `offset` (acks=all) for records appended at
    /// `leader_epoch`, up to `timeout`. The wait ends early when this broker stops leading that
    /// epoch (as Kafka's delayed produce does): the records may or may not survive on the new
    /// leader, so the producer is told NOT_LEADER and retries there (an idempotent producer's
    /// retry is deduplicated), instead of waiting out its request timeout.
    pub async fn wait_for_high_watermark(
        &self,
        offset: i64,
        leader_epoch: i32,
        timeout: std::time::Duration,
    ) -> ReplicationWait {
        let mut moved = self.high_watermark_moved.subscribe();
        let mut reassigned = self.assignment_changed.subscribe();
        let wait = async {
            loop {
                if let Some(outcome) = self.replication_of(offset, leader_epoch) {
                    return outcome;
                }
                tokio::select! {
                    _ = moved.changed() => {}
                    _ = reassigned.changed() => {}
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(outcome) => outcome,
            Err(_) => self
                .replication_of(offset, leader_epoch)
                .unwrap_or(ReplicationWait::TimedOut),
        }
    }

    /// Where records up to `offset` appended at `leader_epoch` stand, if settled. The high
    /// watermark counts only while this broker still leads that epoch: a follower's high
    /// watermark is its new leader's, whose log may no longer hold the records. Read in this
    /// order (high watermark, then leadership) it is race-free: the epoch only grows, so still
    /// leading it now means leading it when the high watermark was read.
    fn replication_of(&self, offset: i64, leader_epoch: i32) -> Option<ReplicationWait> {
        let high_watermark = self.high_watermark();
        if !self.is_leader() || self.leader_epoch() != leader_epoch {
            return Some(ReplicationWait::LeadershipMoved);
        }
        (high_watermark >= offset).then_some(ReplicationWait::Replicated)
    }

    /// Whether `replica` is being added to this partition by a reassignment and has not
    /// joined the ISR yet: its fetches are what the replication throttle limits.
    pub fn is_catching_up_for_reassignment(&self, replica: i32) -> bool {
        self.replicas
            .lock()
            .is_catching_up_for_reassignment(replica)
    }

    /// Replicas in sync right now, as the leader sees them.
    pub fn in_sync_replica_count(&self) -> usize {
        self.replicas.lock().isr.len()
    }

    /// Serves a follower's fetch: records its progress, may move the high watermark, and reads
    /// up to the log end (followers replicate beyond the high watermark). With `max_bytes` 0
    /// it reads nothing (the fetch offset is still checked): the fetch handler's way of
    /// holding a partition back from a response.
    pub fn read_for_follower(
        &self,
        replica_id: i32,
        fetch_offset: i64,
        follower_log_start: i64,
        max_bytes: usize,
    ) -> Result<ReadOutcome, PartitionError> {
        {
            let mut replicas = self.replicas.lock();
            if !replicas.is_leader() {
                return Err(ResponseError::NotLeaderOrFollower.into());
            }
            if !replicas.is_replica(replica_id) {
                return Err(ResponseError::NotLeaderOrFollower.into());
            }
            let log_end = self.state.lock().log.log_end_offset();
            replicas.record_fetch(replica_id, fetch_offset, log_end, now_ms());
            replicas.record_log_start(replica_id, follower_log_start);
        }
        let high_watermark = self.advance_high_watermark();
        let state = self.state.lock();
        let log_end = state.log.log_end_offset();
        let records = if fetch_offset == log_end {
            Bytes::new()
        } else {
            // Read up to the fetch offset itself, i.e. nothing, when nothing may be returned.
            let up_to = if max_bytes == 0 {
                fetch_offset
            } else {
                log_end
            };
            state.log.read(fetch_offset, max_bytes, up_to)?
        };
        Ok(ReadOutcome {
            records,
            high_watermark,
            log_start_offset: state.log.log_start_offset(),
        })
    }

    /// Appends batches fetched from the leader (offsets already assigned) and takes the
    /// leader's high watermark, bounded by what this replica has.
    pub fn append_as_follower(
        &self,
        records: &[u8],
        leader_high_watermark: i64,
    ) -> Result<i64, PartitionError> {
        let mut state = self.state.lock();
        if !records.is_empty() {
            let info = state.log.append_as_follower(records, now_ms())?;
            for batch in &info.batches {
                state.producers.record(batch);
            }
        }
        let log_end = state.log.log_end_offset();
        drop(state);
        let high_watermark = leader_high_watermark.min(log_end);
        if high_watermark > self.high_watermark.load(Ordering::Acquire) {
            self.high_watermark.store(high_watermark, Ordering::Release);
            self.high_watermark_moved.send_replace(high_watermark);
        }
        Ok(log_end)
    }

    /// Keeps a follower's log start in step with its leader's, as Kafka's followers do: what
    /// the leader deleted (retention, DeleteRecords) goes here too, so it cannot reappear if this
    /// replica becomes leader. When the leader's log starts beyond this replica's log end, the
    /// records in between are gone everywhere: the log is emptied and restarts at the leader's
    /// log start, from where fetching continues.
    pub fn follow_leader_log_start(&self, leader_log_start: i64) -> Result<(), PartitionError> {
        let mut state = self.state.lock();
        if leader_log_start <= state.log.log_start_offset() {
            return Ok(());
        }
        if leader_log_start <= state.log.log_end_offset() {
            state.log.delete_records_before(leader_log_start)?;
            return Ok(());
        }
        self.producer_snapshots.discard().map_err(LogError::from)?;
        state.log.restart_at(leader_log_start)?;
        state.producers = ProducerStateTable::default();
        drop(state);
        // The leader's high watermark is at least its log start.
        if self
            .high_watermark
            .fetch_max(leader_log_start, Ordering::AcqRel)
            < leader_log_start
        {
            self.high_watermark_moved.send_replace(leader_log_start);
        }
        Ok(())
    }

    /// Cuts the log at `offset` (a follower whose log diverged from its new leader's). The
    /// producer state is rebuilt from what remains: from the snapshot when it is below the cut
    /// (the snapshot is discarded first when it is not, so a crash never finds it beside the
    /// shorter log).
    pub fn truncate_to(&self, offset: i64) -> Result<(), PartitionError> {
        let mut state = self.state.lock();
        if offset >= state.log.log_end_offset() {
            return Ok(());
        }
        let snapshot = self
            .producer_snapshots
            .keep_below(offset)
            .map_err(LogError::from)?;
        state.log.truncate_to(offset)?;
        let (mut producers, replay_from) = match snapshot {
            Some(snapshot) => (snapshot.table, snapshot.offset),
            None => (ProducerStateTable::default(), state.log.log_start_offset()),
        };
        for header in state.log.batch_headers_from(replay_from)? {
            producers.record(&header);
        }
        state.producers = producers;
        let log_end = state.log.log_end_offset();
        drop(state);
        self.high_watermark.fetch_min(log_end, Ordering::AcqRel);
        Ok(())
    }

    /// OffsetForLeaderEpoch: the largest epoch at most `epoch` and where it ended.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.state.lock().log.end_offset_for_epoch(epoch)
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.state.lock().log.latest_epoch()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.state.lock().log.log_start_offset()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.state.lock().log.log_end_offset()
    }

    pub fn size_bytes(&self) -> u64 {
        self.state.lock().log.size_bytes()
    }

    /// Appends a produce payload as the partition's leader. Retried idempotent batches are
    /// acknowledged with their original offsets and not appended again.
    pub fn append_as_leader(&self, records: &[u8]) -> Result<AppendOutcome, PartitionError> {
        self.append_as_leader_if(records, |_| Ok(()))
    }

    /// [`Self::append_as_leader`], appending only what `admit` (given the payload's size)
    /// accepts. A retried idempotent batch already in the log is acknowledged whatever `admit`
    /// says: it takes no new space.
    pub fn append_as_leader_if(
        &self,
        records: &[u8],
        admit: impl FnOnce(usize) -> Result<(), PartitionError>,
    ) -> Result<AppendOutcome, PartitionError> {
        if !self.is_leader() {
            return Err(ResponseError::NotLeaderOrFollower.into());
        }
        let now = now_ms();
        let mut state = self.state.lock();
        let max_batch_bytes = state.log.config().max_batch_bytes;
        let validated = ValidatedBatches::new(records, max_batch_bytes)?;
        let batches = validated.headers();
        if batches.len() == 1 {
            if let SequenceCheck::Duplicate { first_offset } = state.producers.check(&batches[0])? {
                return Ok(AppendOutcome {
                    base_offset: first_offset,
                    last_offset: first_offset + batches[0].last_offset_delta as i64,
                    log_start_offset: state.log.log_start_offset(),
                    records: 0,
                    bytes: 0,
                    duplicate: true,
                    leader_epoch: self.leader_epoch(),
                });
            }
        } else {
            // Several batches in one request: each must follow the previous one; a duplicate
            // among them means the producer resent part of a request, which it never does.
            let mut scratch = ProducerStateTable::default();
            for batch in batches {
                let check = if scratch.producer_count() == 0 {
                    state.producers.check(batch)?
                } else {
                    scratch.check(batch)?
                };
                if check != SequenceCheck::Append {
                    return Err(ResponseError::OutOfOrderSequenceNumber.into());
                }
                scratch.record(batch);
            }
        }
        admit(records.len())?;
        let epoch = self.leader_epoch();
        let info = state
            .log
            .append_validated_as_leader(validated, epoch, now)?;
        for batch in &info.batches {
            state.producers.record(batch);
        }
        let log_start_offset = state.log.log_start_offset();
        drop(state);
        // With this broker alone in the ISR the high watermark moves to the log end now;
        // otherwise followers' fetches move it.
        self.advance_high_watermark();
        Ok(AppendOutcome {
            base_offset: info.first_offset,
            last_offset: info.last_offset,
            log_start_offset,
            records: info.record_count,
            bytes: records.len(),
            duplicate: false,
            leader_epoch: epoch,
        })
    }

    /// Reads whole batches from `offset`, up to the high watermark and about `max_bytes`.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadOutcome, PartitionError> {
        if !self.is_leader() {
            return Err(ResponseError::NotLeaderOrFollower.into());
        }
        let high_watermark = self.high_watermark();
        let state = self.state.lock();
        let log_start_offset = state.log.log_start_offset();
        let records = if offset == high_watermark {
            Bytes::new()
        } else {
            state.log.read(offset, max_bytes, high_watermark)?
        };
        Ok(ReadOutcome {
            records,
            high_watermark,
            log_start_offset,
        })
    }

    /// ListOffsets by timestamp: the first record whose timestamp is at least `timestamp`, and
    /// that timestamp. The log finds the first batch that can hold it (by the batches' largest
    /// timestamps); its records are then decoded to find the record itself.
    /// Reads whole batches from `offset` up to the log end: for the broker's own state (the
    /// group coordinator loading committed offsets), never for clients.
    pub fn read_to_log_end(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<ReadOutcome, PartitionError> {
        let state = self.state.lock();
        let log_end = state.log.log_end_offset();
        let records = if offset >= log_end {
            Bytes::new()
        } else {
            state.log.read(offset, max_bytes, log_end)?
        };
        Ok(ReadOutcome {
            records,
            high_watermark: self.high_watermark(),
            log_start_offset: state.log.log_start_offset(),
        })
    }

    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, PartitionError> {
        let found = self.state.lock().log.offset_for_timestamp(timestamp)?;
        let Some((batch_offset, _)) = found else {
            return Ok(None);
        };
        self.find_record(batch_offset, |record_timestamp| {
            record_timestamp >= timestamp
        })
    }

    /// ListOffsets MAX_TIMESTAMP: the first record carrying the largest timestamp, and that
    /// timestamp.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, PartitionError> {
        let found = self.state.lock().log.max_timestamp();
        let Some((max_timestamp, batch_offset)) = found else {
            return Ok(None);
        };
        self.find_record(batch_offset, |record_timestamp| {
            record_timestamp == max_timestamp
        })
    }

    /// The first record of the batch at `batch_offset` whose timestamp matches, as (offset,
    /// timestamp). Batches are stored compressed as sent, so this decodes one batch.
    fn find_record(
        &self,
        batch_offset: i64,
        matches: impl Fn(i64) -> bool,
    ) -> Result<Option<(i64, i64)>, PartitionError> {
        let high_watermark = self.high_watermark();
        if batch_offset >= high_watermark {
            return Ok(None);
        }
        let mut batch = self
            .state
            .lock()
            .log
            .read(batch_offset, 1, high_watermark)?;
        let records = kafka_protocol::records::RecordBatchDecoder::decode(&mut batch)
            .map_err(|error| PartitionError {
                error: ResponseError::CorruptMessage,
                message: format!("batch at offset {batch_offset} does not decode: {error:#}"),
            })?
            .records;
        Ok(records
            .iter()
            .find(|record| record.offset >= batch_offset && matches(record.timestamp))
            .map(|record| (record.offset, record.timestamp)))
    }

    /// The smallest log start offset among the in-sync replicas: records below it are gone
    /// from every replica that could become leader.
    pub fn low_watermark(&self) -> i64 {
        let leader_start = self.log_start_offset();
        self.replicas.lock().low_watermark(leader_start)
    }

    /// DeleteRecords: moves the log start up to `offset` (-1: the high watermark).
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, PartitionError> {
        if !self.is_leader() {
            return Err(ResponseError::NotLeaderOrFollower.into());
        }
        let high_watermark = self.high_watermark();
        let target = if offset == -1 { high_watermark } else { offset };
        if target < 0 || target > high_watermark {
            return Err(ResponseError::OffsetOutOfRange.into());
        }
        let mut state = self.state.lock();
        let low = state.log.delete_records_before(target)?;
        Ok(low)
    }

    pub fn set_log_config(&self, config: LogConfig) {
        self.state.lock().log.set_config(config);
    }

    /// Applies retention, and removes the files of every segment deleted since the last pass
    /// (by retention, DeleteRecords, or a follower following its leader) once the partition's
    /// lock is released: freeing a segment's blocks can take tens of milliseconds, which
    /// appends would otherwise wait for. Runs on a blocking thread.
    pub fn apply_retention(&self) -> Result<usize, LogError> {
        let (deleted, files) = {
            let mut state = self.state.lock();
            let deleted = state.log.apply_retention(now_ms())?;
            (deleted, state.log.take_deleted_files())
        };
        millrace_log::remove_deleted_files(&files)?;
        Ok(deleted)
    }

    /// Applies the time-based flush policy. The fsyncs, of the segments and of the
    /// recovery-point checkpoint, run without the partition's lock, so produces and fetches are
    /// not stalled behind the disk.
    /// Writes a producer-state snapshot after the flush when one is due.
    pub fn maybe_flush(&self) -> Result<bool, LogError> {
        let (pending, snapshot) = {
            let mut state = self.state.lock();
            let Some(pending) = state.log.begin_flush(now_ms())? else {
                return Ok(false);
            };
            let log_end = state.log.log_end_offset();
            let log_start = state.log.log_start_offset();
            let snapshot = self.producer_snapshots.due(log_start, log_end).then(|| {
                state.producers.remove_before(log_start);
                let snapshot = ProducerSnapshot {
                    offset: log_end,
                    table: state.producers.clone(),
                };
                (self.producer_snapshots.generation(), snapshot)
            });
            (pending, snapshot)
        };
        pending.sync()?;
        self.state.lock().log.complete_flush(pending);
        if let Some((generation, snapshot)) = snapshot {
            // The data is flushed either way; without this snapshot a restart replays more.
            if let Err(error) = self.producer_snapshots.write(generation, &snapshot) {
                tracing::warn!(partition = %self.id, %error, "writing the producer-state snapshot failed");
            }
        }
        Ok(true)
    }

    /// Flushes everything and writes a producer-state snapshot at the log end when a start-up
    /// would otherwise replay batch headers (a clean shutdown: the next start replays none).
    pub fn flush(&self) -> Result<(), LogError> {
        let mut state = self.state.lock();
        state.log.flush()?;
        let log_end = state.log.log_end_offset();
        let log_start = state.log.log_start_offset();
        if self
            .producer_snapshots
            .offsets_to_replay(log_start, log_end)
            > 0
        {
            state.producers.remove_before(log_start);
            let snapshot = ProducerSnapshot {
                offset: log_end,
                table: state.producers.clone(),
            };
            let generation = self.producer_snapshots.generation();
            self.producer_snapshots.write(generation, &snapshot)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
