//! A mock Kubernetes API server for the platform's tests, in the manner of kube-rs's
//! controller-rs fixtures: `tower_test::mock` stands in for the HTTP connection, and each
//! scenario asserts every request (method, path, query, typed body) and answers it as an API
//! server would. Every answered request is recorded, so that a test can collect the verbs and
//! resources the platform uses ([`run_all_scenarios`]) and compare them with deploy/'s RBAC.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, Pod, Secret, Service,
};
use kube::client::Body;
use kube::Client;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::names;
use super::{KubernetesPlatform, KubernetesPlatformConfig, NamespaceMode};
use crate::platform::{
    NodeEndpoints, NodePhase, NodeSpec, Platform, PlatformError, VolumeSpec, VoterAddress,
};

pub(crate) const NAMESPACE: &str = "kafka";
pub(crate) const TOKEN: &str = "mr_agent_s3cret-token";
pub(crate) const ANCHOR_UID: &str = "0b7e5c1a-anchor-uid";
const WAIT: Duration = Duration::from_secs(10);

/// One request the mock API server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
}

impl RecordedRequest {
    /// The RBAC view of the request: (verb, apiGroup, resource), e.g. ("patch", "", "pods").
    pub(crate) fn rbac_rule(&self) -> (String, String, String) {
        let segments: Vec<&str> = self.path.trim_start_matches('/').split('/').collect();
        // /api/v1/... (core group) or /apis/<group>/<version>/...
        let (group, rest) = match segments.as_slice() {
            ["api", _version, rest @ ..] => (String::new(), rest.to_vec()),
            ["apis", group, _version, rest @ ..] => (group.to_string(), rest.to_vec()),
            _ => (String::new(), Vec::new()),
        };
        // namespaces/<ns>/<resource>[/<name>] or <resource>[/<name>]
        let (resource, named) = match rest.as_slice() {
            ["namespaces", _, resource] => (resource.to_string(), false),
            ["namespaces", _, resource, _name, ..] => (resource.to_string(), true),
            [resource, _name] => (resource.to_string(), true),
            [resource] => (resource.to_string(), false),
            _ => (String::new(), false),
        };
        let watch = self.query.split('&').any(|pair| pair == "watch=true");
        let verb = match (self.method.as_str(), named) {
            ("GET", true) => "get",
            ("GET", false) if watch => "watch",
            ("GET", false) => "list",
            ("POST", _) => "create",
            ("PATCH", _) => "patch",
            ("PUT", _) => "update",
            ("DELETE", true) => "delete",
            ("DELETE", false) => "deletecollection",
            _ => "unknown",
        };
        (verb.to_string(), group, resource)
    }
}

/// A request waiting for its answer.
pub(crate) struct Incoming {
    pub method: Method,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub body: Vec<u8>,
    respond: tower_test::mock::SendResponse<Response<Body>>,
}

impl Incoming {
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} {}: body is not the expected object: {e}\n{}",
                self.method,
                self.path,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn respond(self, status: u16, body: &Value) {
        let response = Response::builder()
            .status(StatusCode::from_u16(status).expect("status code"))
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).expect("json")))
            .expect("response");
        self.respond.send_response(response);
    }

    /// The object as the API server would store it: the request's object with a uid and a
    /// resourceVersion.
    pub fn respond_with_stored(self, status: u16) {
        let mut object: Value = self.json();
        object["metadata"]["uid"] = json!(Uuid::new_v4().to_string());
        object["metadata"]["resourceVersion"] = json!("1001");
        self.respond(status, &object);
    }

    pub fn respond_not_found(self, resource: &str, name: &str) {
        self.respond(
            404,
            &status_object(404, "NotFound", &format!("{resource} \"{name}\" not found")),
        );
    }

    pub fn respond_raw(self, status: u16, body: Vec<u8>) {
        let response = Response::builder()
            .status(StatusCode::from_u16(status).expect("status code"))
            .body(Body::from(body))
            .expect("response");
        self.respond.send_response(response);
    }
}

/// A `metav1.Status` as the API server sends with errors.
pub(crate) fn status_object(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": if code < 300 { "Success" } else { "Failure" },
        "message": message,
        "reason": reason,
        "code": code,
    })
}

