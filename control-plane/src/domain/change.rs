//! A change to a running cluster, parsed once at either door (a REST update or a KafkaCluster
//! spec change) and carried out by the reconciler as one operation.

use serde::{Deserialize, Serialize};

use super::{
    BrokerCount, ClusterSpec, ConfigurationRef, InstanceType, KafkaVersion, OperationType,
    StorageInfo, VolumeSize,
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
    BrokerCount(BrokerCount),
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
            ClusterChange::BrokerStorage { .. } => OperationType::UpdateBrokerStorage,
            ClusterChange::BrokerCount(_) => OperationType::UpdateBrokerCount,
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
            ClusterChange::BrokerCount(count) => target.number_of_broker_nodes = *count,
            ClusterChange::BrokerType(instance_type) => {
                target.broker_node_group.instance_type = *instance_type;
            }
            ClusterChange::RebootBroker { .. } => {}
        }
        target
    }

    /// How the reconciler is to carry the change out, stored with the operation.
    pub fn parameters(&self) -> ChangeParameters {
        match self {
            ClusterChange::KafkaVersion { strategy, .. }
            | ClusterChange::Configuration { strategy, .. } => ChangeParameters {
                upgrade_strategy: *strategy,
                broker_ids: Vec::new(),
            },
            ClusterChange::RebootBroker { broker_id } => ChangeParameters {
                upgrade_strategy: UpgradeStrategy::InPlace,
                broker_ids: vec![*broker_id],
            },
            _ => ChangeParameters::default(),
        }
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
}

/// The volume size of a storage spec, when it has one.
pub fn volume_size(storage: &StorageInfo) -> Option<VolumeSize> {
    match storage {
        StorageInfo::Ebs { volume_size, .. } => Some(*volume_size),
        StorageInfo::InstanceStore => None,
    }
}
