//! The local platform, Millrace's embedded default: each broker node is a real `millrace-agent`
//! process on this machine, its volume a directory.
//!
//! ```text
//! <root>/ports.json                          port allocations of every cluster
//! <root>/<cluster-id>/volumes/broker-<id>/   persistent volume: outlives the node
//! <root>/<cluster-id>/nodes/broker-<id>/     the node: node.json (agent pid), agent.log,
//!                                            volume/ when the volume is instance store
//! ```
//!
//! Agents run in sessions of their own and survive the control plane; a control plane that
//! starts again on the same root adopts them (pid and start time in node.json, checked against
//! /proc and the agent's /health) instead of starting duplicates.

/// The broker's capacity file in its data directory (see the broker's `capacity` module).
const BROKER_CAPACITY_FILE: &str = "capacity-bytes";

mod agents;
mod files;
mod ports;
mod records;
mod versions;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tracing::{info, warn};
use uuid::Uuid;

use self::agents::{AgentLaunch, AGENT_EXECUTABLE};
use self::files::{read_json, remove_dir_all, write_json_atomically};
use self::ports::PortAllocator;
use self::records::{AgentStatus, NodeRecord, VolumeRecord};
use self::versions::installed_broker_versions;
use super::{
    broker_flags, install_tls_provider, NodeEndpoints, NodePhase, NodeSpec, ObservedNode, Platform,
    PlatformError, Result, VolumeId, VolumeSpec,
};

/// An agent this young that does not answer yet is starting, not failed.
const AGENT_START_GRACE: Duration = Duration::from_secs(30);
const AGENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Settings of the local platform.
#[derive(Debug, Clone)]
pub struct LocalPlatformConfig {
    /// State of every cluster (e.g. `<data-dir>/local-platform`).
    pub root_dir: PathBuf,
    /// Where `millrace-agent` and the brokers are: `<bin-dir>/millrace-broker` and
    /// `<bin-dir>/<version>/millrace-broker`.
    pub bin_dir: PathBuf,
    /// Address the nodes listen on and advertise.
    pub host: String,
    /// Ports handed to nodes; below Linux's ephemeral range (32768+) by default, so that
    /// outgoing connections never hold a node's port.
    pub port_range: Range<u16>,
    /// How long an agent gets to stop its broker and exit before its node is killed.
    pub stop_timeout: Duration,
    /// How long a broker gets for its controlled shutdown (the agent's --stop-timeout-ms).
    pub broker_stop_timeout: Duration,
    /// The agents' heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Bytes in a GiB of a volume (1 GiB by default; smaller for demos and tests, so that a
    /// volume fills, and auto-expansion acts, in seconds).
    pub volume_gib_bytes: u64,
}

impl LocalPlatformConfig {
    pub fn new(root_dir: impl Into<PathBuf>, bin_dir: impl Into<PathBuf>) -> LocalPlatformConfig {
        LocalPlatformConfig {
            root_dir: root_dir.into(),
            bin_dir: bin_dir.into(),
            host: "127.0.0.1".into(),
            port_range: 20_000..32_000,
            stop_timeout: Duration::from_secs(45),
            broker_stop_timeout: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(5),
            volume_gib_bytes: 1 << 30,
        }
    }

    /// Binaries next to the running executable (how `millrace` is installed and built).
    pub fn beside_current_exe(root_dir: impl Into<PathBuf>) -> Result<LocalPlatformConfig> {
        let exe = std::env::current_exe().map_err(PlatformError::io("finding the executable"))?;
        let bin_dir = exe
            .parent()
            .ok_or_else(|| PlatformError::Process("the executable has no directory".into()))?;
        Ok(LocalPlatformConfig::new(root_dir, bin_dir))
    }
}

/// Serialises create/delete of one node.
type NodeLock = Arc<tokio::sync::Mutex<()>>;

pub struct LocalPlatform {
    config: LocalPlatformConfig,
    ports: Arc<PortAllocator>,
    versions: Vec<String>,
    http: reqwest::Client,
    /// One create/delete at a time per node.
    node_locks: Mutex<HashMap<(Uuid, i32), NodeLock>>,
}

