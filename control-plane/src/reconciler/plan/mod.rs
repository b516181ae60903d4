//! The planner: desired state (the cluster record and its unfinished operation), what the store
//! recorded of its nodes, and what the platform observes -> the one next step. Pure: no I/O, no
//! clock; the executor owns effects and time (e.g. the wait for brokers times out there).

pub mod balance;
mod change;

use std::collections::BTreeMap;

use crate::domain::{ClusterState, OperationType, StepKind};
use crate::platform::{NodePhase, ObservedNode};
use crate::store::{ClusterRecord, NodeRecord, OperationRecord};

/// The reconciler's word for a node, in the store's `nodes.state`.
pub mod node_state {
    /// Endpoints allocated; no volume yet.
    pub const PROVISIONING: &str = "PROVISIONING";
    /// Volume ensured; the node is not started yet.
    pub const VOLUME_READY: &str = "VOLUME_READY";
    /// The node was started; its broker is not known to be ready yet.
    pub const STARTING: &str = "STARTING";
    /// The broker answered ready when the operation completed.
    pub const RUNNING: &str = "RUNNING";
    /// Being replaced (the cluster is HEALING).
    pub const REPLACING: &str = "REPLACING";
    /// The node is gone (the cluster is DELETING); its persistent volume may remain.
    pub const STOPPED: &str = "STOPPED";
    /// Node and volume are gone.
    pub const VOLUME_DELETED: &str = "VOLUME_DELETED";
}

/// The next thing to do for a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Record a node per broker id 1..=N with its zone and endpoints.
    AllocateNodes,
    /// Create (or find) the broker's volume.
    EnsureVolume(i32),
    /// Start the broker's node (adopting it if it already runs).
    CreateNode(i32),
    /// Nodes are starting: check again later (the executor enforces a deadline).
    WaitForBrokers,
    /// Every broker is ready: the cluster is ACTIVE with these bootstrap brokers.
    MarkActive { bootstrap: String },
    /// The broker's node failed or vanished: replace it (HEALING), re-attaching a persistent
    /// volume.
    ReplaceNode(i32),
    /// Stop every node of a DELETING cluster.
    DeleteNodes,
    /// Remove the persistent volumes of a DELETING cluster.
    DeleteVolumes,
    /// Remove what is left on the platform and the cluster's rows.
    ForgetCluster,
    /// Ask the broker whether stopping it takes any partition below min.insync.replicas;
    /// wait while it does.
    CheckCanStop(i32),
    /// Move the broker's leaderships away (controlled shutdown).
    DrainBroker(i32),
    /// Restart the broker in place with the target version and configuration.
    RestartBroker(i32),
    /// Restart every broker at once (the downtime strategy).
    RestartAllBrokers,
    /// Wait until the broker (every broker: None) is back and every partition fully in sync.
    WaitInSync(Option<i32>),
    /// Give the preferred replicas their leaderships back (after the broker's restart).
    ElectPreferredLeaders(Option<i32>),
    /// Give the broker (every broker: None) the new configuration's dynamic settings.
    ApplySettings(Option<i32>),
    /// Grow the broker's persistent volume to the target size.
    GrowVolume(i32),
    /// Before brokers leave: every topic fits on the brokers that remain.
    CheckRemoval,
    /// Reassign partitions until replicas and leaders are balanced over the desired brokers.
    MovePartitions,
    /// Remove a leaving broker (which leads and holds nothing any more): node, volume, record.
    RemoveNode(i32),
    /// The change is carried out: the cluster is ACTIVE again.
    FinishChange,
    /// The operation cannot go on.
    Fail { reason: String },
    /// Nothing to do.
    Nothing,
}

