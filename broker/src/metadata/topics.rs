//! The topic registry: which topics exist, their ids, partition counts and configuration
//! overrides. Persisted as one JSON document, replaced atomically (write, fsync, rename) on every
//! change, so a crash leaves either the old or the new registry.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::names::validate_topic_name;
use super::topic_config::{ConfigError, TopicConfig};

/// Most partitions one topic may have.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

/// One topic as the registry stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
    #[serde(default)]
    pub internal: bool,
}

/// Why a topic change was refused; each maps to one Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("topic {0:?} already exists")]
    AlreadyExists(String),
    #[error("topic {0:?} does not exist")]
    UnknownTopic(String),
    #[error("invalid topic name: {0}")]
    InvalidName(String),
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    #[error("invalid configuration {0}")]
    InvalidConfig(#[from] ConfigError),
    #[error("topic {0:?} is internal and cannot be changed by clients")]
    Internal(String),
    #[error("could not persist topic metadata: {0}")]
    Io(#[from] std::io::Error),
}

impl TopicError {
    /// The Kafka error code for this refusal.
    pub fn code(&self) -> i16 {
        use kafka_protocol::ResponseError as E;
        match self {
            TopicError::AlreadyExists(_) => E::TopicAlreadyExists.code(),
            TopicError::UnknownTopic(_) => E::UnknownTopicOrPartition.code(),
            TopicError::InvalidName(_) => E::InvalidTopicException.code(),
            TopicError::InvalidPartitions(_) => E::InvalidPartitions.code(),
            TopicError::InvalidConfig(_) => E::InvalidConfig.code(),
            TopicError::Internal(_) => E::TopicAuthorizationFailed.code(),
            TopicError::Io(_) => E::KafkaStorageError.code(),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RegistryFile {
    topics: BTreeMap<String, TopicRecord>,
}

/// The set of topics, persisted in `DIR/topics.json`.
pub struct TopicRegistry {
    path: PathBuf,
    topics: RwLock<BTreeMap<String, TopicRecord>>,
}

impl TopicRegistry {
    pub fn open(data_dir: &Path) -> anyhow::Result<TopicRegistry> {
        let path = data_dir.join("topics.json");
        let topics = match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice::<RegistryFile>(&bytes)
                    .map_err(|e| anyhow::anyhow!("{} is corrupt: {e}", path.display()))?
                    .topics
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", path.display())),
        };
        Ok(TopicRegistry {
            path,
            topics: RwLock::new(topics),
        })
    }

    pub fn get(&self, name: &str) -> Option<TopicRecord> {
        self.topics.read().get(name).cloned()
    }

    pub fn get_by_id(&self, id: Uuid) -> Option<TopicRecord> {
        self.topics.read().values().find(|t| t.id == id).cloned()
    }

    pub fn list(&self) -> Vec<TopicRecord> {
        self.topics.read().values().cloned().collect()
    }

    /// Checks a creation without making it (CreateTopics with validate_only).
    pub fn check_create(
        &self,
        name: &str,
        partitions: i32,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), TopicError> {
        validate_topic_name(name).map_err(TopicError::InvalidName)?;
        if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) {
            return Err(TopicError::InvalidPartitions(format!(
                "{partitions} is outside 1..={MAX_PARTITIONS_PER_TOPIC}"
            )));
        }
        TopicConfig::validate(configs)?;
        if self.topics.read().contains_key(name) {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        Ok(())
    }

    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        internal: bool,
    ) -> Result<TopicRecord, TopicError> {
        self.check_create(name, partitions, &configs)?;
        let record = TopicRecord {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            configs,
            internal,
        };
        self.mutate(|topics| {
            if topics.contains_key(name) {
                return Err(TopicError::AlreadyExists(name.to_string()));
            }
            topics.insert(name.to_string(), record.clone());
            Ok(())
        })?;
        Ok(record)
    }

    pub fn delete(&self, name: &str) -> Result<TopicRecord, TopicError> {
        self.mutate(|topics| match topics.get(name) {
            None => Err(TopicError::UnknownTopic(name.to_string())),
            Some(t) if t.internal => Err(TopicError::Internal(name.to_string())),
            Some(_) => Ok(topics.remove(name).expect("checked above")),
        })
    }

    /// Raises the partition count (Kafka never lowers it).
    pub fn add_partitions(
        &self,
        name: &str,
        new_total: i32,
        validate_only: bool,
    ) -> Result<TopicRecord, TopicError> {
        let apply = |topics: &mut BTreeMap<String, TopicRecord>| {
            let topic = topics
                .get_mut(name)
                .ok_or_else(|| TopicError::UnknownTopic(name.to_string()))?;
            if topic.internal {
                return Err(TopicError::Internal(name.to_string()));
            }
            if new_total <= topic.partitions {
                return Err(TopicError::InvalidPartitions(format!(
                    "topic {name:?} has {} partitions; the new count {new_total} must be larger",
                    topic.partitions
                )));
            }
            if new_total > MAX_PARTITIONS_PER_TOPIC {
                return Err(TopicError::InvalidPartitions(format!(
                    "{new_total} is above the limit of {MAX_PARTITIONS_PER_TOPIC}"
                )));
            }
            topic.partitions = new_total;
            Ok(topic.clone())
        };
        if validate_only {
            let mut copy = self.topics.read().clone();
            return apply(&mut copy);
        }
        self.mutate(apply)
    }

    /// Replaces a topic's configuration overrides with `configs`.
    pub fn set_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicRecord, TopicError> {
        TopicConfig::validate(&configs)?;
        self.mutate(|topics| {
            let topic = topics
                .get_mut(name)
                .ok_or_else(|| TopicError::UnknownTopic(name.to_string()))?;
            topic.configs = configs;
            Ok(topic.clone())
        })
    }

    /// Applies `change` to a copy, persists the copy, then publishes it: readers never see a
    /// change that is not on disk.
    fn mutate<T>(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, TopicRecord>) -> Result<T, TopicError>,
    ) -> Result<T, TopicError> {
        let mut topics = self.topics.write();
        let mut next = topics.clone();
        let result = change(&mut next)?;
        persist(
            &self.path,
            &RegistryFile {
                topics: next.clone(),
            },
        )?;
        *topics = next;
        Ok(result)
    }
}

fn persist(path: &Path, file: &RegistryFile) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut out = fs::File::create(&tmp)?;
    out.write_all(&serde_json::to_vec_pretty(file).expect("registry serializes"))?;
    out.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_survive_reopen_and_changes_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let registry = TopicRegistry::open(dir.path()).unwrap();
        let created = registry
            .create("orders", 3, BTreeMap::new(), false)
            .unwrap();
        assert!(matches!(
            registry.create("orders", 1, BTreeMap::new(), false),
            Err(TopicError::AlreadyExists(_))
        ));
        assert!(matches!(
            registry.add_partitions("orders", 2, false),
            Err(TopicError::InvalidPartitions(_))
        ));
        registry.add_partitions("orders", 5, false).unwrap();
        assert_eq!(
            registry
                .add_partitions("orders", 9, true)
                .unwrap()
                .partitions,
            9
        );

        let reopened = TopicRegistry::open(dir.path()).unwrap();
        let topic = reopened.get("orders").unwrap();
        assert_eq!(topic.id, created.id);
        assert_eq!(topic.partitions, 5);
        reopened.delete("orders").unwrap();
        assert!(TopicRegistry::open(dir.path())
            .unwrap()
            .get("orders")
            .is_none());
    }

    #[test]
    fn refuses_bad_names_partition_counts_and_configs() {
        let dir = tempfile::tempdir().unwrap();
        let registry = TopicRegistry::open(dir.path()).unwrap();
        let none = BTreeMap::new();
        assert!(matches!(
            registry.create("bad name", 1, none.clone(), false),
            Err(TopicError::InvalidName(_))
        ));
        assert!(matches!(
            registry.create("t", 0, none.clone(), false),
            Err(TopicError::InvalidPartitions(_))
        ));
        let configs = BTreeMap::from([("retention.ms".to_string(), "x".to_string())]);
        assert!(matches!(
            registry.create("t", 1, configs, false),
            Err(TopicError::InvalidConfig(_))
        ));
        assert!(registry.list().is_empty());
    }
}
