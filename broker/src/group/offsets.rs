//! Committed offsets: kept in memory, written durably to `__consumer_offsets` before a commit
//! is acknowledged, and rebuilt from that topic at start-up.
//!
//! A group's offsets live in one partition of the topic, chosen as Kafka chooses it:
//! `abs(java_string_hash(group_id)) % partitions`, where `java_string_hash` is Java's
//! `String.hashCode` over the UTF-16 code units of the id and `abs` is Kafka's `Utils.abs`
//! (which maps `i32::MIN` to 0). The same group thus maps to the same
//! partition number as on a Kafka cluster with the same partition count, and the mapping never
//! changes as long as the partition count does not (it is fixed when the topic is created).
//!
//! Kafka keeps `__consumer_offsets` small with its log cleaner (the topic is compacted). This
//! broker's log does not compact; the coordinator does the same for its own topic instead: when
//! a partition's log holds mostly superseded records, it writes the live offsets again at the
//! log end (a *rewrite*) and, once they are replicated, moves the log start to the rewrite, so
//! that retention deletes the old segments and a new leader replays only the rewrite and what
//! followed it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::{bail, Context};
use kafka_protocol::ResponseError;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Mutex, RwLock};
use tracing::{info, warn};

use super::codec::{self, CommittedOffset, OffsetKey};
use crate::partition::{now_ms, Partition, PartitionError};

/// Largest read while loading a partition; a batch larger than this stops the load with an
/// error rather than looping.
const MAX_LOAD_READ_BYTES: usize = 256 * 1024 * 1024;
const LOAD_READ_BYTES: usize = 1024 * 1024;

/// topic -> partition -> offset, for one group.
pub type GroupOffsets = BTreeMap<String, BTreeMap<i32, CommittedOffset>>;

/// Most offsets records per batch of a rewrite.
const REWRITE_BATCH_RECORDS: usize = 2_000;
/// Most bytes (estimated) per batch of a rewrite: well below the 1 MiB a batch may have.
const REWRITE_BATCH_BYTES: usize = 256 * 1024;

struct OffsetShard {
    partition: Arc<Partition>,
    /// group id -> its committed offsets. Locked across the append so that the order of
    /// records in the log is the order in which commits become visible.
    committed: Mutex<HashMap<String, GroupOffsets>>,
    /// Offsets records in the log from its log start (values and tombstones), live or
    /// superseded: what a new leader would replay.
    records_in_log: AtomicUsize,
    /// Records the replay could not read (a newer broker's format, say): a rewrite would drop
    /// them, so a shard holding any is not compacted.
    unreadable_records: usize,
}

/// A rewrite of one offsets partition's live offsets at its log end, to be finished by
/// [`OffsetStore::finish_rewrite`] once it is replicated.
pub struct Rewrite {
    pub partition: Arc<Partition>,
    /// Where the rewrite starts: the log start once it is finished.
    pub start: i64,
    /// The offset the high watermark must reach for the rewrite to be replicated.
    pub durable_at: i64,
    /// Records that the log held before the rewrite.
    superseded: usize,
    /// The leader epoch the rewrite was written in: if the leadership changed since, the
    /// rewrite may have been cut from the log (a follower truncating), and the log start stays.
    leader_epoch: i32,
}

/// Committed offsets of the groups this broker coordinates: one shard per `__consumer_offsets`
/// partition it leads. A shard is loaded (replayed from the log) when this broker becomes the
/// partition's leader and dropped when it stops leading it, so group coordination moves with
/// the partition's leadership.
pub struct OffsetStore {
    shards: RwLock<BTreeMap<usize, Arc<OffsetShard>>>,
    /// Partitions of the offsets topic (0 until known).
    partition_count: AtomicUsize,
}

