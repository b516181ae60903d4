//! Scenarios of nodes: creation in order, replacement, instance store, adoption.

use http::Method;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use serde_json::{json, Value};
use uuid::Uuid;

use super::*;
use crate::platform::kubernetes::names;
use crate::platform::{Platform, PlatformError, VolumeSpec};

// Each scenario drives the platform against the mock server, asserting every request, and
// returns the requests the server answered.

/// ensure_volume then create_node of a persistent-volume broker: the claim (with the anchor
/// created first, as its owner, and the cluster's own storage class over the platform's), then
/// ConfigMap -> Secret -> Services -> claim -> Pod.
pub(crate) async fn scenario_create_persistent_node() -> Vec<RecordedRequest> {
    let (platform, mut server) = platform();
    let cluster = Uuid::new_v4();
    let paths = Paths::new(cluster);
    let spec = node_spec(
        cluster,
        1,
        VolumeSpec::Persistent {
            size_gib: 100,
            storage_class: Some("premium-rwo".into()),
        },
    );
    let endpoints = endpoints(&platform, cluster, 1).await;

    let api = async {
        server
            .expect(Method::GET, &paths.claim(1))
            .await
            .respond_not_found("persistentvolumeclaims", "x");
        server
            .expect(Method::GET, &paths.anchor())
            .await
            .respond_not_found("configmaps", "x");
        let create = server
            .expect(Method::POST, &paths.anchor_collection())
            .await;
        assert_eq!(
            create.query.get("fieldManager").map(String::as_str),
            Some("millrace")
        );
        let anchor: ConfigMap = create.json();
        assert_eq!(
            anchor.metadata.name.as_deref(),
            Some(names::anchor_name(cluster).as_str())
        );
        assert!(
            anchor.data.is_none(),
            "a volume's anchor carries no configuration"
        );
        let mut stored: Value = create.json();
        stored["metadata"]["uid"] = json!(ANCHOR_UID);
        create.respond(201, &stored);
        let claim: PersistentVolumeClaim = expect_apply(&mut server, &paths.claim(1), 201).await;
        let claim_spec = claim.spec.expect("claim spec");
        // The cluster's class, not the platform's --storage-class (fast-ssd).
        assert_eq!(
            claim_spec.storage_class_name.as_deref(),
            Some("premium-rwo")
        );
        assert_eq!(
            claim_spec.access_modes,
            Some(vec!["ReadWriteOnce".to_string()])
        );
        assert_eq!(
            claim_spec.resources.unwrap().requests.unwrap()["storage"].0,
            "100Gi"
        );
        let owners = claim.metadata.owner_references.expect("owner");
        assert_eq!(
            (owners[0].kind.as_str(), owners[0].uid.as_str()),
            ("ConfigMap", ANCHOR_UID)
        );
        server
    };
    let (volume, mut server) = tokio::join!(platform.ensure_volume(cluster, 1, &spec.volume), api);
    assert_eq!(
        volume.unwrap().0,
        format!("pvc:{NAMESPACE}/{}", names::claim_name(cluster, 1))
    );

    let api = async {
        let anchor: ConfigMap = expect_apply(&mut server, &paths.anchor(), 200).await;
        let data = anchor.data.expect("configuration");
        assert_eq!(
            data["server.properties"],
            "auto.create.topics.enable=true\nnum.partitions=3\n"
        );
        assert_eq!(
            data["broker-flags"],
            "--auto-create-topics\n--default-partitions=3\n"
        );
        let secret: Secret = expect_apply(&mut server, &paths.secret(1), 201).await;
        assert_eq!(secret.data.expect("data")["token"].0, TOKEN.as_bytes());
        assert_eq!(secret.metadata.owner_references.unwrap()[0].uid, ANCHOR_UID);
        let headless: Service = expect_apply(&mut server, &paths.headless(), 201).await;
        assert_eq!(
            headless.spec.as_ref().unwrap().cluster_ip.as_deref(),
            Some("None")
        );
        let bootstrap: Service = expect_apply(&mut server, &paths.bootstrap(), 201).await;
        assert_eq!(
            bootstrap.spec.as_ref().unwrap().type_.as_deref(),
            Some("ClusterIP")
        );
        server
            .expect(Method::GET, &paths.claim(1))
            .await
            .respond(200, &stored_claim(cluster, 1, "100Gi", "fast-ssd"));
        server
            .expect(Method::GET, &paths.pod(1))
            .await
            .respond_not_found("pods", "x");
        let request = server.expect(Method::PATCH, &paths.pod(1)).await;
        assert!(
            !request.body_text().contains(TOKEN),
            "the token must not be in the pod"
        );
        let pod: Pod = request.json();
        request.respond_with_stored(201);
        let volumes = pod.spec.expect("pod spec").volumes.expect("volumes");
        assert_eq!(
            volumes[0]
                .persistent_volume_claim
                .as_ref()
                .unwrap()
                .claim_name,
            names::claim_name(cluster, 1)
        );
        assert_eq!(pod.metadata.owner_references.unwrap()[0].uid, ANCHOR_UID);
        server
    };
    let (created, mut server) = tokio::join!(platform.create_node(&spec, &endpoints), api);
    created.expect("create_node");
    server.expect_no_more();
    server.recorded()
}

