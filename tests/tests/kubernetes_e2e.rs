//! Opt-in: Millrace on a real Kubernetes cluster, driven with kubectl. Installs the CRD and the
//! dev overlay (control plane + a throw-away PostgreSQL in namespace millrace-dev), applies an
//! example KafkaCluster, waits for its Ready condition, checks that its bootstrap Service answers
//! Metadata through a port-forward, produces and consumes with kcat inside the cluster, deletes
//! the KafkaCluster and waits until its pods and claims are gone.
//!
//! Ignored by default (no API server runs on our build machines). With a cluster:
//!
//! ```sh
//! export KUBECONFIG=~/.kube/config
//! cargo test -p millrace-tests --test kubernetes_e2e -- --ignored
//! ```
//!
//! It needs kubectl, kcat and curl on this machine; the images millrace/control-plane:dev and
//! millrace/broker-agent:dev where the cluster's nodes can pull them (with kind: `kind load
//! docker-image ...`); deploy/crd.yaml (`millrace crd`); a default StorageClass; and nodes
//! labelled with `topology.kubernetes.io/zone`. The kcat image run inside the cluster is
//! `edenhill/kcat:1.7.1` unless MILLRACE_E2E_KCAT_IMAGE names another (its entrypoint must be
//! kcat, with sh and seq available). See deploy/README.md.
//!
//! Why kcat runs inside the cluster: brokers advertise their per-pod DNS names (the headless
//! Service), which a client outside the cluster cannot resolve, so a port-forward reaches one
//! broker's Metadata but not the partition leaders a produce must talk to.

mod common;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use common::{free_port, kcat, run_with_timeout, RunResult};

/// The dev overlay's namespace: the control plane, PostgreSQL, and the brokers it creates.
const NAMESPACE: &str = "millrace-dev";
/// The dev overlay's admin token (deploy/overlays/dev/kustomization.yaml).
const ADMIN_TOKEN: &str = "mr_dev_only_not_a_secret";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
const MANAGED_BY_MILLRACE: &str = "app.kubernetes.io/managed-by=millrace";
/// The label the kubernetes platform puts on every object of a cluster.
const CLUSTER_ID_LABEL: &str = "millrace.dev/cluster-id";
const DEFAULT_KCAT_IMAGE: &str = "edenhill/kcat:1.7.1";

const KUBECTL_TIMEOUT: Duration = Duration::from_secs(120);
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(300);
const READY_TIMEOUT: Duration = Duration::from_secs(600);
const DELETE_TIMEOUT: Duration = Duration::from_secs(300);
const CLIENT_POD_TIMEOUT: Duration = Duration::from_secs(180);
const RECORDS: usize = 1_000;

#[test]
#[ignore = "needs KUBECONFIG: a real Kubernetes cluster with the Millrace images"]
fn ebs_style_cluster_is_created_used_and_deleted() {
    cluster_lifecycle("kafkacluster-ebs.yaml", Storage::Persistent);
}

#[test]
#[ignore = "needs KUBECONFIG: a real Kubernetes cluster with the Millrace images"]
fn instance_store_cluster_is_created_used_and_deleted() {
    cluster_lifecycle("kafkacluster-instance-store.yaml", Storage::InstanceStore);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Storage {
    Persistent,
    InstanceStore,
}

fn cluster_lifecycle(example: &str, storage: Storage) {
    // One cluster at a time: a small test cluster rarely has room for two.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty()),
        "KUBECONFIG is not set: this suite runs against a real cluster"
    );
    install_dev_overlay();

    let zones = node_zones();
    let brokers = broker_count_for(zones.len());
    let suffix = unique_suffix();
    let name = format!("e2e-{suffix}");
    let (arn, revision) = auto_create_configuration(&format!("e2e-auto-create-{suffix}"));
    let mut manifest = render_example(example);
    manifest["metadata"]["name"] = json!(name);
    manifest["metadata"]["namespace"] = json!(NAMESPACE);
    manifest["spec"]["numberOfBrokerNodes"] = json!(brokers);
    manifest["spec"]["brokerNodeGroupInfo"]["zones"] = json!(zones);
    manifest["spec"]["configurationInfo"] = json!({ "arn": arn, "revision": revision });
    let cluster = AppliedCluster::apply(&name, &manifest);

    let status = cluster.wait_ready();
    let bootstrap = bootstrap_brokers(&status);
    let cluster_id = status["clusterId"]
        .as_str()
        .unwrap_or_else(|| panic!("status.clusterId is missing: {status:#}"))
        .to_owned();
    let pods = cluster_objects("pods", &cluster_id);
    let claims = cluster_objects("persistentvolumeclaims", &cluster_id);
    assert_eq!(pods.len(), brokers, "broker pods: {pods:?}");
    match storage {
        Storage::Persistent => assert_eq!(claims.len(), brokers, "claims: {claims:?}"),
        Storage::InstanceStore => assert!(claims.is_empty(), "claims: {claims:?}"),
    }

    metadata_through_port_forward(&bootstrap, brokers);
    let topic = format!("e2e-{suffix}");
    let produced = produce_in_cluster(&bootstrap, &topic, &suffix);
    let consumed = consume_in_cluster(&bootstrap, &topic, &suffix);
    assert_eq!(
        consumed, produced,
        "the records read back differ from those written"
    );

    cluster.delete_and_wait();
    wait_until_gone("pods", &cluster_id);
    wait_until_gone("persistentvolumeclaims", &cluster_id);
}

