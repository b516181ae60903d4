//! Where broker nodes run. The reconciler decides *what* a cluster needs (nodes, volumes,
//! addresses); a [`Platform`] makes it so and reports what it sees. The trait speaks of nodes,
//! volumes and endpoints only: the local implementation runs broker-agent processes on this
//! machine, the Kubernetes one runs Pods and PersistentVolumeClaims.

pub mod broker_flags;
pub mod kubernetes;
pub mod local;

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use kubernetes::{KubernetesPlatform, KubernetesPlatformConfig, NamespaceMode};
pub use local::{LocalPlatform, LocalPlatformConfig};

pub type Result<T, E = PlatformError> = std::result::Result<T, E>;

/// A node's storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum VolumeSpec {
    /// EBS-style: outlives the node and is re-attached to its replacement. `storage_class`
    /// None: the platform's default (Kubernetes: `--storage-class`, else the cluster's default).
    #[serde(rename_all = "camelCase")]
    Persistent {
        size_gib: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        storage_class: Option<String>,
    },
    /// Lives and dies with the node: a replacement starts empty and re-replicates.
    #[serde(rename_all = "camelCase")]
    InstanceStore { size_gib: Option<u32> },
}

impl VolumeSpec {
    pub fn is_persistent(&self) -> bool {
        matches!(self, VolumeSpec::Persistent { .. })
    }
}

/// A platform's name for a volume (a directory, a PersistentVolumeClaim...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VolumeId(pub String);

impl fmt::Display for VolumeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One voter of the metadata quorum: `broker_id@host:port` on the brokers' command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VoterAddress {
    pub broker_id: i32,
    /// `host:port` of the voter's controller listener.
    pub controller: String,
}

impl fmt::Display for VoterAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.broker_id, self.controller)
    }
}

/// Everything needed to run one broker node.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    pub cluster_id: Uuid,
    pub broker_id: i32,
    /// Zone label; the broker's rack.
    pub zone: String,
    /// One of [`Platform::installed_versions`], e.g. `millrace-0.1.0`.
    pub broker_version: String,
    /// Broker type from the catalog (CPU/memory size). The local platform records it only.
    pub instance_type: String,
    pub volume: VolumeSpec,
    /// server.properties-like settings, translated by [`broker_flags::broker_flags`].
    pub broker_config: BTreeMap<String, String>,
    /// The metadata quorum; empty for brokers without replication.
    pub voters: Vec<VoterAddress>,
    /// The node's bearer token on the control plane's internal API.
    pub agent_token: String,
    /// Base URL the agent sends heartbeats to.
    pub control_plane_url: String,
}

/// The token stays out of logs.
impl fmt::Debug for NodeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeSpec")
            .field("cluster_id", &self.cluster_id)
            .field("broker_id", &self.broker_id)
            .field("zone", &self.zone)
            .field("broker_version", &self.broker_version)
            .field("instance_type", &self.instance_type)
            .field("volume", &self.volume)
            .field("broker_config", &self.broker_config)
            .field("voters", &self.voters)
            .field("agent_token", &"<redacted>")
            .field("control_plane_url", &self.control_plane_url)
            .finish()
    }
}

/// A node's addresses, each `host:port`. Stable per (cluster, broker id): a replacement node
/// gets the same ones, so the bootstrap string and the quorum's voter list stay valid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeEndpoints {
    /// Kafka listener, for clients (the advertised address).
    pub kafka: String,
    /// The broker's admin endpoint (/health, /ready, /metrics).
    pub broker_admin: String,
    /// The broker-agent's API (/health, /status, /drain, /restart, /stop).
    pub agent: String,
    /// The broker's controller (metadata quorum) listener.
    pub controller: String,
}

/// A node's lifecycle as the platform sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", content = "reason", rename_all = "camelCase")]
pub enum NodePhase {
    /// Created; its agent does not answer yet.
    Pending,
    /// The agent runs; the broker is not ready yet (or is being restarted after a crash:
    /// see [`ObservedNode::restarts`] and [`ObservedNode::message`]).
    Starting,
    /// The broker is ready.
    Running,
    /// Controlled shutdown in progress.
    Stopping,
    /// The agent runs, its broker is stopped on request.
    Stopped,
    /// The node is gone or unusable; the reconciler replaces it.
    Failed(String),
}

