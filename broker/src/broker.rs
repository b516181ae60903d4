//! The broker's shared state: configuration, topics, partitions, groups, producer ids and
//! metrics. One `Arc<Broker>` is handed to every connection and background task.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::BrokerConfig;
use crate::group::GroupCoordinator;
use crate::metadata::{TopicConfig, TopicError, TopicRecord, TopicRegistry};
use crate::metrics::Metrics;
use crate::partition::PartitionManager;
use crate::producer_ids::ProducerIdAllocator;

/// Name of the internal topic holding committed group offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

pub struct Broker {
    pub config: BrokerConfig,
    pub topics: TopicRegistry,
    pub partitions: PartitionManager,
    pub producer_ids: ProducerIdAllocator,
    pub groups: Arc<GroupCoordinator>,
    pub metrics: Metrics,
    /// Turns true once start-up recovery is done and the listener is bound.
    pub ready: watch::Sender<bool>,
}

impl Broker {
    /// Opens the data directory: topic registry, every partition (recovering logs after a
    /// crash), the internal offsets topic and the group coordinator.
    pub fn open(config: BrokerConfig) -> anyhow::Result<Arc<Broker>> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let topics = TopicRegistry::open(&config.data_dir)?;
        let partitions = PartitionManager::new(config.node_id, &config.data_dir)?;
        if topics.get(OFFSETS_TOPIC).is_none() {
            // Committed offsets must outlive any time-based retention; without compaction the
            // topic grows with every commit (each commit is one small batch).
            let configs = BTreeMap::from([("retention.ms".to_string(), "-1".to_string())]);
            topics
                .create(
                    OFFSETS_TOPIC,
                    config.offsets_topic_partitions,
                    configs,
                    true,
                )
                .context("creating the offsets topic")?;
        }
        for topic in topics.list() {
            let log_config = TopicConfig::resolve(&config, &topic.configs).log_config();
            partitions.ensure_topic(&topic, &log_config)?;
        }
        partitions.remove_orphans()?;
        let offsets_partitions = partitions.of_topic(OFFSETS_TOPIC);
        let groups = GroupCoordinator::open(&config, offsets_partitions)
            .context("loading committed group offsets")?;
        let producer_ids = ProducerIdAllocator::open(&config.data_dir)?;
        info!(
            topics = topics.list().len(),
            partitions = partitions.all().len(),
            "data directory opened"
        );
        Ok(Arc::new(Broker {
            config,
            topics,
            partitions,
            producer_ids,
            groups,
            metrics: Metrics::new(),
            ready: watch::channel(false).0,
        }))
    }

    /// Creates a topic and its partitions.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicRecord, TopicError> {
        let record = self.topics.create(name, partitions, configs, false)?;
        self.open_partitions(&record)?;
        info!(topic = name, partitions, "topic created");
        Ok(record)
    }

    fn open_partitions(&self, record: &TopicRecord) -> Result<(), TopicError> {
        let log_config = TopicConfig::resolve(&self.config, &record.configs).log_config();
        self.partitions
            .ensure_topic(record, &log_config)
            .map_err(|e| TopicError::Io(std::io::Error::other(format!("{e:#}"))))
    }

    /// Deletes a topic and its data.
    pub fn delete_topic(&self, name: &str) -> Result<TopicRecord, TopicError> {
        let record = self.topics.delete(name)?;
        self.partitions
            .delete_topic(name)
            .map_err(|e| TopicError::Io(std::io::Error::other(format!("{e:#}"))))?;
        info!(topic = name, "topic deleted");
        Ok(record)
    }

    /// Raises a topic's partition count.
    pub fn add_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<TopicRecord, TopicError> {
        let record = self.topics.add_partitions(name, total, validate_only)?;
        if !validate_only {
            self.open_partitions(&record)?;
            info!(topic = name, partitions = total, "partitions added");
        }
        Ok(record)
    }

    /// Replaces a topic's configuration overrides and applies them to its partitions.
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicRecord, TopicError> {
        let record = self.topics.set_configs(name, configs)?;
        let log_config = TopicConfig::resolve(&self.config, &record.configs).log_config();
        self.partitions.set_topic_config(name, &log_config);
        info!(topic = name, "topic configuration changed");
        Ok(record)
    }

    /// Looks a topic up, creating it when auto-creation is on and the name is valid.
    pub fn topic_or_auto_create(&self, name: &str) -> Result<TopicRecord, TopicError> {
        if let Some(topic) = self.topics.get(name) {
            return Ok(topic);
        }
        if !self.config.auto_create_topics {
            return Err(TopicError::UnknownTopic(name.to_string()));
        }
        match self.create_topic(name, self.config.default_partitions, BTreeMap::new()) {
            Err(TopicError::AlreadyExists(_)) => self
                .topics
                .get(name)
                .ok_or_else(|| TopicError::UnknownTopic(name.to_string())),
            other => other,
        }
    }

    /// Runs the flush and retention loops until `shutdown` turns true.
    pub async fn run_background(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut flush = tokio::time::interval(Duration::from_millis(100));
        let mut retention = tokio::time::interval(Duration::from_millis(
            self.config.retention_check_interval_ms.max(10),
        ));
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = flush.tick() => {
                    let broker = self.clone();
                    if let Err(error) = tokio::task::spawn_blocking(move || broker.partitions.flush_due()).await {
                        warn!(%error, "flush task failed");
                    }
                }
                _ = retention.tick() => {
                    let broker = self.clone();
                    if let Err(error) = tokio::task::spawn_blocking(move || broker.partitions.apply_retention()).await {
                        warn!(%error, "retention task failed");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use clap::Parser;

    /// A broker on a fresh temporary data directory, with extra flags.
    pub fn open(dir: &std::path::Path, flags: &[&str]) -> Arc<Broker> {
        let mut args = vec![
            "millrace-broker",
            "--data-dir",
            dir.to_str().expect("utf-8 temp path"),
        ];
        args.extend_from_slice(flags);
        Broker::open(BrokerConfig::parse_from(args)).expect("broker opens")
    }
}
