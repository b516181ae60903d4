//! The typed manifests field by field, and pod states mapped to node phases.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;
use uuid::Uuid;

use super::manifests::{self, BrokerPod};
use super::names::{self, NamespaceMode};
use super::observe;
use super::testing::*;
use crate::domain::InstanceType;
use crate::platform::{NodePhase, VolumeSpec};

// ---------------------------------------------------------------------------------------------
// Manifests

fn owner() -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "kafka-anchor".into(),
        uid: ANCHOR_UID.into(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

fn build_pod(volume: VolumeSpec) -> (Uuid, Pod, Vec<String>) {
    let cluster = Uuid::new_v4();
    let spec = node_spec(cluster, 2, volume);
    let config = test_config(NamespaceMode::Shared(NAMESPACE.into()));
    let host = names::broker_host(NAMESPACE, cluster, 2);
    let endpoints = crate::platform::NodeEndpoints {
        kafka: format!("{host}:9092"),
        broker_admin: format!("{host}:9644"),
        agent: format!("{host}:9700"),
        controller: format!("{host}:9093"),
    };
    let flags = crate::platform::broker_flags::broker_flags(&spec.broker_config).unwrap();
    let owner = owner();
    let broker_type = InstanceType::parse("kafka.m5.large").unwrap().broker_type();
    let builder = BrokerPod {
        restart_id: None,
        spec: &spec,
        endpoints: &endpoints,
        namespace: NAMESPACE,
        owner: &owner,
        broker_type,
        broker_flags: &flags,
        config: &config,
    };
    (cluster, builder.pod(), builder.agent_args())
}

#[test]
fn pod_labels_annotations_owner_and_dns_identity() {
    let (cluster, pod, _) = build_pod(VolumeSpec::Persistent {
        size_gib: 10,
        storage_class: None,
    });
    let labels = pod.metadata.labels.as_ref().unwrap();
    for (key, value) in [
        ("app.kubernetes.io/name", "kafka"),
        ("app.kubernetes.io/instance", cluster.to_string().as_str()),
        ("app.kubernetes.io/component", "broker"),
        ("app.kubernetes.io/managed-by", "millrace"),
        ("millrace.dev/cluster-id", cluster.to_string().as_str()),
        ("millrace.dev/broker-id", "2"),
    ] {
        assert_eq!(labels.get(key).map(String::as_str), Some(value), "{key}");
    }
    let annotations = pod.metadata.annotations.as_ref().unwrap();
    assert_eq!(
        annotations[names::BROKER_VERSION_ANNOTATION],
        "millrace-0.1.0"
    );
    assert_eq!(annotations[names::ZONE_ANNOTATION], "eu-west-1b");
    assert_eq!(pod.metadata.owner_references, Some(vec![owner()]));
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(
        spec.hostname.as_deref(),
        Some(names::pod_name(cluster, 2).as_str())
    );
    assert_eq!(
        spec.subdomain.as_deref(),
        Some(names::headless_service_name(cluster).as_str())
    );
    assert_eq!(spec.termination_grace_period_seconds, Some(60));
    assert_eq!(spec.automount_service_account_token, Some(false));
}

#[test]
fn pod_resources_come_from_the_broker_type_catalog() {
    let (_, pod, _) = build_pod(VolumeSpec::Persistent {
        size_gib: 10,
        storage_class: None,
    });
    let container = &pod.spec.unwrap().containers[0];
    let resources = container.resources.as_ref().unwrap();
    for amounts in [
        resources.requests.as_ref().unwrap(),
        resources.limits.as_ref().unwrap(),
    ] {
        // kafka.m5.large: 2 vCPUs, 8 GiB.
        assert_eq!(amounts["cpu"].0, "2");
        assert_eq!(amounts["memory"].0, "8Gi");
    }
}

#[test]
fn pods_are_pinned_to_their_zone_and_spread() {
    let (cluster, pod, _) = build_pod(VolumeSpec::Persistent {
        size_gib: 10,
        storage_class: None,
    });
    let spec = pod.spec.unwrap();
    let required = spec
        .affinity
        .unwrap()
        .node_affinity
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .unwrap();
    let requirement = &required.node_selector_terms[0]
        .match_expressions
        .as_ref()
        .unwrap()[0];
    assert_eq!(requirement.key, "topology.kubernetes.io/zone");
    assert_eq!(requirement.operator, "In");
    assert_eq!(requirement.values, Some(vec!["eu-west-1b".to_string()]));
    let spread = spec.topology_spread_constraints.unwrap();
    assert_eq!(spread.len(), 2);
    assert_eq!(spread[0].topology_key, "topology.kubernetes.io/zone");
    assert_eq!(spread[0].max_skew, 1);
    assert_eq!(spread[0].when_unsatisfiable, "DoNotSchedule");
    assert_eq!(spread[1].topology_key, "kubernetes.io/hostname");
    let selector = spread[0]
        .label_selector
        .as_ref()
        .unwrap()
        .match_labels
        .as_ref()
        .unwrap();
    assert_eq!(selector[names::CLUSTER_ID_LABEL], cluster.to_string());
    assert!(
        !selector.contains_key(names::BROKER_ID_LABEL),
        "spread over the cluster's brokers"
    );
}

#[test]
fn pod_probes_check_the_agent_and_the_broker() {
    let (_, pod, _) = build_pod(VolumeSpec::Persistent {
        size_gib: 10,
        storage_class: None,
    });
    let container = &pod.spec.unwrap().containers[0];
    let liveness = container
        .liveness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(liveness.path.as_deref(), Some("/health"));
    assert_eq!(liveness.port, IntOrString::String("agent".into()));
    let readiness = container
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(readiness.path.as_deref(), Some("/ready"));
    assert_eq!(readiness.port, IntOrString::String("broker-admin".into()));
    let ports: Vec<(String, i32)> = container
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| (p.name.clone().unwrap(), p.container_port))
        .collect();
    assert_eq!(
        ports,
        [
            ("kafka".to_string(), 9092),
            ("controller".to_string(), 9093),
            ("broker-admin".to_string(), 9644),
            ("agent".to_string(), 9700)
        ]
    );
}

