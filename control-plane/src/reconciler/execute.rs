//! The executor: performs a planned step through the platform and the store, and records it on
//! the cluster's operation (name, status, times, message) so a restarted control plane shows and
//! resumes where the work was.

use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Utc;
use tracing::{info, warn};
use uuid::Uuid;

use super::plan::{broker_ids, node_state, plan, Step};
use super::{ReconcileError, Reconciler};
use crate::domain::{
    BrokerNodeGroup, ClusterState, NodeVolume, OperationState, OperationStep, OperationType,
    StepStatus, StorageInfo,
};
use crate::platform::{
    NodeEndpoints, NodeSpec, ObservedNode, PlatformError, VolumeSpec, VoterAddress,
};
use crate::store::{ClusterRecord, NodeRecord, OperationRecord, StoreError};

/// A node that keeps failing is not replaced forever: the operation fails after this many.
const MAX_REPLACEMENTS_PER_OPERATION: usize = 3;

/// What one pass knows of the cluster's operation.
pub(super) struct Pass {
    pub(super) cluster: ClusterRecord,
    pub(super) operation: Option<OperationRecord>,
}

/// How a step ended.
pub(super) enum Outcome {
    /// Done; plan the next one.
    Done,
    /// Waiting on the brokers: end this pass.
    Wait,
    /// The cluster is gone or settled: end this pass.
    Finished,
}