impl LocalPlatform {
    /// Checks the binaries and lists the installed broker versions.
    pub fn new(config: LocalPlatformConfig) -> Result<LocalPlatform> {
        let agent = config.bin_dir.join(AGENT_EXECUTABLE);
        if !agent.is_file() {
            return Err(PlatformError::NotFound(format!(
                "{} not found: the local platform runs each broker node as a millrace-agent process",
                agent.display()
            )));
        }
        std::fs::create_dir_all(&config.root_dir).map_err(PlatformError::io(format!(
            "creating {}",
            config.root_dir.display()
        )))?;
        let versions = installed_broker_versions(&config.bin_dir);
        if versions.is_empty() {
            warn!(bin_dir = %config.bin_dir.display(), "no millrace-broker found: no version can be run");
        }
        install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(AGENT_REQUEST_TIMEOUT)
            .build()
            .map_err(|e| PlatformError::Process(format!("building the HTTP client: {e}")))?;
        Ok(LocalPlatform {
            ports: Arc::new(PortAllocator::new(
                &config.root_dir,
                config.port_range.clone(),
                &config.host,
            )),
            config,
            versions,
            http,
            node_locks: Mutex::new(HashMap::new()),
        })
    }

    fn cluster_dir(&self, cluster_id: Uuid) -> PathBuf {
        self.config.root_dir.join(cluster_id.to_string())
    }

    fn node_dir(&self, cluster_id: Uuid, broker_id: i32) -> PathBuf {
        self.cluster_dir(cluster_id)
            .join("nodes")
            .join(format!("broker-{broker_id}"))
    }

    fn persistent_volume_dir(&self, cluster_id: Uuid, broker_id: i32) -> PathBuf {
        self.cluster_dir(cluster_id)
            .join("volumes")
            .join(format!("broker-{broker_id}"))
    }

    fn volume_dir(&self, cluster_id: Uuid, broker_id: i32, volume: &VolumeSpec) -> PathBuf {
        match volume {
            VolumeSpec::Persistent { .. } => self.persistent_volume_dir(cluster_id, broker_id),
            VolumeSpec::InstanceStore { .. } => self.node_dir(cluster_id, broker_id).join("volume"),
        }
    }

    fn volume_id(cluster_id: Uuid, broker_id: i32, volume: &VolumeSpec) -> VolumeId {
        let kind = match volume {
            VolumeSpec::Persistent { .. } => "local-persistent",
            VolumeSpec::InstanceStore { .. } => "local-instance-store",
        };
        VolumeId(format!("{kind}:{cluster_id}/broker-{broker_id}"))
    }

    fn node_lock(&self, cluster_id: Uuid, broker_id: i32) -> NodeLock {
        self.node_locks
            .lock()
            .expect("node lock map")
            .entry((cluster_id, broker_id))
            .or_default()
            .clone()
    }

    fn read_record(&self, cluster_id: Uuid, broker_id: i32) -> Result<Option<NodeRecord>> {
        read_json(&self.node_dir(cluster_id, broker_id).join("node.json"))
    }

    /// The pid of the node's live agent: the recorded one, or one found in /proc (an agent
    /// started just before a control-plane crash, before its pid was recorded).
    fn live_agent(
        &self,
        cluster_id: Uuid,
        broker_id: i32,
        record: Option<&NodeRecord>,
    ) -> Option<u32> {
        if let Some(record) = record {
            if agents::is_node_agent(
                record.agent_pid,
                record.agent_start_ticks,
                cluster_id,
                broker_id,
            ) {
                return Some(record.agent_pid);
            }
        }
        agents::find_agents(cluster_id, Some(broker_id))
            .first()
            .map(|(pid, _)| *pid)
    }

    async fn agent_status(&self, endpoints: &NodeEndpoints) -> Option<AgentStatus> {
        let url = format!("http://{}/status", endpoints.agent);
        self.http.get(url).send().await.ok()?.json().await.ok()
    }

    async fn agent_healthy(&self, endpoints: &NodeEndpoints) -> bool {
        let url = format!("http://{}/health", endpoints.agent);
        matches!(self.http.get(url).send().await, Ok(r) if r.status().is_success())
    }

