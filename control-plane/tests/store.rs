//! The store's test suite, run against SQLite and PostgreSQL alike.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Backend, TestDb};
use millrace_control_plane::domain::{
    AgentState, BrokerCount, BrokerNodeGroup, ClusterName, ClusterSpec, ClusterState,
    ConfigurationName, Heartbeat, InstanceType, NodeVolume, OperationState, OperationStep,
    OperationType, ServerProperties, StepStatus, StorageInfo, Tags, VersionCatalog, VolumeSize,
    Zones,
};
use millrace_control_plane::store::{
    ClusterFilter, Conflict, CreateOutcome, Idempotency, NewCluster, NewConfiguration, NodeRecord,
    Store, StoreError, TokenIdentity,
};
use uuid::Uuid;

on_both_databases!(
    create_and_read_back,
    names_are_unique,
    idempotent_create_replays,
    list_paginates_and_filters,
    delete_checks_version_and_state,
    operation_steps_and_states,
    nodes_and_heartbeats,
    configurations_and_revisions,
    tokens,
    leases,
    concurrent_lease_has_one_winner,
    forgetting_a_cluster_keeps_its_history,
    one_cluster_per_kubernetes_uid,
);

fn spec(brokers: i64) -> ClusterSpec {
    let zones = Zones::default_zones();
    ClusterSpec {
        kafka_version: VersionCatalog::builtin().latest().unwrap(),
        number_of_broker_nodes: BrokerCount::parse(brokers, &zones).unwrap(),
        broker_node_group: BrokerNodeGroup {
            instance_type: InstanceType::parse("kafka.m5.large").unwrap(),
            zones,
            storage: StorageInfo::Ebs {
                volume_size: VolumeSize::parse(100).unwrap(),
                provisioned_throughput: None,
            },
            storage_class: None,
        },
        configuration: None,
        storage_auto_expansion: None,
    }
}

fn new_cluster(name: &str) -> NewCluster {
    NewCluster {
        name: ClusterName::parse(name).unwrap(),
        spec: spec(3),
        tags: Tags::parse([("team".to_owned(), "data".to_owned())].into()).unwrap(),
        idempotency: None,
        kubernetes_uid: None,
    }
}

async fn create(store: &Store, name: &str) -> Uuid {
    match store.create_cluster(new_cluster(name)).await.unwrap() {
        CreateOutcome::Created { cluster, .. } => cluster.id,
        other => panic!("expected a new cluster, got {other:?}"),
    }
}

async fn create_and_read_back(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let CreateOutcome::Created { cluster, operation } =
        store.create_cluster(new_cluster("orders")).await.unwrap()
    else {
        panic!("not created")
    };
    assert_eq!(cluster.state, ClusterState::Creating);
    assert_eq!(cluster.current_version, 1);
    assert_eq!(
        cluster.arn,
        format!("arn:millrace:kafka:local:cluster/orders/{}", cluster.id)
    );
    assert_eq!(operation.operation_type, OperationType::Create);
    assert_eq!(operation.state, OperationState::Pending);
    assert_eq!(operation.target_spec.as_ref(), Some(&spec(3)));
    let read = store.get_cluster(cluster.id).await.unwrap();
    assert_eq!(read, cluster);
    assert_eq!(
        store.get_cluster_by_arn(&cluster.arn).await.unwrap(),
        cluster
    );
    assert_eq!(store.get_operation(operation.id).await.unwrap(), operation);
    assert!(matches!(
        store.get_cluster(Uuid::new_v4()).await,
        Err(StoreError::NotFound)
    ));
    let needing_work = store.clusters_needing_work().await.unwrap();
    assert_eq!(needing_work.len(), 1);
    db.store().await.close().await;
    store.close().await;
}

async fn names_are_unique(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    create(&store, "orders").await;
    let again = store.create_cluster(new_cluster("orders")).await;
    assert!(
        matches!(again, Err(StoreError::Conflict(Conflict::NameTaken(ref n))) if n == "orders"),
        "{again:?}"
    );
    store.close().await;
}

