//! The pod watch driving `observe` and the wake-up.

use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::platform::{NodePhase, Platform};

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