/// A node replaced: delete_node waits for the pod to go and drops its token; the volume is
/// kept (no claim request but a read), and the new pod mounts the same claim.
pub(crate) async fn scenario_replaced_pod_gets_its_claim_back() -> Vec<RecordedRequest> {
    let (platform, mut server) = platform();
    let cluster = Uuid::new_v4();
    let paths = Paths::new(cluster);
    let spec = node_spec(
        cluster,
        2,
        VolumeSpec::Persistent {
            size_gib: 50,
            storage_class: None,
        },
    );
    let endpoints = endpoints(&platform, cluster, 2).await;

    let api = async {
        let delete = server.expect(Method::DELETE, &paths.pod(2)).await;
        let options: Value = delete.json();
        assert_eq!(
            options["gracePeriodSeconds"],
            json!(60),
            "grace = broker stop timeout + 30 s"
        );
        let mut terminating = stored_pod(cluster, 2, "300", running_ready_status());
        terminating["metadata"]["deletionTimestamp"] = json!("2026-11-25T18:10:00Z");
        delete.respond(200, &terminating);
        server
            .expect(Method::GET, &paths.pod(2))
            .await
            .respond(200, &terminating);
        server
            .expect(Method::GET, &paths.pod(2))
            .await
            .respond_not_found("pods", "x");
        server
            .expect(Method::DELETE, &paths.secret(2))
            .await
            .respond(200, &status_object(200, "", ""));
        server
    };
    let (deleted, mut server) = tokio::join!(platform.delete_node(cluster, 2), api);
    deleted.expect("delete_node");
    server.expect_no_more();

    let api = async {
        server
            .expect(Method::GET, &paths.claim(2))
            .await
            .respond(200, &stored_claim(cluster, 2, "50Gi", "fast-ssd"));
        server
    };
    let (volume, mut server) = tokio::join!(platform.ensure_volume(cluster, 2, &spec.volume), api);
    volume.expect("ensure_volume keeps the claim");
    server.expect_no_more();

    let api = async {
        expect_apply::<ConfigMap>(&mut server, &paths.anchor(), 200).await;
        expect_apply::<Secret>(&mut server, &paths.secret(2), 201).await;
        expect_apply::<Service>(&mut server, &paths.headless(), 200).await;
        expect_apply::<Service>(&mut server, &paths.bootstrap(), 200).await;
        server
            .expect(Method::GET, &paths.claim(2))
            .await
            .respond(200, &stored_claim(cluster, 2, "50Gi", "fast-ssd"));
        server
            .expect(Method::GET, &paths.pod(2))
            .await
            .respond_not_found("pods", "x");
        let pod: Pod = expect_apply(&mut server, &paths.pod(2), 201).await;
        let volumes = pod.spec.unwrap().volumes.unwrap();
        assert_eq!(
            volumes[0]
                .persistent_volume_claim
                .as_ref()
                .unwrap()
                .claim_name,
            names::claim_name(cluster, 2),
            "the replacement mounts the same claim"
        );
        server
    };
    let (created, mut server) = tokio::join!(platform.create_node(&spec, &endpoints), api);
    created.expect("create_node");
    server.expect_no_more();
    server.recorded()
}

