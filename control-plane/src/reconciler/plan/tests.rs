//! The planner without I/O: each test is a situation and the step it must lead to.

use chrono::Utc;
use uuid::Uuid;

use super::*;
use crate::domain::{
    BrokerCount, BrokerNodeGroup, ClusterName, ClusterSpec, InstanceType, NodeVolume,
    OperationState, StorageInfo, VersionCatalog, VolumeSize, Zones,
};
use crate::platform::NodeEndpoints;

fn cluster(state: ClusterState, brokers: i64) -> ClusterRecord {
    let zones = Zones::default_zones();
    ClusterRecord {
        id: Uuid::nil(),
        name: ClusterName::parse("orders").unwrap(),
        arn: "arn".into(),
        spec: ClusterSpec {
            kafka_version: VersionCatalog::builtin().latest().unwrap(),
            number_of_broker_nodes: BrokerCount::parse(brokers, &zones).unwrap(),
            broker_node_group: BrokerNodeGroup {
                instance_type: InstanceType::parse("kafka.m5.large").unwrap(),
                zones,
                storage: StorageInfo::Ebs {
                    volume_size: VolumeSize::parse(10).unwrap(),
                    provisioned_throughput: None,
                },
            },
            configuration: None,
        },
        state,
        current_version: 1,
        bootstrap_brokers: None,
        tags: Default::default(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
        kubernetes_uid: None,
    }
}

fn operation(kind: OperationType) -> OperationRecord {
    OperationRecord {
        id: Uuid::nil(),
        cluster_id: Uuid::nil(),
        operation_type: kind,
        state: OperationState::Pending,
        steps: Vec::new(),
        source_spec: None,
        target_spec: None,
        error: None,
        created_at: Utc::now(),
        started_at: None,
        ended_at: None,
    }
}

fn node(broker_id: i32, state: &str, volume_ready: bool) -> NodeRecord {
    let mut node = NodeRecord::new(
        Uuid::nil(),
        broker_id,
        "zone-a",
        "millrace-0.1.0",
        NodeVolume {
            persistent: true,
            size_gib: Some(10),
            location: volume_ready.then(|| format!("vol-{broker_id}")),
        },
        state,
    );
    node.endpoint = Some(format!("127.0.0.1:{}", 9000 + broker_id));
    node
}

fn seen(broker_id: i32, phase: NodePhase) -> ObservedNode {
    ObservedNode {
        broker_id,
        phase,
        endpoints: NodeEndpoints {
            kafka: format!("127.0.0.1:{}", 9000 + broker_id),
            broker_admin: String::new(),
            agent: String::new(),
            controller: String::new(),
        },
        volume_id: None,
        zone: "zone-a".into(),
        broker_version: "millrace-0.1.0".into(),
        restarts: 0,
        disk_used_bytes: None,
        under_replicated_partitions: None,
        message: String::new(),
    }
}

fn ready_nodes(n: i32, state: &str) -> Vec<NodeRecord> {
    (1..=n).map(|id| node(id, state, true)).collect()
}

#[test]
fn a_new_cluster_allocates_its_nodes_first() {
    let desired = cluster(ClusterState::Creating, 3);
    let op = operation(OperationType::Create);
    assert_eq!(plan(&desired, Some(&op), &[], &[]), Step::AllocateNodes);
    // A partial allocation (crash in the middle) is completed, not duplicated.
    let one = vec![node(1, node_state::PROVISIONING, false)];
    assert_eq!(plan(&desired, Some(&op), &[], &one), Step::AllocateNodes);
}

#[test]
fn volumes_come_before_nodes_in_broker_order() {
    let desired = cluster(ClusterState::Creating, 3);
    let op = operation(OperationType::Create);
    let mut nodes = vec![
        node(1, node_state::VOLUME_READY, true),
        node(2, node_state::PROVISIONING, false),
        node(3, node_state::PROVISIONING, false),
    ];
    assert_eq!(
        plan(&desired, Some(&op), &[], &nodes),
        Step::EnsureVolume(2)
    );
    nodes[1] = node(2, node_state::VOLUME_READY, true);
    nodes[2] = node(3, node_state::VOLUME_READY, true);
    assert_eq!(plan(&desired, Some(&op), &[], &nodes), Step::CreateNode(1));
}

#[test]
fn observed_nodes_are_not_created_again() {
    // The control plane died after starting broker 1 but before recording it.
    let desired = cluster(ClusterState::Creating, 3);
    let op = operation(OperationType::Create);
    let nodes = ready_nodes(3, node_state::VOLUME_READY);
    let observed = vec![seen(1, NodePhase::Starting)];
    assert_eq!(
        plan(&desired, Some(&op), &observed, &nodes),
        Step::CreateNode(2)
    );
}

#[test]
fn the_cluster_waits_until_every_broker_is_ready() {
    let desired = cluster(ClusterState::Creating, 3);
    let op = operation(OperationType::Create);
    let nodes = ready_nodes(3, node_state::STARTING);
    let mut observed = vec![
        seen(1, NodePhase::Running),
        seen(2, NodePhase::Pending),
        seen(3, NodePhase::Starting),
    ];
    assert_eq!(
        plan(&desired, Some(&op), &observed, &nodes),
        Step::WaitForBrokers
    );
    observed[1].phase = NodePhase::Running;
    observed[2].phase = NodePhase::Running;
    assert_eq!(
        plan(&desired, Some(&op), &observed, &nodes),
        Step::MarkActive {
            bootstrap: "127.0.0.1:9001,127.0.0.1:9002,127.0.0.1:9003".into()
        }
    );
}

#[test]
fn a_node_failing_during_create_is_replaced() {
    let desired = cluster(ClusterState::Creating, 3);
    let op = operation(OperationType::Create);
    let nodes = ready_nodes(3, node_state::STARTING);
    let observed = vec![
        seen(1, NodePhase::Running),
        seen(2, NodePhase::Failed("gone".into())),
        seen(3, NodePhase::Running),
    ];
    assert_eq!(
        plan(&desired, Some(&op), &observed, &nodes),
        Step::ReplaceNode(2)
    );
}

#[test]
fn a_healthy_active_cluster_needs_nothing() {
    let desired = cluster(ClusterState::Active, 3);
    let nodes = ready_nodes(3, node_state::RUNNING);
    let observed: Vec<_> = (1..=3).map(|id| seen(id, NodePhase::Running)).collect();
    assert_eq!(plan(&desired, None, &observed, &nodes), Step::Nothing);
    // A broker the agent is restarting is the agent's business, not a replacement.
    let mut restarting = observed.clone();
    restarting[0].phase = NodePhase::Starting;
    assert_eq!(plan(&desired, None, &restarting, &nodes), Step::Nothing);
}

#[test]
fn a_dead_or_vanished_node_of_an_active_cluster_is_healed() {
    let desired = cluster(ClusterState::Active, 3);
    let nodes = ready_nodes(3, node_state::RUNNING);
    let failed = vec![
        seen(1, NodePhase::Running),
        seen(2, NodePhase::Running),
        seen(3, NodePhase::Failed("the node's agent is gone".into())),
    ];
    assert_eq!(plan(&desired, None, &failed, &nodes), Step::ReplaceNode(3));
    let vanished = vec![seen(2, NodePhase::Running), seen(3, NodePhase::Running)];
    assert_eq!(
        plan(&desired, None, &vanished, &nodes),
        Step::ReplaceNode(1)
    );
}

#[test]
fn healing_ends_when_the_replacement_is_ready() {
    let desired = cluster(ClusterState::Healing, 3);
    let op = operation(OperationType::Heal);
    let nodes = ready_nodes(3, node_state::RUNNING);
    let mut observed: Vec<_> = (1..=3).map(|id| seen(id, NodePhase::Running)).collect();
    observed[2].phase = NodePhase::Pending;
    assert_eq!(
        plan(&desired, Some(&op), &observed, &nodes),
        Step::WaitForBrokers
    );
    observed[2].phase = NodePhase::Running;
    assert!(matches!(
        plan(&desired, Some(&op), &observed, &nodes),
        Step::MarkActive { .. }
    ));
    // Healing never allocates new brokers.
    assert!(matches!(
        plan(&desired, Some(&op), &observed, &nodes[..2]),
        Step::Fail { .. }
    ));
}

#[test]
fn delete_stops_nodes_then_volumes_then_forgets() {
    let desired = cluster(ClusterState::Deleting, 3);
    let op = operation(OperationType::Delete);
    let nodes = ready_nodes(3, node_state::RUNNING);
    let observed = vec![seen(1, NodePhase::Running)];
    assert_eq!(
        plan(&desired, Some(&op), &observed, &nodes),
        Step::DeleteNodes
    );
    let stopped = ready_nodes(3, node_state::STOPPED);
    assert_eq!(
        plan(&desired, Some(&op), &[], &stopped),
        Step::DeleteVolumes
    );
    let gone = ready_nodes(3, node_state::VOLUME_DELETED);
    assert_eq!(plan(&desired, Some(&op), &[], &gone), Step::ForgetCluster);
    // Nothing was ever created (a create abandoned at once).
    assert_eq!(plan(&desired, Some(&op), &[], &[]), Step::ForgetCluster);
}

#[test]
fn failed_clusters_are_left_alone_until_deleted() {
    let desired = cluster(ClusterState::Failed, 3);
    assert_eq!(plan(&desired, None, &[], &[]), Step::Nothing);
}

#[test]
fn operations_this_release_cannot_carry_out_fail_clearly() {
    let desired = cluster(ClusterState::Active, 3);
    let op = operation(OperationType::UpdateBrokerCount);
    assert!(matches!(
        plan(&desired, Some(&op), &[], &[]),
        Step::Fail { reason } if reason.contains("UPDATE_BROKER_COUNT")
    ));
}
