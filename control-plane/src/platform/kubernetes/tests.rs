//! The Kubernetes platform against a mock API server (see [`super::testing`]).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::names::{self, NamespaceMode};
use super::testing::{self, *};
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
async fn an_in_place_restart_recreates_the_pod_once() {
    scenario_in_place_restart_recreates_the_pod().await;
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
        .ensure_volume(
            cluster,
            1,
            &VolumeSpec::Persistent {
                size_gib: 0,
                storage_class: None
            }
        )
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