async fn idempotent_create_replays(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let keyed = |fingerprint: &str| NewCluster {
        idempotency: Some(Idempotency {
            key: "key-1".into(),
            fingerprint: fingerprint.into(),
        }),
        ..new_cluster("orders")
    };
    let CreateOutcome::Created { cluster, operation } =
        store.create_cluster(keyed("f1")).await.unwrap()
    else {
        panic!("not created")
    };
    let CreateOutcome::Replayed {
        cluster: again,
        operation: again_op,
    } = store.create_cluster(keyed("f1")).await.unwrap()
    else {
        panic!("not replayed")
    };
    assert_eq!(again.id, cluster.id);
    assert_eq!(again_op.map(|o| o.id), Some(operation.id));
    assert!(matches!(
        store.create_cluster(keyed("f2")).await,
        Err(StoreError::Conflict(Conflict::IdempotencyKeyReused))
    ));
    store.close().await;
}

async fn list_paginates_and_filters(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let mut ids = Vec::new();
    for name in ["alpha-1", "alpha-2", "beta-1", "alpha-3", "gamma-1"] {
        ids.push(create(&store, name).await);
    }
    store
        .set_cluster_state(ids[1], ClusterState::Active, Some(Some("h:1")))
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_clusters(&ClusterFilter::default(), 2, after.as_ref())
            .await
            .unwrap();
        pages += 1;
        assert!(page.clusters.len() <= 2);
        seen.extend(page.clusters.iter().map(|c| c.id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "every cluster once, in creation order");

    let alpha = ClusterFilter {
        name_prefix: Some("alpha".into()),
        state: None,
    };
    let page = store.list_clusters(&alpha, 10, None).await.unwrap();
    let names: Vec<_> = page.clusters.iter().map(|c| c.name.to_string()).collect();
    assert_eq!(names, ["alpha-1", "alpha-2", "alpha-3"]);
    assert!(page.next.is_none());

    let active = ClusterFilter {
        name_prefix: None,
        state: Some(ClusterState::Active),
    };
    let page = store.list_clusters(&active, 10, None).await.unwrap();
    assert_eq!(page.clusters.len(), 1);
    assert_eq!(page.clusters[0].bootstrap_brokers.as_deref(), Some("h:1"));
    // A wildcard in the prefix is taken literally.
    let literal = ClusterFilter {
        name_prefix: Some("%".into()),
        state: None,
    };
    assert!(store
        .list_clusters(&literal, 10, None)
        .await
        .unwrap()
        .clusters
        .is_empty());
    store.close().await;
}

async fn delete_checks_version_and_state(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let creating = create(&store, "abandoned").await;
    // From CREATING: the create operation is superseded.
    let (cluster, delete) = store.begin_delete(creating, Some("1")).await.unwrap();
    assert_eq!(cluster.state, ClusterState::Deleting);
    assert_eq!(cluster.current_version, 2);
    assert_eq!(delete.operation_type, OperationType::Delete);
    let operations = store.list_operations(creating).await.unwrap();
    let create_op = operations
        .iter()
        .find(|o| o.operation_type == OperationType::Create)
        .unwrap();
    assert_eq!(create_op.state, OperationState::UpdateFailed);
    assert_eq!(create_op.error.as_deref(), Some("superseded by DELETE"));
    // Not twice.
    assert!(matches!(
        store.begin_delete(creating, None).await,
        Err(StoreError::Conflict(Conflict::WrongState { .. }))
    ));

    let updating = create(&store, "busy").await;
    store
        .set_cluster_state(updating, ClusterState::Updating, None)
        .await
        .unwrap();
    assert!(matches!(
        store.begin_delete(updating, None).await,
        Err(StoreError::Conflict(Conflict::WrongState { .. }))
    ));
    let failed = create(&store, "broken").await;
    let record = store
        .set_cluster_state(failed, ClusterState::Failed, None)
        .await
        .unwrap();
    assert!(matches!(
        store.begin_delete(failed, Some("1")).await,
        Err(StoreError::Conflict(Conflict::VersionMismatch { .. }))
    ));
    store
        .begin_delete(failed, Some(&record.version_text()))
        .await
        .unwrap();
    assert!(matches!(
        store.begin_delete(Uuid::new_v4(), None).await,
        Err(StoreError::NotFound)
    ));
    store.close().await;
}

async fn operation_steps_and_states(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let id = create(&store, "orders").await;
    let operation = store.unfinished_operations(id).await.unwrap().remove(0);
    let mut steps = vec![
        OperationStep::pending("create volumes"),
        OperationStep::pending("start brokers"),
    ];
    steps[0].status = StepStatus::Complete;
    steps[0].message = Some("3 volumes".into());
    store
        .set_operation_steps(operation.id, &steps)
        .await
        .unwrap();
    let running = store
        .set_operation_state(operation.id, OperationState::UpdateInProgress, None)
        .await
        .unwrap();
    assert_eq!(running.steps, steps);
    assert!(running.started_at.is_some() && running.ended_at.is_none());
    let done = store
        .set_operation_state(operation.id, OperationState::UpdateComplete, None)
        .await
        .unwrap();
    assert_eq!(done.started_at, running.started_at, "start time is kept");
    assert!(done.ended_at.is_some());
    store
        .set_cluster_state(id, ClusterState::Active, Some(Some("127.0.0.1:9092")))
        .await
        .unwrap();
    assert!(store.clusters_needing_work().await.unwrap().is_empty());
    let heal = store
        .insert_operation(id, OperationType::Heal, None, None)
        .await
        .unwrap();
    let work = store.clusters_needing_work().await.unwrap();
    assert_eq!(
        work.len(),
        1,
        "an ACTIVE cluster with a pending operation needs work"
    );
    assert_eq!(
        store.unfinished_operations(id).await.unwrap()[0].id,
        heal.id
    );
    assert_eq!(store.list_cluster_ids().await.unwrap(), vec![id]);
    store.close().await;
}

async fn nodes_and_heartbeats(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let id = create(&store, "orders").await;
    let volume = NodeVolume {
        persistent: true,
        size_gib: Some(100),
        location: Some("/data/1".into()),
    };
    let mut node = NodeRecord::new(id, 1, "zone-a", "millrace-0.1.0", volume, "PROVISIONING");
    store.upsert_node(&node).await.unwrap();
    node.endpoint = Some("127.0.0.1:19092".into());
    node.state = "RUNNING".into();
    let stored = store.upsert_node(&node).await.unwrap();
    assert_eq!(stored.endpoint.as_deref(), Some("127.0.0.1:19092"));
    assert_eq!(stored.state, "RUNNING");
    store
        .upsert_node(&NodeRecord::new(
            id,
            2,
            "zone-b",
            "millrace-0.1.0",
            node.volume.clone(),
            "PROVISIONING",
        ))
        .await
        .unwrap();
    let heartbeat = Heartbeat {
        version: "millrace-0.1.0".into(),
        state: AgentState::Running,
        disk_used_bytes: 1 << 40,
        under_replicated_partitions: 2,
        broker_pid: Some(4242),
        message: None,
    };
    store.record_heartbeat(id, 1, &heartbeat).await.unwrap();
    let nodes = store.list_nodes(id).await.unwrap();
    assert_eq!(
        nodes.iter().map(|n| n.broker_id).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(nodes[0].last_heartbeat.as_ref(), Some(&heartbeat));
    assert!(nodes[0].last_heartbeat_at.is_some());
    // An upsert does not erase the heartbeat.
    store.upsert_node(&node).await.unwrap();
    assert!(store
        .get_node(id, 1)
        .await
        .unwrap()
        .last_heartbeat
        .is_some());
    assert!(matches!(
        store.record_heartbeat(id, 9, &heartbeat).await,
        Err(StoreError::NotFound)
    ));
    store.delete_node(id, 2).await.unwrap();
    assert_eq!(store.list_nodes(id).await.unwrap().len(), 1);
    store.close().await;
}

async fn configurations_and_revisions(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let created = store
        .create_configuration(NewConfiguration {
            name: ConfigurationName::parse("low-retention").unwrap(),
            description: "short".into(),
            kafka_versions: vec![],
            server_properties: ServerProperties::parse("log.retention.hours=1").unwrap(),
        })
        .await
        .unwrap();
    assert_eq!(created.latest_revision, 1);
    let duplicate = store
        .create_configuration(NewConfiguration {
            name: ConfigurationName::parse("low-retention").unwrap(),
            description: String::new(),
            kafka_versions: vec![],
            server_properties: ServerProperties::parse("").unwrap(),
        })
        .await;
    assert!(matches!(
        duplicate,
        Err(StoreError::Conflict(Conflict::NameTaken(_)))
    ));
    let second = store
        .add_configuration_revision(
            &created.arn,
            "shorter",
            &ServerProperties::parse("log.retention.minutes=5").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(second.revision, 2);
    let by_name = store.get_configuration("low-retention").await.unwrap();
    assert_eq!(by_name.latest_revision, 2);
    assert_eq!(by_name.latest_revision_description, "shorter");
    let first = store
        .get_configuration_revision(&created.arn, 1)
        .await
        .unwrap();
    assert_eq!(first.server_properties, "log.retention.hours=1");
    assert!(matches!(
        store.get_configuration_revision(&created.arn, 3).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.list_configurations().await.unwrap().len(), 1);

    let mut used = new_cluster("configured");
    used.spec.configuration = Some(millrace_control_plane::domain::ConfigurationRef {
        arn: created.arn.clone(),
        revision: 2,
    });
    store.create_cluster(used).await.unwrap();
    assert!(matches!(
        store.delete_configuration(&created.arn).await,
        Err(StoreError::Conflict(Conflict::InUse(_)))
    ));
    let unused = store
        .create_configuration(NewConfiguration {
            name: ConfigurationName::parse("spare").unwrap(),
            description: String::new(),
            kafka_versions: vec!["millrace-0.1.0".into()],
            server_properties: ServerProperties::parse("").unwrap(),
        })
        .await
        .unwrap();
    store.delete_configuration("spare").await.unwrap();
    assert!(matches!(
        store.get_configuration(&unused.arn).await,
        Err(StoreError::NotFound)
    ));
    store.close().await;
}

async fn tokens(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    assert!(!store.has_admin_token().await.unwrap());
    let admin = store.create_admin_token("first").await.unwrap();
    assert!(store.has_admin_token().await.unwrap());
    assert!(matches!(
        store.authenticate(&admin).await.unwrap(),
        Some(TokenIdentity::Admin { .. })
    ));
    assert_eq!(store.authenticate("mr_wrong").await.unwrap(), None);
    assert!(store
        .ensure_admin_token("env", "mr_from_env")
        .await
        .unwrap());
    assert!(!store
        .ensure_admin_token("env", "mr_from_env")
        .await
        .unwrap());
    assert!(store.authenticate("mr_from_env").await.unwrap().is_some());

    let cluster = create(&store, "orders").await;
    let first = store.create_agent_token(cluster, 1).await.unwrap();
    let second = store.create_agent_token(cluster, 1).await.unwrap();
    // Until the new token is used, the running agent's old one works (a restart that was
    // already done when its step was retried must not lock the agent out).
    assert!(store.authenticate(&first).await.unwrap().is_some());
    assert_eq!(
        store.authenticate(&second).await.unwrap(),
        Some(TokenIdentity::Agent {
            cluster_id: cluster,
            broker_id: 1
        })
    );
    assert_eq!(
        store.authenticate(&first).await.unwrap(),
        None,
        "a new agent token retires the old one once it is used"
    );
    store.close().await;
}

async fn leases(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let cluster = Uuid::new_v4();
    let ttl = Duration::from_secs(30);
    assert!(store.try_acquire_lease(cluster, "a", ttl).await.unwrap());
    assert!(!store.try_acquire_lease(cluster, "b", ttl).await.unwrap());
    assert!(
        store.try_acquire_lease(cluster, "a", ttl).await.unwrap(),
        "re-entrant"
    );
    assert!(store.renew_lease(cluster, "a", ttl).await.unwrap());
    assert!(!store.renew_lease(cluster, "b", ttl).await.unwrap());
    store.release_lease(cluster, "b").await.unwrap();
    assert!(
        !store.try_acquire_lease(cluster, "b", ttl).await.unwrap(),
        "b cannot release a's lease"
    );
    store.release_lease(cluster, "a").await.unwrap();
    assert!(store
        .try_acquire_lease(cluster, "b", Duration::from_millis(1))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        store.try_acquire_lease(cluster, "c", ttl).await.unwrap(),
        "an expired lease is taken over"
    );
    assert!(
        !store.renew_lease(cluster, "b", ttl).await.unwrap(),
        "b lost it"
    );
    store.close().await;
}

async fn concurrent_lease_has_one_winner(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = Arc::new(db.store().await);
    for round in 0..5 {
        let cluster = Uuid::new_v4();
        let attempts = (0..8).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .try_acquire_lease(cluster, &format!("replica-{i}"), Duration::from_secs(30))
                    .await
                    .unwrap()
            })
        });
        let mut winners = 0;
        for attempt in attempts.collect::<Vec<_>>() {
            winners += usize::from(attempt.await.unwrap());
        }
        assert_eq!(
            winners, 1,
            "round {round}: exactly one replica holds the lease"
        );
    }
    store.close().await;
}