    fn agent_args(
        &self,
        spec: &NodeSpec,
        endpoints: &NodeEndpoints,
        volume: &Path,
    ) -> Result<Vec<String>> {
        let listen = |endpoint: &str| -> String {
            // Nodes bind the platform's host on the allocated port.
            let port = endpoint.rsplit_once(':').map_or("", |(_, port)| port);
            format!("{}:{port}", self.config.host)
        };
        let mut args = vec![
            "--node-id".to_string(),
            spec.broker_id.to_string(),
            "--cluster-id".into(),
            spec.cluster_id.to_string(),
            "--data-dir".into(),
            volume.to_string_lossy().into_owned(),
            "--bin-dir".into(),
            self.config.bin_dir.to_string_lossy().into_owned(),
            "--broker-version".into(),
            spec.broker_version.clone(),
            "--broker-listen".into(),
            listen(&endpoints.kafka),
            "--broker-admin-listen".into(),
            listen(&endpoints.broker_admin),
            "--advertised-listener".into(),
            endpoints.kafka.clone(),
            "--agent-listen".into(),
            listen(&endpoints.agent),
            "--rack".into(),
            spec.zone.clone(),
            "--stop-timeout-ms".into(),
            self.config.broker_stop_timeout.as_millis().to_string(),
            "--heartbeat-interval-ms".into(),
            self.config.heartbeat_interval.as_millis().to_string(),
        ];
        if !spec.voters.is_empty() {
            let voters: Vec<String> = spec.voters.iter().map(ToString::to_string).collect();
            args.extend([
                "--voters".into(),
                voters.join(","),
                "--controller-listen".into(),
                listen(&endpoints.controller),
            ]);
        }
        if !spec.control_plane_url.is_empty() {
            args.extend(["--control-plane-url".into(), spec.control_plane_url.clone()]);
        }
        for flag in broker_flags::broker_flags(&spec.broker_config)? {
            args.push(format!("--broker-arg={flag}"));
        }
        Ok(args)
    }

    fn validate(&self, spec: &NodeSpec) -> Result<()> {
        if !self.versions.contains(&spec.broker_version) {
            return Err(PlatformError::VersionNotInstalled {
                version: spec.broker_version.clone(),
                installed: self.versions.clone(),
            });
        }
        if spec.broker_id < 0 {
            return Err(PlatformError::InvalidSpec {
                field: "brokerId".into(),
                reason: "must not be negative".into(),
            });
        }
        if !spec.control_plane_url.is_empty() && spec.agent_token.is_empty() {
            return Err(PlatformError::InvalidSpec {
                field: "agentToken".into(),
                reason: "heartbeats to the control plane need the node's token".into(),
            });
        }
        broker_flags::broker_flags(&spec.broker_config)?;
        Ok(())
    }

    /// Stops the node's agent (if any) and removes the node directory.
    async fn remove_node(&self, cluster_id: Uuid, broker_id: i32) -> Result<()> {
        let lock = self.node_lock(cluster_id, broker_id);
        let _guard = lock.lock().await;
        let record = self.read_record(cluster_id, broker_id)?;
        while let Some(pid) = self.live_agent(cluster_id, broker_id, record.as_ref()) {
            info!(%cluster_id, broker_id, pid, "stopping the node's agent");
            agents::stop_agent(pid, self.config.stop_timeout).await?;
        }
        remove_dir_all(&self.node_dir(cluster_id, broker_id))
    }

    fn node_ids(&self, cluster_id: Uuid) -> Result<Vec<i32>> {
        let dir = self.cluster_dir(cluster_id).join("nodes");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => {
                return Err(PlatformError::io(format!("listing {}", dir.display()))(
                    error,
                ))
            }
        };
        let mut ids: Vec<i32> = entries
            .flatten()
            .filter_map(|entry| {
                entry
                    .file_name()
                    .to_str()?
                    .strip_prefix("broker-")?
                    .parse()
                    .ok()
            })
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }
}

