//! Changing a running cluster: the checks a change must pass before anything is stored, then the
//! change itself (new desired spec, cluster UPDATING or REBOOTING_BROKER, a PENDING operation),
//! in one transaction. The reconciler carries it out.

use tracing::info;

use super::{ClustersService, ServiceError};
use crate::domain::{
    volume_size, ClusterChange, ClusterState, ConfigurationRef, DomainError, StorageInfo,
    VolumeSize,
};
use crate::platform::broker_flags;
use crate::store::{ClusterRecord, Conflict, NodeRecord, OperationRecord, StoreError};

impl ClustersService {
    /// Starts `change` on `cluster` (as read by the door, whose `currentVersion` the client
    /// sent): refused unless the cluster is ACTIVE with nothing else running and the change
    /// makes sense for it. Returns the operation that carries it out.
    pub async fn change(
        &self,
        cluster: &ClusterRecord,
        change: &ClusterChange,
    ) -> Result<OperationRecord, ServiceError> {
        self.change_because(cluster, change, None).await
    }

    /// [`Self::change`], started by the control plane itself for `trigger` (recorded on the
    /// operation).
    pub async fn change_because(
        &self,
        cluster: &ClusterRecord,
        change: &ClusterChange,
        trigger: Option<String>,
    ) -> Result<OperationRecord, ServiceError> {
        if !cluster.state.accepts_updates() {
            return Err(Conflict::WrongState {
                state: cluster.state,
                action: "be changed until it is ACTIVE",
            }
            .into());
        }
        self.check(cluster, change).await?;
        let state = match change {
            ClusterChange::RebootBroker { .. } => ClusterState::RebootingBroker,
            _ => ClusterState::Updating,
        };
        let target = change.target_spec(&cluster.spec);
        let mut parameters = change.parameters();
        parameters.trigger = trigger;
        if target.configuration != cluster.spec.configuration {
            let settings = broker_flags::settings_change(
                &self
                    .store
                    .configuration_settings(cluster.spec.configuration.as_ref())
                    .await?,
                &self
                    .store
                    .configuration_settings(target.configuration.as_ref())
                    .await?,
            )
            .map_err(|e| DomainError::new("configurationInfo", e.to_string()))?;
            info!(cluster_id = %cluster.id, how = %settings.describe(change.operation_type() == crate::domain::OperationType::UpdateClusterKafkaVersion), "configuration change");
            parameters.settings = Some(settings);
        }
        let (_, operation) = self
            .store
            .begin_change(
                cluster.id,
                cluster.current_version,
                change.operation_type(),
                &target,
                state,
                parameters,
            )
            .await?;
        info!(
            cluster_id = %cluster.id,
            operation_id = %operation.id,
            operation = %operation.operation_type,
            "change accepted"
        );
        self.reconcile_wakeup.notify_one();
        Ok(operation)
    }

