//! The local platform with the real `millrace-agent` and `millrace-broker` binaries, and kcat as
//! the client: volumes across node replacement, adoption by a second platform instance on the
//! same root (a restarted control plane), and a clean deletion.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use uuid::Uuid;

use super::agents;
use super::{LocalPlatform, LocalPlatformConfig};
use crate::platform::{NodeEndpoints, NodePhase, NodeSpec, Platform, PlatformError, VolumeSpec};

const WAIT: Duration = Duration::from_secs(30);

/// The directory holding freshly built `millrace-agent` and `millrace-broker`.
fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test executable's path");
        // The workspace is this crate's parent (the target dir may live anywhere, e.g. under
        // CARGO_TARGET_DIR); the binaries land next to `target/<profile>/deps/<test>`.
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("control-plane lives in the workspace");
        let mut build = Command::new(env!("CARGO"));
        build
            .args([
                "build",
                "-p",
                "millrace-broker",
                "-p",
                "millrace-broker-agent",
            ])
            .current_dir(workspace);
        if exe.components().any(|c| c.as_os_str() == "release") {
            build.arg("--release");
        }
        let output = build.output().expect("running cargo build");
        assert!(
            output.status.success(),
            "cargo build failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        assert!(dir.join("millrace-agent").is_file());
        dir
    })
}

struct Fixture {
    root: TempDir,
    config: LocalPlatformConfig,
    cluster_id: Uuid,
}

impl Fixture {
    /// Each test gets its own port range: tests run in parallel with separate roots.
    fn new(first_port: u16) -> Fixture {
        crate::platform::install_tls_provider();
        let root = tempfile::Builder::new()
            .prefix("millrace-local-platform-")
            .tempdir()
            .unwrap();
        let mut config = LocalPlatformConfig::new(root.path().join("local-platform"), bin_dir());
        config.port_range = first_port..first_port + 200;
        config.stop_timeout = Duration::from_secs(20);
        config.broker_stop_timeout = Duration::from_secs(10);
        Fixture {
            root,
            config,
            cluster_id: Uuid::new_v4(),
        }
    }

    fn platform(&self) -> LocalPlatform {
        LocalPlatform::new(self.config.clone()).expect("the local platform starts")
    }

    fn spec(&self, platform: &LocalPlatform, broker_id: i32, volume: VolumeSpec) -> NodeSpec {
        NodeSpec {
            cluster_id: self.cluster_id,
            broker_id,
            zone: format!("zone-{}", broker_id % 3),
            // The built broker (an older one the end-to-end tests install may sort first).
            broker_version: platform
                .installed_versions()
                .into_iter()
                .find(|v| v == "millrace-0.1.0")
                .expect("the built broker is installed"),
            instance_type: "local.small".into(),
            volume,
            broker_config: BTreeMap::from([(
                "auto.create.topics.enable".to_string(),
                "true".to_string(),
            )]),
            voters: Vec::new(),
            agent_token: String::new(),
            control_plane_url: String::new(),
        }
    }

    fn cluster_dir(&self) -> PathBuf {
        self.config.root_dir.join(self.cluster_id.to_string())
    }

    fn agent_pid(&self, broker_id: i32) -> u32 {
        let path = self
            .cluster_dir()
            .join(format!("nodes/broker-{broker_id}/node.json"));
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        record["agentPid"].as_u64().unwrap() as u32
    }

    fn agent_log(&self, broker_id: i32) -> String {
        std::fs::read_to_string(
            self.cluster_dir()
                .join(format!("nodes/broker-{broker_id}/agent.log")),
        )
        .unwrap_or_default()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Leave no process behind, whatever the test did.
        for (pid, _) in agents::find_agents(self.cluster_id, None) {
            agents::signal(-(pid as i32), libc::SIGKILL);
        }
        let _ = &self.root;
    }
}