#[async_trait]
impl Platform for LocalPlatform {
    async fn allocate_endpoints(
        &self,
        cluster_id: Uuid,
        broker_ids: &[i32],
    ) -> Result<Vec<NodeEndpoints>> {
        let ports = self.ports.clone();
        let ids = broker_ids.to_vec();
        let allocated = tokio::task::spawn_blocking(move || ports.allocate(cluster_id, &ids))
            .await
            .map_err(|e| PlatformError::Process(format!("port allocation: {e}")))??;
        let host = &self.config.host;
        Ok(allocated
            .into_iter()
            .map(|ports| NodeEndpoints {
                kafka: format!("{host}:{}", ports.kafka),
                broker_admin: format!("{host}:{}", ports.broker_admin),
                agent: format!("{host}:{}", ports.agent),
                controller: format!("{host}:{}", ports.controller),
            })
            .collect())
    }

    async fn ensure_volume(
        &self,
        cluster_id: Uuid,
        broker_id: i32,
        volume: &VolumeSpec,
    ) -> Result<VolumeId> {
        let id = Self::volume_id(cluster_id, broker_id, volume);
        let VolumeSpec::Persistent { size_gib, .. } = *volume else {
            // Instance store is created with its node.
            return Ok(id);
        };
        let dir = self.persistent_volume_dir(cluster_id, broker_id);
        let record_path = dir.join("volume.json");
        if let Some(existing) = read_json::<VolumeRecord>(&record_path)? {
            if size_gib < existing.size_gib {
                return Err(PlatformError::InvalidSpec {
                    field: "volume.sizeGib".into(),
                    reason: format!(
                        "a volume cannot shrink ({} GiB to {size_gib} GiB)",
                        existing.size_gib
                    ),
                });
            }
            if size_gib == existing.size_gib {
                // Written again every time: a volume from before the broker enforced sizes, or
                // a control plane started with another --local-volume-gib-bytes, gets it right.
                self.set_capacity(&dir, size_gib)?;
                return Ok(id);
            }
        }
        // A directory has no size: the broker enforces it (its capacity file), and it is
        // recorded for the control plane's bookkeeping.
        std::fs::create_dir_all(&dir)
            .map_err(PlatformError::io(format!("creating {}", dir.display())))?;
        self.set_capacity(&dir, size_gib)?;
        write_json_atomically(&record_path, &VolumeRecord { size_gib })?;
        Ok(id)
    }

    async fn create_node(&self, spec: &NodeSpec, endpoints: &NodeEndpoints) -> Result<()> {
        self.validate(spec)?;
        let (cluster_id, broker_id) = (spec.cluster_id, spec.broker_id);
        let lock = self.node_lock(cluster_id, broker_id);
        let _guard = lock.lock().await;
        let node_dir = self.node_dir(cluster_id, broker_id);
        let record = self.read_record(cluster_id, broker_id)?;
        if let Some(pid) = self.live_agent(cluster_id, broker_id, record.as_ref()) {
            let young = record.as_ref().is_some_and(|r| {
                r.agent_pid == pid
                    && unix_ms().saturating_sub(r.started_at_unix_ms)
                        < AGENT_START_GRACE.as_millis() as u64
            });
            if young || self.agent_healthy(endpoints).await {
                info!(%cluster_id, broker_id, pid, "the node's agent already runs: adopted");
                if record.as_ref().is_none_or(|r| r.agent_pid != pid) {
                    // Found in /proc but not recorded: record it now.
                    let record = self.new_record(spec, endpoints, pid);
                    write_json_atomically(&node_dir.join("node.json"), &record)?;
                }
                return Ok(());
            }
            warn!(%cluster_id, broker_id, pid, "the node's agent runs but does not answer /health: replacing it");
            agents::stop_agent(pid, self.config.stop_timeout).await?;
        }

        self.spawn_node(spec, endpoints, None)
    }

