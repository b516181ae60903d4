//! The partitions this broker hosts: opened at start-up from the topic registry, created and
//! deleted with topics, flushed and trimmed by background tasks.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use millrace_log::LogConfig;
use parking_lot::RwLock;
use tracing::{info, warn};

use super::{FetchWakeups, Partition, TopicPartition};
use uuid::Uuid;

/// Every partition of this broker, by topic and index.
pub struct PartitionManager {
    /// This broker's id.
    local_id: i32,
    logs_dir: PathBuf,
    partitions: RwLock<BTreeMap<TopicPartition, Arc<Partition>>>,
    /// Woken after every append (followers read up to the log end) and every high watermark
    /// move (consumers read up to it), so that waiting fetches re-check their partitions.
    fetch_wakeups: FetchWakeups,
}

impl PartitionManager {
    pub fn new(local_id: i32, data_dir: &Path) -> anyhow::Result<PartitionManager> {
        let logs_dir = data_dir.join("logs");
        fs::create_dir_all(&logs_dir)
            .with_context(|| format!("creating {}", logs_dir.display()))?;
        Ok(PartitionManager {
            local_id,
            logs_dir,
            partitions: RwLock::new(BTreeMap::new()),
            fetch_wakeups: FetchWakeups::default(),
        })
    }

    fn partition_dir(&self, id: &TopicPartition) -> PathBuf {
        self.logs_dir.join(format!("{}-{}", id.topic, id.partition))
    }

    /// The partition `topic`-`index` of topic id `topic_id`, opened (its log recovered) or
    /// created. A directory left by an older topic of the same name is wiped first: each
    /// partition directory records its topic id in `partition.metadata`, as Kafka's does.
    pub fn ensure_partition(
        &self,
        topic: &str,
        topic_id: Uuid,
        index: i32,
        config: &LogConfig,
    ) -> anyhow::Result<Arc<Partition>> {
        let id = TopicPartition {
            topic: topic.to_string(),
            partition: index,
        };
        if let Some(open) = self.partitions.read().get(&id) {
            if open.topic_id == topic_id {
                return Ok(open.clone());
            }
        }
        if let Some(stale) = self.partitions.write().remove(&id) {
            warn!(partition = %id, "replacing a partition of a deleted topic with the same name");
            fs::remove_dir_all(stale.dir()).ok();
        }
        let dir = self.partition_dir(&id);
        let marker = dir.join("partition.metadata");
        match fs::read_to_string(&marker) {
            Ok(text) if text.trim() != format!("topic_id: {topic_id}") => {
                warn!(partition = %id, "removing data of an older topic with the same name");
                fs::remove_dir_all(&dir)?;
            }
            _ => {}
        }
        fs::create_dir_all(&dir)?;
        if !marker.exists() {
            fs::write(&marker, format!("topic_id: {topic_id}\n"))?;
        }
        let partition = Partition::open(
            self.local_id,
            id.clone(),
            topic_id,
            &dir,
            config.clone(),
            self.fetch_wakeups.clone(),
        )
        .with_context(|| format!("opening partition {id}"))?;
        let partition = Arc::new(partition);
        self.partitions.write().insert(id, partition.clone());
        Ok(partition)
    }

    /// Closes a partition this broker no longer hosts and deletes its data.
    pub fn remove(&self, id: &TopicPartition) -> anyhow::Result<()> {
        let Some(partition) = self.partitions.write().remove(id) else {
            return Ok(());
        };
        fs::remove_dir_all(partition.dir())
            .with_context(|| format!("deleting {}", partition.dir().display()))?;
        info!(partition = %id, "partition data deleted");
        Ok(())
    }

    /// Partition directories on disk that no open partition uses (a topic deleted while this
    /// broker was down, say).
    pub fn unused_dirs(&self) -> anyhow::Result<Vec<PathBuf>> {
        let known: HashSet<PathBuf> = self
            .partitions
            .read()
            .keys()
            .map(|id| self.partition_dir(id))
            .collect();
        let mut unused = Vec::new();
        for entry in fs::read_dir(&self.logs_dir)? {
            let path = entry?.path();
            if path.is_dir() && !known.contains(&path) {
                unused.push(path);
            }
        }
        Ok(unused)
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .get(&TopicPartition {
                topic: topic.to_string(),
                partition,
            })
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    pub fn of_topic(&self, topic: &str) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .values()
            .filter(|p| p.id.topic == topic)
            .cloned()
            .collect()
    }

    /// Wakes the followers' fetches after an append (partitions wake consumers' fetches
    /// themselves when their high watermark moves).
    pub fn wake_fetches(&self) {
        self.fetch_wakeups.appended();
    }

    pub fn fetch_wakeups(&self) -> &FetchWakeups {
        &self.fetch_wakeups
    }

    /// One pass of the flush policy over every partition.
    pub fn flush_due(&self) {
        for partition in self.all() {
            if let Err(error) = partition.maybe_flush() {
                warn!(partition = %partition.id, %error, "flush failed");
            }
        }
    }

    /// One pass of retention over every partition.
    pub fn apply_retention(&self) {
        for partition in self.all() {
            match partition.apply_retention() {
                Ok(0) => {}
                Ok(deleted) => {
                    info!(partition = %partition.id, deleted, "retention removed segments")
                }
                Err(error) => warn!(partition = %partition.id, %error, "retention failed"),
            }
        }
    }

    /// Flushes everything (clean shutdown).
    pub fn flush_all(&self) {
        for partition in self.all() {
            if let Err(error) = partition.flush() {
                warn!(partition = %partition.id, %error, "final flush failed");
            }
        }
    }
}