/// An instance-store node: no claim is read or written; the pod gets an emptyDir.
pub(crate) async fn scenario_instance_store_node() -> Vec<RecordedRequest> {
    let (platform, mut server) = platform();
    let cluster = Uuid::new_v4();
    let paths = Paths::new(cluster);
    let spec = node_spec(
        cluster,
        3,
        VolumeSpec::InstanceStore {
            size_gib: Some(200),
        },
    );
    let endpoints = endpoints(&platform, cluster, 3).await;
    let volume = platform
        .ensure_volume(cluster, 3, &spec.volume)
        .await
        .expect("volume");
    assert!(volume.0.starts_with("emptyDir:"), "{volume}");
    server.expect_no_more();

    let api = async {
        expect_apply::<ConfigMap>(&mut server, &paths.anchor(), 201).await;
        expect_apply::<Secret>(&mut server, &paths.secret(3), 201).await;
        expect_apply::<Service>(&mut server, &paths.headless(), 201).await;
        expect_apply::<Service>(&mut server, &paths.bootstrap(), 201).await;
        server
            .expect(Method::GET, &paths.pod(3))
            .await
            .respond_not_found("pods", "x");
        let pod: Pod = expect_apply(&mut server, &paths.pod(3), 201).await;
        let volumes = pod.spec.unwrap().volumes.unwrap();
        assert!(volumes[0].persistent_volume_claim.is_none());
        let empty_dir = volumes[0].empty_dir.as_ref().expect("emptyDir");
        assert_eq!(empty_dir.size_limit.as_ref().unwrap().0, "200Gi");
        server
    };
    let (created, mut server) = tokio::join!(platform.create_node(&spec, &endpoints), api);
    created.expect("create_node");
    server.expect_no_more();
    server.recorded()
}

/// create_node finds its pod running (a control plane restarted mid-step): adopted, not
/// duplicated, not re-applied.
pub(crate) async fn scenario_create_adopts_a_running_pod() -> Vec<RecordedRequest> {
    let (platform, mut server) = platform();
    let cluster = Uuid::new_v4();
    let paths = Paths::new(cluster);
    let spec = node_spec(cluster, 1, VolumeSpec::InstanceStore { size_gib: None });
    let endpoints = endpoints(&platform, cluster, 1).await;
    let api = async {
        expect_apply::<ConfigMap>(&mut server, &paths.anchor(), 200).await;
        expect_apply::<Secret>(&mut server, &paths.secret(1), 200).await;
        expect_apply::<Service>(&mut server, &paths.headless(), 200).await;
        expect_apply::<Service>(&mut server, &paths.bootstrap(), 200).await;
        server
            .expect(Method::GET, &paths.pod(1))
            .await
            .respond(200, &stored_pod(cluster, 1, "400", running_ready_status()));
        server
    };
    let (created, mut server) = tokio::join!(platform.create_node(&spec, &endpoints), api);
    created.expect("adopted");
    server.expect_no_more();

    // An existing pod that is terminating is not adopted: the replacement waits.
    let api = async {
        expect_apply::<ConfigMap>(&mut server, &paths.anchor(), 200).await;
        expect_apply::<Secret>(&mut server, &paths.secret(1), 200).await;
        expect_apply::<Service>(&mut server, &paths.headless(), 200).await;
        expect_apply::<Service>(&mut server, &paths.bootstrap(), 200).await;
        let mut terminating = stored_pod(cluster, 1, "401", running_ready_status());
        terminating["metadata"]["deletionTimestamp"] = json!("2026-11-25T18:10:00Z");
        server
            .expect(Method::GET, &paths.pod(1))
            .await
            .respond(200, &terminating);
        server
    };
    let (created, mut server) = tokio::join!(platform.create_node(&spec, &endpoints), api);
    assert!(
        matches!(created, Err(PlatformError::InUse(_))),
        "{created:?}"
    );
    server.expect_no_more();
    server.recorded()
}

