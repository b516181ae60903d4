//! What the agent knows about its broker, shared by the supervisor (which owns the process), the
//! prober (readiness, metrics, disk) and the readers (HTTP API, heartbeats).

use serde::Serialize;

/// The broker process's state as the agent sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BrokerState {
    /// Process started, not ready yet (recovering its logs, or waiting out a restart delay).
    Starting,
    /// The broker answers `/ready`.
    Running,
    /// Controlled shutdown in progress.
    Stopping,
    /// Stopped on request (`POST /stop`); restarted by `POST /restart`.
    Stopped,
    /// Exited unexpectedly; the agent restarts it after a backoff delay.
    Crashed,
}

impl BrokerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BrokerState::Starting => "starting",
            BrokerState::Running => "running",
            BrokerState::Stopping => "stopping",
            BrokerState::Stopped => "stopped",
            BrokerState::Crashed => "crashed",
        }
    }
}

/// Where a drain request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainStatus {
    /// Whether the broker has a drain endpoint at all.
    pub supported: bool,
    pub message: String,
}

/// The agent's report, served by `GET /status` and summarised in heartbeats.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub cluster_id: String,
    pub node_id: i32,
    pub state: BrokerState,
    pub broker_pid: Option<u32>,
    /// Broker version, e.g. `millrace-0.1.0`.
    pub version: String,
    pub broker_binary: String,
    /// Bytes allocated on disk under the node's data dir.
    pub disk_used_bytes: u64,
    /// Times the agent restarted a broker that had exited unexpectedly.
    pub restarts: u64,
    pub under_replicated_partitions: u64,
    /// Why the broker last exited, or the last supervision event worth knowing.
    pub message: String,
    pub drain: Option<DrainStatus>,
}