    /// Whether `change` makes sense for `cluster`.
    async fn check(
        &self,
        cluster: &ClusterRecord,
        change: &ClusterChange,
    ) -> Result<(), ServiceError> {
        match change {
            ClusterChange::BrokerCount { target, .. } => {
                // Against the nodes as they are: a scale that failed half-way is finished by
                // asking for the same count again.
                let nodes = self.store.list_nodes(cluster.id).await?;
                check_count(&nodes, target.get())
            }
            ClusterChange::BrokerType(target) => {
                if *target == cluster.spec.broker_node_group.instance_type {
                    return Err(DomainError::new(
                        "targetInstanceType",
                        format!("the cluster already uses {}", target.name()),
                    )
                    .into());
                }
                // Another type of an instance-store cluster means another disk on every
                // broker: each replacement would start empty.
                if cluster.spec.broker_node_group.storage == StorageInfo::InstanceStore {
                    return Err(ServiceError::NotSupported(format!(
                        "{}: the cluster uses instance storage, whose disks a broker type \
                         change replaces (every broker starting empty and copying its \
                         partitions back); only clusters on persistent volumes change type in \
                         this release",
                        not_yet(change)
                    )));
                }
                Ok(())
            }
            ClusterChange::BrokerStorage { target } => {
                // Against the volumes as they are: a growth that failed half-way is retried
                // with the same size.
                let nodes = self.store.list_nodes(cluster.id).await?;
                let mut current = cluster.spec.broker_node_group.storage;
                if let (StorageInfo::Ebs { volume_size, .. }, Some(smallest)) = (
                    &mut current,
                    nodes.iter().filter_map(|n| n.volume.size_gib).min(),
                ) {
                    if let Ok(smallest) = VolumeSize::parse(i64::from(smallest)) {
                        *volume_size = smallest.min(*volume_size);
                    }
                }
                check_growth(&current, target)
            }
            ClusterChange::StorageAutoExpansion(policy) => {
                if *policy == cluster.spec.storage_auto_expansion {
                    return Err(DomainError::new(
                        "storageAutoExpansion",
                        "the cluster already has this storage auto-expansion policy",
                    )
                    .into());
                }
                match policy {
                    Some(policy) => Ok(policy.check_for(&cluster.spec.broker_node_group.storage)?),
                    None => Ok(()),
                }
            }
            ClusterChange::KafkaVersion {
                target,
                configuration,
                ..
            } => {
                if *target == cluster.spec.kafka_version {
                    // A roll that failed half-way left brokers on the old version: running the
                    // same target again finishes it.
                    let nodes = self.store.list_nodes(cluster.id).await?;
                    if nodes.iter().all(|n| n.version == target.as_str()) {
                        return Err(DomainError::new(
                            "targetKafkaVersion",
                            format!("every broker of the cluster already runs {target}"),
                        )
                        .into());
                    }
                }
                if let Some(configuration) = configuration {
                    self.check_configuration(configuration, target.as_str())
                        .await?;
                }
                Ok(())
            }
            ClusterChange::Configuration { configuration, .. } => {
                self.check_configuration(configuration, cluster.spec.kafka_version.as_str())
                    .await?;
                if cluster.spec.configuration.as_ref() == Some(configuration) {
                    return Err(DomainError::new(
                        "configurationInfo",
                        "the cluster already uses this configuration revision",
                    )
                    .into());
                }
                Ok(())
            }
            ClusterChange::RebootBroker { broker_id } => {
                let known = self.store.list_nodes(cluster.id).await?;
                if known.iter().any(|n| n.broker_id == *broker_id) {
                    return Ok(());
                }
                let ids: Vec<String> = known.iter().map(|n| n.broker_id.to_string()).collect();
                Err(DomainError::new(
                    "brokerIds",
                    format!(
                        "the cluster has no broker {broker_id} (its brokers: {})",
                        if ids.is_empty() {
                            "none yet".to_owned()
                        } else {
                            ids.join(", ")
                        }
                    ),
                )
                .into())
            }
        }
    }
}

/// A cluster grows by brokers numbered after its last one, and shrinks by its highest-numbered
/// brokers, down to the voters of its metadata quorum (brokers 1 to 3, see
/// [`crate::domain::QUORUM_VOTERS`]): removing a voter needs a quorum membership change, which
/// this release does not make.
fn check_count(nodes: &[NodeRecord], target: u32) -> Result<(), ServiceError> {
    let field = "targetNumberOfBrokerNodes";
    let now = nodes.len() as u32;
    if target == now {
        return Err(
            DomainError::new(field, format!("the cluster already has {now} brokers")).into(),
        );
    }
    if nodes
        .iter()
        .enumerate()
        .any(|(index, node)| node.broker_id != index as i32 + 1)
    {
        return Err(Conflict::InUse(
            "the cluster's brokers are not numbered 1 to N (a node is missing): wait until it is \
             healed"
                .into(),
        )
        .into());
    }
    let voters = nodes.iter().filter(|n| n.voter).count() as u32;
    if target < voters {
        let leaving: Vec<String> = nodes
            .iter()
            .filter(|n| n.voter && n.broker_id > target as i32)
            .map(|n| n.broker_id.to_string())
            .collect();
        return Err(DomainError::new(
            field,
            format!(
                "brokers {} are voters of the cluster's metadata quorum, which this release \
                 cannot remove: the cluster can shrink to {voters} brokers",
                leaving.join(", ")
            ),
        )
        .into());
    }
    Ok(())
}

/// Persistent volumes grow online; they never shrink, and instance storage has no volume.
fn check_growth(current: &StorageInfo, target: &StorageInfo) -> Result<(), ServiceError> {
    let (Some(current), Some(wanted)) = (volume_size(current), volume_size(target)) else {
        return Err(DomainError::new(
            "targetEbsStorageInfo",
            "the cluster uses instance storage, which has no volume to grow",
        )
        .into());
    };
    if wanted <= current {
        return Err(DomainError::new(
            "targetEbsStorageInfo.volumeSize",
            format!(
                "volumes can only grow: must be more than the current {} GiB",
                current.gib()
            ),
        )
        .into());
    }
    Ok(())
}

