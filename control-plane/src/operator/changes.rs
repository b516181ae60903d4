//! A KafkaCluster spec change, seen as the clusters service's changes: which changes the spec
//! amounts to against the stored one, and how the service's refusals read as problems with the
//! spec. Pure.

use super::controller::Error;
use super::status::SpecProblem;
use crate::domain::{ClusterChange, ClusterSpec, DomainError, UpgradeStrategy};
use crate::service::ServiceError;
use crate::store::Conflict;

/// A change no REST update can make (the name, the zones, the kind of storage).
pub(super) fn immutable(field: &str, detail: String) -> SpecProblem {
    SpecProblem {
        reason: "ImmutableField",
        message: format!("{field} cannot be changed: {detail}"),
        retry: false,
    }
}

/// The changes from `current` to `desired`, each as the one change (one operation) it amounts
/// to, named by the spec field that asks for it. Restarts follow `strategy`.
pub(super) fn spec_changes(
    current: &ClusterSpec,
    desired: &ClusterSpec,
    strategy: UpgradeStrategy,
) -> Vec<(&'static str, ClusterChange)> {
    let mut changes = Vec::new();
    if desired.number_of_broker_nodes != current.number_of_broker_nodes {
        changes.push((
            "spec.numberOfBrokerNodes",
            ClusterChange::BrokerCount {
                target: desired.number_of_broker_nodes,
                throttle: crate::domain::ReplicationThrottle::DEFAULT,
            },
        ));
    }
    // The spec's volume size is a lower bound: volumes never shrink, and auto-expansion may
    // have grown them past it (the spec need not follow, and stays valid once auto-expansion
    // is turned off). A larger size is a growth; a smaller one asks for nothing.
    let mut wanted_storage = desired.broker_node_group.storage;
    if let (crate::domain::StorageInfo::Ebs { volume_size, .. }, Some(now)) = (
        &mut wanted_storage,
        crate::domain::volume_size(&current.broker_node_group.storage),
    ) {
        if *volume_size < now {
            *volume_size = now;
        }
    }
    if desired.broker_node_group.storage.is_persistent()
        && wanted_storage != current.broker_node_group.storage
    {
        changes.push((
            "spec.brokerNodeGroupInfo.storageInfo.ebsStorageInfo",
            ClusterChange::BrokerStorage {
                target: wanted_storage,
            },
        ));
    }
    if desired.storage_auto_expansion != current.storage_auto_expansion {
        changes.push((
            "spec.storageAutoExpansion",
            ClusterChange::StorageAutoExpansion(desired.storage_auto_expansion),
        ));
    }
    if desired.broker_node_group.instance_type != current.broker_node_group.instance_type {
        changes.push((
            "spec.brokerNodeGroupInfo.instanceType",
            ClusterChange::BrokerType(desired.broker_node_group.instance_type),
        ));
    }
    let new_configuration = desired
        .configuration
        .clone()
        .filter(|_| desired.configuration != current.configuration);
    if desired.kafka_version != current.kafka_version {
        // A version upgrade may bring its configuration along, as the REST request does.
        changes.push((
            "spec.kafkaVersion",
            ClusterChange::KafkaVersion {
                target: desired.kafka_version.clone(),
                strategy,
                configuration: new_configuration,
            },
        ));
    } else if let Some(configuration) = new_configuration {
        changes.push((
            "spec.configurationInfo",
            ClusterChange::Configuration {
                configuration,
                strategy,
            },
        ));
    }
    changes
}

/// A refusal of the clusters service becomes a problem with the spec (at `spec_field` when the
/// spec field that changed is known); a failure stays an error.
pub(super) fn problem_or_error(
    error: ServiceError,
    spec_field: Option<&str>,
) -> Result<Option<SpecProblem>, Error> {
    let problem = match error {
        ServiceError::Invalid(invalid) => invalid_spec(&invalid, spec_field),
        ServiceError::Conflict(conflict @ Conflict::NameTaken(_)) => SpecProblem {
            reason: "NameTaken",
            message: format!(
                "{conflict}: set spec.clusterName to a free name (names are unique across \
                 namespaces)"
            ),
            retry: false,
        },
        ServiceError::Conflict(conflict) => SpecProblem {
            reason: "UpdateWaiting",
            message: format!(
                "{}: {conflict}; the change is tried again",
                spec_field.unwrap_or("spec")
            ),
            retry: true,
        },
        ServiceError::NotSupported(detail) => SpecProblem {
            reason: "UpdateNotSupported",
            message: format!("{}: {detail}", spec_field.unwrap_or("spec")),
            retry: false,
        },
        other => return Err(Error::Internal(other.to_string())),
    };
    Ok(Some(problem))
}

/// A value of the spec that does not parse, or makes no sense for the cluster.
pub(super) fn invalid_spec(invalid: &DomainError, spec_field: Option<&str>) -> SpecProblem {
    let at = match spec_field {
        Some(spec_field) => format!("{spec_field} ({})", invalid.field),
        None => format!("spec.{}", invalid.field),
    };
    SpecProblem {
        reason: "InvalidSpec",
        message: format!("{at}: {}", invalid.message),
        retry: false,
    }
}
