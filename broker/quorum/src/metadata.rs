//! The replicated cluster metadata: what every broker serves Metadata from.
//!
//! `ClusterMetadata` is the state machine's value. It is handed out as `Arc<ClusterMetadata>`
//! and topics are `Arc<TopicRecord>` inside it, so applying a command clones only the maps and
//! the topics it touches.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A partition has no leader (Kafka's `-1`).
pub const NO_LEADER: i32 = -1;

/// One registered broker, as the controller knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRecord {
    pub id: i32,
    pub rack: Option<String>,
    /// The Kafka listener clients connect to.
    pub host: String,
    pub port: u16,
    /// Random per broker process start: a new incarnation is a new registration.
    pub incarnation_id: Uuid,
    /// Kafka's broker epoch: the Raft log index of the registration record.
    pub epoch: u64,
    /// A fenced broker leads nothing and is not eligible for the ISR.
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
}

impl BrokerRecord {
    /// May lead partitions and join ISRs.
    pub fn is_eligible(&self) -> bool {
        !self.fenced && !self.in_controlled_shutdown
    }
}

/// The replication state of one partition (Kafka's PartitionRegistration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    pub partition: i32,
    /// The assignment; the first replica is the preferred leader.
    pub replicas: Vec<i32>,
    /// `NO_LEADER` (-1) when no in-sync replica is alive.
    pub leader: i32,
    /// Bumped on every leader change.
    pub leader_epoch: i32,
    /// Bumped on every change of this record (Kafka's partition epoch).
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
    /// Reassignment in progress: replicas being added (catching up) ...
    pub adding_replicas: Vec<i32>,
    /// ... and replicas to drop once every adding replica is in the ISR.
    pub removing_replicas: Vec<i32>,
}

impl PartitionState {
    pub fn new(partition: i32, replicas: Vec<i32>) -> Self {
        let leader = replicas.first().copied().unwrap_or(NO_LEADER);
        PartitionState {
            partition,
            isr: replicas.clone(),
            replicas,
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }
    }

    pub fn preferred_leader(&self) -> i32 {
        self.replicas.first().copied().unwrap_or(NO_LEADER)
    }

    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRecord {
    pub name: String,
    pub id: Uuid,
    pub configs: BTreeMap<String, String>,
    /// Indexed by partition number.
    pub partitions: Vec<PartitionState>,
}

impl TopicRecord {
    pub fn partition(&self, partition: i32) -> Option<&PartitionState> {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.partitions.get(p))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    /// Set once by the first active controller; empty before.
    pub cluster_id: String,
    pub brokers: BTreeMap<i32, BrokerRecord>,
    pub topics: BTreeMap<String, Arc<TopicRecord>>,
    /// The first producer id of the next block handed out.
    pub next_producer_id: i64,
    /// The Raft log index of the last command applied (0 before any).
    pub applied_index: u64,
}

impl ClusterMetadata {
    pub fn broker(&self, id: i32) -> Option<&BrokerRecord> {
        self.brokers.get(&id)
    }

    pub fn topic(&self, name: &str) -> Option<&Arc<TopicRecord>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<&Arc<TopicRecord>> {
        self.topics.values().find(|t| t.id == id)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        self.topics.get(topic)?.partition(partition)
    }

    /// Unfenced, not shutting down: may lead and be in ISRs, receives new replicas.
    pub fn is_eligible(&self, broker_id: i32) -> bool {
        self.brokers
            .get(&broker_id)
            .is_some_and(BrokerRecord::is_eligible)
    }

    pub fn eligible_brokers(&self) -> impl Iterator<Item = &BrokerRecord> {
        self.brokers.values().filter(|b| b.is_eligible())
    }

    /// Every partition, with its topic name.
    pub fn partitions(&self) -> impl Iterator<Item = (&str, &PartitionState)> {
        self.topics
            .values()
            .flat_map(|t| t.partitions.iter().map(move |p| (t.name.as_str(), p)))
    }

    /// Partitions led by `broker_id`.
    pub fn led_by(&self, broker_id: i32) -> impl Iterator<Item = (&str, &PartitionState)> {
        self.partitions()
            .filter(move |(_, p)| p.leader == broker_id)
    }
}
