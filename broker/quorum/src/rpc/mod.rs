//! Quorum RPC over HTTP/JSON (axum server on `--controller-listen`, reqwest client): openraft's
//! AppendEntries, Vote and InstallSnapshot, plus our own status (bootstrap check) and
//! controller requests (forwarded client commands, broker heartbeats, joins).

pub mod client;
pub mod server;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::command::{BrokerRegistration, Command, CommandOutcome, HeartbeatOutcome};
use crate::raft::NodeKey;

pub const PATH_APPEND: &str = "/raft/append";
pub const PATH_VOTE: &str = "/raft/vote";
pub const PATH_SNAPSHOT: &str = "/raft/snapshot";
pub const PATH_STATUS: &str = "/quorum/status";
pub const PATH_CONTROLLER: &str = "/controller";

/// A Raft RPC addressed to one member key. The receiver refuses it unless `target` is its own
/// key: a wiped node must never answer for the directory it lost.
#[derive(Debug, Serialize, Deserialize)]
pub struct RaftRpc<T> {
    pub target: NodeKey,
    pub rpc: T,
}

/// What a node says about itself; the bootstrap check relies on `initialized`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub key: NodeKey,
    /// Has a Raft membership (it belongs to a cluster, or was just formed).
    pub initialized: bool,
    pub leader: Option<NodeKey>,
    pub term: u64,
}

/// Requests served by the active controller (any node forwards them there).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerRequest {
    Submit(Command),
    CreateTopic {
        name: String,
        partitions: i32,
        replication_factor: Option<i16>,
        configs: BTreeMap<String, String>,
    },
    Heartbeat(BrokerRegistration),
    ControlledShutdown {
        broker_id: i32,
    },
    /// A node not (or no longer) in the membership under this key asks to be added.
    Join {
        key: NodeKey,
        address: String,
    },
    /// A removed broker leaves the metadata and, if it was an observer, the membership.
    UnregisterBroker {
        broker_id: i32,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerResponse {
    Outcome(CommandOutcome),
    Heartbeat(HeartbeatOutcome),
    ShutdownProgress { done: bool },
    Accepted,
}
