//! A change to a running cluster, parsed once at either door (a REST update or a KafkaCluster
//! spec change) and carried out by the reconciler as one operation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    BrokerCount, ClusterSpec, ConfigurationRef, InstanceType, KafkaVersion, OperationType,
    StorageAutoExpansion, StorageInfo, VolumeSize,
};

/// How brokers are restarted for a version or configuration change.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum UpgradeStrategy {
    /// One broker at a time on the same node and volume, each only when no partition would fall
    /// below `min.insync.replicas`, the next only once every partition is back in sync. Producers
    /// with `acks=all` see no error.
    #[default]
    InPlace,
    /// Every broker stopped and started together: faster, but the cluster is unavailable while
    /// the brokers restart. An explicit opt-in.
    Downtime,
}

impl UpgradeStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            UpgradeStrategy::InPlace => "inPlace",
            UpgradeStrategy::Downtime => "downtime",
        }
    }
}

/// One change to a cluster, with its values already parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterChange {
    KafkaVersion {
        target: KafkaVersion,
        strategy: UpgradeStrategy,
        /// A configuration revision to apply together with the new version.
        configuration: Option<ConfigurationRef>,
    },
    Configuration {
        configuration: ConfigurationRef,
        strategy: UpgradeStrategy,
    },
    /// Grow every broker's persistent volume.
    BrokerStorage {
        target: StorageInfo,
    },
    /// Set (or, None, turn off) storage auto-expansion.
    StorageAutoExpansion(Option<StorageAutoExpansion>),
    /// Add brokers (partitions then move onto them) or remove the highest-numbered ones
    /// (partitions first move off them).
    BrokerCount {
        target: BrokerCount,
        throttle: ReplicationThrottle,
    },
    BrokerType(InstanceType),
    /// Restart one broker safely.
    RebootBroker {
        broker_id: i32,
    },
}

impl ClusterChange {
    pub fn operation_type(&self) -> OperationType {
        match self {
            ClusterChange::KafkaVersion { .. } => OperationType::UpdateClusterKafkaVersion,
            ClusterChange::Configuration { .. } => OperationType::UpdateClusterConfiguration,
            ClusterChange::BrokerStorage { .. } | ClusterChange::StorageAutoExpansion(_) => {
                OperationType::UpdateBrokerStorage
            }
            ClusterChange::BrokerCount { .. } => OperationType::UpdateBrokerCount,
            ClusterChange::BrokerType(_) => OperationType::UpdateBrokerType,
            ClusterChange::RebootBroker { .. } => OperationType::RebootNode,
        }
    }

    /// The spec the cluster has once the change is made.
    pub fn target_spec(&self, current: &ClusterSpec) -> ClusterSpec {
        let mut target = current.clone();
        match self {
            ClusterChange::KafkaVersion {
                target: version,
                configuration,
                ..
            } => {
                target.kafka_version = version.clone();
                if let Some(configuration) = configuration {
                    target.configuration = Some(configuration.clone());
                }
            }
            ClusterChange::Configuration { configuration, .. } => {
                target.configuration = Some(configuration.clone());
            }
            ClusterChange::BrokerStorage { target: storage } => {
                target.broker_node_group.storage = *storage;
            }
            ClusterChange::StorageAutoExpansion(policy) => {
                target.storage_auto_expansion = *policy;
            }
            ClusterChange::BrokerCount { target: count, .. } => {
                target.number_of_broker_nodes = *count
            }
            ClusterChange::BrokerType(instance_type) => {
                target.broker_node_group.instance_type = *instance_type;
            }
            ClusterChange::RebootBroker { .. } => {}
        }
        target
    }

    /// How the reconciler is to carry the change out, stored with the operation (the service
    /// adds the [`SettingsChange`] of a new configuration).
    pub fn parameters(&self) -> ChangeParameters {
        match self {
            ClusterChange::KafkaVersion { strategy, .. }
            | ClusterChange::Configuration { strategy, .. } => ChangeParameters {
                upgrade_strategy: *strategy,
                ..ChangeParameters::default()
            },
            ClusterChange::RebootBroker { broker_id } => ChangeParameters {
                upgrade_strategy: UpgradeStrategy::InPlace,
                broker_ids: vec![*broker_id],
                ..ChangeParameters::default()
            },
            ClusterChange::BrokerCount { throttle, .. } => ChangeParameters {
                replication_throttle: Some(*throttle),
                ..ChangeParameters::default()
            },
            _ => ChangeParameters::default(),
        }
    }
}

