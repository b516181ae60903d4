//! Broker nodes as the store and the agents see them.

use serde::{Deserialize, Serialize};

/// Where a node's volume lives; what the platform reported when it created it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeVolume {
    /// True for an EBS-style volume that outlives the node.
    pub persistent: bool,
    pub size_gib: Option<u32>,
    /// Platform-specific location (a directory, a PVC name).
    pub location: Option<String>,
}

macro_rules! agent_state {
    ($($variant:ident = $text:literal),+) => {
        /// The broker process's state as its agent reports it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
        pub enum AgentState {
            $(#[serde(rename = $text)] $variant),+
        }
    };
}
agent_state!(
    Starting = "starting",
    Running = "running",
    Stopping = "stopping",
    Crashed = "crashed"
);

/// The last report of a node's broker-agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeat {
    pub version: String,
    pub state: AgentState,
    pub disk_used_bytes: u64,
    pub under_replicated_partitions: u32,
    pub broker_pid: Option<u32>,
    pub message: Option<String>,
}