    async fn restart_node(
        &self,
        spec: &NodeSpec,
        endpoints: &NodeEndpoints,
        restart_id: &str,
    ) -> Result<()> {
        self.validate(spec)?;
        let (cluster_id, broker_id) = (spec.cluster_id, spec.broker_id);
        let lock = self.node_lock(cluster_id, broker_id);
        let _guard = lock.lock().await;
        let record = self.read_record(cluster_id, broker_id)?;
        if record
            .as_ref()
            .is_some_and(|r| r.restart_id.as_deref() == Some(restart_id))
        {
            info!(%cluster_id, broker_id, restart_id, "restart already carried out");
            return Ok(());
        }
        if let Some(pid) = self.live_agent(cluster_id, broker_id, record.as_ref()) {
            if record.as_ref().is_some_and(|r| r.agent_pid != pid) {
                // The agent a restart interrupted after its start left behind, not yet recorded.
                info!(%cluster_id, broker_id, pid, "the restarted node's agent runs: adopted");
                let mut adopted = self.new_record(spec, endpoints, pid);
                adopted.restart_id = Some(restart_id.to_owned());
                let node_dir = self.node_dir(cluster_id, broker_id);
                return write_json_atomically(&node_dir.join("node.json"), &adopted);
            }
            info!(%cluster_id, broker_id, pid, version = %spec.broker_version, "stopping the node's agent for an in-place restart");
            agents::stop_agent(pid, self.config.stop_timeout).await?;
        }
        self.spawn_node(spec, endpoints, Some(restart_id))
    }

    async fn delete_node(&self, cluster_id: Uuid, broker_id: i32) -> Result<()> {
        self.remove_node(cluster_id, broker_id).await
    }

    async fn delete_volume(&self, cluster_id: Uuid, broker_id: i32) -> Result<()> {
        let record = self.read_record(cluster_id, broker_id)?;
        if self
            .live_agent(cluster_id, broker_id, record.as_ref())
            .is_some()
        {
            return Err(PlatformError::InUse(format!(
                "the volume of broker {broker_id} is in use by its node: delete the node first"
            )));
        }
        remove_dir_all(&self.persistent_volume_dir(cluster_id, broker_id))
    }

    async fn observe(&self, cluster_id: Uuid) -> Result<Vec<ObservedNode>> {
        let mut observed = Vec::new();
        for broker_id in self.node_ids(cluster_id)? {
            let Some(record) = self.read_record(cluster_id, broker_id)? else {
                continue;
            };
            let mut node = ObservedNode {
                broker_id,
                phase: NodePhase::Pending,
                endpoints: record.endpoints.clone(),
                volume_id: Some(record.volume_id.clone()),
                zone: record.zone.clone(),
                broker_version: record.broker_version.clone(),
                restarts: 0,
                disk_used_bytes: None,
                under_replicated_partitions: None,
                message: String::new(),
            };
            let alive = agents::is_node_agent(
                record.agent_pid,
                record.agent_start_ticks,
                cluster_id,
                broker_id,
            );
            if !alive {
                node.phase = NodePhase::Failed(format!(
                    "the node's agent (pid {}) is gone",
                    record.agent_pid
                ));
            } else if let Some(status) = self.agent_status(&record.endpoints).await {
                node.phase = match status.state.as_str() {
                    "running" => NodePhase::Running,
                    "stopping" => NodePhase::Stopping,
                    "stopped" => NodePhase::Stopped,
                    // "crashed": the agent restarts the broker with backoff.
                    _ => NodePhase::Starting,
                };
                node.broker_version = status.version;
                node.restarts = status.restarts;
                node.disk_used_bytes = Some(status.disk_used_bytes);
                node.under_replicated_partitions = Some(status.under_replicated_partitions);
                node.message = status.message;
            } else if unix_ms().saturating_sub(record.started_at_unix_ms)
                < AGENT_START_GRACE.as_millis() as u64
            {
                node.message = "the agent is starting".into();
            } else {
                node.phase = NodePhase::Failed("the node's agent does not answer".into());
            }
            observed.push(node);
        }
        Ok(observed)
    }

    async fn delete_cluster_resources(&self, cluster_id: Uuid) -> Result<()> {
        // SIGTERM every agent first so that the brokers shut down in parallel.
        let mut brokers: Vec<i32> = self.node_ids(cluster_id)?;
        for (pid, broker_id) in agents::find_agents(cluster_id, None) {
            agents::signal(pid as i32, libc::SIGTERM);
            brokers.push(broker_id);
        }
        brokers.sort_unstable();
        brokers.dedup();
        for broker_id in brokers {
            self.remove_node(cluster_id, broker_id).await?;
        }
        remove_dir_all(&self.cluster_dir(cluster_id))?;
        let ports = self.ports.clone();
        tokio::task::spawn_blocking(move || ports.release_cluster(cluster_id))
            .await
            .map_err(|e| PlatformError::Process(format!("port release: {e}")))??;
        self.node_locks
            .lock()
            .expect("node lock map")
            .retain(|(cluster, _), _| *cluster != cluster_id);
        info!(%cluster_id, "cluster resources deleted");
        Ok(())
    }

