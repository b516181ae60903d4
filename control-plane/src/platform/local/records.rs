//! What the local platform writes down (node.json, volume.json) and reads from an agent.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::platform::{NodeEndpoints, VolumeId, VolumeSpec};

/// What the platform records of a node it started: enough to find its agent again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    pub cluster_id: Uuid,
    pub broker_id: i32,
    pub agent_pid: u32,
    /// /proc start time of the agent, so that a reused pid is not mistaken for it.
    pub agent_start_ticks: Option<u64>,
    pub started_at_unix_ms: u64,
    pub endpoints: NodeEndpoints,
    pub volume_id: VolumeId,
    pub volume: VolumeSpec,
    pub zone: String,
    pub broker_version: String,
    pub instance_type: String,
    /// The last in-place restart carried out on this node (`Platform::restart_node`'s id), so
    /// that a restart repeated after a control-plane crash does not restart the broker twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_id: Option<String>,
}

/// Recorded next to a persistent volume.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRecord {
    pub size_gib: u32,
}

/// The part of the agent's `GET /status` the platform reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    pub state: String,
    pub version: String,
    pub restarts: u64,
    pub disk_used_bytes: u64,
    pub under_replicated_partitions: u64,
    pub message: String,
}
