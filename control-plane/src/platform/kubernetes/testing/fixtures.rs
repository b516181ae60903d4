//! Objects, names and settings the scenarios share.

use std::collections::BTreeMap;
use std::time::Duration;

use http::Method;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use uuid::Uuid;

use super::*;
use crate::platform::kubernetes::names;
use crate::platform::kubernetes::{KubernetesPlatform, KubernetesPlatformConfig, NamespaceMode};
use crate::platform::{NodeEndpoints, NodeSpec, Platform, VolumeSpec, VoterAddress};

/// Paths of a cluster's objects in [`NAMESPACE`].
pub(crate) struct Paths {
    pub cluster: Uuid,
    pub namespace: String,
}

impl Paths {
    pub fn new(cluster: Uuid) -> Paths {
        Paths {
            cluster,
            namespace: NAMESPACE.into(),
        }
    }

    fn core(&self, resource: &str, name: &str) -> String {
        format!("/api/v1/namespaces/{}/{resource}/{name}", self.namespace)
    }
    pub fn anchor(&self) -> String {
        self.core("configmaps", &names::anchor_name(self.cluster))
    }
    pub fn anchor_collection(&self) -> String {
        format!("/api/v1/namespaces/{}/configmaps", self.namespace)
    }
    pub fn secret(&self, broker: i32) -> String {
        self.core("secrets", &names::secret_name(self.cluster, broker))
    }
    pub fn headless(&self) -> String {
        self.core("services", &names::headless_service_name(self.cluster))
    }
    pub fn bootstrap(&self) -> String {
        self.core("services", &names::bootstrap_service_name(self.cluster))
    }
    pub fn claim(&self, broker: i32) -> String {
        self.core(
            "persistentvolumeclaims",
            &names::claim_name(self.cluster, broker),
        )
    }
    pub fn pod(&self, broker: i32) -> String {
        self.core("pods", &names::pod_name(self.cluster, broker))
    }
}

pub(crate) fn test_config(namespace: NamespaceMode) -> KubernetesPlatformConfig {
    let mut config =
        KubernetesPlatformConfig::new(namespace, "registry.example/millrace-agent:0.1.0");
    config.storage_class = Some("fast-ssd".into());
    config.installed_versions = vec!["millrace-0.1.0".into(), "millrace-0.2.0".into()];
    config.delete_poll_interval = Duration::from_millis(10);
    config.watch_sync_timeout = Duration::from_secs(5);
    config
}

/// A platform in [`NAMESPACE`] against a mock API server.
pub(crate) fn platform() -> (KubernetesPlatform, ApiServer) {
    platform_with(test_config(NamespaceMode::Shared(NAMESPACE.into())))
}

pub(crate) fn platform_with(config: KubernetesPlatformConfig) -> (KubernetesPlatform, ApiServer) {
    let (client, server) = ApiServer::start();
    let platform = KubernetesPlatform::new(client, config).expect("platform");
    (platform, server)
}

pub(crate) fn node_spec(cluster: Uuid, broker_id: i32, volume: VolumeSpec) -> NodeSpec {
    NodeSpec {
        cluster_id: cluster,
        broker_id,
        zone: "eu-west-1b".into(),
        broker_version: "millrace-0.1.0".into(),
        instance_type: "kafka.m5.large".into(),
        volume,
        broker_config: BTreeMap::from([
            ("auto.create.topics.enable".to_string(), "true".to_string()),
            ("num.partitions".to_string(), "3".to_string()),
        ]),
        voters: (1..=3)
            .map(|id| VoterAddress {
                broker_id: id,
                controller: format!(
                    "{}:{}",
                    names::broker_host(NAMESPACE, cluster, id),
                    names::CONTROLLER_PORT
                ),
            })
            .collect(),
        agent_token: TOKEN.into(),
        control_plane_url: "http://millrace.millrace-system.svc:8080".into(),
    }
}

pub(crate) async fn endpoints(
    platform: &KubernetesPlatform,
    cluster: Uuid,
    broker: i32,
) -> NodeEndpoints {
    platform
        .allocate_endpoints(cluster, &[broker])
        .await
        .expect("endpoints")
        .remove(0)
}

/// Answers a server-side apply: asserts the field manager and force, checks the body is the
/// typed object `K`, and returns it for more checks.
pub(crate) async fn expect_apply<K: DeserializeOwned>(
    server: &mut ApiServer,
    path: &str,
    status: u16,
) -> K {
    let request = server.expect(Method::PATCH, path).await;
    assert_eq!(
        request.query.get("fieldManager").map(String::as_str),
        Some("millrace"),
        "{path}"
    );
    assert_eq!(
        request.query.get("force").map(String::as_str),
        Some("true"),
        "{path}"
    );
    let object: K = request.json();
    let raw: Value = request.json();
    assert!(
        raw["apiVersion"].is_string() && raw["kind"].is_string(),
        "an apply body names its apiVersion and kind: {raw}"
    );
    let mut stored: Value = request.json();
    stored["metadata"]["uid"] = json!(if path.contains("/configmaps/") {
        ANCHOR_UID.to_string()
    } else {
        Uuid::new_v4().to_string()
    });
    stored["metadata"]["resourceVersion"] = json!("1001");
    request.respond(status, &stored);
    object
}

pub(crate) fn stored_anchor(cluster: Uuid) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": names::anchor_name(cluster),
            "namespace": NAMESPACE,
            "uid": ANCHOR_UID,
            "resourceVersion": "900",
            "labels": names::cluster_labels(cluster),
        },
    })
}

pub(crate) fn stored_claim(cluster: Uuid, broker: i32, size: &str, class: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": names::claim_name(cluster, broker),
            "namespace": NAMESPACE,
            "uid": Uuid::new_v4().to_string(),
            "resourceVersion": "950",
            "labels": names::broker_labels(cluster, broker),
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": class,
            "resources": {"requests": {"storage": size}},
            "volumeName": "pvc-5d1b8e0c",
        },
        "status": {"phase": "Bound", "capacity": {"storage": size}},
    })
}

/// A broker pod as the API server reports it, with `status`.
pub(crate) fn stored_pod(
    cluster: Uuid,
    broker: i32,
    resource_version: &str,
    status: Value,
) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": names::pod_name(cluster, broker),
            "namespace": NAMESPACE,
            "uid": format!("pod-uid-{broker}"),
            "resourceVersion": resource_version,
            "labels": names::broker_labels(cluster, broker),
            "annotations": {
                names::BROKER_VERSION_ANNOTATION: "millrace-0.1.0",
                names::ZONE_ANNOTATION: "eu-west-1b",
            },
        },
        "spec": {
            "containers": [{"name": "agent", "image": "registry.example/millrace-agent:0.1.0"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": names::claim_name(cluster, broker)}}],
        },
        "status": status,
    })
}

pub(crate) fn running_ready_status() -> Value {
    json!({
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{
            "name": "agent", "image": "registry.example/millrace-agent:0.1.0", "imageID": "sha256:1",
            "ready": true, "restartCount": 0, "started": true,
            "state": {"running": {"startedAt": "2026-11-25T18:00:00Z"}},
        }],
    })
}

pub(crate) fn crash_loop_status() -> Value {
    json!({
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "False"}],
        "containerStatuses": [{
            "name": "agent", "image": "registry.example/millrace-agent:0.1.0", "imageID": "sha256:1",
            "ready": false, "restartCount": 3, "started": false,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container=agent"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
        }],
    })
}
