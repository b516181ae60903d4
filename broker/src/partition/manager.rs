//! The partitions this broker hosts: opened at start-up from the topic registry, created and
//! deleted with topics, flushed and trimmed by background tasks.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use millrace_log::LogConfig;
use parking_lot::RwLock;
use tokio::sync::watch;
use tracing::{info, warn};

use super::{Partition, TopicPartition};
use crate::metadata::TopicRecord;

/// Every partition of this broker, by topic and index.
pub struct PartitionManager {
    /// This broker's id.
    local_id: i32,
    logs_dir: PathBuf,
    partitions: RwLock<BTreeMap<TopicPartition, Arc<Partition>>>,
    /// Bumped after every append, so that waiting fetches re-check their partitions.
    appended: watch::Sender<u64>,
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
            appended: watch::channel(0).0,
        })
    }

    fn partition_dir(&self, id: &TopicPartition) -> PathBuf {
        self.logs_dir.join(format!("{}-{}", id.topic, id.partition))
    }

    /// Opens (or creates) every partition of `topic`, leaving those already open alone.
    pub fn ensure_topic(&self, topic: &TopicRecord, config: &LogConfig) -> anyhow::Result<()> {
        for index in 0..topic.partitions {
            let id = TopicPartition {
                topic: topic.name.clone(),
                partition: index,
            };
            if self.partitions.read().contains_key(&id) {
                continue;
            }
            let dir = self.partition_dir(&id);
            let partition =
                Partition::open(self.local_id, id.clone(), topic.id, &dir, config.clone())
                    .with_context(|| format!("opening partition {id}"))?;
            self.partitions.write().insert(id, Arc::new(partition));
        }
        Ok(())
    }

    /// Removes every partition directory that belongs to no known topic (left by a crash in
    /// the middle of a topic deletion).
    pub fn remove_orphans(&self) -> anyhow::Result<()> {
        let known: HashSet<PathBuf> = self
            .partitions
            .read()
            .keys()
            .map(|id| self.partition_dir(id))
            .collect();
        for entry in fs::read_dir(&self.logs_dir)? {
            let path = entry?.path();
            if path.is_dir() && !known.contains(&path) {
                warn!(dir = %path.display(), "removing partition directory of no known topic");
                fs::remove_dir_all(&path)?;
            }
        }
        Ok(())
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

    /// Closes and deletes every partition of `topic`, with its data.
    pub fn delete_topic(&self, topic: &str) -> anyhow::Result<()> {
        let removed: Vec<Arc<Partition>> = {
            let mut partitions = self.partitions.write();
            let ids: Vec<TopicPartition> = partitions
                .keys()
                .filter(|id| id.topic == topic)
                .cloned()
                .collect();
            ids.iter().filter_map(|id| partitions.remove(id)).collect()
        };
        for partition in removed {
            fs::remove_dir_all(partition.dir())
                .with_context(|| format!("deleting {}", partition.dir().display()))?;
        }
        info!(topic, "topic data deleted");
        Ok(())
    }

    pub fn set_topic_config(&self, topic: &str, config: &LogConfig) {
        for partition in self.of_topic(topic) {
            partition.set_log_config(config.clone());
        }
    }

    /// Wakes fetches waiting for new data.
    pub fn notify_appended(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
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
