//! Changing a running cluster through the control plane, with real processes on the local
//! platform: an in-place upgrade from a broker built from an earlier commit (a real mixed-version
//! cluster during the roll), a downtime upgrade, a static and a dynamic configuration change, a
//! reboot of the active controller's broker, online volume growth, storage auto-expansion of a
//! filling volume (and KAFKA_STORAGE_ERROR from a full one), an in-place upgrade whose
//! control plane is killed with SIGKILL in the middle, and a scale-out 3 -> 6 and back 6 -> 3
//! (partitions reassigned under the replication throttle; leaving brokers emptied, drained,
//! removed and unregistered). Throughout each, an idempotent acks=all producer and a
//! consumer group run on a 3x3 topic (min.insync.replicas 2), and a checker proves that nothing
//! acknowledged was lost or duplicated.
//!
//! The scenarios run one at a time (each runs three brokers and their agents; two cores do not
//! run several clusters under load without stalls that are the machine's, not the roll's).

mod common;
mod common_cp;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common_cp::old_version::install_old_broker_version;
use common_cp::workload::{Workload, WorkloadReport};
use common_cp::{processes_mentioning, ControlPlane, Database};

const ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);
const CHANGE_TIMEOUT: Duration = Duration::from_secs(300);
const CURRENT_VERSION: &str = "millrace-0.1.0";
const TOPIC: &str = "changes";

/// One scenario at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A control plane that can run the old broker version: installed before it starts, since
/// the platform lists the installed versions once.
fn control_plane() -> (ControlPlane, String) {
    let old = install_old_broker_version();
    let control_plane = ControlPlane::start(Database::Sqlite);
    let versions = control_plane.json("GET", "/v1/versions", None, 200);
    assert!(
        versions.to_string().contains(&old),
        "the old version is not installed: {versions}"
    );
    (control_plane, old)
}

fn configuration(control_plane: &ControlPlane, name: &str, properties: &str) -> (String, i64) {
    let created = control_plane.json(
        "POST",
        "/v1/configurations",
        Some(&json!({ "name": name, "serverProperties": properties })),
        201,
    );
    (
        created["arn"].as_str().unwrap().to_owned(),
        created["latestRevision"]["revision"].as_i64().unwrap(),
    )
}

fn create_cluster(
    control_plane: &ControlPlane,
    name: &str,
    version: &str,
    configuration: Option<(&str, i64)>,
) -> String {
    let mut body = json!({
        "clusterName": name,
        "kafkaVersion": version,
        "numberOfBrokerNodes": 3,
        "brokerNodeGroupInfo": {
            "instanceType": "kafka.m5.large",
            "zones": ["zone-a", "zone-b", "zone-c"],
            "storageInfo": { "ebsStorageInfo": { "volumeSize": 10 } },
        },
    });
    if let Some((arn, revision)) = configuration {
        body["configurationInfo"] = json!({ "arn": arn, "revision": revision });
    }
    let created = control_plane.json("POST", "/v1/clusters", Some(&body), 201);
    let id = created["clusterId"].as_str().unwrap().to_owned();
    control_plane.wait_active(&id, ACTIVE_TIMEOUT);
    id
}

