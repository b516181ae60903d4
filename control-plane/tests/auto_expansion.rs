//! Storage auto-expansion as the clusters service runs it, over a real store (SQLite and
//! PostgreSQL): nothing under the target, a growth past it (one operation, with its reason),
//! none while it runs or within the cool-down, and never past the maximum.

mod common;

use std::sync::Arc;

use common::{Backend, TestDb};
use millrace_control_plane::domain::{
    AgentState, BrokerCount, BrokerNodeGroup, ClusterName, ClusterSpec, ClusterState, Heartbeat,
    InstanceType, NodeVolume, OperationState, OperationType, StorageAutoExpansion, StorageInfo,
    Tags, VersionCatalog, VolumeSize, Zones,
};
use millrace_control_plane::service::ClustersService;
use millrace_control_plane::store::{CreateOutcome, NewCluster, NodeRecord, Store};
use tokio::sync::Notify;
use uuid::Uuid;

on_both_databases!(volumes_grow_past_the_target_once_per_cool_down_up_to_the_maximum);

const GIB: u64 = 1 << 30;

fn spec(gib: i64, cooldown_seconds: i64) -> ClusterSpec {
    let zones = Zones::default_zones();
    ClusterSpec {
        kafka_version: VersionCatalog::builtin().latest().unwrap(),
        number_of_broker_nodes: BrokerCount::parse(3, &zones).unwrap(),
        broker_node_group: BrokerNodeGroup {
            instance_type: InstanceType::parse("kafka.m5.large").unwrap(),
            zones,
            storage: StorageInfo::Ebs {
                volume_size: VolumeSize::parse(gib).unwrap(),
                provisioned_throughput: None,
            },
            storage_class: None,
        },
        configuration: None,
        storage_auto_expansion: Some(
            StorageAutoExpansion::parse(50, 8, Some(cooldown_seconds), "p").unwrap(),
        ),
    }
}

/// An ACTIVE cluster of 3 brokers on 2 GiB volumes, auto-expansion to 50% up to 8 GiB.
async fn active_cluster(store: &Store, name: &str, cooldown_seconds: i64) -> Uuid {
    let CreateOutcome::Created { cluster, operation } = store
        .create_cluster(NewCluster {
            name: ClusterName::parse(name).unwrap(),
            spec: spec(2, cooldown_seconds),
            tags: Tags::default(),
            idempotency: None,
            kubernetes_uid: None,
        })
        .await
        .unwrap()
    else {
        panic!("not created")
    };
    for broker in 1..=3 {
        store
            .upsert_node(&NodeRecord::new(
                cluster.id,
                broker,
                "zone-a",
                "millrace-0.1.0",
                NodeVolume {
                    persistent: true,
                    size_gib: Some(2),
                    location: Some(format!("volume-{broker}")),
                },
                "RUNNING",
            ))
            .await
            .unwrap();
    }
    store
        .set_operation_state(operation.id, OperationState::UpdateComplete, None)
        .await
        .unwrap();
    store
        .set_cluster_state(cluster.id, ClusterState::Active, None)
        .await
        .unwrap();
    cluster.id
}

async fn report_disk_use(store: &Store, cluster: Uuid, broker: i32, bytes: u64) {
    let heartbeat = Heartbeat {
        version: "millrace-0.1.0".into(),
        state: AgentState::Running,
        disk_used_bytes: bytes,
        under_replicated_partitions: 0,
        broker_pid: Some(1),
        message: None,
    };
    store
        .record_heartbeat(cluster, broker, &heartbeat)
        .await
        .unwrap();
}

/// The reconciler's part, done by hand: the growth happened, the cluster is ACTIVE again.
async fn finish_growth(store: &Store, cluster: Uuid, operation: Uuid, gib: u32) {
    for mut node in store.list_nodes(cluster).await.unwrap() {
        node.volume.size_gib = Some(gib);
        store.upsert_node(&node).await.unwrap();
    }
    store
        .set_operation_state(operation, OperationState::UpdateComplete, None)
        .await
        .unwrap();
    store
        .set_cluster_state(cluster, ClusterState::Active, None)
        .await
        .unwrap();
}

async fn volumes_grow_past_the_target_once_per_cool_down_up_to_the_maximum(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let service = ClustersService::new(
        store.clone(),
        Arc::new(VersionCatalog::builtin()),
        Arc::new(Notify::new()),
    );
    let cluster = active_cluster(&store, "filling", 60).await;

    // 40% of 2 GiB: under the 50% target.
    for broker in 1..=3 {
        report_disk_use(&store, cluster, broker, 8 * GIB / 10).await;
    }
    assert!(service
        .expand_storage_where_needed(GIB)
        .await
        .unwrap()
        .is_empty());

    // Broker 2 at 75%: every volume grows to the smallest size back under 50% (4 GiB).
    report_disk_use(&store, cluster, 2, 3 * GIB / 2).await;
    let started = service.expand_storage_where_needed(GIB).await.unwrap();
    assert_eq!(started.len(), 1, "{started:?}");
    let growth = &started[0];
    assert_eq!(growth.operation_type, OperationType::UpdateBrokerStorage);
    let trigger = growth.parameters.trigger.clone().unwrap();
    assert!(
        trigger.contains("broker 2") && trigger.contains("4 GiB"),
        "{trigger}"
    );
    let target = growth.target_spec.as_ref().unwrap();
    assert_eq!(
        target.broker_node_group.storage,
        spec(4, 60).broker_node_group.storage
    );
    // The operation is still running: no second one.
    assert!(service
        .expand_storage_where_needed(GIB)
        .await
        .unwrap()
        .is_empty());
    finish_growth(&store, cluster, growth.id, 4).await;

    // 90% of 4 GiB, but within the 60 s cool-down: nothing.
    report_disk_use(&store, cluster, 1, 36 * GIB / 10).await;
    assert!(service
        .expand_storage_where_needed(GIB)
        .await
        .unwrap()
        .is_empty());

    // Far past the target: the maximum (8 GiB) is the most a volume gets.
    let other = active_cluster(&store, "at-the-maximum", 60).await;
    for broker in 1..=3 {
        report_disk_use(&store, other, broker, 20 * GIB).await;
    }
    let started = service.expand_storage_where_needed(GIB).await.unwrap();
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(
        started[0]
            .target_spec
            .as_ref()
            .unwrap()
            .broker_node_group
            .storage,
        spec(8, 60).broker_node_group.storage
    );
    finish_growth(&store, other, started[0].id, 8).await;
    // At the maximum nothing more happens, cool-down or not.
    assert!(service
        .expand_storage_where_needed(GIB)
        .await
        .unwrap()
        .iter()
        .all(|op| op.cluster_id != other));
}
