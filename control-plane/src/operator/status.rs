//! What a KafkaCluster's status and Events should say, decided without I/O: from the previous
//! status, the store's cluster record and operation, and any problem with the spec.

use kube::runtime::events::{Event, EventType};

use super::crd::{Condition, CurrentOperation, KafkaClusterStatus};
use crate::domain::{ClusterState, OperationState};
use crate::store::{ClusterRecord, OperationRecord};

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// Why the spec was not (fully) applied; reported in the `Degraded` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    /// PascalCase, e.g. `InvalidSpec`, `UpdateNotSupported`.
    pub reason: &'static str,
    pub message: String,
    /// True when the same spec may succeed later (e.g. a change waits for the cluster to be
    /// ACTIVE), so the controller looks again soon.
    pub retry: bool,
}

/// Everything the status is made of.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub generation: Option<i64>,
    pub cluster: Option<&'a ClusterRecord>,
    /// The cluster's unfinished operation.
    pub operation: Option<&'a OperationRecord>,
    /// Why the cluster is FAILED: its latest failed operation's error.
    pub failure: Option<&'a str>,
    pub problem: Option<&'a SpecProblem>,
}

impl Observation<'_> {
    /// Work is under way: the status should be refreshed soon.
    pub fn busy(&self) -> bool {
        self.operation.is_some()
            || self
                .cluster
                .is_some_and(|c| !matches!(c.state, ClusterState::Active | ClusterState::Failed))
            || self.problem.is_some_and(|p| p.retry)
    }
}

/// The status to apply. `now` (RFC 3339) stamps conditions whose status changed; a condition
/// whose status is unchanged keeps its previous `lastTransitionTime`.
pub fn desired_status(
    previous: Option<&KafkaClusterStatus>,
    observation: &Observation<'_>,
    now: &str,
) -> KafkaClusterStatus {
    let generation = observation.generation;
    let condition = |type_: &str, status: bool, reason: &str, message: String| {
        let status = if status { "True" } else { "False" };
        let last_transition_time = previous
            .and_then(|p| p.conditions.iter().find(|c| c.type_ == type_))
            .filter(|c| c.status == status)
            .map_or_else(|| now.to_owned(), |c| c.last_transition_time.clone());
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message,
            last_transition_time,
            observed_generation: generation,
        }
    };
    let cluster = observation.cluster;
    let state = cluster.map(|c| c.state);
    let ready = match cluster {
        Some(c) if c.state == ClusterState::Active => condition(
            READY,
            true,
            "Active",
            format!(
                "cluster {} serves at {}",
                c.name,
                c.bootstrap_brokers.as_deref().unwrap_or("(no address yet)")
            ),
        ),
        Some(c) => condition(
            READY,
            false,
            state_reason(c.state),
            format!("cluster {} is {}", c.name, c.state),
        ),
        None => condition(
            READY,
            false,
            "NotCreated",
            "no cluster was created for this resource".to_owned(),
        ),
    };
    let progressing = match (observation.operation, cluster) {
        (Some(op), _) => condition(PROGRESSING, true, &pascal(op.operation_type.as_str()), {
            let step = op.steps.last().map_or_else(
                || "no step yet".to_owned(),
                |s| format!("step {} {}", s.name, s.status),
            );
            format!(
                "{} operation {} is {}: {step}",
                op.operation_type, op.id, op.state
            )
        }),
        (None, Some(c)) if !matches!(c.state, ClusterState::Active | ClusterState::Failed) => {
            condition(
                PROGRESSING,
                true,
                state_reason(c.state),
                format!("cluster {} is {}", c.name, c.state),
            )
        }
        _ => condition(
            PROGRESSING,
            false,
            "Idle",
            "no operation is running".to_owned(),
        ),
    };
    let degraded = match (observation.problem, cluster) {
        (Some(problem), _) => condition(DEGRADED, true, problem.reason, problem.message.clone()),
        (None, Some(c)) if c.state == ClusterState::Failed => condition(
            DEGRADED,
            true,
            "ClusterFailed",
            observation
                .failure
                .unwrap_or("the cluster's last operation failed")
                .to_owned(),
        ),
        _ => condition(
            DEGRADED,
            false,
            "AsExpected",
            "the spec is applied".to_owned(),
        ),
    };
    KafkaClusterStatus {
        cluster_id: cluster.map(|c| c.id.to_string()),
        cluster_arn: cluster.map(|c| c.arn.clone()),
        state: state.map(|s| s.as_str().to_owned()),
        kafka_version: cluster.map(|c| c.spec.kafka_version.to_string()),
        bootstrap_brokers: cluster.and_then(|c| c.bootstrap_brokers.clone()),
        current_version: cluster.map(|c| c.version_text()),
        observed_generation: generation,
        conditions: vec![ready, progressing, degraded],
        current_operation: observation.operation.map(|op| CurrentOperation {
            id: op.id.to_string(),
            type_: op.operation_type.as_str().to_owned(),
            state: op.state.as_str().to_owned(),
            step: op.steps.last().map(|s| s.name.clone()),
        }),
    }
}

