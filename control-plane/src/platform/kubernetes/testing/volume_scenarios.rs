//! Scenarios of volumes and deletion: claim growth, deletes, a namespace per cluster.

use http::Method;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, Pod, Secret, Service,
};
use serde_json::{json, Value};
use uuid::Uuid;

use super::*;
use crate::platform::kubernetes::names;
use crate::platform::kubernetes::NamespaceMode;
use crate::platform::{Platform, PlatformError, VolumeSpec};

/// Growing a claim patches its request when the storage class allows expansion; a class that
/// does not, and any shrink, are refused with a clear error and no write.
pub(crate) async fn scenario_claim_growth() -> Vec<RecordedRequest> {
    let (platform, mut server) = platform();
    let cluster = Uuid::new_v4();
    let paths = Paths::new(cluster);

    let api = async {
        server
            .expect(Method::GET, &paths.claim(1))
            .await
            .respond(200, &stored_claim(cluster, 1, "100Gi", "fast-ssd"));
        server
            .expect(
                Method::GET,
                "/apis/storage.k8s.io/v1/storageclasses/fast-ssd",
            )
            .await
            .respond(
                200,
                &json!({
                    "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                    "metadata": {"name": "fast-ssd"}, "provisioner": "ebs.csi.aws.com",
                    "allowVolumeExpansion": true,
                }),
            );
        server
            .expect(Method::GET, &paths.anchor())
            .await
            .respond(200, &stored_anchor(cluster));
        let claim: PersistentVolumeClaim = expect_apply(&mut server, &paths.claim(1), 200).await;
        let spec = claim.spec.unwrap();
        assert_eq!(
            spec.resources.unwrap().requests.unwrap()["storage"].0,
            "150Gi"
        );
        assert_eq!(spec.storage_class_name.as_deref(), Some("fast-ssd"));
        server
    };
    let (grown, mut server) = tokio::join!(
        platform.ensure_volume(
            cluster,
            1,
            &VolumeSpec::Persistent {
                size_gib: 150,
                storage_class: None
            }
        ),
        api
    );
    grown.expect("grown");
    server.expect_no_more();

    let api =
        async {
            server
                .expect(Method::GET, &paths.claim(1))
                .await
                .respond(200, &stored_claim(cluster, 1, "100Gi", "standard"));
            server
            .expect(Method::GET, "/apis/storage.k8s.io/v1/storageclasses/standard")
            .await
            .respond(200, &json!({
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": "standard"}, "provisioner": "kubernetes.io/no-provisioner",
            }));
            server
        };
    let (refused, mut server) = tokio::join!(
        platform.ensure_volume(
            cluster,
            1,
            &VolumeSpec::Persistent {
                size_gib: 150,
                storage_class: None
            }
        ),
        api
    );
    let error = refused.expect_err("expansion not allowed").to_string();
    assert!(
        error.contains("volume.sizeGib")
            && error.contains("standard does not allow volume expansion"),
        "{error}"
    );
    server.expect_no_more();

    let api = async {
        server
            .expect(Method::GET, &paths.claim(1))
            .await
            .respond(200, &stored_claim(cluster, 1, "100Gi", "fast-ssd"));
        server
    };
    let (shrink, mut server) = tokio::join!(
        platform.ensure_volume(
            cluster,
            1,
            &VolumeSpec::Persistent {
                size_gib: 50,
                storage_class: None
            }
        ),
        api
    );
    let error = shrink.expect_err("no shrinking").to_string();
    assert!(error.contains("cannot shrink"), "{error}");
    server.expect_no_more();
    server.recorded()
}

