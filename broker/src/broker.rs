//! The broker's shared state: configuration, the metadata quorum, partitions, groups, producer
//! ids and metrics. One `Arc<Broker>` is handed to every connection and background task.
//!
//! Cluster metadata (brokers, topics, partition leaders and ISRs) lives in the replicated
//! metadata quorum; this broker reads its own copy and asks the active controller for changes.
//! [`crate::metadata::sync`] makes the local partitions follow it.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use millrace_quorum::command::{BrokerRegistration, Command};
use millrace_quorum::{
    parse_voters, ClusterMetadata, MetadataQuorum, QuorumConfig, TopicRecord, Voter,
};
use tokio::sync::watch;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::capacity::Capacity;
use crate::config::BrokerConfig;
use crate::group::GroupCoordinator;
use crate::metadata::dynamic::DynamicConfig;
use crate::metadata::{check_new_topic, TopicConfig, TopicError};
use crate::metrics::Metrics;
use crate::partition::PartitionManager;
use crate::producer_ids::ProducerIdAllocator;
use crate::replication::throttle::ReplicationThrottle;
use crate::replication::ReplicaFetchers;

/// Name of the internal topic holding committed group offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

pub struct Broker {
    /// The flags this process started with; [`Broker::defaults`] adds the dynamic overrides.
    pub config: BrokerConfig,
    /// Settings changed at runtime (IncrementalAlterConfigs on this broker).
    pub dynamic: DynamicConfig,
    /// The data directory's capacity, when the platform sets one.
    pub capacity: Capacity,
    pub quorum: Arc<MetadataQuorum>,
    metadata: watch::Receiver<Arc<ClusterMetadata>>,
    /// New for every start of this process; the controller fences older incarnations.
    pub incarnation_id: Uuid,
    pub partitions: PartitionManager,
    pub fetchers: Arc<ReplicaFetchers>,
    /// What this broker, as leader, may send to replicas a reassignment is adding.
    pub replication_throttle: ReplicationThrottle,
    pub producer_ids: ProducerIdAllocator,
    pub groups: Arc<GroupCoordinator>,
    pub metrics: Metrics,
    /// Voters of the metadata quorum (the offsets topic is replicated as widely, up to 3).
    pub voter_count: usize,
    /// Turns true once start-up recovery is done and the listener is bound.
    pub ready: watch::Sender<bool>,
    /// Turns true when a graceful shutdown stops serving: waiting long polls answer at once.
    pub stopping: watch::Sender<bool>,
    /// Whether the controller currently fences this broker.
    pub fenced: watch::Sender<bool>,
}

/// The quorum configuration for `config`: its voters, and where this broker listens for them.
fn quorum_config(config: &BrokerConfig) -> anyhow::Result<QuorumConfig> {
    let (voters, listen) = match &config.voters {
        Some(text) => {
            let voters = parse_voters(text).map_err(|e| anyhow::anyhow!("--voters: {e}"))?;
            let listen = match (
                config.controller_listen,
                voters.iter().find(|v| v.id == config.node_id),
            ) {
                (Some(listen), _) => listen,
                (None, Some(own)) => resolve(&own.host, own.port)?,
                (None, None) => anyhow::bail!("--controller-listen is required for a non-voter"),
            };
            (voters, listen)
        }
        None => {
            let listen = match config.controller_listen {
                Some(listen) => listen,
                None => free_loopback_port()?,
            };
            let own = Voter {
                id: config.node_id,
                host: listen.ip().to_string(),
                port: listen.port(),
            };
            (vec![own], listen)
        }
    };
    let mut quorum = QuorumConfig::new(
        config.node_id,
        voters,
        listen,
        config.data_dir.join("quorum"),
    );
    quorum.broker_session_timeout_ms = config.broker_session_timeout_ms;
    quorum.advertised = config.controller_advertised.clone();
    Ok(quorum)
}

fn resolve(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    (host, port)
        .to_socket_addrs()
        .with_context(|| format!("resolving {host}:{port}"))?
        .next()
        .with_context(|| format!("{host}:{port} resolves to no address"))
}

fn free_loopback_port() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

