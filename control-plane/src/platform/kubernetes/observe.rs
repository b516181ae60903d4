//! What the platform sees of its pods: a watch on every pod it manages feeds a reflector
//! store, and `observe` reads that store (no request per call). Each change also wakes whoever
//! listens on [`pod_watch`]'s notifier: the reconciler plans again when a pod changes instead of
//! waiting for its next timer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::runtime::reflector::store::Writer;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, ResourceExt};
use tokio::sync::Notify;
use tracing::{debug, warn};
use uuid::Uuid;

use super::names::{self, *};
use crate::platform::{NodeEndpoints, NodePhase, ObservedNode, VolumeId};

/// Container waiting reasons that do not heal on their own: the node is failed and replaced.
const FATAL_WAITING_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// Watches the managed pods of `api` (one namespace, or all of them) into `writer`, and
/// notifies `changes` after every event. Runs until aborted; watch errors are retried with
/// kube-runtime's default backoff.
pub fn pod_watch(
    api: Api<Pod>,
    writer: Writer<Pod>,
    changes: Arc<Notify>,
) -> impl Future<Output = ()> {
    let config = watcher::Config::default().labels(MANAGED_PODS_SELECTOR);
    let events = watcher(api, config).default_backoff().reflect(writer);
    async move {
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(pod) | watcher::Event::Delete(pod)) => {
                    debug!(pod = %pod.name_any(), "pod changed");
                    changes.notify_one();
                }
                Ok(watcher::Event::InitDone) => {
                    debug!("pods listed");
                    changes.notify_one();
                }
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                Err(error) => warn!(%error, "watching the broker pods failed; retrying"),
            }
        }
    }
}

/// How long `observe` corrects the watch with what this platform did itself.
const UNWATCHED_GRACE: Duration = Duration::from_secs(60);

/// Pod changes this platform made that the watch may not have delivered yet. Without them an
/// `observe` right after `create_node` would miss the new pod (and the reconciler would create
/// the node again, minting a new agent token), and one right after `delete_node` would still
/// show the old pod (and a failed one would be "replaced" again, taking the new pod with it).
/// An entry ends when the watch has caught up (by uid), or after [`UNWATCHED_GRACE`].
#[derive(Default)]
pub struct UnwatchedChanges(Mutex<Unwatched>);

#[derive(Default)]
struct Unwatched {
    /// Pods as the API server returned them on creation, by (namespace, name).
    created: HashMap<(String, String), (Instant, Arc<Pod>)>,
    /// Uids of pods the API server no longer has.
    deleted: HashMap<String, Instant>,
}

fn key(pod: &Pod) -> (String, String) {
    (pod.namespace().unwrap_or_default(), pod.name_any())
}

impl UnwatchedChanges {
    /// A pod the API server just created.
    pub fn created(&self, pod: Pod) {
        let mut unwatched = self.0.lock().expect("unwatched pod changes");
        unwatched
            .created
            .insert(key(&pod), (Instant::now(), Arc::new(pod)));
    }

    /// The pod `namespace/name` is gone from the API server: every pod of that name the watch
    /// (`watched`) or this platform knows of is gone.
    pub fn deleted(&self, namespace: &str, name: &str, watched: &[Arc<Pod>]) {
        let mut unwatched = self.0.lock().expect("unwatched pod changes");
        let pod_key = (namespace.to_string(), name.to_string());
        let created = unwatched.created.remove(&pod_key).map(|(_, pod)| pod);
        let gone: Vec<String> = watched
            .iter()
            .filter(|pod| key(pod) == pod_key)
            .chain(created.as_ref())
            .filter_map(|pod| pod.uid())
            .collect();
        for uid in gone {
            unwatched.deleted.insert(uid, Instant::now());
        }
    }

    /// The watched pods corrected by the changes the watch has not shown yet.
    pub fn overlay(&self, watched: Vec<Arc<Pod>>) -> Vec<Arc<Pod>> {
        let mut unwatched = self.0.lock().expect("unwatched pod changes");
        let seen = |uid: &str| watched.iter().any(|pod| pod.uid().as_deref() == Some(uid));
        unwatched.created.retain(|_, (at, pod)| {
            at.elapsed() < UNWATCHED_GRACE && !pod.uid().is_some_and(|uid| seen(&uid))
        });
        unwatched
            .deleted
            .retain(|uid, at| at.elapsed() < UNWATCHED_GRACE && seen(uid));
        let mut pods: Vec<Arc<Pod>> = watched
            .into_iter()
            .filter(|pod| {
                let deleted = pod
                    .uid()
                    .is_some_and(|uid| unwatched.deleted.contains_key(&uid));
                // A pod created since, under the same name, supersedes the watched one.
                let superseded = unwatched.created.contains_key(&key(pod));
                !deleted && !superseded
            })
            .collect();
        pods.extend(unwatched.created.values().map(|(_, pod)| pod.clone()));
        pods
    }
}

