//! Commands written to the Raft log, and what applying them answers.
//!
//! A command carries every decision that is not a function of the state (topic ids, placement,
//! the cluster id), so that applying it is deterministic on every node.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::metadata::{PartitionState, TopicRecord};

/// What a broker tells the controller about itself on every heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub broker_id: i32,
    /// New for every broker process start.
    pub incarnation_id: Uuid,
    pub rack: Option<String>,
    pub host: String,
    pub port: u16,
    /// The broker asks to stay fenced (e.g. still loading its logs).
    pub wants_fenced: bool,
    /// The broker has caught up with the metadata log.
    pub caught_up: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionKind {
    /// Move leadership to the first replica, if it is in the ISR and eligible.
    Preferred,
    /// Elect the first eligible ISR member in replica order, when there is no live leader.
    FromIsr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Set once; later ones are ignored.
    InitializeCluster {
        cluster_id: String,
    },
    /// A (re-)registration: a new incarnation starts fenced.
    RegisterBroker(BrokerRegistration),
    /// The heartbeat's answer: the broker may lead and join ISRs again.
    UnfenceBroker {
        broker_id: i32,
        broker_epoch: u64,
    },
    /// Session expired: leaderships move to the rest of the ISR.
    FenceBroker {
        broker_id: i32,
        broker_epoch: u64,
    },
    BeginControlledShutdown {
        broker_id: i32,
    },
    /// `assignments[p]` are the replicas of partition p, decided by the controller.
    CreateTopic {
        name: String,
        topic_id: Uuid,
        configs: BTreeMap<String, String>,
        assignments: Vec<Vec<i32>>,
    },
    DeleteTopic {
        name: String,
    },
    /// Assignments of the partitions appended after the existing ones.
    CreatePartitions {
        name: String,
        assignments: Vec<Vec<i32>>,
    },
    AlterTopicConfigs {
        name: String,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    },
    /// Kafka's AlterPartition: the leader proposes a new ISR.
    AlterPartition {
        topic: String,
        partition: i32,
        leader_id: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    },
    ElectLeader {
        topic: String,
        partition: i32,
        kind: ElectionKind,
    },
    BeginReassignment {
        topic: String,
        partition: i32,
        target_replicas: Vec<i32>,
    },
    /// Finishes a reassignment whose adding replicas are all in the ISR.
    CompleteReassignment {
        topic: String,
        partition: i32,
    },
    AllocateProducerIdBlock {
        broker_id: i32,
        block_size: i64,
    },
    /// Kafka's UnregisterBroker: a broker removed from the cluster leaves the metadata;
    /// refused while a partition still lists it. A broker that still runs registers again
    /// with its next heartbeat.
    UnregisterBroker {
        broker_id: i32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandOutcome {
    Done,
    Broker {
        broker_id: i32,
        epoch: u64,
        fenced: bool,
    },
    Topic(Arc<TopicRecord>),
    Partition(PartitionState),
    ProducerIdBlock {
        start: i64,
        len: i64,
    },
}

/// Why the state machine refused a command. Each maps to one Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Rejection {
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("topic already exists")]
    TopicAlreadyExists,
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    #[error("invalid replication factor: {0}")]
    InvalidReplicationFactor(String),
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    #[error("broker {0} is not registered")]
    UnknownBroker(i32),
    #[error("broker {0} still holds replicas of {1}")]
    BrokerHoldsReplicas(i32, String),
    #[error("stale broker epoch")]
    StaleBrokerEpoch,
    #[error("not the leader of this partition")]
    NotLeaderOrFollower,
    #[error("fenced leader epoch")]
    FencedLeaderEpoch,
    /// The proposal was based on an old partition epoch (Kafka's INVALID_UPDATE_VERSION).
    #[error("stale partition epoch")]
    InvalidUpdateVersion,
    #[error("replica {0} is not eligible for the ISR")]
    IneligibleReplica(i32),
    #[error("invalid ISR: {0}")]
    InvalidIsr(String),
    #[error("preferred leader not available")]
    PreferredLeaderNotAvailable,
    #[error("election not needed")]
    ElectionNotNeeded,
    #[error("eligible leaders not available")]
    EligibleLeadersNotAvailable,
    #[error("no reassignment in progress")]
    NoReassignmentInProgress,
    #[error("reassignment still in progress")]
    ReassignmentInProgress,
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

/// The state machine's answer to one log entry.
pub type CommandResult = Result<CommandOutcome, Rejection>;

/// What a broker learns from its heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatOutcome {
    pub fenced: bool,
    pub broker_epoch: u64,
    pub in_controlled_shutdown: bool,
    /// The active controller's broker id.
    pub controller_id: i32,
}