/// Java's `String.hashCode`, which Kafka uses to place a group in `__consumer_offsets`.
pub fn java_string_hash(value: &str) -> i32 {
    value.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__consumer_offsets` partition holding `group_id`'s offsets.
pub fn partition_for(group_id: &str, partitions: usize) -> usize {
    debug_assert!(partitions > 0);
    let hash = java_string_hash(group_id);
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive as usize % partitions
}

impl OffsetStore {
    /// Replays every partition of the offsets topic, oldest record first (a broker that leads
    /// all of them, as a single node does).
    pub fn load(mut partitions: Vec<Arc<Partition>>) -> anyhow::Result<OffsetStore> {
        partitions.sort_by_key(|p| p.id.partition);
        for (index, partition) in partitions.iter().enumerate() {
            if partition.id.partition != index as i32 {
                bail!(
                    "offsets topic partitions are not numbered 0..{}: found {}",
                    partitions.len(),
                    partition.id
                );
            }
        }
        let store = OffsetStore {
            shards: RwLock::new(BTreeMap::new()),
            partition_count: AtomicUsize::new(partitions.len()),
        };
        let count = partitions.len();
        for partition in partitions {
            store.load_shard(partition, count)?;
        }
        Ok(store)
    }

    /// Loads the offsets of one partition this broker now leads (a no-op when that partition
    /// is loaded already). Returns the ids of the groups found in it.
    pub fn load_shard(
        &self,
        partition: Arc<Partition>,
        partition_count: usize,
    ) -> anyhow::Result<Vec<String>> {
        let index = partition.id.partition as usize;
        if let Some(loaded) = self.shards.read().get(&index) {
            if Arc::ptr_eq(&loaded.partition, &partition) {
                return Ok(Vec::new());
            }
        }
        let (committed, records, unreadable_records) = replay(&partition)
            .with_context(|| format!("loading committed offsets from {}", partition.id))?;
        let groups: Vec<String> = committed.keys().cloned().collect();
        self.partition_count
            .store(partition_count, Ordering::Release);
        self.shards.write().insert(
            index,
            Arc::new(OffsetShard {
                partition,
                committed: Mutex::new(committed),
                records_in_log: AtomicUsize::new(records),
                unreadable_records,
            }),
        );
        info!(
            partition = index,
            groups = groups.len(),
            "offsets partition loaded"
        );
        Ok(groups)
    }

    /// Drops the offsets of a partition this broker no longer leads. Returns whether it was
    /// loaded.
    pub fn unload_shard(&self, index: usize) -> bool {
        self.shards.write().remove(&index).is_some()
    }

    /// The offsets partition of `group_id`, when the topic's size is known.
    pub fn partition_of(&self, group_id: &str) -> Option<usize> {
        let count = self.partition_count.load(Ordering::Acquire);
        (count > 0).then(|| partition_for(group_id, count))
    }

    /// Whether this broker holds (leads) the offsets partition of `group_id`.
    pub fn coordinates(&self, group_id: &str) -> bool {
        self.shard(group_id).is_some()
    }

    pub fn partition_count(&self) -> usize {
        self.partition_count.load(Ordering::Acquire)
    }

    pub fn loaded_shards(&self) -> usize {
        self.shards.read().len()
    }

    fn shard(&self, group_id: &str) -> Option<Arc<OffsetShard>> {
        let index = self.partition_of(group_id)?;
        self.shards.read().get(&index).cloned()
    }

    /// Groups that have at least one committed offset.
    pub fn group_ids(&self) -> Vec<String> {
        self.shards
            .read()
            .values()
            .flat_map(|shard| shard.committed.lock().keys().cloned().collect::<Vec<_>>())
            .collect()
    }

    pub fn has_offsets(&self, group_id: &str) -> bool {
        self.shard(group_id)
            .is_some_and(|shard| shard.committed.lock().contains_key(group_id))
    }

    /// Writes the offsets as one record batch and, once the append succeeded, makes them
    /// visible. All or nothing: on error none of them is committed.
    /// Returns the offsets partition and the offset its high watermark must reach before the
    /// commit is durable (replicated to every in-sync replica), for the caller to wait on
    /// without holding any lock.
    pub fn commit(
        &self,
        group_id: &str,
        offsets: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<Option<(Arc<Partition>, i64)>, ResponseError> {
        if offsets.is_empty() {
            return Ok(None);
        }
        let shard = self.shard(group_id).ok_or(if self.partition_count() == 0 {
            ResponseError::CoordinatorNotAvailable
        } else {
            ResponseError::NotCoordinator
        })?;
        let entries: Vec<(OffsetKey, Option<CommittedOffset>)> = offsets
            .into_iter()
            .map(|(topic, partition, value)| {
                (
                    OffsetKey {
                        group: group_id.to_string(),
                        topic,
                        partition,
                    },
                    Some(value),
                )
            })
            .collect();
        let mut committed = shard.committed.lock();
        let durable_at = append(&shard, &entries)?;
        let group = committed.entry(group_id.to_string()).or_default();
        for (key, value) in entries {
            if let Some(value) = value {
                group
                    .entry(key.topic)
                    .or_default()
                    .insert(key.partition, value);
            }
        }
        Ok(Some((shard.partition.clone(), durable_at)))
    }

    /// The group's committed offset for one partition.
    pub fn fetch(&self, group_id: &str, topic: &str, partition: i32) -> Option<CommittedOffset> {
        let shard = self.shard(group_id)?;
        let committed = shard.committed.lock();
        committed
            .get(group_id)?
            .get(topic)?
            .get(&partition)
            .cloned()
    }

    /// Every committed offset of the group.
    pub fn fetch_all(&self, group_id: &str) -> GroupOffsets {
        self.shard(group_id)
            .and_then(|shard| shard.committed.lock().get(group_id).cloned())
            .unwrap_or_default()
    }

    /// Writes a tombstone for each of the group's offsets, then forgets them. Returns how
    /// many were deleted.
    pub fn delete_group(&self, group_id: &str) -> Result<usize, ResponseError> {
        let Some(shard) = self.shard(group_id) else {
            return Ok(0);
        };
        let mut committed = shard.committed.lock();
        let Some(offsets) = committed.get(group_id) else {
            return Ok(0);
        };
        let tombstones: Vec<(OffsetKey, Option<CommittedOffset>)> = offsets
            .iter()
            .flat_map(|(topic, partitions)| {
                partitions.keys().map(move |partition| {
                    (
                        OffsetKey {
                            group: group_id.to_string(),
                            topic: topic.clone(),
                            partition: *partition,
                        },
                        None,
                    )
                })
            })
            .collect();
        if !tombstones.is_empty() {
            append(&shard, &tombstones)?;
        }
        committed.remove(group_id);
        Ok(tombstones.len())
    }
}

impl OffsetStore {
    /// Starts a rewrite of every loaded partition whose log holds at least `min_records`
    /// records and more than twice as many as it has live offsets (Kafka's cleaner starts at a
    /// dirty ratio of one half): the live offsets are appended again, in batches, while no
    /// commit can come between them.
    pub fn start_rewrites(&self, min_records: usize) -> Vec<Rewrite> {
        let shards: Vec<Arc<OffsetShard>> = self.shards.read().values().cloned().collect();
        let mut rewrites = Vec::new();
        for shard in shards {
            let records = shard.records_in_log.load(Ordering::Acquire);
            if records < min_records.max(1) || shard.unreadable_records > 0 {
                continue;
            }
            let committed = shard.committed.lock();
            let live: Vec<(OffsetKey, Option<CommittedOffset>)> = committed
                .iter()
                .flat_map(|(group, topics)| {
                    topics.iter().flat_map(move |(topic, partitions)| {
                        partitions.iter().map(move |(partition, value)| {
                            (
                                OffsetKey {
                                    group: group.clone(),
                                    topic: topic.clone(),
                                    partition: *partition,
                                },
                                Some(value.clone()),
                            )
                        })
                    })
                })
                .collect();
            if records <= 2 * live.len() {
                continue;
            }
            let leader_epoch = shard.partition.leader_epoch();
            let start = shard.partition.log_end_offset();
            let mut durable_at = start;
            let written = rewrite_chunks(&live).into_iter().all(|chunk| {
                append(&shard, chunk)
                    .map(|end| durable_at = end)
                    // The log start stays where it is: what was appended only repeats current
                    // values, and the next pass tries again.
                    .inspect_err(|error| warn!(partition = %shard.partition.id, ?error, "rewriting committed offsets failed"))
                    .is_ok()
            });
            if !written {
                continue;
            }
            let superseded = shard
                .records_in_log
                .swap(live.len(), Ordering::AcqRel)
                .saturating_sub(live.len());
            info!(
                partition = %shard.partition.id,
                records_before = superseded,
                live = live.len(),
                start,
                "committed offsets rewritten at the log end"
            );
            rewrites.push(Rewrite {
                partition: shard.partition.clone(),
                start,
                durable_at,
                superseded,
                leader_epoch,
            });
        }
        rewrites
    }

    /// Finishes a rewrite that is replicated: the log start moves to it; returns whether it
    /// did. When that fails (the leadership moved, say), the log keeps its old records and
    /// nothing is lost.
    pub fn finish_rewrite(&self, rewrite: &Rewrite) -> bool {
        if rewrite.partition.leader_epoch() != rewrite.leader_epoch {
            warn!(partition = %rewrite.partition.id, "the leadership changed during an offsets rewrite; the log start stays");
            self.keep_superseded(rewrite);
            return false;
        }
        match rewrite.partition.delete_records_before(rewrite.start) {
            Ok(_) => {
                info!(
                    partition = %rewrite.partition.id,
                    log_start = rewrite.start,
                    "offsets log start moved past superseded records"
                );
                true
            }
            Err(error) => {
                warn!(partition = %rewrite.partition.id, error = %error.message, "could not move the offsets log start");
                self.keep_superseded(rewrite);
                false
            }
        }
    }

    /// A rewrite that will not be finished: its superseded records still count.
    pub fn keep_superseded(&self, rewrite: &Rewrite) {
        if let Some(shard) = self
            .shards
            .read()
            .get(&(rewrite.partition.id.partition as usize))
            .filter(|shard| Arc::ptr_eq(&shard.partition, &rewrite.partition))
        {
            shard
                .records_in_log
                .fetch_add(rewrite.superseded, Ordering::AcqRel);
        }
    }
}

/// The live offsets in batches of at most [`REWRITE_BATCH_RECORDS`] records and about
/// [`REWRITE_BATCH_BYTES`] bytes (metadata strings can make a record kilobytes long).
fn rewrite_chunks(
    live: &[(OffsetKey, Option<CommittedOffset>)],
) -> Vec<&[(OffsetKey, Option<CommittedOffset>)]> {
    let estimate = |(key, value): &(OffsetKey, Option<CommittedOffset>)| {
        let metadata = value
            .as_ref()
            .and_then(|v| v.metadata.as_ref())
            .map_or(0, String::len);
        key.group.len() + key.topic.len() + metadata + 64
    };
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, entry) in live.iter().enumerate() {
        let size = estimate(entry);
        if index > start
            && (index - start >= REWRITE_BATCH_RECORDS || bytes + size > REWRITE_BATCH_BYTES)
        {
            chunks.push(&live[start..index]);
            (start, bytes) = (index, 0);
        }
        bytes += size;
    }
    if start < live.len() {
        chunks.push(&live[start..]);
    }
    chunks
}

/// Appends the entries as one batch; returns the offset the high watermark must reach for them
/// to be replicated.
fn append(
    shard: &OffsetShard,
    entries: &[(OffsetKey, Option<CommittedOffset>)],
) -> Result<i64, ResponseError> {
    let batch = codec::encode_batch(entries, now_ms()).map_err(|error| {
        warn!(%error, "could not encode an offsets batch");
        ResponseError::InvalidCommitOffsetSize
    })?;
    let outcome = shard.partition.append_as_leader(&batch).map_err(|error| {
        warn!(partition = %shard.partition.id, error = %error.message, "writing committed offsets failed");
        commit_error(&error)
    })?;
    if !outcome.duplicate {
        shard
            .records_in_log
            .fetch_add(entries.len(), Ordering::AcqRel);
    }
    Ok(outcome.last_offset + 1)
}

/// The error a client sees when the offsets log refused a write, mapped as Kafka maps it.
fn commit_error(error: &PartitionError) -> ResponseError {
    match error.error {
        ResponseError::UnknownTopicOrPartition
        | ResponseError::NotEnoughReplicas
        | ResponseError::NotEnoughReplicasAfterAppend
        | ResponseError::RequestTimedOut => ResponseError::CoordinatorNotAvailable,
        ResponseError::NotLeaderOrFollower | ResponseError::KafkaStorageError => {
            ResponseError::NotCoordinator
        }
        ResponseError::MessageTooLarge
        | ResponseError::RecordListTooLarge
        | ResponseError::InvalidFetchSize => ResponseError::InvalidCommitOffsetSize,
        _ => ResponseError::UnknownServerError,
    }
}

/// Reads a partition from its log start to its log end and applies each record in
/// order: the latest value of a key wins, a tombstone removes it. Returns the offsets, the
/// number of records read and how many of them could not be read.
fn replay(partition: &Partition) -> anyhow::Result<(HashMap<String, GroupOffsets>, usize, usize)> {
    let mut committed: HashMap<String, GroupOffsets> = HashMap::new();
    let mut offset = partition.log_start_offset();
    // Up to the log end, not the high watermark: a new leader's high watermark may still lag
    // the commits its log already holds from the previous leader (Kafka loads to the log end
    // as well; a leader never truncates its own log).
    let end = partition.log_end_offset();
    let mut read_bytes = LOAD_READ_BYTES;
    let mut records = 0usize;
    let mut skipped = 0usize;
    let mut skipped_batches = 0usize;
    while offset < end {
        let read = partition
            .read_to_log_end(offset, read_bytes)
            .map_err(|error| anyhow::anyhow!("reading at offset {offset}: {}", error.message))?;
        let (batches, next_offset) = codec::split_batches(&read.records);
        let Some(next_offset) = next_offset else {
            if read.records.is_empty() {
                warn!(partition = %partition.id, offset, end, "offsets log ended before its high watermark");
                break;
            }
            if read_bytes >= MAX_LOAD_READ_BYTES {
                bail!("a batch at offset {offset} is larger than {MAX_LOAD_READ_BYTES} bytes");
            }
            read_bytes *= 2;
            continue;
        };
        for batch in &batches {
            // The log checked the batch's CRC; a batch that still does not decode (written by
            // a newer broker, say) is skipped rather than keeping the broker from starting.
            let decoded = match codec::decode_batch(batch) {
                Ok(decoded) => decoded,
                Err(error) => {
                    warn!(partition = %partition.id, offset, %error, "skipping an undecodable offsets batch");
                    skipped_batches += 1;
                    continue;
                }
            };
            for (key, value) in decoded {
                records += 1;
                if !apply(&mut committed, key.as_deref(), value.as_deref()) {
                    skipped += 1;
                }
            }
        }
        if next_offset <= offset {
            bail!("offsets log did not advance past offset {offset}");
        }
        offset = next_offset;
    }
    if skipped > 0 || skipped_batches > 0 {
        warn!(
            partition = %partition.id,
            skipped_records = skipped,
            skipped_batches,
            "skipped offsets records this broker cannot read"
        );
    }
    info!(
        partition = %partition.id,
        records,
        groups = committed.len(),
        "committed offsets loaded"
    );
    Ok((committed, records, skipped + skipped_batches))
}

/// Applies one record; false when it was skipped as unreadable.
fn apply(
    committed: &mut HashMap<String, GroupOffsets>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> bool {
    let key = match key.map(codec::decode_key) {
        Some(Ok(Some(key))) => key,
        _ => return false,
    };
    match value {
        Some(value) => match codec::decode_value(value) {
            Ok(value) => {
                committed
                    .entry(key.group)
                    .or_default()
                    .entry(key.topic)
                    .or_default()
                    .insert(key.partition, value);
                true
            }
            Err(_) => false,
        },
        None => {
            if let Some(group) = committed.get_mut(&key.group) {
                if let Some(partitions) = group.get_mut(&key.topic) {
                    partitions.remove(&key.partition);
                    if partitions.is_empty() {
                        group.remove(&key.topic);
                    }
                }
                if group.is_empty() {
                    committed.remove(&key.group);
                }
            }
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::partition::replicas::ReplicaSet;
    use crate::partition::{FetchWakeups, TopicPartition};

    fn offset(value: i64, metadata_bytes: usize) -> CommittedOffset {
        CommittedOffset {
            offset: value,
            leader_epoch: -1,
            metadata: Some("m".repeat(metadata_bytes)),
            commit_timestamp_ms: 0,
        }
    }

    #[test]
    fn rewrite_batches_stay_below_their_record_and_byte_limits() {
        let entries = |count: usize, metadata_bytes: usize| -> Vec<_> {
            (0..count)
                .map(|i| {
                    let key = OffsetKey {
                        group: "group".into(),
                        topic: "topic".into(),
                        partition: i as i32,
                    };
                    (key, Some(offset(i as i64, metadata_bytes)))
                })
                .collect()
        };
        let small = entries(4_500, 0);
        let sizes: Vec<usize> = rewrite_chunks(&small).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![2_000, 2_000, 500]);
        let large = entries(300, 4_096);
        let chunks = rewrite_chunks(&large);
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 300);
        for chunk in &chunks {
            let encoded = codec::encode_batch(chunk, 0).unwrap();
            assert!(
                encoded.len() <= REWRITE_BATCH_BYTES + 4_096,
                "{}",
                encoded.len()
            );
        }
        assert!(rewrite_chunks(&[]).is_empty());
    }

    #[test]
    fn a_rewrite_from_an_earlier_leader_epoch_does_not_move_the_log_start() {
        let dir = tempfile::tempdir().unwrap();
        let id = TopicPartition {
            topic: "__consumer_offsets".into(),
            partition: 0,
        };
        let partition = Arc::new(
            Partition::open(
                1,
                id,
                Uuid::from_u128(1),
                dir.path(),
                Default::default(),
                FetchWakeups::default(),
            )
            .unwrap(),
        );
        let store = OffsetStore::load(vec![partition.clone()]).unwrap();
        for round in 0..10 {
            store
                .commit("group", vec![("topic".into(), 0, offset(round, 0))])
                .unwrap();
        }
        let rewrites = store.start_rewrites(5);
        assert_eq!(rewrites.len(), 1);
        assert_eq!(rewrites[0].start, 10);

        // A new leader epoch (the leadership moved away and back, say) before it finishes.
        let current = partition.replicas();
        partition.set_replicas(ReplicaSet::new(
            1,
            1,
            current.leader_epoch + 1,
            current.partition_epoch + 1,
            vec![1],
            vec![1],
            now_ms(),
        ));
        assert!(!store.finish_rewrite(&rewrites[0]));
        assert_eq!(partition.log_start_offset(), 0);

        // The superseded records still count: the next pass rewrites again, and finishes.
        let rewrites = store.start_rewrites(5);
        assert_eq!(rewrites.len(), 1);
        assert!(store.finish_rewrite(&rewrites[0]));
        assert_eq!(partition.log_start_offset(), 11);
        assert_eq!(partition.log_end_offset(), 12);
    }

    #[test]
    fn group_placement_matches_kafka() {
        // Java: "".hashCode() == 0, "a".hashCode() == 97, "hello".hashCode() == 99162322.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE in Java.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
        assert_eq!(java_string_hash("my-group-xyz-long-name"), -1_415_080_039);
        assert_eq!(
            partition_for("my-group-xyz-long-name", 50),
            1_415_080_039 % 50
        );
        // Non-BMP characters hash as their two UTF-16 code units, as in Java.
        assert_eq!(java_string_hash("\u{1F600}"), 0xD83D * 31 + 0xDE00);
    }
}