    fn installed_versions(&self) -> Vec<String> {
        self.versions.clone()
    }

    fn volume_gib_bytes(&self) -> u64 {
        self.config.volume_gib_bytes
    }
}

impl LocalPlatform {
    /// Gives the broker over `volume` its size: the capacity file in its data directory
    /// (`<volume>/broker/capacity-bytes`), which the broker enforces and re-reads every second.
    fn set_capacity(&self, volume: &Path, size_gib: u32) -> Result<()> {
        let data_dir = volume.join("broker");
        std::fs::create_dir_all(&data_dir).map_err(PlatformError::io(format!(
            "creating {}",
            data_dir.display()
        )))?;
        let bytes = u64::from(size_gib).saturating_mul(self.config.volume_gib_bytes);
        let path = data_dir.join(BROKER_CAPACITY_FILE);
        let temporary = data_dir.join(format!("{BROKER_CAPACITY_FILE}.tmp"));
        std::fs::write(&temporary, format!("{bytes}\n"))
            .and_then(|()| std::fs::rename(&temporary, &path))
            .map_err(PlatformError::io(format!("writing {}", path.display())))
    }

    /// Starts the node's agent over its volume (kept when it exists) and records it.
    fn spawn_node(
        &self,
        spec: &NodeSpec,
        endpoints: &NodeEndpoints,
        restart_id: Option<&str>,
    ) -> Result<()> {
        let (cluster_id, broker_id) = (spec.cluster_id, spec.broker_id);
        let node_dir = self.node_dir(cluster_id, broker_id);
        let volume = self.volume_dir(cluster_id, broker_id, &spec.volume);
        match spec.volume {
            VolumeSpec::Persistent { size_gib, .. } => {
                if !volume.join("volume.json").is_file() {
                    return Err(PlatformError::NotFound(format!(
                        "the persistent volume of broker {broker_id} does not exist: ensure_volume first"
                    )));
                }
                self.set_capacity(&volume, size_gib)?;
            }
            VolumeSpec::InstanceStore { size_gib } => {
                std::fs::create_dir_all(&volume)
                    .map_err(PlatformError::io(format!("creating {}", volume.display())))?;
                if let Some(size_gib) = size_gib {
                    self.set_capacity(&volume, size_gib)?;
                }
            }
        }
        std::fs::create_dir_all(&node_dir).map_err(PlatformError::io(format!(
            "creating {}",
            node_dir.display()
        )))?;
        let mut env = Vec::new();
        if !spec.agent_token.is_empty() {
            env.push(("MILLRACE_AGENT_TOKEN".to_string(), spec.agent_token.clone()));
        }
        let launch = AgentLaunch {
            program: self.config.bin_dir.join(AGENT_EXECUTABLE),
            args: self.agent_args(spec, endpoints, &volume)?,
            env,
            log_path: node_dir.join("agent.log"),
            working_dir: node_dir.clone(),
        };
        let pid = agents::spawn_agent(&launch)?;
        let mut record = self.new_record(spec, endpoints, pid);
        record.restart_id = restart_id.map(str::to_owned);
        write_json_atomically(&node_dir.join("node.json"), &record)?;
        info!(%cluster_id, broker_id, pid, version = %spec.broker_version, kafka = %endpoints.kafka, "node started");
        Ok(())
    }

    fn new_record(&self, spec: &NodeSpec, endpoints: &NodeEndpoints, pid: u32) -> NodeRecord {
        NodeRecord {
            cluster_id: spec.cluster_id,
            broker_id: spec.broker_id,
            agent_pid: pid,
            agent_start_ticks: agents::start_ticks(pid),
            started_at_unix_ms: unix_ms(),
            endpoints: endpoints.clone(),
            volume_id: Self::volume_id(spec.cluster_id, spec.broker_id, &spec.volume),
            volume: spec.volume.clone(),
            zone: spec.zone.clone(),
            broker_version: spec.broker_version.clone(),
            instance_type: spec.instance_type.clone(),
            restart_id: None,
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