/// The API server side of a mock client. Requests of the platform's pod watch (list and
/// watch of pods selected by `app.kubernetes.io/managed-by`) arrive on [`Self::next_watch`],
/// all others on [`Self::next`], in the order the platform sent them.
pub(crate) struct ApiServer {
    requests: mpsc::UnboundedReceiver<Incoming>,
    watch_requests: mpsc::UnboundedReceiver<Incoming>,
    recorded: Arc<Mutex<Vec<RecordedRequest>>>,
}

fn is_pod_watch(method: &Method, path: &str, query: &BTreeMap<String, String>) -> bool {
    method == Method::GET
        && path.ends_with("/pods")
        && query.get("labelSelector").map(String::as_str) == Some(names::MANAGED_PODS_SELECTOR)
}

impl ApiServer {
    /// A client whose requests this server answers.
    pub fn start() -> (Client, ApiServer) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let (requests_tx, requests) = mpsc::unbounded_channel();
        let (watch_tx, watch_requests) = mpsc::unbounded_channel();
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let record = recorded.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let body = body.collect_bytes().await.expect("request body").to_vec();
                let path = parts.uri.path().to_string();
                let raw_query = parts.uri.query().unwrap_or("").to_string();
                let query: BTreeMap<String, String> = form_pairs(&raw_query);
                record.lock().expect("recorded").push(RecordedRequest {
                    method: parts.method.to_string(),
                    path: path.clone(),
                    query: raw_query,
                });
                let watch = is_pod_watch(&parts.method, &path, &query);
                let incoming = Incoming {
                    method: parts.method,
                    path,
                    query,
                    body,
                    respond,
                };
                let sent = if watch {
                    watch_tx.send(incoming)
                } else {
                    requests_tx.send(incoming)
                };
                if sent.is_err() {
                    break;
                }
            }
        });
        (
            client,
            ApiServer {
                requests,
                watch_requests,
                recorded,
            },
        )
    }

    pub async fn next(&mut self) -> Incoming {
        tokio::time::timeout(WAIT, self.requests.recv())
            .await
            .expect("the platform sent no further request")
            .expect("the client is gone")
    }

    pub async fn next_watch(&mut self) -> Incoming {
        tokio::time::timeout(WAIT, self.watch_requests.recv())
            .await
            .expect("the pod watch sent no further request")
            .expect("the client is gone")
    }

    /// The next request, asserted to be `method` on `path`.
    pub async fn expect(&mut self, method: Method, path: &str) -> Incoming {
        let request = self.next().await;
        assert_eq!(
            (&request.method, request.path.as_str()),
            (&method, path),
            "unexpected request (query {:?})",
            request.query
        );
        request
    }

    /// Asserts that the platform sent nothing more (the watch aside).
    pub fn expect_no_more(&mut self) {
        if let Ok(request) = self.requests.try_recv() {
            panic!("unexpected request {} {}", request.method, request.path);
        }
    }

    pub fn recorded(&self) -> Vec<RecordedRequest> {
        self.recorded.lock().expect("recorded").clone()
    }
}

fn form_pairs(query: &str) -> BTreeMap<String, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .expect("query string")
        .into_iter()
        .collect()
}

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

