//! The Kubernetes platform against a mock API server (see [`super::testing`]), and its typed
//! manifests field by field.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;
use uuid::Uuid;

use super::manifests::{self, BrokerPod};
use super::names::{self, NamespaceMode};
use super::observe;
use super::testing::{self, *};
use crate::domain::InstanceType;
use crate::platform::{NodePhase, Platform, PlatformError, VolumeSpec};

#[tokio::test]
async fn create_applies_configmap_secret_services_claim_then_pod() {
    scenario_create_persistent_node().await;
}

#[tokio::test]
async fn a_replaced_pod_gets_its_claim_back() {
    scenario_replaced_pod_gets_its_claim_back().await;
}

#[tokio::test]
async fn instance_store_pods_get_an_empty_dir_and_no_claim() {
    scenario_instance_store_node().await;
}

#[tokio::test]
async fn create_adopts_a_running_pod_and_waits_for_a_terminating_one() {
    scenario_create_adopts_a_running_pod().await;
}

#[tokio::test]
async fn claims_grow_only_when_the_class_allows_and_never_shrink() {
    scenario_claim_growth().await;
}

#[tokio::test]
async fn delete_node_volume_and_cluster() {
    scenario_deletes().await;
}

#[tokio::test]
async fn one_namespace_per_cluster() {
    scenario_namespace_per_cluster().await;
}

#[tokio::test]
async fn watch_events_drive_observe_and_the_wakeup() {
    scenario_watch_events_drive_observe().await;
}

/// What the platform needs from RBAC, as (verb, apiGroup, resource): deploy/'s Role must grant
/// these and, for least privilege, nothing else.
#[tokio::test]
async fn all_scenarios_use_a_known_set_of_verbs_and_resources() {
    let recorded = run_all_scenarios().await;
    let used: BTreeSet<(String, String, String)> =
        recorded.iter().map(RecordedRequest::rbac_rule).collect();
    let expected: BTreeSet<(String, String, String)> = [
        ("create", "", "configmaps"),
        ("delete", "", "configmaps"),
        ("get", "", "configmaps"),
        ("patch", "", "configmaps"),
        ("delete", "", "namespaces"),
        ("patch", "", "namespaces"),
        ("delete", "", "persistentvolumeclaims"),
        ("get", "", "persistentvolumeclaims"),
        ("patch", "", "persistentvolumeclaims"),
        ("delete", "", "pods"),
        ("get", "", "pods"),
        ("list", "", "pods"),
        ("patch", "", "pods"),
        ("watch", "", "pods"),
        ("delete", "", "secrets"),
        ("patch", "", "secrets"),
        ("patch", "", "services"),
        ("get", "storage.k8s.io", "storageclasses"),
    ]
    .iter()
    .map(|(verb, group, resource)| (verb.to_string(), group.to_string(), resource.to_string()))
    .collect();
    assert_eq!(used, expected);
}

#[test]
fn rbac_rules_are_read_from_paths_and_queries() {
    let request = |method: &str, path: &str, query: &str| RecordedRequest {
        method: method.into(),
        path: path.into(),
        query: query.into(),
    };
    let rule = |r: RecordedRequest| r.rbac_rule();
    assert_eq!(
        rule(request(
            "GET",
            "/api/v1/namespaces/k/pods",
            "watch=true&labelSelector=x"
        )),
        ("watch".into(), "".into(), "pods".into())
    );
    assert_eq!(
        rule(request(
            "GET",
            "/apis/storage.k8s.io/v1/storageclasses/gp3",
            ""
        )),
        (
            "get".into(),
            "storage.k8s.io".into(),
            "storageclasses".into()
        )
    );
    assert_eq!(
        rule(request("DELETE", "/api/v1/namespaces/millrace-x", "")),
        ("delete".into(), "".into(), "namespaces".into())
    );
    assert_eq!(
        rule(request("POST", "/api/v1/namespaces/k/configmaps", "")),
        ("create".into(), "".into(), "configmaps".into())
    );
}

#[tokio::test]
async fn invalid_specs_are_refused_before_any_request() {
    let (platform, mut server) = testing::platform();
    let cluster = Uuid::new_v4();
    let endpoints = testing::endpoints(&platform, cluster, 1).await;
    let mut spec = node_spec(cluster, 1, VolumeSpec::InstanceStore { size_gib: None });
    spec.instance_type = "kafka.z9.huge".into();
    let error = platform.create_node(&spec, &endpoints).await.unwrap_err();
    assert!(
        matches!(&error, PlatformError::InvalidSpec { field, .. } if field == "instanceType"),
        "{error}"
    );
    let mut spec = node_spec(cluster, 1, VolumeSpec::InstanceStore { size_gib: None });
    spec.broker_version = "millrace-9.9.9".into();
    assert!(matches!(
        platform.create_node(&spec, &endpoints).await,
        Err(PlatformError::VersionNotInstalled { .. })
    ));
    let mut spec = node_spec(cluster, 1, VolumeSpec::InstanceStore { size_gib: None });
    spec.broker_config
        .insert("unclean.leader.election.enable".into(), "true".into());
    assert!(platform.create_node(&spec, &endpoints).await.is_err());
    assert!(platform
        .ensure_volume(cluster, 1, &VolumeSpec::Persistent { size_gib: 0 })
        .await
        .is_err());
    assert!(platform.allocate_endpoints(cluster, &[-1]).await.is_err());
    server.expect_no_more();
}

