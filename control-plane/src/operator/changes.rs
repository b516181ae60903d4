//! A KafkaCluster spec change, seen as the REST API's updates: which updates the change from the
//! stored spec amounts to, and how the REST paths' refusals read as problems with the spec. Pure.

use super::controller::Error;
use super::status::SpecProblem;
use crate::domain::{ClusterSpec, StorageInfo};
use crate::http::error::ApiError;
use crate::http::{ClusterChange, ConfigurationInfo, EbsStorageInfo, ProvisionedThroughputBody};

/// A change no REST update can make (the name, the zones, the kind of storage).
pub(super) fn immutable(field: &str, detail: String) -> SpecProblem {
    SpecProblem {
        reason: "ImmutableField",
        message: format!("{field} cannot be changed: {detail}"),
        retry: false,
    }
}

/// The changes from `current` to `desired`, each as the REST update it amounts to, named by
/// the spec field that asks for it.
pub(super) fn spec_changes(
    current: &ClusterSpec,
    desired: &ClusterSpec,
) -> Vec<(&'static str, ClusterChange)> {
    let mut changes = Vec::new();
    if desired.number_of_broker_nodes != current.number_of_broker_nodes {
        changes.push((
            "spec.numberOfBrokerNodes",
            ClusterChange::BrokerCount {
                target_number_of_broker_nodes: i64::from(desired.number_of_broker_nodes.get()),
            },
        ));
    }
    if let (
        StorageInfo::Ebs {
            volume_size,
            provisioned_throughput,
        },
        true,
    ) = (
        desired.broker_node_group.storage,
        desired.broker_node_group.storage != current.broker_node_group.storage,
    ) {
        changes.push((
            "spec.brokerNodeGroupInfo.storageInfo.ebsStorageInfo",
            ClusterChange::BrokerStorage {
                target_ebs_storage_info: EbsStorageInfo {
                    volume_size: i64::from(volume_size.gib()),
                    provisioned_throughput: provisioned_throughput.map(|t| {
                        ProvisionedThroughputBody {
                            enabled: t.enabled,
                            volume_throughput: t.volume_throughput.map(i64::from),
                        }
                    }),
                },
            },
        ));
    }
    if desired.broker_node_group.instance_type != current.broker_node_group.instance_type {
        changes.push((
            "spec.brokerNodeGroupInfo.instanceType",
            ClusterChange::BrokerType {
                target_instance_type: desired.broker_node_group.instance_type.name().to_owned(),
            },
        ));
    }
    let configuration_info = desired.configuration.as_ref().map(|c| ConfigurationInfo {
        arn: c.arn.clone(),
        revision: c.revision,
    });
    if desired.kafka_version != current.kafka_version {
        // A version upgrade may bring its configuration along, as the REST request does.
        changes.push((
            "spec.kafkaVersion",
            ClusterChange::KafkaVersion {
                target_kafka_version: desired.kafka_version.to_string(),
                configuration_info: configuration_info
                    .filter(|_| desired.configuration != current.configuration),
            },
        ));
    } else if let Some(configuration_info) =
        configuration_info.filter(|_| desired.configuration != current.configuration)
    {
        changes.push((
            "spec.configurationInfo",
            ClusterChange::Configuration { configuration_info },
        ));
    }
    changes
}

/// A refusal of the REST paths becomes a problem with the spec; a failure stays an error.
pub(super) fn problem_or_error(
    error: ApiError,
    spec_field: Option<&str>,
) -> Result<Option<SpecProblem>, Error> {
    let at = |field: &str| match spec_field {
        Some(spec_field) => format!("{spec_field} ({field})"),
        None => format!("spec.{field}"),
    };
    let problem = match error {
        ApiError::Validation { field, detail } => SpecProblem {
            reason: "InvalidSpec",
            message: format!("{}: {detail}", at(&field)),
            retry: false,
        },
        ApiError::Conflict { detail, field } if field.as_deref() == Some("clusterName") => {
            SpecProblem {
                reason: "NameTaken",
                message: format!(
                    "{detail}: set spec.clusterName to a free name (names are unique across \
                     namespaces)"
                ),
                retry: false,
            }
        }
        ApiError::Conflict { detail, .. } => SpecProblem {
            reason: "UpdateWaiting",
            message: format!(
                "{}: {detail}; the change is tried again",
                spec_field.unwrap_or("spec")
            ),
            retry: true,
        },
        ApiError::NotImplemented(detail) => SpecProblem {
            reason: "UpdateNotSupported",
            message: format!("{}: {detail}", spec_field.unwrap_or("spec")),
            retry: false,
        },
        other => return Err(Error::Internal(other.to_string())),
    };
    Ok(Some(problem))
}