fn not_yet(change: &ClusterChange) -> String {
    format!(
        "not implemented yet: {} is carried out by a later release; the request was valid and \
         nothing was changed",
        change.operation_type()
    )
}

impl ClustersService {
    /// A configuration revision exists and is meant for `kafka_version` (both doors give it as
    /// `configurationInfo`).
    pub(super) async fn check_configuration(
        &self,
        configuration: &ConfigurationRef,
        kafka_version: &str,
    ) -> Result<(), ServiceError> {
        let field = "configurationInfo";
        let stored = match self.store.get_configuration(&configuration.arn).await {
            Err(StoreError::NotFound) => {
                return Err(DomainError::new(
                    format!("{field}.arn"),
                    format!("no configuration {:?}", configuration.arn),
                )
                .into())
            }
            other => other?,
        };
        if stored.arn != configuration.arn {
            return Err(DomainError::new(
                format!("{field}.arn"),
                format!("give the configuration's ARN ({})", stored.arn),
            )
            .into());
        }
        if !(1..=stored.latest_revision).contains(&configuration.revision) {
            return Err(DomainError::new(
                format!("{field}.revision"),
                format!(
                    "configuration {} has revisions 1 to {}, not {}",
                    stored.name, stored.latest_revision, configuration.revision
                ),
            )
            .into());
        }
        if !stored.kafka_versions.is_empty()
            && !stored.kafka_versions.iter().any(|v| v == kafka_version)
        {
            return Err(DomainError::new(
                format!("{field}.arn"),
                format!(
                    "configuration {} is for versions {}, not {kafka_version}",
                    stored.name,
                    stored.kafka_versions.join(", ")
                ),
            )
            .into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ebs(gib: i64) -> StorageInfo {
        StorageInfo::Ebs {
            volume_size: VolumeSize::parse(gib).unwrap(),
            provisioned_throughput: None,
        }
    }

    #[test]
    fn volumes_only_grow() {
        assert!(check_growth(&ebs(10), &ebs(20)).is_ok());
        let shrink = check_growth(&ebs(20), &ebs(10)).unwrap_err();
        assert!(
            matches!(&shrink, ServiceError::Invalid(e) if e.field == "targetEbsStorageInfo.volumeSize"),
            "{shrink:?}"
        );
        assert!(check_growth(&ebs(20), &ebs(20)).is_err());
        assert!(check_growth(&StorageInfo::InstanceStore, &ebs(20)).is_err());
    }

    /// Brokers 1 to `count`, the first `voters` of them voters of the quorum.
    fn brokers(count: i32, voters: i32) -> Vec<NodeRecord> {
        (1..=count)
            .map(|id| {
                let mut node = NodeRecord::new(
                    uuid::Uuid::nil(),
                    id,
                    "zone-a",
                    "millrace-0.1.0",
                    crate::domain::NodeVolume {
                        persistent: true,
                        size_gib: Some(100),
                        location: None,
                    },
                    "RUNNING",
                );
                node.voter = id <= voters;
                node
            })
            .collect()
    }

    #[test]
    fn a_cluster_grows_and_shrinks_down_to_its_voters() {
        assert!(check_count(&brokers(3, 3), 6).is_ok());
        assert!(check_count(&brokers(6, 3), 3).is_ok());
        let same = check_count(&brokers(3, 3), 3).unwrap_err();
        assert!(
            matches!(&same, ServiceError::Invalid(e) if e.field == "targetNumberOfBrokerNodes"),
            "{same:?}"
        );
        let below = check_count(&brokers(6, 3), 2).unwrap_err();
        match &below {
            ServiceError::Invalid(e) => {
                assert_eq!(e.field, "targetNumberOfBrokerNodes");
                assert!(e.message.contains("brokers 3 are voters"), "{}", e.message);
            }
            other => panic!("{other:?}"),
        }
        let mut gap = brokers(6, 3);
        gap.remove(4);
        assert!(matches!(
            check_count(&gap, 3),
            Err(ServiceError::Conflict(_))
        ));
    }
}