fn bootstrap(control_plane: &ControlPlane, cluster_id: &str) -> String {
    control_plane.json(
        "GET",
        &format!("/v1/clusters/{cluster_id}/bootstrap-brokers"),
        None,
        200,
    )["bootstrapBrokerString"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn current_version(control_plane: &ControlPlane, cluster_id: &str) -> String {
    control_plane.json("GET", &format!("/v1/clusters/{cluster_id}"), None, 200)["currentVersion"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Starts a change and returns its operation id.
fn change(control_plane: &ControlPlane, method: &str, path: &str, mut body: Value) -> String {
    let cluster_id = path.split('/').nth(3).unwrap();
    body["currentVersion"] = json!(current_version(control_plane, cluster_id));
    let started = control_plane.json(method, path, Some(&body), 200);
    started["operationId"].as_str().unwrap().to_owned()
}

fn operation(control_plane: &ControlPlane, operation_id: &str) -> Value {
    control_plane.json("GET", &format!("/v1/operations/{operation_id}"), None, 200)
}

/// The brokers' versions as the nodes report them, by broker id.
fn node_versions(control_plane: &ControlPlane, cluster_id: &str) -> BTreeMap<i64, String> {
    let nodes = control_plane.json(
        "GET",
        &format!("/v1/clusters/{cluster_id}/nodes"),
        None,
        200,
    );
    nodes["nodeInfoList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["brokerId"].as_i64().unwrap(),
                n["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Waits for the operation to complete (the cluster ACTIVE again), calling `during` on every
/// poll; panics with the operation when it fails or takes too long.
fn wait_for_operation(
    control_plane: &ControlPlane,
    cluster_id: &str,
    operation_id: &str,
    mut during: impl FnMut(&Value),
) -> Value {
    let deadline = Instant::now() + CHANGE_TIMEOUT;
    loop {
        let op = operation(control_plane, operation_id);
        during(&op);
        match op["operationState"].as_str().unwrap() {
            "UPDATE_COMPLETE" => {
                let cluster = control_plane.wait_active(cluster_id, Duration::from_secs(10));
                assert_eq!(cluster["state"], "ACTIVE");
                return op;
            }
            "UPDATE_FAILED" => panic!(
                "the operation failed: {op:#}\ncontrol plane log:\n{}",
                control_plane.log_tail()
            ),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "the operation did not finish in {CHANGE_TIMEOUT:?}: {op:#}\ncontrol plane log:\n{}",
            control_plane.log_tail()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Every step of a finished operation has its final status.
fn assert_every_step_complete(op: &Value) {
    for step in op["operationSteps"].as_array().unwrap() {
        assert_eq!(step["stepStatus"], "COMPLETE", "step {step} of {op:#}");
        assert!(step["endTime"].is_string(), "step {step} has no end time");
    }
}

/// The brokers a roll restarted, in order.
fn restarted_brokers(op: &Value) -> Vec<String> {
    op["operationSteps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["stepName"].as_str())
        .filter_map(|name| name.strip_prefix("RestartBroker broker "))
        .map(str::to_owned)
        .collect()
}

/// The active controller's broker id, as the cluster reports it.
fn active_controller(bootstrap: &str) -> i64 {
    let out = common::run_python("controller_id.py", &[bootstrap], Duration::from_secs(60))
        .assert_success()
        .stdout();
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("no controller id in {out:?}"))
}

fn report(name: &str, report: &WorkloadReport, started: Instant) {
    eprintln!(
        "{name}: {:.1} s, workload {report:?}",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn an_in_place_upgrade_from_an_older_build_loses_nothing() {
    let _serial = serial();
    let (control_plane, old) = control_plane();
    let cluster_id = create_cluster(&control_plane, "upgrade", &old, None);
    assert!(node_versions(&control_plane, &cluster_id)
        .values()
        .all(|v| *v == old));
    let workload = Workload::start(&bootstrap(&control_plane, &cluster_id), TOPIC);

    let started = Instant::now();
    let operation_id = change(
        &control_plane,
        "PUT",
        &format!("/v1/clusters/{cluster_id}/version"),
        json!({ "targetKafkaVersion": CURRENT_VERSION, "upgradeStrategy": "inPlace" }),
    );
    let mut mixed = false;
    let op = wait_for_operation(&control_plane, &cluster_id, &operation_id, |_| {
        let versions = node_versions(&control_plane, &cluster_id);
        mixed |=
            versions.values().any(|v| *v == old) && versions.values().any(|v| v == CURRENT_VERSION);
    });
    let workload = workload.stop();
    report("in-place upgrade", &workload, started);
    workload.assert_nothing_lost();
    workload.assert_no_produce_errors();
    assert!(mixed, "no mixed-version cluster was seen during the roll");
    assert_every_step_complete(&op);
    let mut restarted = restarted_brokers(&op);
    restarted.sort();
    assert_eq!(
        restarted,
        ["1", "2", "3"],
        "each broker restarted once: {op:#}"
    );
    assert_eq!(op["sourceClusterInfo"]["kafkaVersion"], old.as_str());
    assert_eq!(op["targetClusterInfo"]["kafkaVersion"], CURRENT_VERSION);
    assert!(node_versions(&control_plane, &cluster_id)
        .values()
        .all(|v| v == CURRENT_VERSION));

    // The roll-back is an upgrade to the old version, with the same safety.
    let workload = Workload::start(&bootstrap(&control_plane, &cluster_id), TOPIC);
    let operation_id = change(
        &control_plane,
        "PUT",
        &format!("/v1/clusters/{cluster_id}/version"),
        json!({ "targetKafkaVersion": old }),
    );
    wait_for_operation(&control_plane, &cluster_id, &operation_id, |_| {});
    let workload = workload.stop();
    report("roll-back", &workload, started);
    workload.assert_nothing_lost();
    workload.assert_no_produce_errors();
    assert!(node_versions(&control_plane, &cluster_id)
        .values()
        .all(|v| *v == old));
}

#[test]
fn a_downtime_upgrade_restarts_every_broker_at_once_and_loses_nothing() {
    let _serial = serial();
    let (control_plane, old) = control_plane();
    let cluster_id = create_cluster(&control_plane, "downtime", &old, None);
    let workload = Workload::start(&bootstrap(&control_plane, &cluster_id), TOPIC);
    let started = Instant::now();
    let operation_id = change(
        &control_plane,
        "PUT",
        &format!("/v1/clusters/{cluster_id}/version"),
        json!({ "targetKafkaVersion": CURRENT_VERSION, "upgradeStrategy": "downtime" }),
    );
    let op = wait_for_operation(&control_plane, &cluster_id, &operation_id, |_| {});
    let workload = workload.stop();
    report("downtime upgrade", &workload, started);
    // Producers see the outage (errors or a long stall); nothing acknowledged is lost.
    workload.assert_nothing_lost();
    assert_every_step_complete(&op);
    let steps: Vec<&str> = op["operationSteps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["stepName"].as_str())
        .collect();
    assert!(steps.contains(&"RestartAllBrokers"), "{steps:?}");
    assert!(node_versions(&control_plane, &cluster_id)
        .values()
        .all(|v| v == CURRENT_VERSION));
}

/// A cluster on configuration `name` (first revision `first`), and a second revision `second`
/// of it: (cluster id, configuration ARN, the second revision).
fn cluster_with_two_revisions(
    control_plane: &ControlPlane,
    name: &str,
    first: &str,
    second: &str,
) -> (String, String, i64) {
    let (arn, revision) = configuration(control_plane, name, first);
    let cluster_id = create_cluster(control_plane, name, CURRENT_VERSION, Some((&arn, revision)));
    let encoded = arn.replace(':', "%3A").replace('/', "%2F");
    let revised = control_plane.json(
        "PUT",
        &format!("/v1/configurations/{encoded}"),
        Some(&json!({ "serverProperties": second })),
        200,
    );
    let new_revision = revised["revision"].as_i64().unwrap();
    assert_eq!(new_revision, revision + 1);
    (cluster_id, arn, new_revision)
}

/// `name` as every broker describes it (DescribeConfigs on each broker).
fn broker_setting(bootstrap: &str, name: &str) -> BTreeMap<i64, String> {
    let out = common::run_python(
        "broker_setting.py",
        &[bootstrap, name],
        Duration::from_secs(90),
    )
    .assert_success()
    .stdout();
    out.lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(id, value)| (id.parse().unwrap(), value.to_owned()))
        .collect()
}

fn broker_command_lines(cluster_id: &str) -> Vec<String> {
    processes_mentioning(cluster_id)
        .into_iter()
        .filter_map(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok())
        .map(|cmdline| String::from_utf8_lossy(&cmdline).replace('\0', " "))
        .filter(|cmdline| {
            cmdline.contains("millrace-broker ") || cmdline.contains("/millrace-broker")
        })
        .collect()
}

#[test]
fn a_static_configuration_change_rolls_the_brokers_with_their_new_settings() {
    let _serial = serial();
    let (control_plane, _) = control_plane();
    let (cluster_id, arn, new_revision) = cluster_with_two_revisions(
        &control_plane,
        "static-settings",
        "auto.create.topics.enable=false\nlog.retention.ms=604800000\n",
        "auto.create.topics.enable=true\nlog.retention.ms=86400000\n",
    );
    let bootstrap = bootstrap(&control_plane, &cluster_id);
    let workload = Workload::start(&bootstrap, TOPIC);
    let started = Instant::now();
    let operation_id = change(
        &control_plane,
        "PUT",
        &format!("/v1/clusters/{cluster_id}/configuration"),
        json!({ "configurationInfo": { "arn": arn, "revision": new_revision } }),
    );
    let op = wait_for_operation(&control_plane, &cluster_id, &operation_id, |_| {});
    let workload = workload.stop();
    report("static configuration change", &workload, started);
    workload.assert_nothing_lost();
    workload.assert_no_produce_errors();
    assert_every_step_complete(&op);
    assert_eq!(restarted_brokers(&op).len(), 3, "{op:#}");
    // The operation says what changed and why it restarted the brokers.
    let settings = &op["settingsChange"];
    assert_eq!(
        settings["changedSettings"],
        json!(["auto.create.topics.enable", "log.retention.ms"]),
        "{op:#}"
    );
    assert_eq!(
        settings["restartRequiredBy"],
        json!(["auto.create.topics.enable"]),
        "{op:#}"
    );
    // Every broker runs with the new settings: the static one as a flag, the dynamic one as
    // the broker describes it.
    let brokers = broker_command_lines(&cluster_id);
    assert_eq!(brokers.len(), 3, "{brokers:#?}");
    for broker in &brokers {
        assert!(
            broker.contains("--auto-create-topics"),
            "an old setting: {broker}"
        );
    }
    let retention = broker_setting(&bootstrap, "log.retention.ms");
    assert_eq!(retention.len(), 3, "{retention:?}");
    assert!(retention.values().all(|v| v == "86400000"), "{retention:?}");
}

#[test]
fn a_dynamic_configuration_change_restarts_nothing() {
    let _serial = serial();
    let (control_plane, _) = control_plane();
    let (cluster_id, arn, new_revision) = cluster_with_two_revisions(
        &control_plane,
        "dynamic-settings",
        "log.retention.hours=168\nlog.segment.bytes=536870912\n",
        "log.retention.hours=24\nlog.segment.bytes=268435456\nmessage.max.bytes=2097152\n",
    );
    let bootstrap = bootstrap(&control_plane, &cluster_id);
    let agents_before = agent_pids(&control_plane, &cluster_id);
    let brokers_before = broker_command_lines(&cluster_id);
    let workload = Workload::start(&bootstrap, TOPIC);
    let started = Instant::now();
    let operation_id = change(
        &control_plane,
        "PUT",
        &format!("/v1/clusters/{cluster_id}/configuration"),
        json!({ "configurationInfo": { "arn": arn, "revision": new_revision } }),
    );
    let op = wait_for_operation(&control_plane, &cluster_id, &operation_id, |_| {});
    let workload = workload.stop();
    report("dynamic configuration change", &workload, started);
    workload.assert_nothing_lost();
    workload.assert_no_produce_errors();
    assert_every_step_complete(&op);
    assert!(restarted_brokers(&op).is_empty(), "{op:#}");
    assert_eq!(
        agent_pids(&control_plane, &cluster_id),
        agents_before,
        "an agent restarted"
    );
    assert_eq!(
        broker_command_lines(&cluster_id),
        brokers_before,
        "a broker restarted"
    );
    let settings = &op["settingsChange"];
    assert_eq!(settings["restartRequiredBy"], json!([]), "{op:#}");
    assert!(
        settings["description"]
            .as_str()
            .unwrap()
            .contains("without a restart"),
        "{op:#}"
    );
    // Every broker took them.
    let retention = broker_setting(&bootstrap, "log.retention.ms");
    assert!(
        retention.len() == 3 && retention.values().all(|v| v == "86400000"),
        "{retention:?}"
    );
    let max_message = broker_setting(&bootstrap, "message.max.bytes");
    assert!(
        max_message.values().all(|v| v == "2097152"),
        "{max_message:?}"
    );
    let segment = broker_setting(&bootstrap, "log.segment.bytes");
    assert!(segment.values().all(|v| v == "268435456"), "{segment:?}");
}

#[test]
fn a_dynamic_change_that_a_broker_version_cannot_take_fails_before_any_broker_changes() {
    let _serial = serial();
    let (control_plane, old) = control_plane();
    let (arn, revision) =
        configuration(&control_plane, "old-settings", "log.retention.hours=168\n");
    let cluster_id = create_cluster(&control_plane, "old-settings", &old, Some((&arn, revision)));
    let encoded = arn.replace(':', "%3A").replace('/', "%2F");
    let revised = control_plane.json(
        "PUT",
        &format!("/v1/configurations/{encoded}"),
        Some(&json!({ "serverProperties": "log.retention.hours=24\n" })),
        200,
    );
    let operation_id = change(
        &control_plane,
        "PUT",
        &format!("/v1/clusters/{cluster_id}/configuration"),
        json!({ "configurationInfo": { "arn": arn, "revision": revised["revision"] } }),
    );
    let deadline = Instant::now() + CHANGE_TIMEOUT;
    let op = loop {
        let op = operation(&control_plane, &operation_id);
        if op["operationState"] == "UPDATE_FAILED" {
            break op;
        }
        assert_ne!(op["operationState"], "UPDATE_COMPLETE", "{op:#}");
        assert!(Instant::now() < deadline, "{op:#}");
        std::thread::sleep(Duration::from_millis(250));
    };
    let error = op["errorInfo"].as_str().unwrap_or_default();
    assert!(
        error.contains("cannot change its settings while it runs"),
        "{op:#}"
    );
    // Refused by the first broker asked, before any broker took the settings; the cluster
    // serves on, ACTIVE.
    assert!(
        !op["operationSteps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["stepStatus"] == "COMPLETE"),
        "{op:#}"
    );
    control_plane.wait_active(&cluster_id, Duration::from_secs(30));
}

#[test]
fn rebooting_the_active_controllers_broker_gives_no_produce_error() {
    let _serial = serial();
    let (control_plane, _) = control_plane();
    let cluster_id = create_cluster(&control_plane, "reboot", CURRENT_VERSION, None);
    let bootstrap = bootstrap(&control_plane, &cluster_id);
    let workload = Workload::start(&bootstrap, TOPIC);
    let controller = active_controller(&bootstrap);
    let started = Instant::now();
    let operation_id = change(
        &control_plane,
        "POST",
        &format!("/v1/clusters/{cluster_id}/reboot-broker"),
        json!({ "brokerIds": [controller] }),
    );
    let mut rebooting = false;
    let op = wait_for_operation(&control_plane, &cluster_id, &operation_id, |_| {
        let cluster = control_plane.json("GET", &format!("/v1/clusters/{cluster_id}"), None, 200);
        rebooting |= cluster["state"] == "REBOOTING_BROKER";
    });
    let workload = workload.stop();
    report("reboot of the controller", &workload, started);
    workload.assert_nothing_lost();
    workload.assert_no_produce_errors();
    assert!(rebooting, "the cluster was never REBOOTING_BROKER");
    assert_every_step_complete(&op);
    assert_eq!(restarted_brokers(&op), [controller.to_string()], "{op:#}");
}

#[test]
fn volumes_grow_online_and_shrinking_is_refused() {
    let _serial = serial();
    let (control_plane, _) = control_plane();
    let cluster_id = create_cluster(&control_plane, "storage", CURRENT_VERSION, None);
    let workload = Workload::start(&bootstrap(&control_plane, &cluster_id), TOPIC);
    let shrink = control_plane.request(
        "PUT",
        &format!("/v1/clusters/{cluster_id}/nodes/storage"),
        Some(&json!({
            "currentVersion": current_version(&control_plane, &cluster_id),
            "targetEbsStorageInfo": { "volumeSize": 5 },
        })),
    );
    assert_eq!(shrink.0, 422, "{}", shrink.1);
    assert!(
        shrink.1.contains("targetEbsStorageInfo.volumeSize"),
        "{}",
        shrink.1
    );
    let pids_before = agent_pids(&control_plane, &cluster_id);
    let operation_id = change(
        &control_plane,
        "PUT",
        &format!("/v1/clusters/{cluster_id}/nodes/storage"),
        json!({ "targetEbsStorageInfo": { "volumeSize": 20 } }),
    );
    let op = wait_for_operation(&control_plane, &cluster_id, &operation_id, |_| {});
    let workload = workload.stop();
    workload.assert_nothing_lost();
    workload.assert_no_produce_errors();
    assert_every_step_complete(&op);
    let nodes = control_plane.json(
        "GET",
        &format!("/v1/clusters/{cluster_id}/nodes"),
        None,
        200,
    );
    for node in nodes["nodeInfoList"].as_array().unwrap() {
        assert_eq!(node["volume"]["sizeGib"], 20, "{node}");
    }
    assert_eq!(
        agent_pids(&control_plane, &cluster_id),
        pids_before,
        "a volume grows without restarting its broker"
    );
    // The broker enforces the new size: its capacity file says so.
    for broker in 1..=3 {
        let capacity = control_plane
            .platform_root()
            .join(&cluster_id)
            .join(format!("volumes/broker-{broker}/broker/capacity-bytes"));
        let bytes = std::fs::read_to_string(&capacity).unwrap();
        assert_eq!(
            bytes.trim(),
            (20u64 << 30).to_string(),
            "{}",
            capacity.display()
        );
    }
}

/// A local volume "GiB" in the storage test: small, so that volumes fill in seconds.
const SMALL_GIB: u64 = 32 * 1024 * 1024;

/// Runs fill_volume.py and returns its JSON report.
fn fill(bootstrap: &str, acked_log: &std::path::Path, mode: &[&str]) -> Value {
    let mut args = vec![bootstrap, "filling", acked_log.to_str().unwrap()];
    args.extend_from_slice(mode);
    let out = common::run_python("fill_volume.py", &args, Duration::from_secs(240))
        .assert_success()
        .stdout();
    let last = out.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn storage_operations(control_plane: &ControlPlane, cluster_id: &str) -> Vec<Value> {
    control_plane.json(
        "GET",
        &format!("/v1/clusters/{cluster_id}/operations"),
        None,
        200,
    )["clusterOperationInfoList"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|op| op["operationType"] == "UPDATE_BROKER_STORAGE")
        .cloned()
        .collect()
}

#[test]
fn a_filling_volume_grows_by_itself_and_a_full_one_refuses_writes_losing_nothing() {
    let _serial = serial();
    let gib = SMALL_GIB.to_string();
    let control_plane = ControlPlane::start_with(
        Database::Sqlite,
        &[
            "--local-volume-gib-bytes",
            &gib,
            "--storage-check-interval-secs",
            "1",
        ],
    );
    let created = control_plane.json(
        "POST",
        "/v1/clusters",
        Some(&json!({
            "clusterName": "filling",
            "numberOfBrokerNodes": 3,
            "brokerNodeGroupInfo": {
                "instanceType": "kafka.m5.large",
                "zones": ["zone-a", "zone-b", "zone-c"],
                "storageInfo": { "ebsStorageInfo": { "volumeSize": 1 } },
            },
            "storageAutoExpansion": {
                "targetUtilizationPercent": 50,
                "maxVolumeSizeGib": 2,
                "cooldownSeconds": 60,
            },
        })),
        201,
    );
    let cluster_id = created["clusterId"].as_str().unwrap().to_owned();
    let cluster = control_plane.wait_active(&cluster_id, ACTIVE_TIMEOUT);
    assert_eq!(
        cluster["storageAutoExpansion"]["maxVolumeSizeGib"], 2,
        "{cluster:#}"
    );
    let bootstrap = bootstrap(&control_plane, &cluster_id);
    let workload = Workload::start_at_rate(&bootstrap, TOPIC, 50);
    let acked = tempfile::NamedTempFile::new().unwrap();
    let started = Instant::now();

    // Past 50% of a 1 GiB volume: the control plane grows the volumes by itself.
    let filled = fill(
        &bootstrap,
        acked.path(),
        &["bytes", &(SMALL_GIB * 6 / 10).to_string()],
    );
    eprintln!("filled: {filled}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let expansion = loop {
        let automatic = storage_operations(&control_plane, &cluster_id)
            .into_iter()
            .find(|op| op["trigger"].is_string());
        if let Some(op) = automatic {
            break op;
        }
        assert!(
            Instant::now() < deadline,
            "no auto-expansion after 120 s\ncontrol plane log:\n{}",
            control_plane.log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let operation_id = expansion["operationId"].as_str().unwrap();
    let expansion = wait_for_operation(&control_plane, &cluster_id, operation_id, |_| {});
    eprintln!(
        "auto-expansion after {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        expansion["trigger"]
    );
    assert_every_step_complete(&expansion);
    assert_eq!(
        expansion["targetClusterInfo"]["brokerNodeGroupInfo"]["storageInfo"]["ebsStorageInfo"]
            ["volumeSize"],
        2,
        "{expansion:#}"
    );

    // At the maximum, a full volume refuses writes with KAFKA_STORAGE_ERROR, and no further
    // expansion happens.
    let full = fill(&bootstrap, acked.path(), &["until-full"]);
    eprintln!("until full: {full}");
    assert!(
        full["errors"]["KAFKA_STORAGE_ERROR"].as_u64().unwrap_or(0) > 0,
        "no KAFKA_STORAGE_ERROR: {full}"
    );
    assert_eq!(
        storage_operations(&control_plane, &cluster_id).len(),
        1,
        "auto-expansion went past its maximum"
    );

    // Growing the volumes by hand lets writes resume, without a restart.
    let operation_id = change(
        &control_plane,
        "PUT",
        &format!("/v1/clusters/{cluster_id}/nodes/storage"),
        json!({ "targetEbsStorageInfo": { "volumeSize": 4 } }),
    );
    wait_for_operation(&control_plane, &cluster_id, &operation_id, |_| {});
    std::thread::sleep(Duration::from_secs(2));
    let resumed = fill(
        &bootstrap,
        acked.path(),
        &["bytes", &(SMALL_GIB / 4).to_string()],
    );
    eprintln!("after growth: {resumed}");
    assert!(
        resumed["errors"].as_object().unwrap().is_empty(),
        "{resumed}"
    );

    let workload = workload.stop();
    report("storage auto-expansion", &workload, started);
    workload.assert_nothing_lost();
    let verified = fill(&bootstrap, acked.path(), &["verify"]);
    eprintln!("verified: {verified}");
    assert_eq!(
        verified["missing"], 0,
        "acknowledged records lost: {verified}"
    );
    assert!(verified["expected"].as_u64().unwrap() > 0);
}

fn agent_pids(control_plane: &ControlPlane, cluster_id: &str) -> Vec<u32> {
    (1..=3)
        .map(|broker| control_plane.agent_pid(cluster_id, broker))
        .collect()
}

#[test]
fn an_upgrade_survives_a_control_plane_kill_at_any_step() {
    let _serial = serial();
    let (mut control_plane, old) = control_plane();
    let cluster_id = create_cluster(&control_plane, "crash", &old, None);
    let workload = Workload::start(&bootstrap(&control_plane, &cluster_id), TOPIC);
    let operation_id = change(
        &control_plane,
        "PUT",
        &format!("/v1/clusters/{cluster_id}/version"),
        json!({ "targetKafkaVersion": CURRENT_VERSION }),
    );
    // A step chosen from the clock: 1 to 13 of the roll's 15 steps completed.
    let kill_after = 1
        + (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as usize
            % 13);
    let deadline = Instant::now() + CHANGE_TIMEOUT;
    loop {
        let op = operation(&control_plane, &operation_id);
        let completed = op["operationSteps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["stepStatus"] == "COMPLETE")
            .count();
        if completed >= kill_after {
            eprintln!("killing the control plane after {completed} completed steps");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the roll did not progress: {op:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    control_plane.restart();
    let op = wait_for_operation(&control_plane, &cluster_id, &operation_id, |_| {});
    let workload = workload.stop();
    workload.assert_nothing_lost();
    workload.assert_no_produce_errors();
    assert_every_step_complete(&op);
    let mut restarted = restarted_brokers(&op);
    restarted.sort();
    assert_eq!(restarted, ["1", "2", "3"], "{op:#}");
    // No broker was restarted twice: one agent stop per broker over both control planes' logs.
    let log = std::fs::read_to_string(control_plane.log_path()).unwrap();
    for broker in 1..=3 {
        let stops = log
            .lines()
            .filter(|line| line.contains("in-place restart") && line.contains("stopping"))
            .filter(|line| line.contains(&format!("broker_id={broker}")))
            .count();
        assert_eq!(stops, 1, "broker {broker} was stopped {stops} times");
    }
}

fn node_ids(control_plane: &ControlPlane, cluster_id: &str) -> Vec<i64> {
    let nodes = control_plane.json(
        "GET",
        &format!("/v1/clusters/{cluster_id}/nodes"),
        None,
        200,
    );
    let mut ids: Vec<i64> = nodes["nodeInfoList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["brokerId"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

/// Every partition's placement, as a client sees it.
fn placement(bootstrap: &str) -> Value {
    let out = common::run_python("placement.py", &[bootstrap], Duration::from_secs(60))
        .assert_success()
        .stdout();
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Replicas and preferred leaders per broker: both within one of each other over `brokers`,
/// every replica on one of them, every partition fully in sync.
fn assert_balanced(control_plane: &ControlPlane, placement: &Value, brokers: &[i64]) {
    let mut replicas: BTreeMap<i64, usize> = brokers.iter().map(|b| (*b, 0)).collect();
    let mut preferred: BTreeMap<i64, usize> = replicas.clone();
    for p in placement["partitions"].as_array().unwrap() {
        let ids: Vec<i64> = p["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_i64().unwrap())
            .collect();
        for id in &ids {
            *replicas
                .get_mut(id)
                .unwrap_or_else(|| panic!("a replica on broker {id}: {p}")) += 1;
        }
        *preferred.get_mut(&ids[0]).unwrap() += 1;
        assert_eq!(
            p["isr"].as_array().unwrap().len(),
            ids.len(),
            "not in sync: {p}"
        );
    }
    for (what, counts) in [("replicas", &replicas), ("preferred leaders", &preferred)] {
        let (min, max) = (counts.values().min(), counts.values().max());
        assert!(
            max.unwrap() - min.unwrap() <= 1,
            "{what} per broker not balanced: {counts:?}\n{placement}\ncontrol plane log:\n{}",
            control_plane.log_tail()
        );
    }
    eprintln!("replicas per broker {replicas:?}, preferred leaders {preferred:?}");
}

/// Asks for `brokers` brokers; returns the operation id.
fn scale(control_plane: &ControlPlane, cluster_id: &str, brokers: i64) -> String {
    change(
        control_plane,
        "PUT",
        &format!("/v1/clusters/{cluster_id}/nodes/count"),
        json!({
            "targetNumberOfBrokerNodes": brokers,
            "replicationThrottleBytesPerSecond": 10 << 20,
        }),
    )
}

/// Waits for a broker-count change; returns it and the last progress its MovePartitions
/// step showed.
fn wait_for_scale(
    control_plane: &ControlPlane,
    cluster_id: &str,
    operation_id: &str,
) -> (Value, Option<Value>) {
    let mut progress = None;
    let op = wait_for_operation(control_plane, cluster_id, operation_id, |op| {
        for step in op["operationSteps"].as_array().into_iter().flatten() {
            if step["stepName"] == "MovePartitions" && step["progress"].is_object() {
                progress = Some(step["progress"].clone());
            }
        }
    });
    (op, progress)
}

#[test]
fn scaling_out_to_six_and_back_to_three_moves_partitions_and_loses_nothing() {
    let _serial = serial();
    let control_plane = ControlPlane::start(Database::Sqlite);
    let cluster_id = create_cluster(&control_plane, "scaling", CURRENT_VERSION, None);
    let first_bootstrap = bootstrap(&control_plane, &cluster_id);
    let workload = Workload::start(&first_bootstrap, TOPIC);
    // More partitions than brokers, so that balance means something.
    common::run_python(
        "create_topic.py",
        &[&first_bootstrap, "spread", "12", "3"],
        Duration::from_secs(60),
    )
    .assert_success();

    // Out: three more brokers, partitions balanced over all six.
    let started = Instant::now();
    let operation_id = scale(&control_plane, &cluster_id, 6);
    let busy = control_plane.json(
        "PUT",
        &format!("/v1/clusters/{cluster_id}/nodes/count"),
        Some(&json!({
            "currentVersion": current_version(&control_plane, &cluster_id),
            "targetNumberOfBrokerNodes": 9,
        })),
        409,
    );
    assert!(busy.to_string().contains("state"), "{busy}");
    let (op, progress) = wait_for_scale(&control_plane, &cluster_id, &operation_id);
    let out_seconds = started.elapsed().as_secs_f64();
    let running = processes_mentioning(&format!("{cluster_id}/volumes/broker-4"));
    assert!(
        !running.is_empty(),
        "broker 4 runs (its volume is on its command line)"
    );
    assert_eq!(
        node_ids(&control_plane, &cluster_id),
        vec![1, 2, 3, 4, 5, 6]
    );
    let progress = progress.expect("MovePartitions showed its progress");
    assert!(progress["total"].as_u64().unwrap() > 0, "{progress}");
    assert_eq!(progress["done"], progress["total"], "{progress}");
    let grown = bootstrap(&control_plane, &cluster_id);
    assert_eq!(grown.split(',').count(), 6, "{grown}");
    let after_out = placement(&first_bootstrap);
    assert_eq!(
        after_out["brokers"],
        json!([1, 2, 3, 4, 5, 6]),
        "{after_out}"
    );
    assert_balanced(&control_plane, &after_out, &[1, 2, 3, 4, 5, 6]);
    let steps: Vec<&str> = op["operationSteps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["stepName"].as_str())
        .collect();
    eprintln!("scale-out 3 -> 6: {out_seconds:.1} s, steps {steps:?}, progress {progress}");

    // In: back to three; the leaving brokers are emptied, drained and removed.
    let started = Instant::now();
    let operation_id = scale(&control_plane, &cluster_id, 3);
    let (op, progress) = wait_for_scale(&control_plane, &cluster_id, &operation_id);
    let in_seconds = started.elapsed().as_secs_f64();
    let report = workload.stop();
    eprintln!("scale-in 6 -> 3: {in_seconds:.1} s, progress {progress:?}, workload {report:?}");
    report.assert_nothing_lost();
    report.assert_no_produce_errors();
    assert_eq!(node_ids(&control_plane, &cluster_id), vec![1, 2, 3]);
    let shrunk = bootstrap(&control_plane, &cluster_id);
    assert_eq!(shrunk.split(',').count(), 3, "{shrunk}");
    let after_in = placement(&shrunk);
    assert_eq!(after_in["brokers"], json!([1, 2, 3]), "{after_in}");
    assert_balanced(&control_plane, &after_in, &[1, 2, 3]);
    let steps = op["operationSteps"].to_string();
    for removed in 4..=6 {
        assert!(
            steps.contains(&format!("RemoveNode broker {removed}")),
            "{steps}"
        );
        // The agent's and the broker's command lines name the volume directory.
        let left = processes_mentioning(&format!("{cluster_id}/volumes/broker-{removed}"));
        assert!(
            left.is_empty(),
            "broker {removed}'s processes remain: {left:?}"
        );
    }
}

/// Each node's broker type, as the local platform recorded the node it started.
fn node_types(control_plane: &ControlPlane, cluster_id: &str) -> BTreeMap<i64, String> {
    (1..=3)
        .map(|id| {
            let path = control_plane
                .platform_root()
                .join(cluster_id)
                .join(format!("nodes/broker-{id}/node.json"));
            let record: Value = serde_json::from_str(
                &std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
            )
            .unwrap();
            (id, record["instanceType"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[test]
fn a_broker_type_change_replaces_each_node_in_turn_and_loses_nothing() {
    let _serial = serial();
    let control_plane = ControlPlane::start(Database::Sqlite);
    let cluster_id = create_cluster(&control_plane, "retyped", CURRENT_VERSION, None);
    assert!(node_types(&control_plane, &cluster_id)
        .values()
        .all(|t| t == "kafka.m5.large"));
    let workload = Workload::start(&bootstrap(&control_plane, &cluster_id), TOPIC);
    let started = Instant::now();
    let operation_id = change(
        &control_plane,
        "PUT",
        &format!("/v1/clusters/{cluster_id}/nodes/type"),
        json!({ "targetInstanceType": "kafka.m5.xlarge" }),
    );
    let op = wait_for_operation(&control_plane, &cluster_id, &operation_id, |_| {});
    let workload = workload.stop();
    report("broker type change", &workload, started);
    workload.assert_nothing_lost();
    workload.assert_no_produce_errors();
    assert_every_step_complete(&op);
    let mut restarted = restarted_brokers(&op);
    restarted.sort();
    assert_eq!(restarted, ["1", "2", "3"], "{op:#}");
    assert_eq!(
        node_types(&control_plane, &cluster_id),
        (1..=3)
            .map(|id| (id, "kafka.m5.xlarge".to_owned()))
            .collect()
    );
    let described = control_plane.json("GET", &format!("/v1/clusters/{cluster_id}"), None, 200);
    assert_eq!(
        described["brokerNodeGroupInfo"]["instanceType"], "kafka.m5.xlarge",
        "{described}"
    );
}