async fn wait_phase(fixture: &Fixture, platform: &LocalPlatform, broker_id: i32, want: NodePhase) {
    let deadline = Instant::now() + WAIT;
    loop {
        let observed = platform.observe(fixture.cluster_id).await.unwrap();
        let node = observed.iter().find(|n| n.broker_id == broker_id);
        if node.is_some_and(|n| n.phase == want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "broker {broker_id} never reached {want:?}: {observed:?}\nagent log:\n{}",
            fixture.agent_log(broker_id)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn kcat(args: Vec<String>, input: Option<&'static str>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new("timeout")
            .arg("30")
            .arg("kcat")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running kcat");
        let mut stdin = child.stdin.take().unwrap();
        if let Some(input) = input {
            std::io::Write::write_all(&mut stdin, input.as_bytes()).unwrap();
        }
        drop(stdin);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

async fn produce(endpoints: &NodeEndpoints, input: &'static str) {
    let args = [
        "-b",
        &endpoints.kafka,
        "-P",
        "-t",
        "events",
        "-X",
        "acks=all",
    ];
    let output = kcat(args.map(String::from).to_vec(), Some(input)).await;
    assert!(output.status.success(), "kcat -P failed: {output:?}");
}

/// What a consumer reads from the start of `events` (nothing if the topic is gone).
async fn consume(endpoints: &NodeEndpoints) -> String {
    let args = [
        "-b",
        &endpoints.kafka,
        "-C",
        "-t",
        "events",
        "-o",
        "beginning",
        "-e",
        "-q",
    ];
    let output = kcat(args.map(String::from).to_vec(), None).await;
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn no_process_left(cluster_id: Uuid) -> bool {
    agents::find_agents(cluster_id, None).is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_volume_is_reattached_to_the_replacement_node() {
    let fixture = Fixture::new(21_000);
    let platform = fixture.platform();
    // The built broker is listed; the end-to-end tests may have installed an older one beside
    // it (`<bin-dir>/<version>/millrace-broker`).
    assert!(platform
        .installed_versions()
        .contains(&"millrace-0.1.0".to_owned()));
    let cluster = fixture.cluster_id;
    let endpoints = platform.allocate_endpoints(cluster, &[1]).await.unwrap();
    let endpoints = &endpoints[0];
    let volume = VolumeSpec::Persistent {
        size_gib: 10,
        storage_class: None,
    };
    let spec = fixture.spec(&platform, 1, volume.clone());

    let missing = platform.create_node(&spec, endpoints).await.unwrap_err();
    assert!(matches!(missing, PlatformError::NotFound(_)), "{missing}");
    let volume_id = platform.ensure_volume(cluster, 1, &volume).await.unwrap();
    assert_eq!(
        platform.ensure_volume(cluster, 1, &volume).await.unwrap(),
        volume_id
    );
    let shrink = VolumeSpec::Persistent {
        size_gib: 5,
        storage_class: None,
    };
    assert!(platform.ensure_volume(cluster, 1, &shrink).await.is_err());

    platform.create_node(&spec, endpoints).await.unwrap();
    wait_phase(&fixture, &platform, 1, NodePhase::Running).await;
    let observed = platform.observe(cluster).await.unwrap();
    assert_eq!(observed[0].volume_id.as_ref(), Some(&volume_id));
    assert_eq!(observed[0].zone, "zone-1");
    produce(endpoints, "kept-1\nkept-2\n").await;

    platform.delete_node(cluster, 1).await.unwrap();
    assert!(no_process_left(cluster));
    assert!(platform.observe(cluster).await.unwrap().is_empty());
    assert!(matches!(platform.delete_node(cluster, 1).await, Ok(())));

    // The replacement gets the same address and the same volume.
    let again = platform.allocate_endpoints(cluster, &[1]).await.unwrap();
    assert_eq!(&again[0], endpoints);
    platform.create_node(&spec, endpoints).await.unwrap();
    wait_phase(&fixture, &platform, 1, NodePhase::Running).await;
    assert_eq!(consume(endpoints).await, "kept-1\nkept-2\n");

    // A volume in use is not deleted; once its node is gone, it is.
    assert!(matches!(
        platform.delete_volume(cluster, 1).await,
        Err(PlatformError::InUse(_))
    ));
    platform.delete_node(cluster, 1).await.unwrap();
    platform.delete_volume(cluster, 1).await.unwrap();
    assert!(!fixture.cluster_dir().join("volumes/broker-1").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_store_volume_goes_with_its_node() {
    let fixture = Fixture::new(21_200);
    let platform = fixture.platform();
    let cluster = fixture.cluster_id;
    let endpoints = platform.allocate_endpoints(cluster, &[2]).await.unwrap();
    let endpoints = &endpoints[0];
    let volume = VolumeSpec::InstanceStore { size_gib: None };
    platform.ensure_volume(cluster, 2, &volume).await.unwrap();
    let spec = fixture.spec(&platform, 2, volume);
    platform.create_node(&spec, endpoints).await.unwrap();
    wait_phase(&fixture, &platform, 2, NodePhase::Running).await;
    produce(endpoints, "lost-with-the-node\n").await;
    assert_eq!(consume(endpoints).await, "lost-with-the-node\n");

    platform.delete_node(cluster, 2).await.unwrap();
    assert!(!fixture.cluster_dir().join("nodes/broker-2").exists());
    platform.create_node(&spec, endpoints).await.unwrap();
    wait_phase(&fixture, &platform, 2, NodePhase::Running).await;
    let read = consume(endpoints).await;
    assert!(!read.contains("lost-with-the-node"), "{read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_control_plane_adopts_running_nodes() {
    let fixture = Fixture::new(21_400);
    let first = fixture.platform();
    let cluster = fixture.cluster_id;
    let endpoints = first.allocate_endpoints(cluster, &[1]).await.unwrap();
    let volume = VolumeSpec::Persistent {
        size_gib: 1,
        storage_class: None,
    };
    first.ensure_volume(cluster, 1, &volume).await.unwrap();
    let spec = fixture.spec(&first, 1, volume);
    first.create_node(&spec, &endpoints[0]).await.unwrap();
    wait_phase(&fixture, &first, 1, NodePhase::Running).await;
    let pid = fixture.agent_pid(1);
    // The agent leads a session of its own: the control plane's end does not reach it.
    // SAFETY: getsid has no preconditions.
    assert_eq!(unsafe { libc::getsid(pid as i32) }, pid as i32);
    drop(first);

    let second = fixture.platform();
    assert_eq!(
        second.allocate_endpoints(cluster, &[1]).await.unwrap(),
        endpoints
    );
    wait_phase(&fixture, &second, 1, NodePhase::Running).await;
    second.create_node(&spec, &endpoints[0]).await.unwrap();
    assert_eq!(fixture.agent_pid(1), pid, "a second agent was started");
    assert_eq!(agents::find_agents(cluster, None), [(pid, 1)]);

    // A node whose agent died is reported failed and replaced by create_node.
    agents::signal(-(pid as i32), libc::SIGKILL);
    assert!(agents::wait_until(Duration::from_secs(10), || !agents::is_alive(pid)).await);
    let observed = second.observe(cluster).await.unwrap();
    assert!(
        matches!(observed[0].phase, NodePhase::Failed(_)),
        "{observed:?}"
    );
    second.create_node(&spec, &endpoints[0]).await.unwrap();
    assert_ne!(fixture.agent_pid(1), pid);
    wait_phase(&fixture, &second, 1, NodePhase::Running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_cluster_leaves_no_process_and_no_directory() {
    let fixture = Fixture::new(21_600);
    let platform = fixture.platform();
    let cluster = fixture.cluster_id;
    let endpoints = platform.allocate_endpoints(cluster, &[1, 2]).await.unwrap();
    let volumes = [
        VolumeSpec::Persistent {
            size_gib: 1,
            storage_class: None,
        },
        VolumeSpec::InstanceStore { size_gib: Some(1) },
    ];
    for (index, volume) in volumes.into_iter().enumerate() {
        let broker_id = index as i32 + 1;
        platform
            .ensure_volume(cluster, broker_id, &volume)
            .await
            .unwrap();
        let spec = fixture.spec(&platform, broker_id, volume);
        platform
            .create_node(&spec, &endpoints[index])
            .await
            .unwrap();
    }
    wait_phase(&fixture, &platform, 1, NodePhase::Running).await;
    wait_phase(&fixture, &platform, 2, NodePhase::Running).await;
    let broker_pids: Vec<u32> = agents::find_agents(cluster, None)
        .into_iter()
        .flat_map(|(pid, _)| agents::group_members(pid))
        .collect();
    assert_eq!(broker_pids.len(), 4, "two agents and two brokers");

    platform.delete_cluster_resources(cluster).await.unwrap();
    assert!(no_process_left(cluster));
    for pid in broker_pids {
        assert!(!agents::is_alive(pid), "process {pid} survived");
    }
    assert!(!fixture.cluster_dir().exists());
    assert!(platform.observe(cluster).await.unwrap().is_empty());
    platform.delete_cluster_resources(cluster).await.unwrap();
}

#[tokio::test]
async fn specs_the_platform_cannot_run_are_refused() {
    let fixture = Fixture::new(21_800);
    let platform = fixture.platform();
    let endpoints = platform
        .allocate_endpoints(fixture.cluster_id, &[1])
        .await
        .unwrap();
    let volume = VolumeSpec::InstanceStore { size_gib: None };

    let mut spec = fixture.spec(&platform, 1, volume.clone());
    spec.broker_version = "millrace-99.0.0".into();
    let error = platform
        .create_node(&spec, &endpoints[0])
        .await
        .unwrap_err();
    assert!(
        matches!(error, PlatformError::VersionNotInstalled { .. }),
        "{error}"
    );

    let mut spec = fixture.spec(&platform, 1, volume);
    spec.broker_config
        .insert("unclean.leader.election.enable".into(), "true".into());
    let error = platform
        .create_node(&spec, &endpoints[0])
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("brokerConfig.unclean.leader.election.enable"),
        "{error}"
    );
    assert!(no_process_left(fixture.cluster_id));
}