/// What the platform observes of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedNode {
    pub broker_id: i32,
    pub phase: NodePhase,
    pub endpoints: NodeEndpoints,
    pub volume_id: Option<VolumeId>,
    pub zone: String,
    /// The broker version the agent reports running (or was asked to run).
    pub broker_version: String,
    /// Times the agent restarted a crashed broker.
    pub restarts: u64,
    pub disk_used_bytes: Option<u64>,
    pub under_replicated_partitions: Option<u64>,
    /// The agent's last word on the broker, or why the node failed.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("{field}: {reason}")]
    InvalidSpec { field: String, reason: String },
    #[error("broker version {version:?} is not installed (installed: {installed:?})")]
    VersionNotInstalled {
        version: String,
        installed: Vec<String>,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InUse(String),
    #[error("no free ports left in {0}")]
    PortsExhausted(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Process(String),
    #[error("{context}: {source}")]
    Kubernetes {
        context: String,
        #[source]
        source: Box<kube::Error>,
    },
}

/// Installs rustls' ring provider as the process default. reqwest is built without a provider
/// of its own (`rustls-no-provider`), so a platform's HTTP client cannot be built before this
/// runs. Idempotent: a provider already installed is kept.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl PlatformError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PlatformError {
        let context = context.into();
        move |source| PlatformError::Io { context, source }
    }
}

/// The effects the reconciler needs. Every method is idempotent: the reconciler may repeat a
/// step after a crash without duplicating anything.
///
/// `async_trait` boxes the futures so that the trait stays object-safe: the control plane picks
/// its platform at run time (`Arc<dyn Platform>`: local or Kubernetes), and a heap allocation
/// per call is nothing next to starting a process or calling an API server.
#[async_trait]
pub trait Platform: Send + Sync {
    /// Addresses for these brokers of the cluster, without collisions, the same ones every time
    /// for the same (cluster, broker id).
    async fn allocate_endpoints(
        &self,
        cluster_id: Uuid,
        broker_ids: &[i32],
    ) -> Result<Vec<NodeEndpoints>>;

    /// Creates the broker's volume unless it exists; growing a persistent volume is allowed,
    /// shrinking it is not.
    async fn ensure_volume(
        &self,
        cluster_id: Uuid,
        broker_id: i32,
        volume: &VolumeSpec,
    ) -> Result<VolumeId>;

    /// Starts the node, or adopts it if it already runs (no duplicate).
    async fn create_node(&self, spec: &NodeSpec, endpoints: &NodeEndpoints) -> Result<()>;

    /// Restarts the node's broker in place with `spec` (its version and configuration): the
    /// same node identity and endpoints, the same volume (instance store included, where the
    /// platform keeps it: the local platform does; a Kubernetes emptyDir goes with its pod, and
    /// the broker then re-replicates). The broker stops gracefully (controlled shutdown) first.
    /// Idempotent per `restart_id`: a restart already carried out under that id is not done
    /// again, so a step repeated after a crash never restarts a broker twice.
    async fn restart_node(
        &self,
        spec: &NodeSpec,
        endpoints: &NodeEndpoints,
        restart_id: &str,
    ) -> Result<()>;

    /// Stops the node gracefully (the agent stops its broker with a controlled shutdown), then
    /// by force. An instance-store volume goes with it; a persistent volume stays.
    async fn delete_node(&self, cluster_id: Uuid, broker_id: i32) -> Result<()>;

    /// Deletes the broker's persistent volume. Refused while a node uses it.
    async fn delete_volume(&self, cluster_id: Uuid, broker_id: i32) -> Result<()>;

    /// The cluster's nodes as they are now, by broker id.
    async fn observe(&self, cluster_id: Uuid) -> Result<Vec<ObservedNode>>;

    /// Removes every node, volume and address of the cluster.
    async fn delete_cluster_resources(&self, cluster_id: Uuid) -> Result<()>;

    /// Broker versions this platform can run, e.g. `["millrace-0.1.0"]`.
    fn installed_versions(&self) -> Vec<String>;

    /// Bytes in a GiB of volume (the local platform may make them fewer, for demos and tests).
    fn volume_gib_bytes(&self) -> u64 {
        1 << 30
    }
}
