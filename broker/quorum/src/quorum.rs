//! `MetadataQuorum`: one node of the metadata quorum, and the API the broker uses.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context;
use openraft::{BasicNode, ServerState, SnapshotPolicy};
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::active::ActiveController;
use crate::command::{BrokerRegistration, Command, CommandOutcome, HeartbeatOutcome};
use crate::config::QuorumConfig;
use crate::error::QuorumError;
use crate::metadata::{ClusterMetadata, PartitionState, TopicRecord};
use crate::raft::directory::QuorumDirectory;
use crate::raft::log_store::LogStore;
use crate::raft::state_machine::StateMachine;
use crate::raft::{NodeKey, Raft, RaftMetrics};
use crate::rpc::client::{Network, RpcClient};
use crate::rpc::{ControllerRequest, ControllerResponse, NodeStatus, PATH_CONTROLLER};

/// How long the server may take to finish in-flight requests at shutdown.
const SERVER_DRAIN: Duration = Duration::from_secs(3);
/// Pause between attempts while no leader answers.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Counters about this node's Raft membership, for tests and the admin endpoint.
#[derive(Debug, Default)]
pub struct Stats {
    refused_rpcs: AtomicU64,
    votes_granted: AtomicU64,
    votes_granted_before_joining: AtomicU64,
}

