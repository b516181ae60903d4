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
                storage_class: None,
            },
            configuration: None,
            storage_auto_expansion: None,
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
        parameters: Default::default(),
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
    assert_eq!(
        plan(&desired, Some(&op), &[], &[], None),
        Step::AllocateNodes
    );
    // A partial allocation (crash in the middle) is completed, not duplicated.
    let one = vec![node(1, node_state::PROVISIONING, false)];
    assert_eq!(
        plan(&desired, Some(&op), &[], &one, None),
        Step::AllocateNodes
    );
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
        plan(&desired, Some(&op), &[], &nodes, None),
        Step::EnsureVolume(2)
    );
    nodes[1] = node(2, node_state::VOLUME_READY, true);
    nodes[2] = node(3, node_state::VOLUME_READY, true);
    assert_eq!(
        plan(&desired, Some(&op), &[], &nodes, None),
        Step::CreateNode(1)
    );
}

#[test]
fn observed_nodes_are_not_created_again() {
    // The control plane died after starting broker 1 but before recording it.
    let desired = cluster(ClusterState::Creating, 3);
    let op = operation(OperationType::Create);
    let nodes = ready_nodes(3, node_state::VOLUME_READY);
    let observed = vec![seen(1, NodePhase::Starting)];
    assert_eq!(
        plan(&desired, Some(&op), &observed, &nodes, None),
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
        plan(&desired, Some(&op), &observed, &nodes, None),
        Step::WaitForBrokers
    );
    observed[1].phase = NodePhase::Running;
    observed[2].phase = NodePhase::Running;
    assert_eq!(
        plan(&desired, Some(&op), &observed, &nodes, None),
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
        plan(&desired, Some(&op), &observed, &nodes, None),
        Step::ReplaceNode(2)
    );
}