/// `observe` right after `create_node` reports the new pod even before the watch delivers it
/// (so that the reconciler does not create it again), then the watched state wins.
#[tokio::test]
async fn a_created_pod_is_observed_before_the_watch_shows_it() {
    let (platform, mut server) = testing::platform();
    let cluster = Uuid::new_v4();
    let paths = Paths::new(cluster);
    let spec = node_spec(cluster, 1, VolumeSpec::InstanceStore { size_gib: None });
    let endpoints = testing::endpoints(&platform, cluster, 1).await;
    let api = async {
        expect_apply::<k8s_openapi::api::core::v1::ConfigMap>(&mut server, &paths.anchor(), 201)
            .await;
        expect_apply::<k8s_openapi::api::core::v1::Secret>(&mut server, &paths.secret(1), 201)
            .await;
        expect_apply::<k8s_openapi::api::core::v1::Service>(&mut server, &paths.headless(), 201)
            .await;
        expect_apply::<k8s_openapi::api::core::v1::Service>(&mut server, &paths.bootstrap(), 201)
            .await;
        server
            .expect(http::Method::GET, &paths.pod(1))
            .await
            .respond_not_found("pods", "x");
        let apply = server.expect(http::Method::PATCH, &paths.pod(1)).await;
        let mut stored: serde_json::Value = apply.json();
        stored["metadata"]["uid"] = json!("pod-uid-1");
        stored["metadata"]["resourceVersion"] = json!("101");
        apply.respond(201, &stored);
        server
    };
    let (created, mut server) = tokio::join!(platform.create_node(&spec, &endpoints), api);
    created.expect("create_node");

    let list = server.next_watch().await;
    list.respond(200, &json!({
        "apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "100"}, "items": [],
    }));
    tokio::time::timeout(Duration::from_secs(10), platform.pod_changes().notified())
        .await
        .expect("listed");
    let observed = platform.observe(cluster).await.unwrap();
    assert_eq!(observed.len(), 1, "the created pod, not yet watched");
    assert_eq!(observed[0].phase, NodePhase::Pending);
    assert_eq!(observed[0].broker_id, 1);

    let watch = server.next_watch().await;
    let event =
        json!({"type": "ADDED", "object": stored_pod(cluster, 1, "102", running_ready_status())});
    watch.respond_raw(200, serde_json::to_vec(&event).unwrap());
    tokio::time::timeout(Duration::from_secs(10), platform.pod_changes().notified())
        .await
        .expect("woken by the event");
    let observed = platform.observe(cluster).await.unwrap();
    assert_eq!(
        observed.len(),
        1,
        "one pod, not the created one again: {observed:?}"
    );
    assert_eq!(observed[0].phase, NodePhase::Running);
}

async fn woken(platform: &super::KubernetesPlatform) {
    tokio::time::timeout(Duration::from_secs(10), platform.pod_changes().notified())
        .await
        .expect("woken by the pod watch");
}