#[test]
fn the_token_reaches_the_pod_only_through_its_secret() {
    let (cluster, pod, args) = build_pod(VolumeSpec::Persistent {
        size_gib: 10,
        storage_class: None,
    });
    let text = serde_json::to_string(&pod).unwrap();
    assert!(!text.contains(TOKEN), "{text}");
    assert!(!args.iter().any(|arg| arg.contains(TOKEN)));
    let env = pod.spec.unwrap().containers[0].env.clone().unwrap();
    assert_eq!(env[0].name, "MILLRACE_AGENT_TOKEN");
    assert!(env[0].value.is_none());
    let key = env[0]
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(key.name, names::secret_name(cluster, 2));
    assert_eq!(key.key, manifests::TOKEN_KEY);
}

#[test]
fn the_agent_command_line_advertises_the_dns_name() {
    let (cluster, pod, args) = build_pod(VolumeSpec::InstanceStore { size_gib: None });
    let container = &pod.spec.unwrap().containers[0];
    assert_eq!(
        container.command,
        Some(vec!["/opt/millrace/bin/millrace-agent".to_string()])
    );
    assert_eq!(container.args.as_ref(), Some(&args));
    let value = |flag: &str| {
        let at = args
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("{flag} missing"));
        args[at + 1].clone()
    };
    assert_eq!(value("--node-id"), "2");
    assert_eq!(value("--cluster-id"), cluster.to_string());
    assert_eq!(value("--data-dir"), manifests::DATA_DIR);
    assert_eq!(value("--bin-dir"), "/opt/millrace/bin");
    assert_eq!(value("--broker-version"), "millrace-0.1.0");
    assert_eq!(value("--broker-listen"), "0.0.0.0:9092");
    assert_eq!(
        value("--advertised-listener"),
        format!("{}:9092", names::broker_host(NAMESPACE, cluster, 2))
    );
    assert_eq!(value("--rack"), "eu-west-1b");
    assert_eq!(value("--controller-listen"), "0.0.0.0:9093");
    assert_eq!(
        value("--controller-advertised"),
        format!("{}:9093", names::broker_host(NAMESPACE, cluster, 2))
    );
    assert!(value("--voters").starts_with(&format!(
        "1@{}:9093,",
        names::broker_host(NAMESPACE, cluster, 1)
    )));
    assert_eq!(
        value("--control-plane-url"),
        "http://millrace.millrace-system.svc:8080"
    );
    assert!(args.contains(&"--broker-arg=--auto-create-topics".to_string()));
    assert!(args.contains(&"--broker-arg=--default-partitions=3".to_string()));
}

#[test]
fn volumes_are_a_claim_or_a_sized_empty_dir() {
    let (cluster, pod, _) = build_pod(VolumeSpec::Persistent {
        size_gib: 10,
        storage_class: None,
    });
    let spec = pod.spec.unwrap();
    let volume = &spec.volumes.as_ref().unwrap()[0];
    assert_eq!(
        volume.persistent_volume_claim.as_ref().unwrap().claim_name,
        names::claim_name(cluster, 2)
    );
    let mount = &spec.containers[0].volume_mounts.as_ref().unwrap()[0];
    assert_eq!(
        (mount.name.as_str(), mount.mount_path.as_str()),
        ("data", manifests::DATA_DIR)
    );

    let (_, pod, _) = build_pod(VolumeSpec::InstanceStore { size_gib: Some(75) });
    let volume = &pod.spec.unwrap().volumes.unwrap()[0];
    assert!(volume.persistent_volume_claim.is_none());
    assert_eq!(
        volume
            .empty_dir
            .as_ref()
            .unwrap()
            .size_limit
            .as_ref()
            .unwrap()
            .0,
        "75Gi"
    );
    let (_, pod, _) = build_pod(VolumeSpec::InstanceStore { size_gib: None });
    let volume = &pod.spec.unwrap().volumes.unwrap()[0];
    assert!(volume.empty_dir.as_ref().unwrap().size_limit.is_none());
}