#[test]
fn a_healthy_active_cluster_needs_nothing() {
    let desired = cluster(ClusterState::Active, 3);
    let nodes = ready_nodes(3, node_state::RUNNING);
    let observed: Vec<_> = (1..=3).map(|id| seen(id, NodePhase::Running)).collect();
    assert_eq!(plan(&desired, None, &observed, &nodes, None), Step::Nothing);
    // A broker the agent is restarting is the agent's business, not a replacement.
    let mut restarting = observed.clone();
    restarting[0].phase = NodePhase::Starting;
    assert_eq!(
        plan(&desired, None, &restarting, &nodes, None),
        Step::Nothing
    );
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
    assert_eq!(
        plan(&desired, None, &failed, &nodes, None),
        Step::ReplaceNode(3)
    );
    let vanished = vec![seen(2, NodePhase::Running), seen(3, NodePhase::Running)];
    assert_eq!(
        plan(&desired, None, &vanished, &nodes, None),
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
        plan(&desired, Some(&op), &observed, &nodes, None),
        Step::WaitForBrokers
    );
    observed[2].phase = NodePhase::Running;
    assert!(matches!(
        plan(&desired, Some(&op), &observed, &nodes, None),
        Step::MarkActive { .. }
    ));
    // Healing never allocates new brokers.
    assert!(matches!(
        plan(&desired, Some(&op), &observed, &nodes[..2], None),
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
        plan(&desired, Some(&op), &observed, &nodes, None),
        Step::DeleteNodes
    );
    let stopped = ready_nodes(3, node_state::STOPPED);
    assert_eq!(
        plan(&desired, Some(&op), &[], &stopped, None),
        Step::DeleteVolumes
    );
    let gone = ready_nodes(3, node_state::VOLUME_DELETED);
    assert_eq!(
        plan(&desired, Some(&op), &[], &gone, None),
        Step::ForgetCluster
    );
    // Nothing was ever created (a create abandoned at once).
    assert_eq!(
        plan(&desired, Some(&op), &[], &[], None),
        Step::ForgetCluster
    );
}

#[test]
fn failed_clusters_are_left_alone_until_deleted() {
    let desired = cluster(ClusterState::Failed, 3);
    assert_eq!(plan(&desired, None, &[], &[], None), Step::Nothing);
}

#[test]
fn operations_this_release_cannot_carry_out_fail_clearly() {
    let desired = cluster(ClusterState::Active, 3);
    let op = operation(OperationType::UpdateBrokerType);
    assert!(matches!(
        plan(&desired, Some(&op), &[], &[], None),
        Step::Fail { reason } if reason.contains("UPDATE_BROKER_TYPE")
    ));
}

/// An UPDATING cluster whose spec is the target of an operation of `kind` from `source`.
fn changing(kind: OperationType, source_version: &str) -> (ClusterRecord, OperationRecord) {
    let desired = cluster(ClusterState::Updating, 3);
    let mut op = operation(kind);
    let mut source = desired.spec.clone();
    source.kafka_version = serde_json::from_value(serde_json::json!(source_version)).unwrap();
    op.source_spec = Some(source);
    op.target_spec = Some(desired.spec.clone());
    (desired, op)
}

fn nodes_on(version: &str) -> Vec<NodeRecord> {
    (1..=3)
        .map(|id| {
            let mut node = node(id, node_state::RUNNING, true);
            node.version = version.into();
            node
        })
        .collect()
}

fn all_running() -> Vec<ObservedNode> {
    (1..=3).map(|id| seen(id, NodePhase::Running)).collect()
}

/// Marks `step` complete on the operation, as the executor records it.
fn done(op: &mut OperationRecord, step: Step) {
    let (kind, broker_id) = step.kind();
    let mut recorded = crate::domain::OperationStep::pending(step.name());
    recorded.kind = Some(kind);
    recorded.broker_id = broker_id;
    recorded.status = crate::domain::StepStatus::Complete;
    op.steps.push(recorded);
}

fn roll_broker(op: &mut OperationRecord, broker: i32) {
    for step in [
        Step::CheckCanStop(broker),
        Step::DrainBroker(broker),
        Step::RestartBroker(broker),
        Step::WaitInSync(Some(broker)),
        Step::ApplySettings(Some(broker)),
        Step::ElectPreferredLeaders(Some(broker)),
    ] {
        done(op, step);
    }
}

#[test]
fn an_in_place_upgrade_rolls_one_broker_at_a_time_through_every_check() {
    let (desired, mut op) = changing(OperationType::UpdateClusterKafkaVersion, "millrace-old");
    let nodes = nodes_on("millrace-old");
    let observed = all_running();
    let mut expected = Vec::new();
    // Broker 2 is the active controller: rolled last.
    for _ in 0..20 {
        let step = plan(&desired, Some(&op), &observed, &nodes, Some(2));
        if step == Step::FinishChange {
            break;
        }
        expected.push(step.clone());
        done(&mut op, step);
    }
    let order: Vec<Step> = [1, 3, 2]
        .into_iter()
        .flat_map(|b| {
            [
                Step::CheckCanStop(b),
                Step::DrainBroker(b),
                Step::RestartBroker(b),
                Step::WaitInSync(Some(b)),
                Step::ApplySettings(Some(b)),
                Step::ElectPreferredLeaders(Some(b)),
            ]
        })
        .collect();
    assert_eq!(expected, order);
    assert_eq!(
        plan(&desired, Some(&op), &observed, &nodes, Some(2)),
        Step::FinishChange
    );
}

#[test]
fn a_roll_resumes_at_the_step_it_was_at_and_never_repeats_a_finished_one() {
    let (desired, mut op) = changing(OperationType::UpdateClusterKafkaVersion, "millrace-old");
    let mut nodes = nodes_on("millrace-old");
    roll_broker(&mut op, 1);
    nodes[0].version = desired.spec.kafka_version.to_string();
    done(&mut op, Step::CheckCanStop(3));
    done(&mut op, Step::DrainBroker(3));
    done(&mut op, Step::RestartBroker(3));
    // The control plane died here; after its restart the controller moved to broker 3.
    assert_eq!(
        plan(&desired, Some(&op), &all_running(), &nodes, Some(3)),
        Step::WaitInSync(Some(3))
    );
}

#[test]
fn unready_brokers_roll_first_and_a_retry_skips_brokers_already_upgraded() {
    let (desired, op) = changing(OperationType::UpdateClusterKafkaVersion, "millrace-old");
    let mut nodes = nodes_on("millrace-old");
    let mut observed = all_running();
    observed[2].phase = NodePhase::Starting;
    assert_eq!(
        plan(&desired, Some(&op), &observed, &nodes, Some(1)),
        Step::CheckCanStop(3)
    );
    // A new operation after a failed one: brokers 1 and 2 already run the target.
    nodes[0].version = desired.spec.kafka_version.to_string();
    nodes[1].version = desired.spec.kafka_version.to_string();
    let mut op = op;
    roll_broker(&mut op, 3);
    assert_eq!(
        plan(&desired, Some(&op), &all_running(), &nodes, None),
        Step::FinishChange
    );
}

#[test]
fn a_reboot_restarts_only_its_broker_and_a_configuration_change_every_broker() {
    let mut desired = cluster(ClusterState::RebootingBroker, 3);
    let mut op = operation(OperationType::RebootNode);
    op.parameters.broker_ids = vec![2];
    let nodes = ready_nodes(3, node_state::RUNNING);
    assert_eq!(
        plan(&desired, Some(&op), &all_running(), &nodes, Some(2)),
        Step::CheckCanStop(2)
    );
    roll_broker(&mut op, 2);
    assert_eq!(
        plan(&desired, Some(&op), &all_running(), &nodes, Some(2)),
        Step::FinishChange
    );
    desired.state = ClusterState::Updating;
    let op = operation(OperationType::UpdateClusterConfiguration);
    assert_eq!(
        plan(&desired, Some(&op), &all_running(), &nodes, None),
        Step::CheckCanStop(1)
    );
}

#[test]
fn a_node_failing_during_a_roll_is_replaced_but_not_the_one_being_restarted() {
    let (desired, mut op) = changing(OperationType::UpdateClusterKafkaVersion, "millrace-old");
    let nodes = nodes_on("millrace-old");
    done(&mut op, Step::CheckCanStop(1));
    done(&mut op, Step::DrainBroker(1));
    done(&mut op, Step::RestartBroker(1));
    // Broker 1's new pod is not seen yet: the roll waits for it.
    let observed = vec![seen(2, NodePhase::Running), seen(3, NodePhase::Running)];
    assert_eq!(
        plan(&desired, Some(&op), &observed, &nodes, None),
        Step::WaitInSync(Some(1))
    );
    let observed = vec![
        seen(1, NodePhase::Starting),
        seen(2, NodePhase::Failed("gone".into())),
        seen(3, NodePhase::Running),
    ];
    assert_eq!(
        plan(&desired, Some(&op), &observed, &nodes, None),
        Step::ReplaceNode(2)
    );
}

#[test]
fn a_downtime_upgrade_restarts_everything_at_once() {
    let (desired, mut op) = changing(OperationType::UpdateClusterKafkaVersion, "millrace-old");
    op.parameters.upgrade_strategy = crate::domain::UpgradeStrategy::Downtime;
    let nodes = nodes_on("millrace-old");
    let mut steps = Vec::new();
    loop {
        let step = plan(&desired, Some(&op), &all_running(), &nodes, None);
        if step == Step::FinishChange {
            break;
        }
        steps.push(step.clone());
        done(&mut op, step);
    }
    assert_eq!(
        steps,
        vec![
            Step::RestartAllBrokers,
            Step::WaitInSync(None),
            Step::ApplySettings(None),
            Step::ElectPreferredLeaders(None)
        ]
    );
}

#[test]
fn storage_grows_broker_by_broker_without_restarts() {
    let mut desired = cluster(ClusterState::Updating, 3);
    desired.spec.broker_node_group.storage = StorageInfo::Ebs {
        volume_size: VolumeSize::parse(20).unwrap(),
        provisioned_throughput: None,
    };
    let mut op = operation(OperationType::UpdateBrokerStorage);
    let mut nodes = ready_nodes(3, node_state::RUNNING);
    assert_eq!(
        plan(&desired, Some(&op), &all_running(), &nodes, None),
        Step::GrowVolume(1)
    );
    nodes[0].volume.size_gib = Some(20);
    done(&mut op, Step::GrowVolume(1));
    assert_eq!(
        plan(&desired, Some(&op), &all_running(), &nodes, None),
        Step::GrowVolume(2)
    );
    for node in &mut nodes {
        node.volume.size_gib = Some(20);
    }
    assert_eq!(
        plan(&desired, Some(&op), &all_running(), &nodes, None),
        Step::FinishChange
    );
}

#[test]
fn a_change_whose_operation_finished_before_a_crash_only_returns_to_active() {
    let desired = cluster(ClusterState::Updating, 3);
    let nodes = ready_nodes(3, node_state::RUNNING);
    assert_eq!(
        plan(&desired, None, &all_running(), &nodes, None),
        Step::FinishChange
    );
}

fn settings(needs_restart: &[&str], dynamic_changed: bool) -> crate::domain::SettingsChange {
    crate::domain::SettingsChange {
        changed: vec!["log.retention.ms".into()],
        needs_restart: needs_restart.iter().map(|s| s.to_string()).collect(),
        dynamic: BTreeMap::from([("log.retention.ms".to_string(), "1000".to_string())]),
        dynamic_changed,
    }
}

#[test]
fn dynamic_settings_reach_each_broker_without_a_restart() {
    let (desired, mut op) = changing(OperationType::UpdateClusterConfiguration, "millrace-old");
    op.parameters.settings = Some(settings(&[], true));
    let nodes = nodes_on(desired.spec.kafka_version.as_str());
    // A failed node is replaced first: its new node starts with the settings as flags.
    let with_a_failure = vec![
        seen(1, NodePhase::Running),
        seen(2, NodePhase::Failed("gone".into())),
        seen(3, NodePhase::Running),
    ];
    assert_eq!(
        plan(&desired, Some(&op), &with_a_failure, &nodes, Some(1)),
        Step::ReplaceNode(2)
    );
    for broker in 1..=3 {
        let step = plan(&desired, Some(&op), &all_running(), &nodes, Some(1));
        assert_eq!(step, Step::ApplySettings(Some(broker)));
        done(&mut op, step);
    }
    assert_eq!(
        plan(&desired, Some(&op), &all_running(), &nodes, Some(1)),
        Step::FinishChange
    );
    assert!(
        !op.steps
            .iter()
            .any(|s| s.kind == Some(StepKind::RestartBroker)),
        "nothing restarts"
    );
}

#[test]
fn a_static_roll_gives_each_restarted_broker_its_dynamic_settings_once_in_sync() {
    let (desired, mut op) = changing(OperationType::UpdateClusterConfiguration, "millrace-old");
    op.parameters.settings = Some(settings(&["auto.create.topics.enable"], true));
    let nodes = nodes_on(desired.spec.kafka_version.as_str());
    for step in [
        Step::CheckCanStop(1),
        Step::DrainBroker(1),
        Step::RestartBroker(1),
        Step::WaitInSync(Some(1)),
        Step::ApplySettings(Some(1)),
        Step::ElectPreferredLeaders(Some(1)),
        Step::CheckCanStop(2),
    ] {
        assert_eq!(
            plan(&desired, Some(&op), &all_running(), &nodes, None),
            step
        );
        done(&mut op, step);
    }
    // Every roll gives a restarted broker the configuration's dynamic settings, even one that
    // changes none (a stale one may be left from before); downtime once, for every broker.
    let (_, mut op) = changing(OperationType::RebootNode, "millrace-old");
    op.parameters.broker_ids = vec![3];
    for step in [
        Step::CheckCanStop(3),
        Step::DrainBroker(3),
        Step::RestartBroker(3),
        Step::WaitInSync(Some(3)),
    ] {
        done(&mut op, step);
    }
    assert_eq!(
        plan(&desired, Some(&op), &all_running(), &nodes, None),
        Step::ApplySettings(Some(3))
    );
    let (_, mut op) = changing(OperationType::UpdateClusterConfiguration, "millrace-old");
    op.parameters.upgrade_strategy = crate::domain::UpgradeStrategy::Downtime;
    op.parameters.settings = Some(settings(&["num.partitions"], true));
    done(&mut op, Step::RestartAllBrokers);
    done(&mut op, Step::WaitInSync(None));
    assert_eq!(
        plan(&desired, Some(&op), &all_running(), &nodes, None),
        Step::ApplySettings(None)
    );
}

/// Brokers 1 to `count`, running, the first three voters of the quorum.
fn scaled_nodes(count: i32) -> (Vec<NodeRecord>, Vec<ObservedNode>) {
    let nodes = (1..=count)
        .map(|id| {
            let mut node = node(id, node_state::RUNNING, true);
            node.voter = id <= 3;
            node
        })
        .collect();
    let observed = (1..=count).map(|id| seen(id, NodePhase::Running)).collect();
    (nodes, observed)
}

#[test]
fn a_scale_out_starts_the_new_brokers_then_moves_partitions_onto_them() {
    let desired = cluster(ClusterState::Updating, 6);
    let mut op = operation(OperationType::UpdateBrokerCount);
    let (nodes, observed) = scaled_nodes(3);
    assert_eq!(
        plan(&desired, Some(&op), &observed, &nodes, None),
        Step::AllocateNodes
    );
    let (mut nodes, mut observed) = scaled_nodes(6);
    for node in nodes.iter_mut().skip(3) {
        node.volume.location = None;
    }
    observed.truncate(3);
    assert_eq!(
        plan(&desired, Some(&op), &observed, &nodes, None),
        Step::EnsureVolume(4)
    );
    for node in nodes.iter_mut() {
        node.volume.location = Some("vol".into());
    }
    assert_eq!(
        plan(&desired, Some(&op), &observed, &nodes, None),
        Step::CreateNode(4)
    );
    let (_, observed) = scaled_nodes(6);
    // The new brokers (observers) serve and catch up before anything moves.
    for id in 4..=6 {
        assert_eq!(
            plan(&desired, Some(&op), &observed, &nodes, None),
            Step::WaitInSync(Some(id))
        );
        done(&mut op, Step::WaitInSync(Some(id)));
    }
    for step in [
        Step::MovePartitions,
        Step::ElectPreferredLeaders(None),
        Step::FinishChange,
    ] {
        assert_eq!(plan(&desired, Some(&op), &observed, &nodes, None), step);
        done(&mut op, step);
    }
}

#[test]
fn a_scale_in_checks_then_empties_each_leaving_broker_before_removing_it() {
    let desired = cluster(ClusterState::Updating, 3);
    let mut op = operation(OperationType::UpdateBrokerCount);
    let (mut nodes, mut observed) = scaled_nodes(6);
    for step in [Step::CheckRemoval, Step::MovePartitions] {
        assert_eq!(plan(&desired, Some(&op), &observed, &nodes, None), step);
        done(&mut op, step);
    }
    for leaving in 4..=6 {
        for step in [Step::CheckCanStop(leaving), Step::DrainBroker(leaving)] {
            assert_eq!(plan(&desired, Some(&op), &observed, &nodes, None), step);
            done(&mut op, step);
        }
        assert_eq!(
            plan(&desired, Some(&op), &observed, &nodes, None),
            Step::RemoveNode(leaving)
        );
        done(&mut op, Step::RemoveNode(leaving));
        nodes.retain(|n| n.broker_id != leaving);
        observed.retain(|o| o.broker_id != leaving);
    }
    for step in [Step::ElectPreferredLeaders(None), Step::FinishChange] {
        assert_eq!(plan(&desired, Some(&op), &observed, &nodes, None), step);
        done(&mut op, step);
    }
}

#[test]
fn a_staying_broker_that_failed_during_a_scale_in_is_replaced_first() {
    let desired = cluster(ClusterState::Updating, 3);
    let mut op = operation(OperationType::UpdateBrokerCount);
    done(&mut op, Step::CheckRemoval);
    let (nodes, mut observed) = scaled_nodes(6);
    observed[1] = seen(2, NodePhase::Failed("exited".into()));
    assert_eq!(
        plan(&desired, Some(&op), &observed, &nodes, None),
        Step::ReplaceNode(2)
    );
    // A leaving one is not: it is removed anyway.
    let (nodes, mut observed) = scaled_nodes(6);
    observed[4] = seen(5, NodePhase::Failed("exited".into()));
    assert_eq!(
        plan(&desired, Some(&op), &observed, &nodes, None),
        Step::MovePartitions
    );
    done(&mut op, Step::MovePartitions);
    for step in [
        Step::CheckCanStop(4),
        Step::DrainBroker(4),
        Step::RemoveNode(4),
    ] {
        done(&mut op, step);
    }
    let nodes: Vec<NodeRecord> = nodes.into_iter().filter(|n| n.broker_id != 4).collect();
    observed.retain(|o| o.broker_id != 4);
    assert_eq!(
        plan(&desired, Some(&op), &observed, &nodes, None),
        Step::RemoveNode(5),
        "nothing to drain"
    );
}
