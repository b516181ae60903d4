//! Planning a change to a running cluster (UPDATING or REBOOTING_BROKER). Pure, like the rest
//! of the planner: where a roll stands is read back from the operation's persisted steps, so a
//! control plane restarted at any point plans the step it was at, and never one it finished.
//!
//! A roll (inPlace) takes one broker at a time through
//! `CheckCanStop -> DrainBroker -> RestartBroker -> WaitInSync -> ElectPreferredLeaders`, in
//! Strimzi KafkaRoller's order: brokers that are not ready first (restarting them cannot make
//! availability worse), then by id, the active controller last (so the quorum's leadership
//! moves once, not at every restart). The downtime strategy restarts every broker at once.
//!
//! A broker type change (persistent volumes only) is the same roll: each restart replaces the
//! broker's node with one of the new type (a new pod with the new resources on Kubernetes), its
//! volume re-attached.
//!
//! A configuration change whose settings are all dynamic restarts nothing: each broker in turn
//! is given the new settings (`ApplySettings`). Every roll gives each restarted broker the
//! configuration's dynamic settings once it is back in sync (they are kept by the broker and
//! take precedence over its flags, so they must follow the configuration).

use crate::domain::{volume_size, OperationType, StepKind, StepStatus, UpgradeStrategy};
use crate::platform::{NodePhase, ObservedNode};
use crate::store::{ClusterRecord, NodeRecord, OperationRecord};

use super::Step;

/// One broker's way through a roll, in order.
const ROLL: [StepKind; 6] = [
    StepKind::CheckCanStop,
    StepKind::DrainBroker,
    StepKind::RestartBroker,
    StepKind::WaitInSync,
    StepKind::ApplySettings,
    StepKind::ElectPreferredLeaders,
];

/// The steps of a roll for this operation: all of them. ApplySettings follows every restart,
/// whatever the change: a broker keeps dynamic settings over its flags, so a restarted broker
/// is always given the configuration's (a change that failed half-way, or a version without
/// them before, cannot leave stale ones behind).
fn roll_steps(_op: &OperationRecord) -> Vec<StepKind> {
    ROLL.to_vec()
}

pub(super) fn plan_change(
    desired: &ClusterRecord,
    op: &OperationRecord,
    observed: &[ObservedNode],
    nodes: &[NodeRecord],
    controller: Option<i32>,
) -> Step {
    match op.operation_type {
        OperationType::UpdateBrokerStorage => plan_storage(desired, op, nodes),
        OperationType::UpdateBrokerCount => plan_count(desired, op, observed, nodes),
        OperationType::UpdateClusterKafkaVersion
        | OperationType::UpdateClusterConfiguration
        | OperationType::UpdateBrokerType
        | OperationType::RebootNode => match op.parameters.upgrade_strategy {
            _ if op.operation_type == OperationType::UpdateClusterConfiguration
                && op
                    .parameters
                    .settings
                    .as_ref()
                    .is_some_and(|s| !s.restarts()) =>
            {
                plan_dynamic(op, observed, nodes)
            }
            UpgradeStrategy::InPlace => plan_roll(desired, op, observed, nodes, controller),
            UpgradeStrategy::Downtime => plan_downtime(op),
        },
        other => Step::Fail {
            reason: format!("{other} is not carried out by this control plane yet"),
        },
    }
}

fn completed(op: &OperationRecord, kind: StepKind, broker_id: Option<i32>) -> bool {
    op.steps
        .iter()
        .any(|s| s.is(kind, broker_id) && s.status == StepStatus::Complete)
}

fn step_of(kind: StepKind, broker_id: i32) -> Step {
    match kind {
        StepKind::CheckCanStop => Step::CheckCanStop(broker_id),
        StepKind::DrainBroker => Step::DrainBroker(broker_id),
        StepKind::RestartBroker => Step::RestartBroker(broker_id),
        StepKind::WaitInSync => Step::WaitInSync(Some(broker_id)),
        StepKind::ApplySettings => Step::ApplySettings(Some(broker_id)),
        _ => Step::ElectPreferredLeaders(Some(broker_id)),
    }
}

