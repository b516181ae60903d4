//! The control plane end to end, over HTTP only: `millrace serve` with the local platform
//! creates a 3-broker cluster, kcat produces and consumes through its bootstrap brokers, a
//! kill -9'd broker-agent is healed with its data, a control plane killed in the middle of a
//! create finishes it with exactly 3 agents after restarting, and a delete leaves no process and
//! no directory behind. Each scenario runs against SQLite and against PostgreSQL.

mod common;
mod common_cp;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::kcat;
use common_cp::{brokers_replicate, processes_mentioning, ControlPlane, Database};

const ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);
const RECORDS: usize = 10_000;
const TOPIC: &str = "events";

/// A configuration that lets producers create their topic (kcat cannot create topics).
fn auto_create_configuration(control_plane: &ControlPlane) -> (String, i64) {
    let created = control_plane.json(
        "POST",
        "/v1/configurations",
        Some(&json!({
            "name": "e2e-auto-create",
            "serverProperties": "auto.create.topics.enable=true\nnum.partitions=3\n",
        })),
        201,
    );
    (
        created["arn"].as_str().unwrap().to_owned(),
        created["latestRevision"]["revision"].as_i64().unwrap(),
    )
}

fn create_cluster(control_plane: &ControlPlane, name: &str, persistent: bool) -> String {
    let (arn, revision) = auto_create_configuration(control_plane);
    let storage = if persistent {
        json!({ "ebsStorageInfo": { "volumeSize": 10 } })
    } else {
        json!({ "instanceStorageInfo": {} })
    };
    let created = control_plane.json(
        "POST",
        "/v1/clusters",
        Some(&json!({
            "clusterName": name,
            "numberOfBrokerNodes": 3,
            "brokerNodeGroupInfo": {
                "instanceType": "kafka.m5.large",
                "zones": ["zone-a", "zone-b", "zone-c"],
                "storageInfo": storage,
            },
            "configurationInfo": { "arn": arn, "revision": revision },
        })),
        201,
    );
    assert_eq!(created["state"], "CREATING", "{created}");
    created["clusterId"].as_str().unwrap().to_owned()
}

fn bootstrap_brokers(control_plane: &ControlPlane, cluster_id: &str) -> String {
    let answer = control_plane.json(
        "GET",
        &format!("/v1/clusters/{cluster_id}/bootstrap-brokers"),
        None,
        200,
    );
    answer["bootstrapBrokerString"].as_str().unwrap().to_owned()
}

/// Where the test's records go. With a replicated broker cluster that is the whole bootstrap
/// string; until the brokers replicate, each broker is a cluster of its own, so the records go
/// to one broker (the first) and the other two only prove they serve metadata.
fn data_brokers(bootstrap: &str) -> String {
    if brokers_replicate() {
        bootstrap.to_owned()
    } else {
        bootstrap.split(',').next().unwrap().to_owned()
    }
}

fn records() -> Vec<String> {
    (0..RECORDS).map(|i| format!("record-{i:05}")).collect()
}

/// `acks=all` unless MILLRACE_E2E_ACKS says otherwise (e.g. `1` to exercise the control plane
/// while the brokers' followers cannot yet join the ISR).
fn acks() -> String {
    format!(
        "acks={}",
        std::env::var("MILLRACE_E2E_ACKS").unwrap_or_else(|_| "all".into())
    )
}

fn produce(brokers: &str) {
    let input = records().join("\n") + "\n";
    kcat(
        &["-b", brokers, "-P", "-t", TOPIC, "-X", &acks()],
        Some(input.as_bytes()),
        Duration::from_secs(60),
    )
    .assert_success();
}

