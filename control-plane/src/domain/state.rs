//! Cluster states, operation types and operation states, with MSK's rules.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Result<Self, String> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "{text:?} is not one of {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// A cluster's lifecycle state.
    ClusterState {
        Creating = "CREATING",
        Active = "ACTIVE",
        Updating = "UPDATING",
        RebootingBroker = "REBOOTING_BROKER",
        Healing = "HEALING",
        Deleting = "DELETING",
        Failed = "FAILED",
    }
}

impl ClusterState {
    /// MSK accepts changes (broker count, storage, type, version, configuration, reboot) only
    /// from an ACTIVE cluster: one change at a time, never on a cluster that is not serving.
    pub fn accepts_updates(self) -> bool {
        self == ClusterState::Active
    }

    /// A change (update or reboot) is being carried out.
    pub fn is_changing(self) -> bool {
        matches!(self, ClusterState::Updating | ClusterState::RebootingBroker)
    }

    /// Delete is accepted from ACTIVE and FAILED (as in MSK) and also from CREATING, so that a
    /// create that cannot finish can be abandoned without waiting for it to fail; the reconciler
    /// then stops whatever the create had started. A cluster in the middle of a change (UPDATING,
    /// REBOOTING_BROKER, HEALING) must finish it first, and DELETING is already on its way.
    pub fn accepts_delete(self) -> bool {
        matches!(
            self,
            ClusterState::Active | ClusterState::Failed | ClusterState::Creating
        )
    }
}

string_enum! {
    /// What a cluster operation changes.
    OperationType {
        Create = "CREATE",
        Delete = "DELETE",
        UpdateBrokerCount = "UPDATE_BROKER_COUNT",
        UpdateBrokerStorage = "UPDATE_BROKER_STORAGE",
        UpdateBrokerType = "UPDATE_BROKER_TYPE",
        UpdateClusterKafkaVersion = "UPDATE_CLUSTER_KAFKA_VERSION",
        UpdateClusterConfiguration = "UPDATE_CLUSTER_CONFIGURATION",
        RebootNode = "REBOOT_NODE",
        Heal = "HEAL",
    }
}

string_enum! {
    /// Where an operation is.
    OperationState {
        Pending = "PENDING",
        UpdateInProgress = "UPDATE_IN_PROGRESS",
        UpdateComplete = "UPDATE_COMPLETE",
        UpdateFailed = "UPDATE_FAILED",
    }
}

impl OperationState {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            OperationState::UpdateComplete | OperationState::UpdateFailed
        )
    }
}

string_enum! {
    /// Where one step of an operation is.
    StepStatus {
        Pending = "PENDING",
        InProgress = "IN_PROGRESS",
        Complete = "COMPLETE",
        Failed = "FAILED",
    }
}

/// What a step does, as the planner reads it back from a persisted operation (the step's `name`
/// is for people). Steps about one broker carry its id in [`OperationStep::broker_id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StepKind {
    AllocateNodes,
    EnsureVolume,
    CreateNode,
    WaitForBrokers,
    MarkActive,
    ReplaceNode,
    DeleteNodes,
    DeleteVolumes,
    ForgetCluster,
    Fail,
    /// The broker's own check that stopping it takes no partition below min.insync.replicas.
    CheckCanStop,
    /// Controlled shutdown: the broker's leaderships move away.
    DrainBroker,
    /// The broker restarted on its node and volume with the target version and configuration.
    RestartBroker,
    /// Every broker restarted at once (the downtime strategy).
    RestartAllBrokers,
    /// The broker is back and every partition is fully in sync again.
    WaitInSync,
    /// Leaderships back to the preferred replicas.
    ElectPreferredLeaders,
    /// The broker's dynamic settings set to the new configuration's, while it runs.
    ApplySettings,
    /// A persistent volume grown online.
    GrowVolume,
    /// The change is done: the cluster is ACTIVE again.
    FinishChange,
    /// Before brokers are removed: every topic still fits on the brokers that remain.
    CheckRemoval,
    /// Partitions reassigned so that replicas and leaders are balanced over the brokers that
    /// remain (moved off the leaving ones), throttled; done once every move is complete.
    MovePartitions,
    /// A leaving broker's node, volume and record removed.
    RemoveNode,
}

impl StepKind {
    /// A step of a change that only counts once it completed itself.
    pub fn is_change_step(self) -> bool {
        matches!(
            self,
            StepKind::CheckCanStop
                | StepKind::DrainBroker
                | StepKind::RestartBroker
                | StepKind::RestartAllBrokers
                | StepKind::WaitInSync
                | StepKind::ElectPreferredLeaders
                | StepKind::ApplySettings
                | StepKind::GrowVolume
                | StepKind::CheckRemoval
                | StepKind::MovePartitions
                | StepKind::RemoveNode
        )
    }
}

/// One persisted step of an operation, so that a restarted control plane resumes where it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationStep {
    pub name: String,
    /// Absent on steps stored before steps were typed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<StepKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_id: Option<i32>,
    pub status: StepStatus,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub message: Option<String>,
    /// How far a long step is (partitions moved of those to move).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<StepProgress>,
}

/// How much of a long step is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepProgress {
    pub done: u32,
    pub total: u32,
    /// What is counted ("partitions").
    #[serde(default)]
    pub unit: ProgressUnit,
    /// When `done` last grew: a step that stops making progress fails after the step timeout.
    pub advanced_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ProgressUnit {
    #[default]
    Partitions,
}

impl OperationStep {
    pub fn pending(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: None,
            broker_id: None,
            status: StepStatus::Pending,
            started_at: None,
            ended_at: None,
            message: None,
            progress: None,
        }
    }

    /// Whether this is the step `kind` (about `broker_id`).
    pub fn is(&self, kind: StepKind, broker_id: Option<i32>) -> bool {
        self.kind == Some(kind) && self.broker_id == broker_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_text() {
        for state in ClusterState::ALL {
            assert_eq!(ClusterState::parse(state.as_str()).unwrap(), *state);
        }
        for kind in OperationType::ALL {
            assert_eq!(OperationType::parse(kind.as_str()).unwrap(), *kind);
        }
        assert!(ClusterState::parse("active").is_err());
    }

    #[test]
    fn msk_state_rules() {
        assert!(ClusterState::Active.accepts_updates());
        assert!(!ClusterState::Creating.accepts_updates());
        assert!(!ClusterState::Failed.accepts_updates());
        assert!(ClusterState::Failed.accepts_delete());
        assert!(ClusterState::Creating.accepts_delete());
        assert!(!ClusterState::Updating.accepts_delete());
        assert!(!ClusterState::Deleting.accepts_delete());
    }
}