impl Reconciler {
    /// Plans and performs steps on one cluster until it waits, settles, or the lease is lost.
    pub(super) async fn steps(
        &self,
        cluster_id: Uuid,
        lease_lost: &AtomicBool,
    ) -> Result<(), ReconcileError> {
        let mut span_has_operation = false;
        for _ in 0..self.config.max_steps_per_pass {
            if lease_lost.load(Ordering::SeqCst) {
                return Ok(());
            }
            let cluster = match self.store.get_cluster(cluster_id).await {
                Ok(cluster) => cluster,
                Err(StoreError::NotFound) => return Ok(()),
                Err(error) => return Err(error.into()),
            };
            let operation = self
                .store
                .unfinished_operations(cluster_id)
                .await?
                .into_iter()
                .next();
            if let Some(op) = operation.as_ref().filter(|_| !span_has_operation) {
                // Once: a span field recorded again is printed twice.
                tracing::Span::current().record("operation_id", tracing::field::display(op.id));
                span_has_operation = true;
            }
            let nodes = self.store.list_nodes(cluster_id).await?;
            let observed = self.platform.observe(cluster_id).await?;
            let controller = if cluster.state.is_changing() {
                self.active_controller(&observed).await
            } else {
                None
            };
            let step = plan(&cluster, operation.as_ref(), &observed, &nodes, controller);
            let mut pass = Pass { cluster, operation };
            match self.perform(&mut pass, &step, &nodes, &observed).await {
                Ok(Outcome::Done) => {}
                Ok(Outcome::Wait | Outcome::Finished) => return Ok(()),
                Err(ReconcileError::Platform(error)) if is_permanent(&error) => {
                    self.fail(&mut pass, &step, &error.to_string()).await?;
                    return Ok(());
                }
                Err(error) => {
                    // Transient (a process, a port, the database): recorded and retried.
                    self.record_step(
                        &mut pass,
                        &step,
                        StepStatus::InProgress,
                        Some(&error.to_string()),
                    )
                    .await?;
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    async fn perform(
        &self,
        pass: &mut Pass,
        step: &Step,
        nodes: &[NodeRecord],
        observed: &[ObservedNode],
    ) -> Result<Outcome, ReconcileError> {
        let cluster_id = pass.cluster.id;
        if !matches!(step, Step::Nothing | Step::Fail { .. }) {
            info!(step = %step.name(), state = %pass.cluster.state, "reconciling");
        }
        match step {
            Step::Nothing => Ok(Outcome::Finished),
            Step::Fail { reason } => {
                self.fail(pass, step, reason).await?;
                Ok(Outcome::Finished)
            }
            Step::CheckCanStop(_)
            | Step::DrainBroker(_)
            | Step::RestartBroker(_)
            | Step::RestartAllBrokers
            | Step::WaitInSync(_)
            | Step::ElectPreferredLeaders(_)
            | Step::ApplySettings(_)
            | Step::GrowVolume(_)
            | Step::FinishChange => self.perform_change(pass, step, nodes, observed).await,
            Step::CheckRemoval | Step::MovePartitions | Step::RemoveNode(_) => {
                self.perform_scale(pass, step, nodes, observed).await
            }
            Step::AllocateNodes => {
                self.begin(pass, step).await?;
                let ids = broker_ids(&pass.cluster);
                let endpoints = self.platform.allocate_endpoints(cluster_id, &ids).await?;
                let spec = &pass.cluster.spec;
                for (index, (id, endpoints)) in ids.iter().zip(&endpoints).enumerate() {
                    if nodes.iter().any(|n| n.broker_id == *id) {
                        continue;
                    }
                    let mut node = NodeRecord::new(
                        cluster_id,
                        *id,
                        spec.broker_node_group.zones.zone_of(index),
                        spec.kafka_version.as_str(),
                        node_volume(&spec.broker_node_group, None),
                        node_state::PROVISIONING,
                    );
                    node.endpoint = Some(endpoints.kafka.clone());
                    // The first brokers a cluster is created with form its metadata quorum;
                    // the others, and brokers added later, follow it as observers.
                    node.voter = pass.cluster.state == ClusterState::Creating
                        && *id <= crate::domain::QUORUM_VOTERS;
                    self.store.upsert_node(&node).await?;
                }
                self.complete(pass, step, None).await?;
                Ok(Outcome::Done)
            }
            Step::EnsureVolume(broker_id) => {
                self.begin(pass, step).await?;
                let volume = volume_spec(&pass.cluster.spec.broker_node_group);
                let id = self
                    .platform
                    .ensure_volume(cluster_id, *broker_id, &volume)
                    .await?;
                let mut node = node_of(nodes, *broker_id)?;
                node.volume = node_volume(&pass.cluster.spec.broker_node_group, Some(id.0));
                node.state = node_state::VOLUME_READY.into();
                self.store.upsert_node(&node).await?;
                self.complete(pass, step, None).await?;
                Ok(Outcome::Done)
            }
            Step::CreateNode(broker_id) => {
                self.begin(pass, step).await?;
                self.start_node(&pass.cluster, nodes, *broker_id).await?;
                self.complete(pass, step, None).await?;
                Ok(Outcome::Done)
            }
            Step::ReplaceNode(broker_id) => {
                if pass.cluster.state == ClusterState::Active {
                    self.start_heal(pass, *broker_id).await?;
                }
                let replaced = pass.operation.as_ref().map_or(0, |op| {
                    op.steps.iter().filter(|s| s.name == step.name()).count()
                });
                if replaced >= MAX_REPLACEMENTS_PER_OPERATION {
                    let why = observed
                        .iter()
                        .find(|n| n.broker_id == *broker_id)
                        .map(|n| format!("{:?} {}", n.phase, n.message))
                        .unwrap_or_else(|| "gone".into());
                    let reason = format!(
                        "broker {broker_id} failed {replaced} times in a row ({why}); see the \
                         node's agent.log"
                    );
                    self.fail(pass, step, &reason).await?;
                    return Ok(Outcome::Finished);
                }
                self.begin(pass, step).await?;
                let mut node = node_of(nodes, *broker_id)?;
                node.state = node_state::REPLACING.into();
                self.store.upsert_node(&node).await?;
                // The old node goes (an instance-store volume with it); a persistent volume
                // stays and is handed to the replacement.
                self.platform.delete_node(cluster_id, *broker_id).await?;
                let volume = volume_spec(&pass.cluster.spec.broker_node_group);
                self.platform
                    .ensure_volume(cluster_id, *broker_id, &volume)
                    .await?;
                self.start_node(&pass.cluster, nodes, *broker_id).await?;
                self.complete(pass, step, None).await?;
                Ok(Outcome::Done)
            }
            Step::WaitForBrokers => {
                self.begin(pass, step).await?;
                let waited = pass
                    .operation
                    .as_ref()
                    .and_then(|op| op.steps.iter().rev().find(|s| s.name == step.name()))
                    .and_then(|s| s.started_at)
                    .map(|started| (Utc::now() - started).to_std().unwrap_or_default());
                if waited.is_some_and(|w| w > self.config.ready_timeout) {
                    let observed = self.platform.observe(cluster_id).await?;
                    let not_ready: Vec<String> = observed
                        .iter()
                        .filter(|n| n.phase != crate::platform::NodePhase::Running)
                        .map(|n| format!("broker {} {:?}: {}", n.broker_id, n.phase, n.message))
                        .collect();
                    let reason = format!(
                        "brokers not ready after {:?}: {}",
                        self.config.ready_timeout,
                        not_ready.join("; ")
                    );
                    self.fail(pass, step, &reason).await?;
                    return Ok(Outcome::Finished);
                }
                Ok(Outcome::Wait)
            }
            Step::MarkActive { bootstrap } => {
                self.begin(pass, step).await?;
                for node in nodes {
                    if node.state != node_state::RUNNING {
                        let mut node = node.clone();
                        node.state = node_state::RUNNING.into();
                        self.store.upsert_node(&node).await?;
                    }
                }
                let moved = self
                    .store
                    .transition_cluster_state(
                        cluster_id,
                        pass.cluster.state,
                        ClusterState::Active,
                        Some(bootstrap),
                    )
                    .await?;
                if moved {
                    self.complete(pass, step, Some(bootstrap)).await?;
                    self.finish_operation(pass, OperationState::UpdateComplete, None)
                        .await?;
                    info!(%bootstrap, "cluster ACTIVE");
                }
                Ok(Outcome::Done)
            }
            Step::DeleteNodes => {
                self.begin(pass, step).await?;
                let observed = self.platform.observe(cluster_id).await?;
                // In parallel: each node's graceful stop takes its own time.
                let mut deletions = tokio::task::JoinSet::new();
                for node in &observed {
                    let platform = self.platform.clone();
                    let broker_id = node.broker_id;
                    deletions
                        .spawn(async move { platform.delete_node(cluster_id, broker_id).await });
                }
                while let Some(result) = deletions.join_next().await {
                    result
                        .map_err(|e| PlatformError::Process(format!("deleting a node: {e}")))??;
                }
                for node in nodes {
                    let mut node = node.clone();
                    node.state = node_state::STOPPED.into();
                    self.store.upsert_node(&node).await?;
                }
                self.complete(pass, step, None).await?;
                Ok(Outcome::Done)
            }
            Step::DeleteVolumes => {
                self.begin(pass, step).await?;
                for node in nodes {
                    if node.volume.persistent && node.state != node_state::VOLUME_DELETED {
                        self.platform
                            .delete_volume(cluster_id, node.broker_id)
                            .await?;
                        let mut node = node.clone();
                        node.state = node_state::VOLUME_DELETED.into();
                        self.store.upsert_node(&node).await?;
                    }
                }
                self.complete(pass, step, None).await?;
                Ok(Outcome::Done)
            }
            Step::ForgetCluster => {
                self.begin(pass, step).await?;
                self.platform.delete_cluster_resources(cluster_id).await?;
                self.complete(pass, step, None).await?;
                self.finish_operation(pass, OperationState::UpdateComplete, None)
                    .await?;
                self.store.delete_cluster_rows(cluster_id).await?;
                info!("cluster deleted");
                Ok(Outcome::Finished)
            }
        }
    }

    /// Starts (or adopts) one broker's node with a fresh agent token.
    async fn start_node(
        &self,
        cluster: &ClusterRecord,
        nodes: &[NodeRecord],
        broker_id: i32,
    ) -> Result<(), ReconcileError> {
        let (spec, endpoints) = self.node_spec(cluster, nodes, broker_id).await?;
        self.platform.create_node(&spec, &endpoints).await?;
        let mut node = node_of(nodes, broker_id)?;
        node.state = node_state::STARTING.into();
        node.endpoint = Some(endpoints.kafka.clone());
        self.store.upsert_node(&node).await?;
        Ok(())
    }

    /// What the broker's node runs under the cluster's (desired) spec, with a fresh agent
    /// token, and its endpoints.
    pub(super) async fn node_spec(
        &self,
        cluster: &ClusterRecord,
        nodes: &[NodeRecord],
        broker_id: i32,
    ) -> Result<(NodeSpec, NodeEndpoints), ReconcileError> {
        // The desired brokers and the recorded ones: a leaving broker (a scale-in) still runs
        // until it is removed.
        let mut ids = broker_ids(cluster);
        ids.extend(nodes.iter().map(|n| n.broker_id));
        ids.sort_unstable();
        ids.dedup();
        let endpoints = self.platform.allocate_endpoints(cluster.id, &ids).await?;
        let voters: Vec<VoterAddress> = ids
            .iter()
            .zip(&endpoints)
            .filter(|(id, _)| nodes.iter().any(|n| n.broker_id == **id && n.voter))
            .map(|(id, e)| VoterAddress {
                broker_id: *id,
                controller: e.controller.clone(),
            })
            .collect();
        let index = ids.iter().position(|id| *id == broker_id).ok_or_else(|| {
            PlatformError::InvalidSpec {
                field: "brokerId".into(),
                reason: format!("broker {broker_id} is not part of the cluster"),
            }
        })?;
        let node = node_of(nodes, broker_id)?;
        let spec = NodeSpec {
            cluster_id: cluster.id,
            broker_id,
            zone: node.zone.clone(),
            broker_version: cluster.spec.kafka_version.as_str().to_owned(),
            instance_type: cluster
                .spec
                .broker_node_group
                .instance_type
                .name()
                .to_owned(),
            volume: volume_spec(&cluster.spec.broker_node_group),
            broker_config: self
                .store
                .configuration_settings(cluster.spec.configuration.as_ref())
                .await?,
            voters,
            agent_token: self.store.create_agent_token(cluster.id, broker_id).await?,
            control_plane_url: self.config.control_plane_url.clone(),
        };
        Ok((spec, endpoints[index].clone()))
    }

    /// Moves the cluster to HEALING and opens a HEAL operation. The state moves first, and only
    /// from ACTIVE: a change accepted meanwhile (which also needs ACTIVE) wins, and the heal
    /// waits for the next pass, so a cluster never has two unfinished operations.
    async fn start_heal(&self, pass: &mut Pass, broker_id: i32) -> Result<(), ReconcileError> {
        let moved = self
            .store
            .transition_cluster_state(
                pass.cluster.id,
                ClusterState::Active,
                ClusterState::Healing,
                None,
            )
            .await?;
        if !moved {
            return Err(ReconcileError::Store(StoreError::Conflict(
                crate::store::Conflict::InUse(
                    "the cluster left ACTIVE before its heal started".into(),
                ),
            )));
        }
        let spec = pass.cluster.spec.clone();
        let operation = self
            .store
            .insert_operation(
                pass.cluster.id,
                OperationType::Heal,
                Some(&spec),
                Some(&spec),
            )
            .await?;
        tracing::Span::current().record("operation_id", tracing::field::display(operation.id));
        warn!(broker_id, operation_id = %operation.id, "a broker node failed: healing");
        pass.cluster.state = ClusterState::Healing;
        pass.operation = Some(operation);
        Ok(())
    }

    /// Ends the operation failed with `reason`; a create leaves the cluster FAILED, a heal or a
    /// change returns it to ACTIVE (it serves with the brokers it has, a roll's restarted
    /// brokers on the new version and the others on the old: the user retries or rolls back).
    pub(super) async fn fail(
        &self,
        pass: &mut Pass,
        step: &Step,
        reason: &str,
    ) -> Result<(), ReconcileError> {
        warn!(%reason, step = %step.name(), "operation failed");
        self.record_step(pass, step, StepStatus::Failed, Some(reason))
            .await?;
        self.finish_operation(pass, OperationState::UpdateFailed, Some(reason))
            .await?;
        let next = match pass.cluster.state {
            ClusterState::Creating => Some(ClusterState::Failed),
            ClusterState::Healing | ClusterState::Updating | ClusterState::RebootingBroker => {
                Some(ClusterState::Active)
            }
            _ => None,
        };
        // A scale-in that no broker has left yet did not happen: the cluster keeps the brokers
        // it has, and says so.
        if let Some(op) = &pass.operation {
            let shrink_undone = op.operation_type == OperationType::UpdateBrokerCount
                && op.source_spec.as_ref().is_some_and(|source| {
                    source.number_of_broker_nodes > pass.cluster.spec.number_of_broker_nodes
                })
                && !op.steps.iter().any(|s| {
                    s.kind == Some(crate::domain::StepKind::RemoveNode)
                        && s.status == StepStatus::Complete
                });
            if let (true, Some(source)) = (shrink_undone, &op.source_spec) {
                self.store.restore_spec(pass.cluster.id, source).await?;
            }
        }
        if let Some(next) = next {
            self.store
                .transition_cluster_state(pass.cluster.id, pass.cluster.state, next, None)
                .await?;
        }
        Ok(())
    }

    /// Ends the operation; a step still open (a wait the work moved on from) ends with it, so
    /// that every step of a finished operation has its final status.
    pub(super) async fn finish_operation(
        &self,
        pass: &mut Pass,
        state: OperationState,
        error: Option<&str>,
    ) -> Result<(), ReconcileError> {
        if let Some(op) = pass.operation.as_mut() {
            let final_status = if state == OperationState::UpdateComplete {
                StepStatus::Complete
            } else {
                StepStatus::Failed
            };
            if close_open_steps(&mut op.steps, final_status, None) {
                self.store.set_operation_steps(op.id, &op.steps).await?;
            }
        }
        if let Some(op) = &pass.operation {
            let updated = self.store.set_operation_state(op.id, state, error).await?;
            pass.operation = Some(updated);
        }
        Ok(())
    }

    pub(super) async fn begin(&self, pass: &mut Pass, step: &Step) -> Result<(), ReconcileError> {
        if let Some(op) = &pass.operation {
            if op.state == OperationState::Pending {
                let updated = self
                    .store
                    .set_operation_state(op.id, OperationState::UpdateInProgress, None)
                    .await?;
                pass.operation = Some(updated);
            }
        }
        self.record_step(pass, step, StepStatus::InProgress, None)
            .await
    }

    pub(super) async fn complete(
        &self,
        pass: &mut Pass,
        step: &Step,
        message: Option<&str>,
    ) -> Result<(), ReconcileError> {
        self.record_step(pass, step, StepStatus::Complete, message)
            .await
    }

    /// Records `status` on the operation's latest open step of that kind (and broker), or
    /// appends the step, ending any other step still open: steps run one after another, so a
    /// new one means the previous one (a wait) is over. Persisted at once: the operation shows
    /// where the work is.
    pub(super) async fn record_step(
        &self,
        pass: &mut Pass,
        step: &Step,
        status: StepStatus,
        message: Option<&str>,
    ) -> Result<(), ReconcileError> {
        let Some(op) = pass.operation.as_mut() else {
            return Ok(());
        };
        let (kind, broker_id) = step.kind();
        let name = step.name();
        let now = crate::store::now();
        let is_this = |s: &OperationStep| match s.kind {
            Some(_) => s.is(kind, broker_id),
            None => s.name == name,
        };
        let mut changed = false;
        if !op
            .steps
            .iter()
            .any(|s| is_this(s) && s.status == StepStatus::InProgress)
        {
            changed |= end_interrupted_steps(&mut op.steps, now, &name);
        }
        let open = op
            .steps
            .iter_mut()
            .rev()
            .find(|s| is_this(s) && s.status == StepStatus::InProgress);
        let recorded = match open {
            Some(recorded) => recorded,
            None => {
                let mut new = OperationStep::pending(name);
                new.kind = Some(kind);
                new.broker_id = broker_id;
                new.started_at = Some(now);
                op.steps.push(new);
                changed = true;
                op.steps.last_mut().expect("just pushed")
            }
        };
        if recorded.status != status
            || message.is_some_and(|m| recorded.message.as_deref() != Some(m))
        {
            recorded.status = status;
            if let Some(message) = message {
                recorded.message = Some(message.to_owned());
            }
            if matches!(status, StepStatus::Complete | StepStatus::Failed) {
                recorded.ended_at = Some(now);
            }
            changed = true;
        }
        if changed {
            self.store.set_operation_steps(op.id, &op.steps).await?;
        }
        Ok(())
    }
}

/// Ends the steps still open when another step starts. A wait the work moved on from (the
/// brokers became ready) is complete; a check of a change that another step interrupted (a node
/// replaced while a can-stop check waited) is not: it ends FAILED, so that the planner runs the
/// check again instead of taking it as passed.
fn end_interrupted_steps(
    steps: &mut [OperationStep],
    at: chrono::DateTime<Utc>,
    next: &str,
) -> bool {
    let mut closed = false;
    for step in steps
        .iter_mut()
        .filter(|s| s.status == StepStatus::InProgress)
    {
        let interrupted = step.kind.is_some_and(|kind| kind.is_change_step());
        step.status = if interrupted {
            step.message = Some(format!("interrupted by {next}"));
            StepStatus::Failed
        } else {
            StepStatus::Complete
        };
        step.ended_at = Some(at);
        closed = true;
    }
    closed
}

/// Ends every open step with `status`; whether any was open.
fn close_open_steps(
    steps: &mut [OperationStep],
    status: StepStatus,
    at: Option<chrono::DateTime<Utc>>,
) -> bool {
    let at = at.unwrap_or_else(crate::store::now);
    let mut closed = false;
    for step in steps
        .iter_mut()
        .filter(|s| s.status == StepStatus::InProgress)
    {
        step.status = status;
        step.ended_at = Some(at);
        closed = true;
    }
    closed
}

/// Errors that retrying cannot fix.
fn is_permanent(error: &PlatformError) -> bool {
    matches!(
        error,
        PlatformError::InvalidSpec { .. } | PlatformError::VersionNotInstalled { .. }
    )
}

pub(super) fn node_of(nodes: &[NodeRecord], broker_id: i32) -> Result<NodeRecord, ReconcileError> {
    nodes
        .iter()
        .find(|n| n.broker_id == broker_id)
        .cloned()
        .ok_or(ReconcileError::Store(StoreError::NotFound))
}

/// The volume a broker of `group` gets: its persistent volume, or the instance store of its
/// broker size.
pub(super) fn volume_spec(group: &BrokerNodeGroup) -> VolumeSpec {
    match group.storage {
        StorageInfo::Ebs { volume_size, .. } => VolumeSpec::Persistent {
            size_gib: volume_size.gib(),
            storage_class: group.storage_class.clone(),
        },
        StorageInfo::InstanceStore => VolumeSpec::InstanceStore {
            size_gib: Some(group.instance_type.instance_store_gib()),
        },
    }
}

pub(super) fn node_volume(group: &BrokerNodeGroup, location: Option<String>) -> NodeVolume {
    match &group.storage {
        StorageInfo::Ebs { volume_size, .. } => NodeVolume {
            persistent: true,
            size_gib: Some(volume_size.gib()),
            location,
        },
        StorageInfo::InstanceStore => NodeVolume {
            persistent: false,
            size_gib: Some(group.instance_type.instance_store_gib()),
            location,
        },
    }
}