async fn forgetting_a_cluster_keeps_its_history(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let id = create(&store, "orders").await;
    store
        .upsert_node(&NodeRecord::new(
            id,
            1,
            "zone-a",
            "millrace-0.1.0",
            NodeVolume {
                persistent: false,
                size_gib: None,
                location: None,
            },
            "RUNNING",
        ))
        .await
        .unwrap();
    let token = store.create_agent_token(id, 1).await.unwrap();
    assert!(store
        .try_acquire_lease(id, "me", Duration::from_secs(5))
        .await
        .unwrap());
    let (_, delete) = store.begin_delete(id, None).await.unwrap();
    store.delete_cluster_rows(id).await.unwrap();
    assert!(matches!(
        store.get_cluster(id).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.list_nodes(id).await.unwrap().is_empty());
    assert_eq!(store.authenticate(&token).await.unwrap(), None);
    assert_eq!(store.get_operation(delete.id).await.unwrap().cluster_id, id);
    // The name is free again.
    create(&store, "orders").await;
    store.close().await;
}

async fn one_cluster_per_kubernetes_uid(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let declared = |name: &str, uid: &str| NewCluster {
        kubernetes_uid: Some(uid.into()),
        ..new_cluster(name)
    };
    let CreateOutcome::Created { cluster, .. } = store
        .create_cluster(declared("orders", "uid-1"))
        .await
        .unwrap()
    else {
        panic!("not created")
    };
    assert_eq!(cluster.kubernetes_uid.as_deref(), Some("uid-1"));
    // The same resource again (even with a changed spec) finds the cluster it created.
    let again = NewCluster {
        spec: spec(6),
        ..declared("orders", "uid-1")
    };
    let CreateOutcome::Replayed {
        cluster: replayed,
        operation,
    } = store.create_cluster(again).await.unwrap()
    else {
        panic!("created twice")
    };
    assert_eq!(replayed.id, cluster.id);
    assert_eq!(replayed.spec.number_of_broker_nodes.get(), 3);
    assert_eq!(operation.unwrap().operation_type, OperationType::Create);
    assert_eq!(
        store
            .get_cluster_by_kubernetes_uid("uid-1")
            .await
            .unwrap()
            .id,
        cluster.id
    );
    assert!(matches!(
        store.get_cluster_by_kubernetes_uid("uid-2").await,
        Err(StoreError::NotFound)
    ));
    // Another resource cannot take the name; clusters without a uid never collide on it.
    assert!(matches!(
        store.create_cluster(declared("orders", "uid-2")).await,
        Err(StoreError::Conflict(Conflict::NameTaken(_)))
    ));
    create(&store, "payments").await;
    create(&store, "invoices").await;
    store.close().await;
}