/// The Events that announce the change from `previous` to `next`: a new cluster state, a new
/// operation step, a new problem with the spec.
pub fn events_between(
    previous: Option<&KafkaClusterStatus>,
    next: &KafkaClusterStatus,
) -> Vec<Event> {
    let mut events = Vec::new();
    let previous_state = previous.and_then(|p| p.state.as_deref());
    if let Some(state) = next.state.as_deref().filter(|s| Some(*s) != previous_state) {
        let parsed = ClusterState::parse(state).ok();
        let failed = parsed == Some(ClusterState::Failed);
        let mut note = format!(
            "cluster {} is {state}",
            next.cluster_id.as_deref().unwrap_or("?")
        );
        if parsed == Some(ClusterState::Active) {
            if let Some(bootstrap) = &next.bootstrap_brokers {
                note.push_str(&format!("; bootstrap brokers {bootstrap}"));
            }
        }
        if failed {
            if let Some(degraded) = next.conditions.iter().find(|c| c.type_ == DEGRADED) {
                note.push_str(&format!(": {}", degraded.message));
            }
        }
        events.push(Event {
            type_: if failed {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: parsed.map_or("StateChanged", state_reason).to_owned(),
            note: Some(note),
            action: "Reconcile".to_owned(),
            secondary: None,
        });
    }
    if let Some(op) = &next.current_operation {
        let previous_op = previous.and_then(|p| p.current_operation.as_ref());
        let new_step = previous_op.is_none_or(|p| p.id != op.id || p.step != op.step);
        if let (true, Some(step)) = (new_step, &op.step) {
            events.push(Event {
                type_: EventType::Normal,
                reason: "OperationStep".to_owned(),
                note: Some(format!("{} operation {}: {step}", op.type_, op.id)),
                action: pascal(&op.type_),
                secondary: None,
            });
        }
    }
    let degraded = |s: &KafkaClusterStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == DEGRADED && c.status == "True" && c.reason != "ClusterFailed")
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    if let Some((reason, message)) = degraded(next) {
        if previous.and_then(degraded) != Some((reason.clone(), message.clone())) {
            events.push(Event {
                type_: EventType::Warning,
                reason,
                note: Some(message),
                action: "ApplySpec".to_owned(),
                secondary: None,
            });
        }
    }
    events
}

/// `CREATING` -> `Creating`, `REBOOTING_BROKER` -> `RebootingBroker`.
fn pascal(text: &str) -> String {
    text.split('_')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => {
                    first.to_ascii_uppercase().to_string() + &chars.as_str().to_lowercase()
                }
                None => String::new(),
            }
        })
        .collect()
}