/// The pod's broker, if it is one of `cluster_id`'s broker pods.
pub fn broker_of(pod: &Pod, cluster_id: Uuid) -> Option<i32> {
    let labels = pod.labels();
    if labels.get(CLUSTER_ID_LABEL)? != &cluster_id.to_string() {
        return None;
    }
    labels.get(BROKER_ID_LABEL)?.parse().ok()
}

/// The node a broker pod is.
pub fn observed_node(pod: &Pod, cluster_id: Uuid, broker_id: i32) -> ObservedNode {
    let namespace = pod.namespace().unwrap_or_default();
    let host = names::broker_host(&namespace, cluster_id, broker_id);
    let annotation = |key: &str| pod.annotations().get(key).cloned().unwrap_or_default();
    let agent = agent_status(pod);
    let (phase, message) = node_phase(pod, agent);
    ObservedNode {
        broker_id,
        phase,
        endpoints: NodeEndpoints {
            kafka: format!("{host}:{KAFKA_PORT}"),
            broker_admin: format!("{host}:{BROKER_ADMIN_PORT}"),
            agent: format!("{host}:{AGENT_PORT}"),
            controller: format!("{host}:{CONTROLLER_PORT}"),
        },
        volume_id: volume_id(pod),
        zone: annotation(ZONE_ANNOTATION),
        broker_version: annotation(BROKER_VERSION_ANNOTATION),
        restarts: agent.map_or(0, |status| status.restart_count.max(0) as u64),
        disk_used_bytes: None,
        under_replicated_partitions: None,
        message,
    }
}

fn agent_status(pod: &Pod) -> Option<&ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|status| status.name == "agent")
}

/// The id of the pod's data volume: its claim, or its emptyDir (which dies with the pod).
pub fn volume_id(pod: &Pod) -> Option<VolumeId> {
    let namespace = pod.namespace().unwrap_or_default();
    let volume = pod
        .spec
        .as_ref()?
        .volumes
        .as_ref()?
        .iter()
        .find(|volume| volume.name == "data")?;
    if let Some(claim) = &volume.persistent_volume_claim {
        return Some(VolumeId(format!("pvc:{namespace}/{}", claim.claim_name)));
    }
    volume
        .empty_dir
        .as_ref()
        .map(|_| VolumeId(format!("emptyDir:{namespace}/{}", pod.name_any())))
}

/// The pod's lifecycle as a node phase, and a human word on it.
pub fn node_phase(pod: &Pod, agent: Option<&ContainerStatus>) -> (NodePhase, String) {
    if pod.metadata.deletion_timestamp.is_some() {
        return (NodePhase::Stopping, "the pod is terminating".into());
    }
    let status = pod.status.as_ref();
    let pod_phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let pod_reason = || {
        let reason = status.and_then(|s| s.reason.as_deref()).unwrap_or("");
        let message = status.and_then(|s| s.message.as_deref()).unwrap_or("");
        format!("{reason}: {message}")
    };
    match pod_phase {
        "Failed" => {
            let why = format!("the pod failed ({})", pod_reason());
            return (NodePhase::Failed(why.clone()), why);
        }
        "Succeeded" => {
            let why = "the pod's agent exited".to_string();
            return (NodePhase::Failed(why.clone()), why);
        }
        "Unknown" => {
            let why = "the pod's node does not report (Unknown)".to_string();
            return (NodePhase::Failed(why.clone()), why);
        }
        _ => {}
    }
    if let Some(waiting) = agent
        .and_then(|a| a.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
    {
        let reason = waiting.reason.as_deref().unwrap_or("");
        let message = waiting.message.as_deref().unwrap_or("");
        if FATAL_WAITING_REASONS.contains(&reason) {
            let why = format!("{reason}: {message}{}", last_exit(agent));
            return (NodePhase::Failed(why.clone()), why);
        }
        if pod_phase == "Pending" || reason == "ContainerCreating" {
            return (
                NodePhase::Pending,
                format!("{reason} {message}").trim().into(),
            );
        }
    }
    if pod_phase == "Pending" {
        let unschedulable = status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False");
        let message = match unschedulable {
            Some(condition) => format!(
                "not scheduled ({}): {}",
                condition.reason.as_deref().unwrap_or(""),
                condition.message.as_deref().unwrap_or("")
            ),
            None => "the pod is pending".into(),
        };
        return (NodePhase::Pending, message);
    }
    match agent {
        Some(agent) if agent.ready => (NodePhase::Running, String::new()),
        Some(agent) => (
            NodePhase::Starting,
            format!("the broker is not ready yet{}", last_exit(Some(agent))),
        ),
        None => (
            NodePhase::Starting,
            "the agent container has no status yet".into(),
        ),
    }
}

/// `; last exit: <reason> (code n)` when the container ended before.
fn last_exit(agent: Option<&ContainerStatus>) -> String {
    agent
        .and_then(|a| a.last_state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .map(|t| {
            format!(
                "; last exit: {} (code {})",
                t.reason.as_deref().unwrap_or("unknown"),
                t.exit_code
            )
        })
        .unwrap_or_default()
}