impl Stats {
    pub(crate) fn record_refused_rpc(&self) {
        self.refused_rpcs.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_vote_granted(&self, joined: bool) {
        self.votes_granted.fetch_add(1, Ordering::Relaxed);
        if !joined {
            self.votes_granted_before_joining
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A snapshot of `Stats` plus this node's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumDiagnostics {
    pub key: NodeKey,
    /// This start created the quorum directory (first start, or a wiped volume).
    pub fresh_directory: bool,
    /// Raft RPCs addressed to another member key (e.g. the directory this node lost).
    pub refused_rpcs: u64,
    pub votes_granted: u64,
    /// Votes granted before this directory was ever part of the membership (must stay 0).
    pub votes_granted_before_joining: u64,
}

pub struct MetadataQuorum {
    /// Itself, for tasks the request handlers spawn.
    pub(crate) this: Weak<MetadataQuorum>,
    pub(crate) config: QuorumConfig,
    key: NodeKey,
    fresh_directory: bool,
    raft: Raft,
    metadata: watch::Receiver<Arc<ClusterMetadata>>,
    pub(crate) rpc: RpcClient,
    stats: Stats,
    joined: AtomicBool,
    pub(crate) active: ActiveController,
    pub(crate) stopped: AtomicBool,
    background: Mutex<Vec<JoinHandle<()>>>,
    server: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

impl MetadataQuorum {
    /// Opens (or creates) the quorum directory, starts Raft and the RPC server, and in the
    /// background forms the cluster (lowest voter id, once every peer confirmed it has none) or
    /// joins it. Returns before a leader is known.
    pub async fn start(config: QuorumConfig) -> anyhow::Result<Arc<MetadataQuorum>> {
        config.validate()?;
        let directory = QuorumDirectory::open(&config.dir, config.node_id)?;
        let log = LogStore::open(&directory.path).context("opening the Raft log")?;
        let state_machine = StateMachine::open(&directory.path).context("opening the snapshot")?;
        let metadata = state_machine.subscribe();

        let (election_min, election_max) = config.election_timeout_ms;
        let raft_config = openraft::Config {
            cluster_name: "millrace-metadata".into(),
            heartbeat_interval: config.heartbeat_interval_ms,
            election_timeout_min: election_min,
            election_timeout_max: election_max,
            install_snapshot_timeout: election_max.max(1000),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every_entries),
            max_in_snapshot_log_to_keep: config.snapshot_every_entries / 10,
            snapshot_max_chunk_size: 1 << 20,
            ..Default::default()
        }
        .validate()?;
        let rpc = RpcClient::new()?;
        let network = Network {
            rpc: rpc.clone(),
            backoff: Duration::from_millis(config.heartbeat_interval_ms * 2),
        };
        let raft = Raft::new(
            directory.key,
            Arc::new(raft_config),
            network,
            log,
            state_machine,
        )
        .await
        .context("starting Raft")?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding the controller listener {}", config.listen))?;

        tracing::info!(
            node = %directory.key,
            listen = %config.listen,
            voters = %config.voters.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            fresh_directory = directory.created,
            "metadata quorum starting"
        );
        let quorum = Arc::new_cyclic(|this| MetadataQuorum {
            this: this.clone(),
            key: directory.key,
            fresh_directory: directory.created,
            raft,
            metadata,
            rpc,
            stats: Stats::default(),
            joined: AtomicBool::new(false),
            active: ActiveController::default(),
            stopped: AtomicBool::new(false),
            background: Mutex::new(Vec::new()),
            server: Mutex::new(None),
            config,
        });

        let (stop_server, stopped) = oneshot::channel::<()>();
        let app = crate::rpc::server::router(quorum.clone());
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "quorum RPC server failed");
            }
        });
        *quorum.server.lock() = Some((stop_server, server));
        let membership = tokio::spawn(quorum.clone().run_membership_loop());
        let controller = tokio::spawn(quorum.clone().run_controller_loop());
        quorum.background.lock().extend([membership, controller]);
        Ok(quorum)
    }

    /// The applied metadata; every node (followers and observers too) has it.
    pub fn metadata(&self) -> watch::Receiver<Arc<ClusterMetadata>> {
        self.metadata.clone()
    }

    /// Waits until the applied metadata satisfies `condition`; false on time-out.
    pub async fn wait_for_metadata(
        &self,
        timeout: Duration,
        condition: impl Fn(&ClusterMetadata) -> bool,
    ) -> bool {
        let mut receiver = self.metadata();
        tokio::time::timeout(timeout, receiver.wait_for(|m| condition(m)))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Writes `command` through the active controller (forwarded when this node is not it).
    pub async fn submit(&self, command: Command) -> Result<CommandOutcome, QuorumError> {
        match self.request(ControllerRequest::Submit(command)).await? {
            ControllerResponse::Outcome(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    /// Creates a topic; the active controller chooses the replicas. `replication_factor`
    /// `None` (or Kafka's -1) means the default: 3, or the number of live brokers when smaller.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: Option<i16>,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<TopicRecord>, QuorumError> {
        let request = ControllerRequest::CreateTopic {
            name: name.to_string(),
            partitions,
            replication_factor,
            configs,
        };
        match self.request(request).await? {
            ControllerResponse::Outcome(CommandOutcome::Topic(topic)) => Ok(topic),
            other => Err(unexpected(other)),
        }
    }

    /// The broker calls this about every second. The first call registers it (fenced); a
    /// heartbeat unfences it unless it `wants_fenced` or has not `caught_up`.
    pub async fn broker_heartbeat(
        &self,
        registration: BrokerRegistration,
    ) -> Result<HeartbeatOutcome, QuorumError> {
        match self
            .request(ControllerRequest::Heartbeat(registration))
            .await?
        {
            ControllerResponse::Heartbeat(outcome) => Ok(outcome),
            other => Err(unexpected(other)),
        }
    }

    /// Moves every leadership of `broker_id` to another in-sync replica and takes it out of the
    /// ISRs where others remain. Returns once it leads only partitions nobody else can take.
    pub async fn controlled_shutdown(&self, broker_id: i32) -> Result<(), QuorumError> {
        let deadline = Instant::now() + self.request_timeout();
        loop {
            match self
                .request(ControllerRequest::ControlledShutdown { broker_id })
                .await?
            {
                ControllerResponse::ShutdownProgress { done: true } => return Ok(()),
                ControllerResponse::ShutdownProgress { done: false } => {}
                other => return Err(unexpected(other)),
            }
            if Instant::now() >= deadline {
                return Err(QuorumError::Timeout);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kafka's UnregisterBroker: `broker_id`, removed from the cluster and holding no replica,
    /// leaves the metadata and (an observer) the quorum's membership.
    pub async fn unregister_broker(&self, broker_id: i32) -> Result<(), QuorumError> {
        match self
            .request(ControllerRequest::UnregisterBroker { broker_id })
            .await?
        {
            ControllerResponse::Outcome(_) => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Kafka's AlterPartition, from this broker as the partition's leader.
    pub async fn alter_partition(
        &self,
        topic: &str,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    ) -> Result<PartitionState, QuorumError> {
        let command = Command::AlterPartition {
            topic: topic.to_string(),
            partition,
            leader_id: self.config.node_id,
            leader_epoch,
            partition_epoch,
            new_isr,
        };
        match self.submit(command).await? {
            CommandOutcome::Partition(state) => Ok(state),
            other => Err(QuorumError::Unavailable(format!(
                "unexpected outcome {other:?}"
            ))),
        }
    }

    /// The active controller's broker id, if one is known.
    pub fn leader_id(&self) -> Option<i32> {
        self.raft
            .metrics()
            .borrow()
            .current_leader
            .map(|k| k.node_id)
    }

    /// This node is the active controller.
    pub fn is_leader(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics.state == ServerState::Leader && metrics.current_leader == Some(self.key)
    }

    /// Stops the RPC server, Raft and the background tasks. The directory stays as it is.
    pub async fn shutdown(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        for task in self.background.lock().drain(..) {
            task.abort();
        }
        let server = self.server.lock().take();
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "Raft shutdown");
        }
        if let Some((stop, mut task)) = server {
            let _ = stop.send(());
            if tokio::time::timeout(SERVER_DRAIN, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
        }
        tracing::info!(node = %self.key, "metadata quorum stopped");
    }

    /// This node's Raft member key (broker id and quorum directory id).
    pub fn key(&self) -> NodeKey {
        self.key
    }

    /// openraft's metrics: term, state, leader, log indexes, membership.
    pub fn raft_metrics(&self) -> watch::Receiver<RaftMetrics> {
        self.raft.metrics()
    }

    pub fn diagnostics(&self) -> QuorumDiagnostics {
        QuorumDiagnostics {
            key: self.key,
            fresh_directory: self.fresh_directory,
            refused_rpcs: self.stats.refused_rpcs.load(Ordering::Relaxed),
            votes_granted: self.stats.votes_granted.load(Ordering::Relaxed),
            votes_granted_before_joining: self
                .stats
                .votes_granted_before_joining
                .load(Ordering::Relaxed),
        }
    }

    pub(crate) fn raft(&self) -> &Raft {
        &self.raft
    }

    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.config.request_timeout_ms)
    }

    /// This directory has been part of the membership (learner or voter) at some point, which
    /// the leader allows only after it caught up.
    pub(crate) fn has_joined(&self) -> bool {
        if self.joined.load(Ordering::Relaxed) {
            return true;
        }
        let member = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&self.key)
            .is_some();
        if member {
            self.joined.store(true, Ordering::Relaxed);
        }
        member
    }

    pub(crate) async fn status(&self) -> NodeStatus {
        let metrics = self.raft.metrics().borrow().clone();
        NodeStatus {
            key: self.key,
            initialized: self.raft.is_initialized().await.unwrap_or(true),
            leader: metrics.current_leader,
            term: metrics.current_term,
        }
    }

    /// The address of a member, from the membership.
    pub(crate) fn member_address(&self, key: &NodeKey) -> Option<String> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(key)
            .map(|node: &BasicNode| node.addr.clone())
    }

    /// Sends `request` to the active controller, retrying while there is none or it moves,
    /// until the request time-out. A retried request may be applied twice (e.g. a topic
    /// creation then answers TopicAlreadyExists), as with Kafka.
    async fn request(&self, request: ControllerRequest) -> Result<ControllerResponse, QuorumError> {
        let deadline = Instant::now() + self.request_timeout();
        let mut leader_seen = false;
        loop {
            if self.stopped.load(Ordering::Relaxed) {
                return Err(QuorumError::Unavailable("shutting down".into()));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(if leader_seen {
                    QuorumError::Timeout
                } else {
                    QuorumError::Unavailable("no active controller".into())
                });
            }
            let leader = self.raft.metrics().borrow().current_leader;
            let attempt = match leader {
                Some(leader) if leader == self.key => {
                    leader_seen = true;
                    tokio::time::timeout(remaining, self.serve_controller_request(request.clone()))
                        .await
                        .unwrap_or(Err(QuorumError::Timeout))
                }
                Some(leader) => {
                    leader_seen = true;
                    match self.member_address(&leader) {
                        Some(address) => self
                            .rpc
                            .post::<_, Result<ControllerResponse, QuorumError>>(
                                &address,
                                PATH_CONTROLLER,
                                &request,
                                remaining,
                            )
                            .await
                            .unwrap_or_else(|e| Err(QuorumError::Unavailable(e.to_string()))),
                        None => Err(QuorumError::Unavailable(format!("no address for {leader}"))),
                    }
                }
                None => Err(QuorumError::Unavailable("no leader elected".into())),
            };
            match attempt {
                Err(QuorumError::NotLeader { .. }) | Err(QuorumError::Unavailable(_)) => {
                    tokio::time::sleep(RETRY_PAUSE.min(remaining)).await;
                }
                other => return other,
            }
        }
    }
}

fn unexpected(response: ControllerResponse) -> QuorumError {
    QuorumError::Unavailable(format!("unexpected controller response {response:?}"))
}