impl Broker {
    /// Opens the data directory and joins the metadata quorum. Partitions are opened (their
    /// logs recovered) as the metadata assigns them to this broker.
    pub async fn start(config: BrokerConfig) -> anyhow::Result<Arc<Broker>> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let quorum_config = quorum_config(&config)?;
        let voter_count = quorum_config.voters.len();
        let quorum = MetadataQuorum::start(quorum_config)
            .await
            .context("starting the metadata quorum")?;
        let partitions = PartitionManager::new(config.node_id, &config.data_dir)?;
        let groups = GroupCoordinator::open(&config, Vec::new())?;
        let producer_ids = ProducerIdAllocator::new();
        let dynamic = DynamicConfig::open(&config, &config.data_dir)?;
        let metadata = quorum.metadata();
        let broker = Arc::new(Broker {
            fetchers: Arc::new(ReplicaFetchers::new(config.node_id)),
            replication_throttle: ReplicationThrottle::default(),
            capacity: Capacity::new(&config.data_dir),
            config,
            dynamic,
            metadata,
            incarnation_id: Uuid::new_v4(),
            quorum,
            partitions,
            producer_ids,
            groups,
            metrics: Metrics::new(),
            voter_count,
            ready: watch::channel(false).0,
            stopping: watch::channel(false).0,
            fenced: watch::channel(true).0,
        });
        Ok(broker)
    }

    /// This broker's copy of the cluster metadata.
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        self.metadata.borrow().clone()
    }

    pub fn subscribe_metadata(&self) -> watch::Receiver<Arc<ClusterMetadata>> {
        self.metadata.clone()
    }

    pub fn topic(&self, name: &str) -> Option<Arc<TopicRecord>> {
        self.metadata().topic(name).cloned()
    }

    /// Whether clients may change `name` (internal topics are the broker's own).
    pub fn is_internal(name: &str) -> bool {
        name == OFFSETS_TOPIC
    }

    /// The registration sent with every heartbeat.
    fn registration(&self) -> BrokerRegistration {
        let (host, port) = self.config.advertised_host_port();
        BrokerRegistration {
            broker_id: self.config.node_id,
            incarnation_id: self.incarnation_id,
            rack: self.config.rack.clone(),
            host,
            port: port as u16,
            wants_fenced: false,
            caught_up: true,
        }
    }

    /// Heartbeats to the active controller until `shutdown`; the first heartbeat registers
    /// this broker. The answer says whether it is fenced.
    pub async fn run_heartbeats(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let interval = Duration::from_millis(self.config.broker_heartbeat_interval_ms.max(50));
        loop {
            match self.quorum.broker_heartbeat(self.registration()).await {
                Ok(outcome) => {
                    if self.fenced.send_replace(outcome.fenced) != outcome.fenced {
                        info!(
                            fenced = outcome.fenced,
                            epoch = outcome.broker_epoch,
                            "broker fencing changed"
                        );
                    }
                }
                Err(error) => debug!(%error, "heartbeat failed; retrying"),
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Waits until the controller has unfenced this broker (it may lead partitions).
    pub async fn wait_unfenced(&self, timeout: Duration) -> bool {
        let mut fenced = self.fenced.subscribe();
        tokio::time::timeout(timeout, fenced.wait_for(|f| !*f))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Creates a topic; the active controller places its replicas.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: Option<i16>,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<TopicRecord>, TopicError> {
        check_new_topic(name, partitions, &configs)?;
        let record = self
            .quorum
            .create_topic(name, partitions, replication_factor, configs)
            .await
            .map_err(|e| TopicError::from_quorum(name, e))?;
        info!(topic = name, partitions, "topic created");
        Ok(record)
    }

    /// Deletes a topic; every replica deletes its data when the metadata says so.
    pub async fn delete_topic(&self, name: &str) -> Result<Arc<TopicRecord>, TopicError> {
        if Self::is_internal(name) {
            return Err(TopicError::Internal(name.to_string()));
        }
        let record = self
            .topic(name)
            .ok_or_else(|| TopicError::UnknownTopic(name.to_string()))?;
        self.quorum
            .submit(Command::DeleteTopic {
                name: name.to_string(),
            })
            .await
            .map_err(|e| TopicError::from_quorum(name, e))?;
        info!(topic = name, "topic deleted");
        Ok(record)
    }

    /// Raises a topic's partition count; new replicas are placed like a new topic's.
    pub async fn add_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        if Self::is_internal(name) {
            return Err(TopicError::Internal(name.to_string()));
        }
        let metadata = self.metadata();
        let topic = metadata
            .topic(name)
            .ok_or_else(|| TopicError::UnknownTopic(name.to_string()))?;
        let current = topic.partitions.len() as i32;
        if total <= current {
            return Err(TopicError::InvalidPartitions(format!(
                "topic {name:?} has {current} partitions; the new count {total} must be larger"
            )));
        }
        if total > crate::metadata::MAX_PARTITIONS_PER_TOPIC {
            return Err(TopicError::InvalidPartitions(format!(
                "{total} is above the limit of {}",
                crate::metadata::MAX_PARTITIONS_PER_TOPIC
            )));
        }
        let replication = topic.partitions.first().map_or(1, |p| p.replicas.len());
        let assignments = millrace_quorum::controller::placement::place_partitions(
            &metadata,
            (total - current) as usize,
            replication,
        )
        .map_err(|e| TopicError::from_quorum(name, millrace_quorum::QuorumError::Rejected(e)))?;
        if validate_only {
            return Ok(());
        }
        self.quorum
            .submit(Command::CreatePartitions {
                name: name.to_string(),
                assignments,
            })
            .await
            .map_err(|e| TopicError::from_quorum(name, e))?;
        info!(topic = name, partitions = total, "partitions added");
        Ok(())
    }

    /// Sets and removes a topic's configuration overrides.
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    ) -> Result<(), TopicError> {
        self.quorum
            .submit(Command::AlterTopicConfigs {
                name: name.to_string(),
                set,
                delete,
            })
            .await
            .map_err(|e| TopicError::from_quorum(name, e))?;
        info!(topic = name, "topic configuration changed");
        Ok(())
    }

    /// Looks a topic up, creating it when auto-creation is on and the name is valid.
    pub async fn topic_or_auto_create(&self, name: &str) -> Result<Arc<TopicRecord>, TopicError> {
        if let Some(topic) = self.topic(name) {
            return Ok(topic);
        }
        if !self.config.auto_create_topics {
            return Err(TopicError::UnknownTopic(name.to_string()));
        }
        if self.metadata().eligible_brokers().next().is_none() {
            return Err(TopicError::Unavailable(
                "no broker has joined the cluster yet".into(),
            ));
        }
        match self
            .create_topic(name, self.config.default_partitions, None, BTreeMap::new())
            .await
        {
            Err(TopicError::AlreadyExists(_)) => self
                .topic(name)
                .ok_or_else(|| TopicError::UnknownTopic(name.to_string())),
            other => other,
        }
    }

    /// Creates the offsets topic when it is missing, replicated like the quorum (at most 3).
    pub async fn ensure_offsets_topic(&self) {
        if self.topic(OFFSETS_TOPIC).is_some() {
            return;
        }
        let replication = self.voter_count.clamp(1, 3) as i16;
        let configs = BTreeMap::from([
            // Committed offsets must outlive any time-based retention. The coordinator
            // compacts the topic itself (group::offsets); segments of Kafka's
            // offsets.topic.segment.bytes let the compacted part be deleted early.
            ("retention.ms".to_string(), "-1".to_string()),
            ("segment.bytes".to_string(), (100 * 1024 * 1024).to_string()),
        ]);
        match self
            .quorum
            .create_topic(
                OFFSETS_TOPIC,
                self.config.offsets_topic_partitions,
                Some(replication),
                configs,
            )
            .await
        {
            Ok(_) => info!(replication, "offsets topic created"),
            Err(error) => debug!(%error, "offsets topic not created yet"),
        }
    }

    /// The effective configuration of a topic.
    pub fn topic_config(&self, topic: &TopicRecord) -> TopicConfig {
        TopicConfig::resolve(&self.defaults(), &topic.configs)
    }

    /// The configuration in force: the start flags with the dynamic overrides applied.
    pub fn defaults(&self) -> Arc<BrokerConfig> {
        self.dynamic.effective()
    }

    /// Runs the flush and retention loops until `shutdown` turns true.
    pub async fn run_background(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut flush = tokio::time::interval(Duration::from_millis(100));
        let mut retention = tokio::time::interval(Duration::from_millis(
            self.config.retention_check_interval_ms.max(10),
        ));
        let mut capacity = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = flush.tick() => {
                    let broker = self.clone();
                    if let Err(error) = tokio::task::spawn_blocking(move || broker.partitions.flush_due()).await {
                        warn!(%error, "flush task failed");
                    }
                }
                _ = capacity.tick() => {
                    let broker = self.clone();
                    if let Err(error) = tokio::task::spawn_blocking(move || broker.capacity.measure()).await {
                        warn!(%error, "measuring the data directory failed");
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

    /// A started single-node broker on a fresh temporary data directory, with extra flags:
    /// registered, unfenced, with its offsets topic loaded.
    pub async fn open(dir: &std::path::Path, flags: &[&str]) -> Arc<Broker> {
        let mut args = vec![
            "millrace-broker",
            "--data-dir",
            dir.to_str().expect("utf-8 temp path"),
        ];
        args.extend_from_slice(flags);
        let broker = Broker::start(BrokerConfig::parse_from(args))
            .await
            .expect("broker starts");
        let (_stop, shutdown) = watch::channel(false);
        std::mem::forget(_stop);
        crate::run::spawn_tasks(&broker, shutdown);
        assert!(
            broker.wait_unfenced(Duration::from_secs(20)).await,
            "broker unfenced"
        );
        broker.ensure_offsets_topic().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while broker.groups.loaded_offsets_partitions()
            < broker.config.offsets_topic_partitions as usize
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "offsets topic loaded"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        broker
    }
}