/// An in-place restart for an upgrade: the running pod is deleted (with the broker's grace) and
/// re-created with the new version and the restart's id, mounting the same claim; the node's
/// token stays. Repeated with the same id (a control plane that crashed after it), nothing
/// happens: the broker is not restarted twice.
pub(crate) async fn scenario_in_place_restart_recreates_the_pod() -> Vec<RecordedRequest> {
    let (platform, mut server) = platform();
    let cluster = Uuid::new_v4();
    let paths = Paths::new(cluster);
    let mut spec = node_spec(
        cluster,
        3,
        VolumeSpec::Persistent {
            size_gib: 50,
            storage_class: None,
        },
    );
    spec.broker_version = "millrace-0.2.0".into();
    let endpoints = endpoints(&platform, cluster, 3).await;
    let restart_id = "op-1/broker-3";

    let api = async {
        server
            .expect(Method::GET, &paths.pod(3))
            .await
            .respond(200, &stored_pod(cluster, 3, "400", running_ready_status()));
        let delete = server.expect(Method::DELETE, &paths.pod(3)).await;
        let options: Value = delete.json();
        assert_eq!(options["gracePeriodSeconds"], json!(60));
        let mut terminating = stored_pod(cluster, 3, "401", running_ready_status());
        terminating["metadata"]["deletionTimestamp"] = json!("2026-12-02T18:10:00Z");
        delete.respond(200, &terminating);
        server
            .expect(Method::GET, &paths.pod(3))
            .await
            .respond_not_found("pods", "x");
        expect_apply::<ConfigMap>(&mut server, &paths.anchor(), 200).await;
        expect_apply::<Secret>(&mut server, &paths.secret(3), 200).await;
        expect_apply::<Service>(&mut server, &paths.headless(), 200).await;
        expect_apply::<Service>(&mut server, &paths.bootstrap(), 200).await;
        server
            .expect(Method::GET, &paths.claim(3))
            .await
            .respond(200, &stored_claim(cluster, 3, "50Gi", "fast-ssd"));
        server
            .expect(Method::GET, &paths.pod(3))
            .await
            .respond_not_found("pods", "x");
        let request = server.expect(Method::PATCH, &paths.pod(3)).await;
        let pod: Pod = request.json();
        let mut stored: Value = request.json();
        request.respond_with_stored(201);
        let annotations = pod.metadata.annotations.expect("annotations");
        assert_eq!(
            annotations[names::BROKER_VERSION_ANNOTATION],
            "millrace-0.2.0"
        );
        assert_eq!(annotations[names::RESTART_ID_ANNOTATION], restart_id);
        let pod_spec = pod.spec.expect("pod spec");
        let args = pod_spec.containers[0].args.clone().unwrap_or_default();
        assert!(
            args.iter().any(|a| a.contains("millrace-0.2.0")),
            "the agent runs the new version: {args:?}"
        );
        assert_eq!(
            pod_spec.volumes.unwrap()[0]
                .persistent_volume_claim
                .as_ref()
                .unwrap()
                .claim_name,
            names::claim_name(cluster, 3),
            "the restarted pod mounts the same claim"
        );
        stored["status"] = running_ready_status();
        (server, stored)
    };
    let (restarted, (mut server, stored)) =
        tokio::join!(platform.restart_node(&spec, &endpoints, restart_id), api);
    restarted.expect("restart_node");
    server.expect_no_more();

    let api = async {
        server
            .expect(Method::GET, &paths.pod(3))
            .await
            .respond(200, &stored);
        server
    };
    let (again, mut server) =
        tokio::join!(platform.restart_node(&spec, &endpoints, restart_id), api);
    again.expect("a repeated restart is a no-op");
    server.expect_no_more();
    server.recorded()
}