/// The brokers this roll restarts: the reboot's broker, or every broker that does not run the
/// target yet. A version upgrade retried after a failure skips brokers already on the target
/// version (unless the configuration changes too).
fn brokers_to_roll(
    desired: &ClusterRecord,
    op: &OperationRecord,
    nodes: &[NodeRecord],
) -> Vec<i32> {
    if !op.parameters.broker_ids.is_empty() {
        return op.parameters.broker_ids.clone();
    }
    let configuration_changes =
        op.source_spec.as_ref().map(|s| &s.configuration) != Some(&desired.spec.configuration);
    nodes
        .iter()
        .filter(|node| {
            op.operation_type != OperationType::UpdateClusterKafkaVersion
                || configuration_changes
                || node.version != desired.spec.kafka_version.as_str()
                // Once this operation touched a broker, it sees the broker through.
                || op.steps.iter().any(|s| s.broker_id == Some(node.broker_id))
        })
        .map(|node| node.broker_id)
        .collect()
}

fn plan_roll(
    desired: &ClusterRecord,
    op: &OperationRecord,
    observed: &[ObservedNode],
    nodes: &[NodeRecord],
    controller: Option<i32>,
) -> Step {
    let targets = brokers_to_roll(desired, op, nodes);
    let roll = roll_steps(op);
    let rolled = |b: i32| completed(op, StepKind::ElectPreferredLeaders, Some(b));
    // The broker under way: the last one a roll step was recorded for, unless it is done.
    let current = op
        .steps
        .iter()
        .rev()
        .filter(|s| s.kind.is_some_and(|k| ROLL.contains(&k)))
        .find_map(|s| s.broker_id)
        .filter(|b| !rolled(*b));
    // A node that failed is replaced first; the broker being restarted is the roll's own
    // business (its WaitInSync has a deadline), not a failure.
    if let Some(broken) = nodes.iter().map(|n| n.broker_id).find(|id| {
        Some(*id) != current
            && match observed.iter().find(|o| o.broker_id == *id) {
                None => true,
                Some(node) => matches!(node.phase, NodePhase::Failed(_)),
            }
    }) {
        return Step::ReplaceNode(broken);
    }
    if let Some(broker) = current {
        let next = roll
            .iter()
            .find(|kind| !completed(op, **kind, Some(broker)))
            .expect("a broker that is not rolled has a step left");
        return step_of(*next, broker);
    }
    let mut pending: Vec<i32> = targets.into_iter().filter(|b| !rolled(*b)).collect();
    if pending.is_empty() {
        return Step::FinishChange;
    }
    let ready = |b: i32| {
        observed
            .iter()
            .any(|o| o.broker_id == b && o.phase == NodePhase::Running)
    };
    pending.sort_by_key(|b| (ready(*b), Some(*b) == controller, *b));
    Step::CheckCanStop(pending[0])
}

fn plan_downtime(op: &OperationRecord) -> Step {
    [
        Step::RestartAllBrokers,
        Step::WaitInSync(None),
        Step::ApplySettings(None),
        Step::ElectPreferredLeaders(None),
    ]
    .into_iter()
    .find(|step| {
        let (kind, broker) = step.kind();
        !completed(op, kind, broker)
    })
    .unwrap_or(Step::FinishChange)
}

/// Only dynamic settings change: each broker is given them in turn; no broker restarts. A
/// failed node is replaced first (its new node starts with the configuration as flags).
fn plan_dynamic(op: &OperationRecord, observed: &[ObservedNode], nodes: &[NodeRecord]) -> Step {
    if let Some(broken) = nodes.iter().map(|n| n.broker_id).find(|id| {
        match observed.iter().find(|o| o.broker_id == *id) {
            None => true,
            Some(node) => matches!(node.phase, NodePhase::Failed(_)),
        }
    }) {
        return Step::ReplaceNode(broken);
    }
    let mut ids: Vec<i32> = nodes.iter().map(|n| n.broker_id).collect();
    ids.sort_unstable();
    ids.into_iter()
        .find(|id| !completed(op, StepKind::ApplySettings, Some(*id)))
        .map_or(Step::FinishChange, |id| Step::ApplySettings(Some(id)))
}