/// Reads the topic from the beginning; retried while the brokers settle (e.g. after a heal).
fn assert_consumes_everything(brokers: &str) {
    let expected: BTreeSet<String> = records().into_iter().collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = kcat(
            &[
                "-b",
                brokers,
                "-C",
                "-t",
                TOPIC,
                "-o",
                "beginning",
                "-e",
                "-q",
            ],
            None,
            Duration::from_secs(60),
        );
        let got: BTreeSet<String> = run.stdout().lines().map(str::to_owned).collect();
        if run.succeeded() && got == expected {
            assert_eq!(
                run.stdout().lines().count(),
                RECORDS,
                "duplicates were read"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "consumed {} of {RECORDS} records\n{}",
            got.intersection(&expected).count(),
            run.report()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn assert_metadata_lists_every_broker(bootstrap: &str) {
    for broker in bootstrap.split(',') {
        let run = kcat(
            &["-b", broker, "-L", "-m", "10"],
            None,
            Duration::from_secs(20),
        )
        .assert_success();
        assert!(
            run.stdout().contains(&format!("at {broker}")),
            "kcat -L on {broker} does not list it\n{}",
            run.report()
        );
    }
}

fn operations(control_plane: &ControlPlane, cluster_id: &str) -> Vec<Value> {
    let list = control_plane.json(
        "GET",
        &format!("/v1/clusters/{cluster_id}/operations"),
        None,
        200,
    );
    list["clusterOperationInfoList"].as_array().unwrap().clone()
}

fn nodes(control_plane: &ControlPlane, cluster_id: &str) -> Vec<Value> {
    let list = control_plane.json(
        "GET",
        &format!("/v1/clusters/{cluster_id}/nodes"),
        None,
        200,
    );
    list["nodeInfoList"].as_array().unwrap().clone()
}

/// Live `millrace-agent` processes of the cluster.
fn agents_of(cluster_id: &str) -> Vec<u32> {
    processes_mentioning(cluster_id)
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "millrace-agent")
        })
        .collect()
}

/// DELETE, then the cluster disappears with every process and directory of it.
fn delete_and_check_nothing_is_left(control_plane: &ControlPlane, cluster_id: &str) {
    let deleted = control_plane.json("DELETE", &format!("/v1/clusters/{cluster_id}"), None, 200);
    assert_eq!(deleted["state"], "DELETING", "{deleted}");
    control_plane.wait_cluster(cluster_id, Duration::from_secs(90), "gone", |status, _| {
        status == 404
    });
    let left = processes_mentioning(cluster_id);
    assert!(left.is_empty(), "processes left after delete: {left:?}");
    let cluster_dir = control_plane.platform_root().join(cluster_id);
    assert!(
        !cluster_dir.exists(),
        "{} (nodes, instance-store and persistent volumes) is left after delete",
        cluster_dir.display()
    );
    let operation_id = deleted["operationId"].as_str().unwrap();
    let delete = control_plane.json("GET", &format!("/v1/operations/{operation_id}"), None, 200);
    assert_eq!(delete["operationState"], "UPDATE_COMPLETE", "{delete}");
}