impl Step {
    /// What the step is and which broker it is about, as recorded on its operation.
    pub fn kind(&self) -> (StepKind, Option<i32>) {
        match self {
            Step::AllocateNodes => (StepKind::AllocateNodes, None),
            Step::EnsureVolume(b) => (StepKind::EnsureVolume, Some(*b)),
            Step::CreateNode(b) => (StepKind::CreateNode, Some(*b)),
            Step::WaitForBrokers => (StepKind::WaitForBrokers, None),
            Step::MarkActive { .. } => (StepKind::MarkActive, None),
            Step::ReplaceNode(b) => (StepKind::ReplaceNode, Some(*b)),
            Step::DeleteNodes => (StepKind::DeleteNodes, None),
            Step::DeleteVolumes => (StepKind::DeleteVolumes, None),
            Step::ForgetCluster => (StepKind::ForgetCluster, None),
            Step::CheckCanStop(b) => (StepKind::CheckCanStop, Some(*b)),
            Step::DrainBroker(b) => (StepKind::DrainBroker, Some(*b)),
            Step::RestartBroker(b) => (StepKind::RestartBroker, Some(*b)),
            Step::RestartAllBrokers => (StepKind::RestartAllBrokers, None),
            Step::WaitInSync(b) => (StepKind::WaitInSync, *b),
            Step::ElectPreferredLeaders(b) => (StepKind::ElectPreferredLeaders, *b),
            Step::ApplySettings(b) => (StepKind::ApplySettings, *b),
            Step::GrowVolume(b) => (StepKind::GrowVolume, Some(*b)),
            Step::CheckRemoval => (StepKind::CheckRemoval, None),
            Step::MovePartitions => (StepKind::MovePartitions, None),
            Step::RemoveNode(b) => (StepKind::RemoveNode, Some(*b)),
            Step::FinishChange => (StepKind::FinishChange, None),
            Step::Fail { .. } | Step::Nothing => (StepKind::Fail, None),
        }
    }

    /// The name the step is recorded under on its operation.
    pub fn name(&self) -> String {
        match self {
            Step::AllocateNodes => "AllocateNodes".into(),
            Step::EnsureVolume(broker) => format!("EnsureVolume broker {broker}"),
            Step::CreateNode(broker) => format!("CreateNode broker {broker}"),
            Step::WaitForBrokers => "WaitForBrokers".into(),
            Step::MarkActive { .. } => "MarkActive".into(),
            Step::ReplaceNode(broker) => format!("ReplaceNode broker {broker}"),
            Step::DeleteNodes => "DeleteNodes".into(),
            Step::DeleteVolumes => "DeleteVolumes".into(),
            Step::ForgetCluster => "ForgetCluster".into(),
            Step::CheckCanStop(broker) => format!("CheckCanStop broker {broker}"),
            Step::DrainBroker(broker) => format!("DrainBroker broker {broker}"),
            Step::RestartBroker(broker) => format!("RestartBroker broker {broker}"),
            Step::RestartAllBrokers => "RestartAllBrokers".into(),
            Step::WaitInSync(Some(broker)) => format!("WaitInSync broker {broker}"),
            Step::WaitInSync(None) => "WaitInSync".into(),
            Step::ElectPreferredLeaders(Some(broker)) => {
                format!("ElectPreferredLeaders broker {broker}")
            }
            Step::ElectPreferredLeaders(None) => "ElectPreferredLeaders".into(),
            Step::ApplySettings(Some(broker)) => format!("ApplySettings broker {broker}"),
            Step::ApplySettings(None) => "ApplySettings".into(),
            Step::GrowVolume(broker) => format!("GrowVolume broker {broker}"),
            Step::CheckRemoval => "CheckRemoval".into(),
            Step::MovePartitions => "MovePartitions".into(),
            Step::RemoveNode(broker) => format!("RemoveNode broker {broker}"),
            Step::FinishChange => "FinishChange".into(),
            Step::Fail { .. } => "Fail".into(),
            Step::Nothing => "Nothing".into(),
        }
    }
}