/// Volumes grow online, one broker after another; no broker restarts.
fn plan_storage(desired: &ClusterRecord, op: &OperationRecord, nodes: &[NodeRecord]) -> Step {
    let Some(target) = volume_size(&desired.spec.broker_node_group.storage) else {
        return Step::Fail {
            reason: "the cluster uses instance storage, which has no volume to grow".into(),
        };
    };
    nodes
        .iter()
        .find(|n| {
            n.volume.size_gib.is_none_or(|size| size < target.gib())
                && !completed(op, StepKind::GrowVolume, Some(n.broker_id))
        })
        .map_or(Step::FinishChange, |n| Step::GrowVolume(n.broker_id))
}

/// More brokers: the new ones are created (as observers of the metadata quorum) and waited for,
/// then partitions move onto them and the preferred leaders are elected. Fewer: every topic must
/// fit on the brokers that remain; partitions move off the leaving brokers (the highest
/// numbered), then each leaving broker is checked, drained and removed, one at a time.
fn plan_count(
    desired: &ClusterRecord,
    op: &OperationRecord,
    observed: &[ObservedNode],
    nodes: &[NodeRecord],
) -> Step {
    let target = desired.spec.number_of_broker_nodes.get() as i32;
    let leaving: Vec<i32> = nodes
        .iter()
        .map(|n| n.broker_id)
        .filter(|id| *id > target)
        .collect();
    let shrinking = !leaving.is_empty() || completed(op, StepKind::CheckRemoval, None);
    if shrinking && !completed(op, StepKind::CheckRemoval, None) {
        return Step::CheckRemoval;
    }
    // A staying node that failed is replaced (a new one started) first; a leaving one is not:
    // its partitions are copied from the other replicas, and it is removed anyway.
    for id in super::broker_ids(desired) {
        let Some(node) = nodes.iter().find(|n| n.broker_id == id) else {
            return Step::AllocateNodes;
        };
        if node.volume.location.is_none() {
            return Step::EnsureVolume(id);
        }
        match observed
            .iter()
            .find(|o| o.broker_id == id)
            .map(|o| &o.phase)
        {
            None => return Step::CreateNode(id),
            Some(NodePhase::Failed(_)) => return Step::ReplaceNode(id),
            Some(_) => {}
        }
    }
    if !shrinking {
        // The brokers added (by this change, or by an earlier one that failed half-way) serve
        // and are registered before anything moves onto them.
        if let Some(new) = nodes
            .iter()
            .filter(|n| !n.voter && n.broker_id <= target)
            .map(|n| n.broker_id)
            .find(|id| !completed(op, StepKind::WaitInSync, Some(*id)))
        {
            return Step::WaitInSync(Some(new));
        }
    }
    if !completed(op, StepKind::MovePartitions, None) {
        return Step::MovePartitions;
    }
    if let Some(&broker) = leaving.first() {
        // A leaving broker that is not serving (failed, or gone) has nothing to drain.
        let serving = observed
            .iter()
            .any(|o| o.broker_id == broker && o.phase == NodePhase::Running);
        if !serving {
            return Step::RemoveNode(broker);
        }
        return [StepKind::CheckCanStop, StepKind::DrainBroker]
            .into_iter()
            .find(|kind| !completed(op, *kind, Some(broker)))
            .map_or(Step::RemoveNode(broker), |kind| step_of(kind, broker));
    }
    if !completed(op, StepKind::ElectPreferredLeaders, None) {
        return Step::ElectPreferredLeaders(None);
    }
    Step::FinishChange
}