#[test]
fn services_select_the_clusters_brokers() {
    let cluster = Uuid::new_v4();
    let headless = manifests::headless_service(cluster, NAMESPACE, &owner());
    let spec = headless.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(spec.publish_not_ready_addresses, Some(true));
    assert_eq!(
        spec.selector.unwrap()[names::CLUSTER_ID_LABEL],
        cluster.to_string()
    );
    assert_eq!(spec.ports.unwrap().len(), 4);
    assert_eq!(headless.metadata.owner_references, Some(vec![owner()]));

    let bootstrap = manifests::bootstrap_service(cluster, NAMESPACE, &owner());
    let spec = bootstrap.spec.unwrap();
    assert!(
        spec.publish_not_ready_addresses.is_none(),
        "ready brokers only"
    );
    let ports = spec.ports.unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(
        (ports[0].port, ports[0].target_port.clone()),
        (9092, Some(IntOrString::String("kafka".into())))
    );
}

#[test]
fn the_anchor_needs_a_uid_to_own_anything() {
    let anchor = manifests::anchor(Uuid::new_v4(), NAMESPACE, None);
    assert!(manifests::owner_reference(&anchor).is_err());
    let mut stored = anchor.clone();
    stored.metadata.uid = Some("u-1".into());
    let owner = manifests::owner_reference(&stored).unwrap();
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("ConfigMap", "u-1", Some(true))
    );
}

#[test]
fn storage_quantities_are_read_in_bytes() {
    assert_eq!(manifests::quantity_bytes("100Gi"), Some(100 << 30));
    assert_eq!(manifests::quantity_bytes("1Ti"), Some(1 << 40));
    assert_eq!(manifests::quantity_bytes("5G"), Some(5_000_000_000));
    assert_eq!(manifests::quantity_bytes("1073741824"), Some(1 << 30));
    assert_eq!(manifests::quantity_bytes("1.5Gi"), None);
    assert_eq!(manifests::quantity_bytes("Gi"), None);
    assert_eq!(manifests::quantity_bytes("10Xi"), None);
}

// ---------------------------------------------------------------------------------------------
// Pod status -> node phase

fn pod_with(status: serde_json::Value) -> Pod {
    serde_json::from_value(stored_pod(Uuid::new_v4(), 1, "1", status)).unwrap()
}

fn phase_of(pod: &Pod) -> (NodePhase, String) {
    let agent: Option<&ContainerStatus> = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first());
    observe::node_phase(pod, agent)
}

#[test]
fn pod_states_map_to_node_phases() {
    assert_eq!(
        phase_of(&pod_with(running_ready_status())).0,
        NodePhase::Running
    );
    let (phase, message) = phase_of(&pod_with(crash_loop_status()));
    assert!(
        matches!(phase, NodePhase::Failed(ref why) if why.starts_with("CrashLoopBackOff")),
        "{phase:?}"
    );
    assert!(message.contains("code 1"), "{message}");

    let evicted = pod_with(json!({
        "phase": "Failed", "reason": "Evicted",
        "message": "The node was low on resource: ephemeral-storage.",
    }));
    assert!(matches!(phase_of(&evicted).0, NodePhase::Failed(ref why) if why.contains("Evicted")));

    let image = pod_with(json!({
        "phase": "Pending",
        "containerStatuses": [{"name": "agent", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}],
    }));
    assert!(
        matches!(phase_of(&image).0, NodePhase::Failed(ref why) if why.contains("ImagePullBackOff"))
    );

    let unschedulable = pod_with(json!({
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity."}],
    }));
    let (phase, message) = phase_of(&unschedulable);
    assert_eq!(phase, NodePhase::Pending);
    assert!(message.contains("node affinity"), "{message}");

    let not_ready = pod_with(json!({
        "phase": "Running",
        "containerStatuses": [{"name": "agent", "image": "x", "imageID": "", "ready": false, "restartCount": 1,
            "state": {"running": {}}}],
    }));
    assert_eq!(phase_of(&not_ready).0, NodePhase::Starting);

    let mut terminating = pod_with(running_ready_status());
    terminating.metadata.deletion_timestamp =
        serde_json::from_value(json!("2026-11-25T18:10:00Z")).unwrap();
    assert_eq!(phase_of(&terminating).0, NodePhase::Stopping);

    let lost = pod_with(json!({"phase": "Unknown"}));
    assert!(matches!(phase_of(&lost).0, NodePhase::Failed(_)));
}

#[test]
fn observed_nodes_carry_their_volume_and_restarts() {
    let cluster = Uuid::new_v4();
    let pod: Pod =
        serde_json::from_value(stored_pod(cluster, 4, "1", crash_loop_status())).unwrap();
    assert_eq!(observe::broker_of(&pod, cluster), Some(4));
    assert_eq!(observe::broker_of(&pod, Uuid::new_v4()), None);
    let node = observe::observed_node(&pod, cluster, 4);
    assert_eq!(node.restarts, 3);
    assert_eq!(
        node.volume_id.unwrap().0,
        format!("pvc:{NAMESPACE}/{}", names::claim_name(cluster, 4))
    );
    assert_eq!(
        node.endpoints.kafka,
        format!("{}:9092", names::broker_host(NAMESPACE, cluster, 4))
    );
}
