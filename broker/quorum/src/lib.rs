//! Millrace's metadata quorum: cluster metadata in a Raft-replicated state machine (openraft),
//! and the active controller that runs on the Raft leader.
//!
//! - `metadata` — the replicated state (`ClusterMetadata`).
//! - `command` — what is written to the log, and what applying it answers.
//! - `controller` — the controller's decisions and the state machine's `apply`, without I/O.
//! - `raft` — openraft types, the on-disk log/vote/snapshot, the state machine.
//! - `rpc` — quorum RPC over HTTP (axum + reqwest).
//! - `quorum` — `MetadataQuorum`, the API the broker uses; `active` and `membership` are its
//!   leader-side duties and its cluster formation/joining.

mod active;
pub mod command;
pub mod config;
pub mod controller;
mod error;
mod membership;
pub mod metadata;
mod quorum;
pub mod raft;
mod rpc;

pub use active::DEFAULT_MIN_INSYNC_REPLICAS;
pub use command::{
    BrokerRegistration, Command, CommandOutcome, ElectionKind, HeartbeatOutcome, Rejection,
};
pub use config::{parse_voters, QuorumConfig, Voter};
pub use error::QuorumError;
pub use metadata::{BrokerRecord, ClusterMetadata, PartitionState, TopicRecord, NO_LEADER};
pub use quorum::{MetadataQuorum, QuorumDiagnostics};
pub use raft::NodeKey;