/// Create, produce/consume 10,000 records, list nodes and operations, heal a kill -9'd agent
/// with its data, delete.
fn cluster_lifecycle(database: Database) {
    let control_plane = ControlPlane::start(database);
    let started = Instant::now();
    let cluster_id = create_cluster(&control_plane, "orders", true);
    let active = control_plane.wait_active(&cluster_id, ACTIVE_TIMEOUT);
    eprintln!("ACTIVE after {:?}: {active}", started.elapsed());

    let bootstrap = bootstrap_brokers(&control_plane, &cluster_id);
    assert_eq!(bootstrap.split(',').count(), 3, "{bootstrap}");
    assert_metadata_lists_every_broker(&bootstrap);
    let brokers = data_brokers(&bootstrap);
    produce(&brokers);
    assert_consumes_everything(&brokers);

    let listed = nodes(&control_plane, &cluster_id);
    assert_eq!(listed.len(), 3, "{listed:?}");
    let zones: BTreeSet<&str> = listed.iter().map(|n| n["zone"].as_str().unwrap()).collect();
    assert_eq!(zones.len(), 3, "one broker per zone: {listed:?}");
    for node in &listed {
        assert_eq!(node["state"], "RUNNING", "{node}");
        assert_eq!(node["volume"]["persistent"], true, "{node}");
    }
    let history = operations(&control_plane, &cluster_id);
    let create = history
        .iter()
        .find(|op| op["operationType"] == "CREATE")
        .expect("a CREATE operation");
    assert_eq!(create["operationState"], "UPDATE_COMPLETE", "{create}");
    let steps: Vec<&str> = create["operationSteps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stepName"].as_str().unwrap())
        .collect();
    for step in [
        "AllocateNodes",
        "CreateNode broker 3",
        "WaitForBrokers",
        "MarkActive",
    ] {
        assert!(steps.contains(&step), "no {step} step in {steps:?}");
    }

    // kill -9 the agent of the broker holding the records (its broker dies with it).
    let victim = control_plane.agent_pid(&cluster_id, 1);
    common_cp::kill9_pid(victim);
    control_plane.wait_cluster(
        &cluster_id,
        Duration::from_secs(60),
        "HEALING or healed",
        |_, _| {
            operations(&control_plane, &cluster_id)
                .iter()
                .any(|op| op["operationType"] == "HEAL")
        },
    );
    control_plane.wait_cluster(&cluster_id, ACTIVE_TIMEOUT, "healed", |status, cluster| {
        status == 200
            && cluster["state"] == "ACTIVE"
            && operations(&control_plane, &cluster_id).iter().any(|op| {
                op["operationType"] == "HEAL" && op["operationState"] == "UPDATE_COMPLETE"
            })
    });
    assert_ne!(control_plane.agent_pid(&cluster_id, 1), victim);
    assert_eq!(
        agents_of(&cluster_id).len(),
        3,
        "three agents after the heal"
    );
    // The persistent volume came back with the replacement: nothing was lost.
    assert_consumes_everything(&brokers);

    delete_and_check_nothing_is_left(&control_plane, &cluster_id);
}

/// kill -9 the control plane while a create is under way; the restarted one finishes it with
/// exactly three agents (none duplicated, none lost), then deletes it.
fn create_survives_a_control_plane_crash(database: Database) {
    let mut control_plane = ControlPlane::start(database);
    let cluster_id = create_cluster(&control_plane, "crashy", false);
    // Wait until the create has started a node but is not done.
    control_plane.wait_cluster(
        &cluster_id,
        Duration::from_secs(60),
        "starting nodes",
        |_, _| {
            nodes(&control_plane, &cluster_id)
                .iter()
                .any(|n| n["state"] == "STARTING")
        },
    );
    let state_at_crash =
        control_plane.json("GET", &format!("/v1/clusters/{cluster_id}"), None, 200);
    control_plane.kill9();
    eprintln!(
        "control plane killed with the cluster {}",
        state_at_crash["state"]
    );
    assert_eq!(
        state_at_crash["state"], "CREATING",
        "the crash came too late"
    );

    control_plane.restart();
    control_plane.wait_active(&cluster_id, ACTIVE_TIMEOUT);
    // Agents of a crashed control plane are adopted, not duplicated.
    std::thread::sleep(Duration::from_secs(2));
    let agents = agents_of(&cluster_id);
    assert_eq!(agents.len(), 3, "agents after the restart: {agents:?}");
    let bootstrap = bootstrap_brokers(&control_plane, &cluster_id);
    assert_metadata_lists_every_broker(&bootstrap);
    for node in nodes(&control_plane, &cluster_id) {
        assert_eq!(node["volume"]["persistent"], false, "{node}");
    }
    delete_and_check_nothing_is_left(&control_plane, &cluster_id);
}

#[test]
fn cluster_lifecycle_on_sqlite() {
    cluster_lifecycle(Database::Sqlite);
}

#[test]
fn cluster_lifecycle_on_postgres() {
    cluster_lifecycle(Database::Postgres);
}

#[test]
fn create_survives_a_control_plane_crash_on_sqlite() {
    create_survives_a_control_plane_crash(Database::Sqlite);
}

#[test]
fn create_survives_a_control_plane_crash_on_postgres() {
    create_survives_a_control_plane_crash(Database::Postgres);
}