/// Decides the next step for `desired`.
///
/// `operation` is the cluster's oldest unfinished operation, `observed` what the platform sees,
/// `nodes` what the store recorded, `controller` the broker that is the active controller (when
/// the brokers said; a roll restarts it last). A node is created only when the platform does
/// not observe it, so repeating a plan after a crash never duplicates one (and the platform
/// adopts an agent it finds running anyway).
pub fn plan(
    desired: &ClusterRecord,
    operation: Option<&OperationRecord>,
    observed: &[ObservedNode],
    nodes: &[NodeRecord],
    controller: Option<i32>,
) -> Step {
    match desired.state {
        ClusterState::Deleting => plan_delete(observed, nodes),
        ClusterState::Creating => match operation.map(|op| op.operation_type) {
            Some(OperationType::Create) | None => converge(desired, observed, nodes, true),
            Some(other) => Step::Fail {
                reason: format!("a {other} operation cannot run on a CREATING cluster"),
            },
        },
        ClusterState::Healing => converge(desired, observed, nodes, false),
        ClusterState::Active => match operation {
            Some(op) if op.operation_type != OperationType::Heal => Step::Fail {
                reason: format!(
                    "{} is not carried out by this control plane yet",
                    op.operation_type
                ),
            },
            _ => first_broken_node(observed, nodes).map_or(Step::Nothing, Step::ReplaceNode),
        },
        ClusterState::Updating | ClusterState::RebootingBroker => match operation {
            Some(op) => change::plan_change(desired, op, observed, nodes, controller),
            // The change's operation finished just before a crash: only the state is left.
            None => Step::FinishChange,
        },
        ClusterState::Failed => Step::Nothing,
    }
}

/// The broker ids 1..=N of the desired spec.
pub fn broker_ids(desired: &ClusterRecord) -> Vec<i32> {
    (1..=desired.spec.number_of_broker_nodes.get() as i32).collect()
}

fn converge(
    desired: &ClusterRecord,
    observed: &[ObservedNode],
    nodes: &[NodeRecord],
    may_allocate: bool,
) -> Step {
    let recorded: BTreeMap<i32, &NodeRecord> = nodes.iter().map(|n| (n.broker_id, n)).collect();
    let seen: BTreeMap<i32, &ObservedNode> = observed.iter().map(|n| (n.broker_id, n)).collect();
    let ids = broker_ids(desired);
    if ids.iter().any(|id| !recorded.contains_key(id)) {
        return if may_allocate {
            Step::AllocateNodes
        } else {
            Step::Fail {
                reason: "the cluster's nodes are not recorded".into(),
            }
        };
    }
    for id in &ids {
        if recorded[id].volume.location.is_none() {
            return Step::EnsureVolume(*id);
        }
    }
    for id in &ids {
        match seen.get(id).map(|n| &n.phase) {
            None => return Step::CreateNode(*id),
            Some(NodePhase::Failed(_)) => return Step::ReplaceNode(*id),
            Some(_) => {}
        }
    }
    let all_running = ids
        .iter()
        .all(|id| matches!(seen.get(id).map(|n| &n.phase), Some(NodePhase::Running)));
    if !all_running {
        return Step::WaitForBrokers;
    }
    let endpoints: Vec<&str> = ids
        .iter()
        .map(|id| {
            recorded[id]
                .endpoint
                .as_deref()
                .unwrap_or(seen[id].endpoints.kafka.as_str())
        })
        .collect();
    Step::MarkActive {
        bootstrap: endpoints.join(","),
    }
}

/// A recorded node the platform no longer runs, or reports failed.
fn first_broken_node(observed: &[ObservedNode], nodes: &[NodeRecord]) -> Option<i32> {
    nodes.iter().map(|node| node.broker_id).find(|id| {
        match observed.iter().find(|o| o.broker_id == *id) {
            None => true,
            Some(node) => matches!(node.phase, NodePhase::Failed(_)),
        }
    })
}

fn plan_delete(observed: &[ObservedNode], nodes: &[NodeRecord]) -> Step {
    if !observed.is_empty() {
        return Step::DeleteNodes;
    }
    let volumes_left = nodes
        .iter()
        .any(|n| n.volume.persistent && n.state != node_state::VOLUME_DELETED);
    if volumes_left {
        return Step::DeleteVolumes;
    }
    Step::ForgetCluster
}

#[cfg(test)]
mod tests;