/// A replacement seen through a lagging watch: right after `delete_node` the old (failed) pod
/// is no longer reported, and right after `create_node` the new one is, while the watch still
/// shows the old pod; then the watch catches up.
#[tokio::test]
async fn a_replacement_is_observed_correctly_while_the_watch_lags() {
    use http::Method;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};

    let (platform, mut server) = testing::platform();
    let cluster = Uuid::new_v4();
    let paths = Paths::new(cluster);
    let evicted = json!({"phase": "Failed", "reason": "Evicted", "message": "low on memory"});
    let old = stored_pod(cluster, 1, "90", evicted);
    server.next_watch().await.respond(
        200,
        &json!({
            "apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "100"},
            "items": [old.clone()],
        }),
    );
    woken(&platform).await;
    assert!(matches!(
        platform.observe(cluster).await.unwrap()[0].phase,
        NodePhase::Failed(_)
    ));

    let api = async {
        let mut terminating = old.clone();
        terminating["metadata"]["deletionTimestamp"] = json!("2026-11-25T18:10:00Z");
        server
            .expect(Method::DELETE, &paths.pod(1))
            .await
            .respond(200, &terminating);
        server
            .expect(Method::GET, &paths.pod(1))
            .await
            .respond_not_found("pods", "x");
        server
            .expect(Method::DELETE, &paths.secret(1))
            .await
            .respond_not_found("secrets", "x");
        server
    };
    let (deleted, mut server) = tokio::join!(platform.delete_node(cluster, 1), api);
    deleted.expect("delete_node");
    assert!(
        platform.observe(cluster).await.unwrap().is_empty(),
        "the deleted pod is not reported although the watch still has it"
    );

    let spec = node_spec(cluster, 1, VolumeSpec::InstanceStore { size_gib: None });
    let endpoints = testing::endpoints(&platform, cluster, 1).await;
    let api = async {
        expect_apply::<ConfigMap>(&mut server, &paths.anchor(), 200).await;
        expect_apply::<Secret>(&mut server, &paths.secret(1), 201).await;
        expect_apply::<Service>(&mut server, &paths.headless(), 200).await;
        expect_apply::<Service>(&mut server, &paths.bootstrap(), 200).await;
        server
            .expect(Method::GET, &paths.pod(1))
            .await
            .respond_not_found("pods", "x");
        let apply = server.expect(Method::PATCH, &paths.pod(1)).await;
        let mut stored: serde_json::Value = apply.json();
        stored["metadata"]["uid"] = json!("pod-uid-new");
        apply.respond(201, &stored);
        server
    };
    let (created, mut server) = tokio::join!(platform.create_node(&spec, &endpoints), api);
    created.expect("create_node");
    let observed = platform.observe(cluster).await.unwrap();
    assert_eq!(observed.len(), 1, "{observed:?}");
    assert_eq!(
        observed[0].phase,
        NodePhase::Pending,
        "the new pod, not the evicted one"
    );

    let deleted_old = json!({"type": "DELETED", "object": old});
    server
        .next_watch()
        .await
        .respond_raw(200, serde_json::to_vec(&deleted_old).unwrap());
    woken(&platform).await;
    assert_eq!(
        platform.observe(cluster).await.unwrap()[0].phase,
        NodePhase::Pending
    );

    let mut new = stored_pod(cluster, 1, "102", running_ready_status());
    new["metadata"]["uid"] = json!("pod-uid-new");
    let added_new = json!({"type": "ADDED", "object": new});
    let watch = server.next_watch().await;
    assert_eq!(
        watch.query.get("resourceVersion").map(String::as_str),
        Some("90")
    );
    watch.respond_raw(200, serde_json::to_vec(&added_new).unwrap());
    woken(&platform).await;
    let observed = platform.observe(cluster).await.unwrap();
    assert_eq!(observed.len(), 1, "{observed:?}");
    assert_eq!(observed[0].phase, NodePhase::Running);
}

#[tokio::test]
async fn observe_fails_clearly_while_the_watch_has_not_listed_pods() {
    let mut config = test_config(NamespaceMode::Shared(NAMESPACE.into()));
    config.watch_sync_timeout = Duration::from_millis(50);
    let (platform, mut server) = testing::platform_with(config);
    let _unanswered_list = server.next_watch().await;
    let error = platform
        .observe(Uuid::new_v4())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("has not listed the pods yet"), "{error}");
}

#[test]
fn bad_settings_and_a_missing_runtime_are_errors() {
    let (client, _server) = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async { ApiServer::start() });
    let mut config = test_config(NamespaceMode::Shared(NAMESPACE.into()));
    assert!(
        super::KubernetesPlatform::new(client.clone(), config.clone()).is_err(),
        "outside a runtime: an error, not a panic"
    );
    config.agent_image = " ".into();
    assert!(super::KubernetesPlatform::new(client, config).is_err());
}

#[tokio::test]
async fn endpoints_are_the_stable_dns_names_of_the_headless_service() {
    let (platform, _server) = testing::platform();
    let cluster = Uuid::new_v4();
    let first = platform.allocate_endpoints(cluster, &[1, 2]).await.unwrap();
    assert_eq!(
        first,
        platform.allocate_endpoints(cluster, &[1, 2]).await.unwrap()
    );
    let host = names::broker_host(NAMESPACE, cluster, 2);
    assert_eq!(first[1].kafka, format!("{host}:9092"));
    assert_eq!(first[1].controller, format!("{host}:9093"));
    assert_eq!(first[1].broker_admin, format!("{host}:9644"));
    assert_eq!(first[1].agent, format!("{host}:9700"));
    assert_eq!(
        platform.installed_versions(),
        ["millrace-0.1.0", "millrace-0.2.0"]
    );
}

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
    let (cluster, pod, _) = build_pod(VolumeSpec::Persistent { size_gib: 10 });
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
    let (_, pod, _) = build_pod(VolumeSpec::Persistent { size_gib: 10 });
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
    let (cluster, pod, _) = build_pod(VolumeSpec::Persistent { size_gib: 10 });
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
    let (_, pod, _) = build_pod(VolumeSpec::Persistent { size_gib: 10 });
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
    let (cluster, pod, args) = build_pod(VolumeSpec::Persistent { size_gib: 10 });
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
    let (cluster, pod, _) = build_pod(VolumeSpec::Persistent { size_gib: 10 });
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