/// 3 brokers, or the next multiple of the number of zones.
fn broker_count_for(zones: usize) -> usize {
    3_usize.div_ceil(zones) * zones
}

fn unique_suffix() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    format!("{}", now.as_secs() % 1_000_000)
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .join("deploy")
}

fn kubectl(args: &[&str]) -> RunResult {
    run_with_timeout(Command::new("kubectl").args(args), None, KUBECTL_TIMEOUT)
}

fn kubectl_with_input(args: &[&str], input: &[u8]) -> RunResult {
    run_with_timeout(
        Command::new("kubectl").args(args),
        Some(input),
        KUBECTL_TIMEOUT,
    )
}

fn kubectl_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let run = kubectl(&all).assert_success();
    serde_json::from_str(&run.stdout())
        .unwrap_or_else(|e| panic!("kubectl printed no JSON ({e})\n{}", run.report()))
}

/// The CRD first (kustomize cannot put it into an overlay below deploy/), then the dev overlay;
/// waits for PostgreSQL and the control plane. Once per test process.
fn install_dev_overlay() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let deploy = deploy_dir();
        let crd = deploy.join("crd.yaml");
        assert!(
            crd.is_file(),
            "{} is missing: generate it with `millrace crd`",
            crd.display()
        );
        kubectl(&["apply", "-f", &crd.to_string_lossy()]).assert_success();
        kubectl(&[
            "wait",
            "--for=condition=Established",
            "crd/kafkaclusters.millrace.dev",
            "--timeout=60s",
        ])
        .assert_success();
        kubectl(&[
            "apply",
            "-k",
            &deploy.join("overlays/dev").to_string_lossy(),
        ])
        .assert_success();
        for deployment in ["postgres", "millrace-control-plane"] {
            run_with_timeout(
                Command::new("kubectl").args([
                    "-n",
                    NAMESPACE,
                    "rollout",
                    "status",
                    &format!("deployment/{deployment}"),
                    &format!("--timeout={}s", ROLLOUT_TIMEOUT.as_secs()),
                ]),
                None,
                ROLLOUT_TIMEOUT + Duration::from_secs(10),
            )
            .assert_success();
        }
    });
}