/// delete_volume is refused while the pod exists, then deletes the claim; deleting what is
/// already gone succeeds; delete_cluster_resources deletes the anchor in the foreground.
pub(crate) async fn scenario_deletes() -> Vec<RecordedRequest> {
    let (platform, mut server) = platform();
    let cluster = Uuid::new_v4();
    let paths = Paths::new(cluster);

    let api = async {
        server
            .expect(Method::GET, &paths.pod(1))
            .await
            .respond(200, &stored_pod(cluster, 1, "500", running_ready_status()));
        server
    };
    let (refused, mut server) = tokio::join!(platform.delete_volume(cluster, 1), api);
    assert!(
        matches!(refused, Err(PlatformError::InUse(_))),
        "{refused:?}"
    );
    server.expect_no_more();

    let api = async {
        server
            .expect(Method::GET, &paths.pod(1))
            .await
            .respond_not_found("pods", "x");
        server
            .expect(Method::DELETE, &paths.claim(1))
            .await
            .respond(200, &stored_claim(cluster, 1, "100Gi", "fast-ssd"));
        server
            .expect(Method::GET, &paths.pod(1))
            .await
            .respond_not_found("pods", "x");
        server
            .expect(Method::DELETE, &paths.claim(1))
            .await
            .respond_not_found("persistentvolumeclaims", "x");
        server
    };
    let (deleted, mut server) = tokio::join!(
        async {
            platform.delete_volume(cluster, 1).await?;
            platform.delete_volume(cluster, 1).await
        },
        api
    );
    deleted.expect("delete_volume, twice");

    let api = async {
        server
            .expect(Method::DELETE, &paths.pod(1))
            .await
            .respond_not_found("pods", "x");
        server
            .expect(Method::DELETE, &paths.secret(1))
            .await
            .respond_not_found("secrets", "x");
        let delete = server.expect(Method::DELETE, &paths.anchor()).await;
        let options: Value = delete.json();
        assert_eq!(options["propagationPolicy"], json!("Foreground"));
        delete.respond(200, &stored_anchor(cluster));
        server
            .expect(Method::DELETE, &paths.anchor())
            .await
            .respond_not_found("configmaps", "x");
        server
    };
    let (deleted, mut server) = tokio::join!(
        async {
            platform.delete_node(cluster, 1).await?;
            platform.delete_cluster_resources(cluster).await?;
            platform.delete_cluster_resources(cluster).await
        },
        api
    );
    deleted.expect("deletes are idempotent");
    server.expect_no_more();
    server.recorded()
}

/// One namespace per cluster: the namespace is applied before the cluster's first object and
/// deleted with the cluster; the pod watch covers all namespaces.
pub(crate) async fn scenario_namespace_per_cluster() -> Vec<RecordedRequest> {
    let (platform, mut server) = platform_with(test_config(NamespaceMode::PerCluster));
    let cluster = Uuid::new_v4();
    let namespace = NamespaceMode::PerCluster.namespace(cluster);
    let paths = Paths {
        cluster,
        namespace: namespace.clone(),
    };
    let spec = node_spec(cluster, 1, VolumeSpec::InstanceStore { size_gib: None });
    let endpoints = endpoints(&platform, cluster, 1).await;
    assert!(
        endpoints.kafka.contains(&format!(".{namespace}.svc:9092")),
        "{}",
        endpoints.kafka
    );

    let watch = server.next_watch().await;
    assert_eq!(watch.path, "/api/v1/pods", "the watch spans all namespaces");
    drop(watch);

    let api = async {
        let ns: Namespace =
            expect_apply(&mut server, &format!("/api/v1/namespaces/{namespace}"), 201).await;
        assert_eq!(
            ns.metadata.labels.unwrap()[names::CLUSTER_ID_LABEL],
            cluster.to_string()
        );
        expect_apply::<ConfigMap>(&mut server, &paths.anchor(), 201).await;
        expect_apply::<Secret>(&mut server, &paths.secret(1), 201).await;
        expect_apply::<Service>(&mut server, &paths.headless(), 201).await;
        expect_apply::<Service>(&mut server, &paths.bootstrap(), 201).await;
        server
            .expect(Method::GET, &paths.pod(1))
            .await
            .respond_not_found("pods", "x");
        let pod: Pod = expect_apply(&mut server, &paths.pod(1), 201).await;
        assert_eq!(pod.metadata.namespace.as_deref(), Some(namespace.as_str()));
        let delete = server
            .expect(Method::DELETE, &format!("/api/v1/namespaces/{namespace}"))
            .await;
        delete.respond(
            200,
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        );
        server
    };
    let (result, mut server) = tokio::join!(
        async {
            platform.create_node(&spec, &endpoints).await?;
            platform.delete_cluster_resources(cluster).await
        },
        api
    );
    result.expect("create and delete in a namespace of the cluster's own");
    server.expect_no_more();
    server.recorded()
}