/// The rate at which partitions are copied to new replicas while a change moves them, in bytes
/// per second per leading broker (Kafka's `leader.replication.throttled.rate`), so that
/// producers, consumers and in-sync followers keep their share of the disk and network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReplicationThrottle(u64);

impl ReplicationThrottle {
    pub const MIN: u64 = 1024 * 1024;
    pub const MAX: u64 = 10 * 1024 * 1024 * 1024;
    /// 50 MiB/s: a fifth of a gp3 volume's 250 MB/s baseline.
    pub const DEFAULT: ReplicationThrottle = ReplicationThrottle(50 * 1024 * 1024);

    pub fn parse(bytes_per_second: i64) -> Result<ReplicationThrottle, String> {
        u64::try_from(bytes_per_second)
            .ok()
            .filter(|rate| (Self::MIN..=Self::MAX).contains(rate))
            .map(ReplicationThrottle)
            .ok_or_else(|| {
                format!(
                    "must be between {} (1 MiB/s) and {} (10 GiB/s) bytes per second",
                    Self::MIN,
                    Self::MAX
                )
            })
    }

    pub fn bytes_per_second(self) -> u64 {
        self.0
    }
}

impl Default for ReplicationThrottle {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// How an operation is carried out, beside its source and target spec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeParameters {
    #[serde(default)]
    pub upgrade_strategy: UpgradeStrategy,
    /// The brokers a reboot restarts; empty: every broker the change concerns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub broker_ids: Vec<i32>,
    /// How a new configuration revision is applied, when the change brings one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<SettingsChange>,
    /// Why the control plane started the change by itself (storage auto-expansion); None for
    /// a change a user asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// How fast moved partitions are copied (a broker-count change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_throttle: Option<ReplicationThrottle>,
}

/// What a new configuration revision changes, and how it reaches the brokers: decided when the
/// change is accepted, from the two revisions' settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsChange {
    /// Settings added, removed or given another value.
    pub changed: Vec<String>,
    /// Those of them that only a restart applies: settings brokers read only at start, and
    /// removed settings (a broker may hold one as a flag from its last start). Empty: the change
    /// is applied without restarting any broker.
    pub needs_restart: Vec<String>,
    /// Every broker's dynamic settings once the change is made (the brokers' names and values;
    /// a dynamic setting absent here goes back to its start value).
    pub dynamic: BTreeMap<String, String>,
    /// Whether a dynamic setting changes, so that brokers must be told.
    pub dynamic_changed: bool,
}

impl SettingsChange {
    /// Applied by restarting brokers.
    pub fn restarts(&self) -> bool {
        !self.needs_restart.is_empty()
    }

    /// One line for the operation: what it does and why. `rolled` when the operation restarts
    /// the brokers anyway (a version change).
    pub fn describe(&self, rolled: bool) -> String {
        if self.changed.is_empty() {
            return "no setting changes".into();
        }
        if rolled && !self.restarts() {
            return format!(
                "applied by the version change's rolling restart, the dynamic settings after \
                 each broker's restart (changed: {})",
                self.changed.join(", ")
            );
        }
        if self.restarts() {
            format!(
                "rolling restart for {} (read only at start, or removed and so back to the \
                 broker default only after a start without it; {}changed: {})",
                self.needs_restart.join(", "),
                if self.dynamic_changed {
                    "dynamic settings applied after each restart; "
                } else {
                    ""
                },
                self.changed.join(", ")
            )
        } else {
            format!(
                "applied without a restart (dynamic settings): {}",
                self.changed.join(", ")
            )
        }
    }
}

/// The volume size of a storage spec, when it has one.
pub fn volume_size(storage: &StorageInfo) -> Option<VolumeSize> {
    match storage {
        StorageInfo::Ebs { volume_size, .. } => Some(*volume_size),
        StorageInfo::InstanceStore => None,
    }
}