/// The distinct zone labels of the nodes, at most 3.
fn node_zones() -> Vec<String> {
    let nodes = kubectl_json(&["get", "nodes"]);
    let zones: BTreeSet<String> = nodes["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|node| node["metadata"]["labels"][ZONE_LABEL].as_str())
        .map(str::to_owned)
        .collect();
    assert!(
        !zones.is_empty(),
        "no node has a {ZONE_LABEL} label; brokers are placed by zone. Label them, e.g. \
         kubectl label node <node> {ZONE_LABEL}=zone-a"
    );
    zones.into_iter().take(3).collect()
}

/// A port-forward kept open while this value lives.
struct PortForward {
    child: Child,
    local: SocketAddr,
}

impl PortForward {
    fn open(namespace: &str, target: &str, remote_port: u16) -> PortForward {
        let port = free_port();
        let child = Command::new("kubectl")
            .args([
                "-n",
                namespace,
                "port-forward",
                target,
                &format!("{port}:{remote_port}"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run kubectl port-forward: {e}"));
        let mut forward = PortForward {
            child,
            local: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect_timeout(&forward.local, Duration::from_secs(1)).is_ok() {
                return forward;
            }
            if let Ok(Some(status)) = forward.child.try_wait() {
                panic!("kubectl port-forward {target} exited ({status})");
            }
            assert!(
                Instant::now() < deadline,
                "kubectl port-forward {target} did not listen on {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A configuration that lets producers create their topic (kcat cannot create topics), made
/// through the REST API: (arn, revision).
fn auto_create_configuration(name: &str) -> (String, i64) {
    let forward = PortForward::open(NAMESPACE, "service/millrace-control-plane", 8080);
    let body = json!({
        "name": name,
        "serverProperties": "auto.create.topics.enable=true\nnum.partitions=3\n",
    });
    let run = run_with_timeout(
        Command::new("curl").args([
            "-sS",
            "-X",
            "POST",
            "-H",
            &format!("Authorization: Bearer {ADMIN_TOKEN}"),
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &body.to_string(),
            "-w",
            "\n%{http_code}",
            &format!("http://{}/v1/configurations", forward.local),
        ]),
        None,
        Duration::from_secs(30),
    )
    .assert_success();
    let stdout = run.stdout();
    let (answer, status) = stdout
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("curl printed no status\n{}", run.report()));
    assert_eq!(status.trim(), "201", "creating the configuration: {answer}");
    let created: Value = serde_json::from_str(answer).expect("a JSON answer");
    (
        created["arn"].as_str().expect("arn").to_owned(),
        created["latestRevision"]["revision"]
            .as_i64()
            .expect("latestRevision.revision"),
    )
}

/// The example manifest as JSON, read by kubectl itself (no YAML parser in this crate).
fn render_example(example: &str) -> Value {
    let path = deploy_dir().join("examples").join(example);
    kubectl_json(&["create", "--dry-run=client", "-f", &path.to_string_lossy()])
}

/// Names of the objects of `kind` that Millrace made for the cluster (by its labels).
fn cluster_objects(kind: &str, cluster_id: &str) -> Vec<String> {
    let selector = format!("{MANAGED_BY_MILLRACE},{CLUSTER_ID_LABEL}={cluster_id}");
    let list = kubectl_json(&["-n", NAMESPACE, "get", kind, "-l", &selector]);
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["metadata"]["name"].as_str())
        .map(str::to_owned)
        .collect()
}

/// The KafkaCluster this test applied; deleted (without waiting) if the test fails first.
struct AppliedCluster {
    name: String,
    deleted: bool,
}

impl AppliedCluster {
    fn apply(name: &str, manifest: &Value) -> AppliedCluster {
        kubectl_with_input(&["apply", "-f", "-"], manifest.to_string().as_bytes()).assert_success();
        AppliedCluster {
            name: name.to_owned(),
            deleted: false,
        }
    }

    fn get(&self) -> Option<Value> {
        let run = kubectl(&[
            "-n",
            NAMESPACE,
            "get",
            "kafkacluster",
            &self.name,
            "-o",
            "json",
        ]);
        if run.succeeded() {
            return Some(serde_json::from_str(&run.stdout()).expect("kubectl printed JSON"));
        }
        assert!(
            run.stderr().contains("NotFound"),
            "kubectl get kafkacluster failed\n{}",
            run.report()
        );
        None
    }

    /// Waits for the Ready condition; returns the status then. Fails at once on state FAILED.
    fn wait_ready(&self) -> Value {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            let object = self
                .get()
                .unwrap_or_else(|| panic!("kafkacluster {} vanished", self.name));
            let status = object["status"].clone();
            let ready = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            if ready {
                return status;
            }
            assert_ne!(
                status["state"], "FAILED",
                "kafkacluster {} failed: {status:#}",
                self.name
            );
            last = status;
            std::thread::sleep(Duration::from_secs(5));
        }
        panic!(
            "kafkacluster {} was not Ready within {READY_TIMEOUT:?}; last status: {last:#}",
            self.name
        );
    }

    /// `kubectl delete`, then waits until the finalizer let the object go.
    fn delete_and_wait(mut self) {
        kubectl(&[
            "-n",
            NAMESPACE,
            "delete",
            "kafkacluster",
            &self.name,
            "--wait=false",
        ])
        .assert_success();
        self.deleted = true;
        let deadline = Instant::now() + DELETE_TIMEOUT;
        while let Some(object) = self.get() {
            assert!(
                Instant::now() < deadline,
                "kafkacluster {} still exists {DELETE_TIMEOUT:?} after its deletion: {:#}",
                self.name,
                object["status"]
            );
            std::thread::sleep(Duration::from_secs(3));
        }
    }
}

impl Drop for AppliedCluster {
    fn drop(&mut self) {
        if !self.deleted {
            let _ = kubectl(&[
                "-n",
                NAMESPACE,
                "delete",
                "kafkacluster",
                &self.name,
                "--wait=false",
            ]);
        }
    }
}

/// The status's bootstrap broker string (`host:port,...`; a list is joined).
fn bootstrap_brokers(status: &Value) -> String {
    let bootstrap = match &status["bootstrapBrokers"] {
        Value::String(text) => text.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        other => panic!("status.bootstrapBrokers is {other}: {status:#}"),
    };
    assert!(!bootstrap.is_empty(), "no bootstrap brokers: {status:#}");
    bootstrap
}

/// The first bootstrap address as a port-forward target: `<name>.<namespace>.svc...:<port>`
/// names a Service (the bootstrap Service) or a pod of the headless Service.
fn port_forward_target(bootstrap: &str) -> (String, String, u16) {
    let first = bootstrap.split(',').next().unwrap_or_default();
    let (host, port) = first
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{first:?} is not host:port"));
    let port: u16 = port.parse().unwrap_or_else(|e| panic!("{first:?}: {e}"));
    let labels: Vec<&str> = host.split('.').collect();
    assert!(labels.len() >= 2, "{host:?} is not a cluster DNS name");
    let (name, namespace) = (labels[0], labels[1]);
    if kubectl(&["-n", namespace, "get", "service", name]).succeeded() {
        return (format!("service/{name}"), namespace.to_owned(), port);
    }
    // <pod>.<headless service>.<namespace>.svc
    assert!(labels.len() >= 3, "{host:?} names no Service and no pod");
    (format!("pod/{name}"), labels[2].to_owned(), port)
}

/// kcat's Metadata request through a port-forward: the bootstrap answers with every broker.
fn metadata_through_port_forward(bootstrap: &str, brokers: usize) {
    let (target, namespace, port) = port_forward_target(bootstrap);
    let forward = PortForward::open(&namespace, &target, port);
    let run = kcat(
        &["-b", &forward.local.to_string(), "-L", "-J", "-m", "15"],
        None,
        Duration::from_secs(30),
    )
    .assert_success();
    let metadata: Value = serde_json::from_str(&run.stdout())
        .unwrap_or_else(|e| panic!("kcat -L -J printed no JSON ({e})\n{}", run.report()));
    let listed = metadata["brokers"].as_array().map_or(0, Vec::len);
    assert_eq!(listed, brokers, "metadata through {target}: {metadata:#}");
}

fn kcat_image() -> String {
    std::env::var("MILLRACE_E2E_KCAT_IMAGE").unwrap_or_else(|_| DEFAULT_KCAT_IMAGE.to_owned())
}

/// Runs a kcat pod to completion in the namespace; returns its log. Fails unless it succeeded.
fn run_client_pod(name: &str, command: &[&str]) -> String {
    kubectl(
        &[
            "-n",
            NAMESPACE,
            "run",
            name,
            "--image",
            &kcat_image(),
            "--restart=Never",
            "--command",
            "--",
        ]
        .iter()
        .copied()
        .chain(command.iter().copied())
        .collect::<Vec<_>>(),
    )
    .assert_success();
    let deadline = Instant::now() + CLIENT_POD_TIMEOUT;
    let phase = loop {
        let pod = kubectl_json(&["-n", NAMESPACE, "get", "pod", name]);
        let phase = pod["status"]["phase"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if phase == "Succeeded" || phase == "Failed" {
            break phase;
        }
        assert!(
            Instant::now() < deadline,
            "client pod {name} still {phase:?} after {CLIENT_POD_TIMEOUT:?}: {:#}",
            pod["status"]
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    let logs = kubectl(&["-n", NAMESPACE, "logs", name]).assert_success();
    let _ = kubectl(&["-n", NAMESPACE, "delete", "pod", name, "--wait=false"]);
    assert_eq!(phase, "Succeeded", "client pod {name}\n{}", logs.report());
    logs.stdout()
}

/// Produces RECORDS numbered records with acks=all from inside the cluster; returns them.
fn produce_in_cluster(bootstrap: &str, topic: &str, suffix: &str) -> Vec<String> {
    let script = format!(
        "seq 1 {RECORDS} | sed 's/^/record-/' | kcat -b {bootstrap} -P -t {topic} -X acks=all"
    );
    run_client_pod(&format!("e2e-produce-{suffix}"), &["sh", "-c", &script]);
    (1..=RECORDS).map(|i| format!("record-{i}")).collect()
}

/// Reads the topic from the beginning to its end from inside the cluster, sorted (partitions
/// interleave).
fn consume_in_cluster(bootstrap: &str, topic: &str, suffix: &str) -> Vec<String> {
    let log = run_client_pod(
        &format!("e2e-consume-{suffix}"),
        &[
            "kcat",
            "-b",
            bootstrap,
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
        ],
    );
    let mut records: Vec<String> = log.lines().map(str::to_owned).collect();
    records.sort_by_key(|r| {
        r.strip_prefix("record-")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(usize::MAX)
    });
    records
}

fn wait_until_gone(kind: &str, cluster_id: &str) {
    let deadline = Instant::now() + DELETE_TIMEOUT;
    loop {
        let left = cluster_objects(kind, cluster_id);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{kind} still there {DELETE_TIMEOUT:?} after the KafkaCluster went: {left:?}"
        );
        std::thread::sleep(Duration::from_secs(3));
    }
}

/// The kinds `kubectl kustomize` renders from a kustomization under deploy/.
fn kustomize_kinds(relative: &str) -> Vec<String> {
    let dir = deploy_dir().join(relative);
    let run = kubectl(&["kustomize", &dir.to_string_lossy()]).assert_success();
    run.stdout()
        .lines()
        .filter_map(|line| line.strip_prefix("kind: "))
        .map(str::to_owned)
        .collect()
}

/// kustomize's own rules (files only from inside a kustomization's directory, no cycles, name
/// references to generated Secrets), checked offline: no cluster needed, only kubectl.
#[test]
#[ignore = "needs kubectl (offline: kubectl kustomize)"]
fn kustomizations_build() {
    let base = kustomize_kinds("base");
    for kind in [
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
    ] {
        assert!(
            base.iter().any(|k| k == kind),
            "base has no {kind}: {base:?}"
        );
    }
    let dev = kustomize_kinds("overlays/dev");
    assert_eq!(
        dev.iter().filter(|k| *k == "Secret").count(),
        2,
        "the dev overlay generates the database and admin-token Secrets: {dev:?}"
    );
    let per_cluster = kustomize_kinds("overlays/namespace-per-cluster");
    assert_eq!(
        per_cluster
            .iter()
            .filter(|k| *k == "ClusterRoleBinding")
            .count(),
        2,
        "the namespace-per-cluster component binds its ClusterRole: {per_cluster:?}"
    );
    assert!(
        deploy_dir().join("crd.yaml").is_file(),
        "deploy/crd.yaml: run `millrace crd`"
    );
    let everything = kustomize_kinds(".");
    assert!(
        everything.iter().any(|k| k == "CustomResourceDefinition"),
        "deploy/ renders no CRD: {everything:?}"
    );
}

#[test]
fn broker_counts_are_multiples_of_the_zones() {
    assert_eq!(broker_count_for(1), 3);
    assert_eq!(broker_count_for(2), 4);
    assert_eq!(broker_count_for(3), 3);
}

#[test]
fn bootstrap_lists_are_read_as_strings_or_arrays() {
    assert_eq!(
        bootstrap_brokers(&json!({ "bootstrapBrokers": "a:9092,b:9092" })),
        "a:9092,b:9092"
    );
    assert_eq!(
        bootstrap_brokers(&json!({ "bootstrapBrokers": ["a:9092", "b:9092"] })),
        "a:9092,b:9092"
    );
}