fn state_reason(state: ClusterState) -> &'static str {
    match state {
        ClusterState::Creating => "Creating",
        ClusterState::Active => "Active",
        ClusterState::Updating => "Updating",
        ClusterState::RebootingBroker => "RebootingBroker",
        ClusterState::Healing => "Healing",
        ClusterState::Deleting => "Deleting",
        ClusterState::Failed => "Failed",
    }
}

/// Whether an operation has finished (kept here so the controller reads in one vocabulary).
pub fn is_unfinished(op: &OperationRecord) -> bool {
    matches!(
        op.state,
        OperationState::Pending | OperationState::UpdateInProgress
    )
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;
    use crate::domain::{
        BrokerCount, BrokerNodeGroup, ClusterName, ClusterSpec, InstanceType, StorageInfo, Tags,
        VersionCatalog, VolumeSize, Zones,
    };

    fn cluster(state: ClusterState) -> ClusterRecord {
        let zones = Zones::default_zones();
        ClusterRecord {
            id: Uuid::nil(),
            name: ClusterName::parse("orders").unwrap(),
            arn: "arn:millrace:kafka:local:cluster/orders/0".into(),
            spec: ClusterSpec {
                kafka_version: VersionCatalog::builtin().latest().unwrap(),
                number_of_broker_nodes: BrokerCount::parse(3, &zones).unwrap(),
                broker_node_group: BrokerNodeGroup {
                    instance_type: InstanceType::parse("kafka.m5.large").unwrap(),
                    zones,
                    storage: StorageInfo::Ebs {
                        volume_size: VolumeSize::parse(10).unwrap(),
                        provisioned_throughput: None,
                    },
                    storage_class: None,
                },
                configuration: None,
                storage_auto_expansion: None,
            },
            state,
            current_version: 4,
            bootstrap_brokers: None,
            tags: Tags::default(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            kubernetes_uid: Some("uid".into()),
        }
    }

    fn observation<'a>(cluster: &'a ClusterRecord, failure: Option<&'a str>) -> Observation<'a> {
        Observation {
            generation: Some(2),
            cluster: Some(cluster),
            operation: None,
            failure,
            problem: None,
        }
    }

    fn find<'a>(status: &'a KafkaClusterStatus, type_: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn a_failed_cluster_is_degraded_and_announced_as_a_warning() {
        let active = cluster(ClusterState::Active);
        let before = desired_status(None, &observation(&active, None), "2026-01-01T00:00:00Z");
        let failed = cluster(ClusterState::Failed);
        let after = desired_status(
            Some(&before),
            &observation(&failed, Some("brokers were not ready within 120 s")),
            "2026-01-01T00:05:00Z",
        );
        let degraded = find(&after, DEGRADED);
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "ClusterFailed")
        );
        assert_eq!(degraded.message, "brokers were not ready within 120 s");
        assert_eq!(degraded.last_transition_time, "2026-01-01T00:05:00Z");
        // Progressing stayed False: its transition time is the first one.
        assert_eq!(
            find(&after, PROGRESSING).last_transition_time,
            "2026-01-01T00:00:00Z"
        );
        let events = events_between(Some(&before), &after);
        assert_eq!(events.len(), 1, "one state change, no spec problem");
        assert_eq!(events[0].type_, EventType::Warning);
        assert_eq!(events[0].reason, "Failed");
        assert!(events[0]
            .note
            .as_deref()
            .unwrap()
            .ends_with("FAILED: brokers were not ready within 120 s"));
        // Nothing changed, nothing to announce.
        assert!(events_between(Some(&after), &after).is_empty());
    }

    #[test]
    fn state_names_become_reasons() {
        assert_eq!(pascal("REBOOTING_BROKER"), "RebootingBroker");
        assert_eq!(pascal("UPDATE_BROKER_COUNT"), "UpdateBrokerCount");
        assert_eq!(state_reason(ClusterState::Healing), "Healing");
    }
}
