//! The Kubernetes platform against a real cluster. Opt-in: run with
//! `KUBECONFIG=... MILLRACE_E2E_AGENT_IMAGE=... MILLRACE_E2E_ZONE=<a node's zone label> \
//!  cargo test -p millrace-control-plane --test kubernetes_platform -- --ignored`
//! (optional: MILLRACE_E2E_NAMESPACE, MILLRACE_E2E_STORAGE_CLASS, MILLRACE_E2E_BROKER_VERSION).
//! It creates a one-broker cluster with a persistent volume, waits until the broker is ready,
//! replaces its pod (the claim stays), and deletes everything.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use millrace_control_plane::platform::{
    KubernetesPlatform, NodePhase, NodeSpec, Platform, VolumeSpec, VoterAddress,
};
use uuid::Uuid;

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set for this opt-in test"))
}

async fn wait_for_phase(platform: &KubernetesPlatform, cluster: Uuid, wanted: &NodePhase) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let nodes = platform.observe(cluster).await.expect("observe");
        if nodes.first().map(|n| &n.phase) == Some(wanted) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "broker not {wanted:?}: {nodes:?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
#[ignore = "needs a Kubernetes cluster: KUBECONFIG, MILLRACE_E2E_AGENT_IMAGE, MILLRACE_E2E_ZONE"]
async fn a_broker_pod_with_its_claim_runs_is_replaced_and_is_deleted() {
    required("KUBECONFIG");
    let image = required("MILLRACE_E2E_AGENT_IMAGE");
    let zone = required("MILLRACE_E2E_ZONE");
    let version =
        std::env::var("MILLRACE_E2E_BROKER_VERSION").unwrap_or_else(|_| "millrace-0.1.0".into());
    let namespace = std::env::var("MILLRACE_E2E_NAMESPACE").ok();
    let storage_class = std::env::var("MILLRACE_E2E_STORAGE_CLASS").ok();
    let platform = KubernetesPlatform::connect(namespace, false, |config| {
        config.agent_image = image;
        config.storage_class = storage_class;
        config.installed_versions = vec![version.clone()];
    })
    .await
    .expect("connecting");

    let cluster = Uuid::new_v4();
    let endpoints = platform.allocate_endpoints(cluster, &[1]).await.unwrap();
    let spec = NodeSpec {
        cluster_id: cluster,
        broker_id: 1,
        zone,
        broker_version: version.clone(),
        instance_type: "kafka.t3.small".into(),
        volume: VolumeSpec::Persistent {
            size_gib: 1,
            storage_class: None,
        },
        broker_config: BTreeMap::from([("auto.create.topics.enable".into(), "true".into())]),
        voters: vec![VoterAddress {
            broker_id: 1,
            controller: endpoints[0].controller.clone(),
        }],
        agent_token: String::new(),
        control_plane_url: String::new(),
    };
    let volume = platform
        .ensure_volume(cluster, 1, &spec.volume)
        .await
        .expect("claim");
    platform
        .create_node(&spec, &endpoints[0])
        .await
        .expect("pod");
    wait_for_phase(&platform, cluster, &NodePhase::Running).await;

    platform.delete_node(cluster, 1).await.expect("delete pod");
    assert_eq!(
        platform
            .ensure_volume(cluster, 1, &spec.volume)
            .await
            .unwrap(),
        volume,
        "the claim stays"
    );
    platform
        .create_node(&spec, &endpoints[0])
        .await
        .expect("replacement");
    wait_for_phase(&platform, cluster, &NodePhase::Running).await;
    let node = &platform.observe(cluster).await.unwrap()[0];
    assert_eq!(node.volume_id.as_ref(), Some(&volume), "same claim mounted");

    platform.delete_node(cluster, 1).await.expect("delete pod");
    platform
        .delete_volume(cluster, 1)
        .await
        .expect("delete claim");
    platform
        .delete_cluster_resources(cluster)
        .await
        .expect("delete cluster");
}