fn stored_anchor(cluster: Uuid) -> Value {
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

// ---------------------------------------------------------------------------------------------
// Scenarios. Each drives the platform against the mock server, asserting every request, and
// returns the requests the server answered.

/// ensure_volume then create_node of a persistent-volume broker: the claim (with the anchor
/// created first, as its owner), then ConfigMap -> Secret -> Services -> claim -> Pod.
pub(crate) async fn scenario_create_persistent_node() -> Vec<RecordedRequest> {
    let (platform, mut server) = platform();
    let cluster = Uuid::new_v4();
    let paths = Paths::new(cluster);
    let spec = node_spec(cluster, 1, VolumeSpec::Persistent { size_gib: 100 });
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
        assert_eq!(claim_spec.storage_class_name.as_deref(), Some("fast-ssd"));
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
    let spec = node_spec(cluster, 2, VolumeSpec::Persistent { size_gib: 50 });
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
        platform.ensure_volume(cluster, 1, &VolumeSpec::Persistent { size_gib: 150 }),
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
        platform.ensure_volume(cluster, 1, &VolumeSpec::Persistent { size_gib: 150 }),
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
        platform.ensure_volume(cluster, 1, &VolumeSpec::Persistent { size_gib: 50 }),
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

/// The pod watch: the initial list, then watch events (a pod becoming Running and Ready,
/// crash-looping, deleted) reach `observe` and the wake-up signal, with no request per
/// `observe`.
pub(crate) async fn scenario_watch_events_drive_observe() -> Vec<RecordedRequest> {
    let (platform, mut server) = platform();
    let cluster = Uuid::new_v4();
    let other_cluster = Uuid::new_v4();
    let changes = platform.pod_changes();

    let list = server.next_watch().await;
    assert_eq!(list.path, format!("/api/v1/namespaces/{NAMESPACE}/pods"));
    assert!(
        !list.query.contains_key("watch"),
        "first a list: {:?}",
        list.query
    );
    list.respond(
        200,
        &json!({
            "apiVersion": "v1", "kind": "PodList",
            "metadata": {"resourceVersion": "100"},
            "items": [stored_pod(other_cluster, 1, "90", running_ready_status())],
        }),
    );
    tokio::time::timeout(WAIT, changes.notified())
        .await
        .expect("woken after the list");
    assert!(
        platform.observe(cluster).await.unwrap().is_empty(),
        "another cluster's pod is not ours"
    );
    assert_eq!(platform.observe(other_cluster).await.unwrap().len(), 1);

    let events = [
        (
            "ADDED",
            stored_pod(cluster, 1, "101", json!({"phase": "Pending"})),
        ),
        (
            "MODIFIED",
            stored_pod(cluster, 1, "102", running_ready_status()),
        ),
        (
            "MODIFIED",
            stored_pod(cluster, 1, "103", crash_loop_status()),
        ),
        (
            "DELETED",
            stored_pod(cluster, 1, "104", crash_loop_status()),
        ),
    ];
    let mut expected_version = "100".to_string();
    for (kind, pod) in events {
        let watch = server.next_watch().await;
        assert_eq!(watch.query.get("watch").map(String::as_str), Some("true"));
        assert_eq!(watch.query.get("resourceVersion"), Some(&expected_version));
        expected_version = pod["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        // One event per watch response: the watcher resumes from the event's resourceVersion,
        // as it does when a real watch times out.
        let line = serde_json::to_vec(&json!({"type": kind, "object": pod})).unwrap();
        watch.respond_raw(200, line);
        tokio::time::timeout(WAIT, changes.notified())
            .await
            .expect("woken by the event");
        let observed = platform.observe(cluster).await.unwrap();
        match kind {
            "DELETED" => assert!(observed.is_empty(), "{observed:?}"),
            _ => {
                assert_eq!(observed.len(), 1);
                let node = &observed[0];
                assert_eq!(node.broker_id, 1);
                assert_eq!(node.zone, "eu-west-1b");
                assert_eq!(node.broker_version, "millrace-0.1.0");
                match expected_version.as_str() {
                    "101" => assert_eq!(node.phase, NodePhase::Pending),
                    "102" => assert_eq!((&node.phase, node.restarts), (&NodePhase::Running, 0)),
                    _ => {
                        assert!(
                            matches!(&node.phase, NodePhase::Failed(why) if why.contains("CrashLoopBackOff")),
                            "{node:?}"
                        );
                        assert_eq!(node.restarts, 3);
                        assert!(
                            node.message.contains("last exit: Error (code 1)"),
                            "{}",
                            node.message
                        );
                    }
                }
            }
        }
    }
    server.expect_no_more();
    server.recorded()
}

/// Every scenario, one after the other; the requests all of them made.
pub(crate) async fn run_all_scenarios() -> Vec<RecordedRequest> {
    let mut all = Vec::new();
    all.extend(scenario_create_persistent_node().await);
    all.extend(scenario_replaced_pod_gets_its_claim_back().await);
    all.extend(scenario_instance_store_node().await);
    all.extend(scenario_create_adopts_a_running_pod().await);
    all.extend(scenario_claim_growth().await);
    all.extend(scenario_deletes().await);
    all.extend(scenario_namespace_per_cluster().await);
    all.extend(scenario_watch_events_drive_observe().await);
    all
}
