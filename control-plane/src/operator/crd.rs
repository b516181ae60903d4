//! The `KafkaCluster` custom resource (`millrace.dev/v1alpha1`): a cluster declared with
//! `kubectl apply`. Its spec mirrors the REST API's create request (the same names, so a REST
//! body and a manifest read alike) and lends its values to the domain's `ClusterDraft`, the one
//! parser both doors share. The schema carries what the API server can check on its own
//! (ranges, the broker-type catalog, name and zone patterns, exactly one kind of storage); the
//! rest (a broker count that is a multiple of the zones, installed versions, configuration
//! revisions) is checked by the controller and reported in the `Degraded` condition.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::{
    AutoExpansionDraft, ClusterDraft, EbsDraft, BROKER_TYPES, MAX_BROKERS, MAX_THROUGHPUT_MIB_S,
    MAX_VOLUME_GIB, MIN_THROUGHPUT_MIB_S, MIN_VOLUME_GIB,
};

/// The desired state of a Millrace Kafka cluster.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "millrace.dev",
    version = "v1alpha1",
    kind = "KafkaCluster",
    plural = "kafkaclusters",
    singular = "kafkacluster",
    shortname = "kc",
    category = "millrace",
    namespaced,
    status = "KafkaClusterStatus",
    doc = "A Kafka-compatible cluster managed by Millrace.",
    // Raw JSON columns: the structured form repeats `type_ = "string"`, which clippy's
    // duplicated_attributes lint mistakes for a duplicate.
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Brokers","type":"integer","jsonPath":".spec.numberOfBrokerNodes"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.kafkaVersion"}"#,
    printcolumn = r#"{"name":"Bootstrap","type":"string","jsonPath":".status.bootstrapBrokers"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KafkaClusterSpec {
    /// The cluster's name in Millrace (unique across namespaces); default the resource's name.
    /// It cannot be changed afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z][A-Za-z0-9-]{0,63}$"))]
    pub cluster_name: Option<String>,
    /// A broker version installed on the platform (`GET /v1/versions`); default the newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_version: Option<String>,
    /// 1 to 30 brokers, a multiple of the number of zones.
    #[schemars(range(min = 1, max = MAX_BROKERS))]
    pub number_of_broker_nodes: i64,
    pub broker_node_group_info: BrokerNodeGroupSpec,
    /// A configuration revision (`POST /v1/configurations`) to apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_info: Option<ConfigurationSpec>,
    /// Grow the persistent volumes by themselves as they fill; the volumes may then be larger
    /// than `ebsStorageInfo.volumeSize`, which stays their lower bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_auto_expansion: Option<StorageAutoExpansionSpec>,
    /// How a change that needs new brokers is rolled out. Only `InPlace` is accepted by this
    /// control plane; `Rolling` and `BlueGreen` are refused with a `Degraded` condition.
    #[serde(default)]
    pub upgrade_strategy: UpgradeStrategy,
    /// Resource tags, as `POST /v1/tags/{resourceArn}` sets them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// Broker size, placement and storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BrokerNodeGroupSpec {
    /// A broker size from the catalog (`GET /v1/broker-types`).
    #[schemars(schema_with = "instance_type_schema")]
    pub instance_type: String,
    /// Zone labels the brokers are spread over; default `[zone-a, zone-b, zone-c]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "zones_schema")]
    pub zones: Option<Vec<String>>,
    pub storage_info: StorageSpec,
}

/// Exactly one of `ebsStorageInfo` (persistent volumes) and `instanceStorageInfo` (ephemeral).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(extend("oneOf" = [
    {"required": ["ebsStorageInfo"]},
    {"required": ["instanceStorageInfo"]}
]))]
pub struct StorageSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebs_storage_info: Option<EbsStorageSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_storage_info: Option<InstanceStorageSpec>,
}

/// A persistent volume per broker that outlives the broker node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EbsStorageSpec {
    /// GiB per broker, 1 to 16384; it can only grow.
    #[schemars(range(min = MIN_VOLUME_GIB, max = MAX_VOLUME_GIB))]
    pub volume_size: i64,
    /// The StorageClass of the volumes' claims (default: the platform's `--storage-class`, else
    /// the Kubernetes cluster's default). Fixed at create; growing a volume needs a class that
    /// allows expansion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_throughput: Option<ProvisionedThroughputSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProvisionedThroughputSpec {
    pub enabled: bool,
    /// MiB/s, 250 to 2375; required when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = MIN_THROUGHPUT_MIB_S, max = MAX_THROUGHPUT_MIB_S))]
    pub volume_throughput: Option<i64>,
}

/// Storage that lives and dies with the broker node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InstanceStorageSpec {
    /// The instance store's size comes with the broker size (`GET /v1/broker-types`); a value
    /// here must be that size (another is refused with a `Degraded` condition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = MIN_VOLUME_GIB, max = MAX_VOLUME_GIB))]
    pub volume_size: Option<i64>,
}

/// Storage auto-expansion: when a broker's volume is fuller than the target, every volume grows
/// (an operation the control plane starts by itself), never past the maximum, not again
/// before the cool-down has passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StorageAutoExpansionSpec {
    /// Disk use, in % of the volume, past which volumes grow: 10 to 80.
    #[schemars(range(min = 10, max = 80))]
    pub target_utilization_percent: i64,
    /// The largest size auto-expansion grows a volume to, in GiB.
    #[schemars(range(min = MIN_VOLUME_GIB, max = MAX_VOLUME_GIB))]
    pub max_volume_size_gib: i64,
    /// Seconds after one growth before the next: 60 to 604800, default 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 604800))]
    pub cooldown_seconds: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigurationSpec {
    pub arn: String,
    #[schemars(range(min = 1))]
    pub revision: i64,
}

/// How changes are rolled out (see the design's "Changing a cluster"): `InPlace` restarts one
/// broker at a time on its node and volume (no produce errors); `Downtime` restarts every
/// broker at once (faster; the cluster is unavailable meanwhile). `Rolling` and `BlueGreen`
/// are refused until this control plane carries them out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum UpgradeStrategy {
    #[default]
    InPlace,
    Downtime,
    Rolling,
    BlueGreen,
}

impl UpgradeStrategy {
    /// The strategy the clusters service knows; Rolling and BlueGreen never get this far
    /// ([`KafkaClusterSpec::draft`] refuses them).
    pub fn domain(self) -> crate::domain::UpgradeStrategy {
        match self {
            UpgradeStrategy::Downtime => crate::domain::UpgradeStrategy::Downtime,
            _ => crate::domain::UpgradeStrategy::InPlace,
        }
    }
}

/// What Millrace reports about the cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterStatus {
    /// The cluster's id in Millrace (`GET /v1/clusters/{clusterId}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_arn: Option<String>,
    /// CREATING, ACTIVE, UPDATING, REBOOTING_BROKER, HEALING, DELETING or FAILED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The version the store holds (the spec's, or the default it resolved to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_version: Option<String>,
    /// `host:port,…`; set once the cluster was first ACTIVE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_brokers: Option<String>,
    /// The store's `currentVersion` of the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,
    /// The resource generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Progressing and Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The cluster's unfinished operation, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_operation: Option<CurrentOperation>,
}

/// A standard Kubernetes condition (as `metav1.Condition`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Ready, Progressing or Degraded.
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    pub reason: String,
    pub message: String,
    /// RFC 3339; when `status` last changed.
    pub last_transition_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The operation the reconciler is carrying out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CurrentOperation {
    pub id: String,
    /// CREATE, DELETE, HEAL, …
    #[serde(rename = "type")]
    pub type_: String,
    /// PENDING or UPDATE_IN_PROGRESS.
    pub state: String,
    /// The latest step, e.g. `CreateNode broker 2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

fn instance_type_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = BROKER_TYPES.iter().map(|t| t.name).collect();
    schemars::json_schema!({
        "type": "string",
        "description": "A broker size from the catalog (`GET /v1/broker-types`).",
        "enum": names,
    })
}

fn zones_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "description": "Zone labels the brokers are spread over; default [zone-a, zone-b, zone-c].",
        "minItems": 1,
        "maxItems": 6,
        "items": {"type": "string", "pattern": "^[a-z0-9-]{1,32}$"},
    })
}

/// A field the CRD accepts but this control plane cannot honour: refused, never ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub field: &'static str,
    pub message: String,
}

impl KafkaClusterSpec {
    /// The cluster this spec describes, for the resource named `resource_name`, ready for the
    /// one parser both doors share; refuses the fields this control plane cannot carry out.
    pub fn draft<'a>(&'a self, resource_name: &'a str) -> Result<ClusterDraft<'a>, Unsupported> {
        if let strategy @ (UpgradeStrategy::Rolling | UpgradeStrategy::BlueGreen) =
            self.upgrade_strategy
        {
            return Err(Unsupported {
                field: "spec.upgradeStrategy",
                message: format!(
                    "{strategy:?} is not carried out by this control plane; use InPlace (the \
                     default) or Downtime"
                ),
            });
        }
        let storage = &self.broker_node_group_info.storage_info;
        if let Some(size) = storage
            .instance_storage_info
            .as_ref()
            .and_then(|i| i.volume_size)
        {
            let type_size =
                crate::domain::InstanceType::parse(&self.broker_node_group_info.instance_type)
                    .map(|t| t.instance_store_gib());
            if let Ok(type_size) = type_size {
                if i64::from(type_size) != size {
                    return Err(Unsupported {
                        field:
                            "spec.brokerNodeGroupInfo.storageInfo.instanceStorageInfo.volumeSize",
                        message: format!(
                            "the instance store comes with the broker size: {} has {type_size} \
                             GiB, not {size}; leave it out or choose another instanceType",
                            self.broker_node_group_info.instance_type
                        ),
                    });
                }
            }
        }
        let group = &self.broker_node_group_info;
        Ok(ClusterDraft {
            cluster_name: self.cluster_name.as_deref().unwrap_or(resource_name),
            kafka_version: self.kafka_version.as_deref(),
            number_of_broker_nodes: self.number_of_broker_nodes,
            instance_type: &group.instance_type,
            zones: group.zones.as_deref(),
            ebs: storage.ebs_storage_info.as_ref().map(|ebs| EbsDraft {
                volume_size: ebs.volume_size,
                provisioned_throughput: ebs
                    .provisioned_throughput
                    .as_ref()
                    .map(|t| (t.enabled, t.volume_throughput)),
                storage_class: ebs.storage_class.as_deref(),
            }),
            instance_store: storage.instance_storage_info.is_some(),
            configuration: self
                .configuration_info
                .as_ref()
                .map(|c| (c.arn.as_str(), c.revision)),
            storage_auto_expansion: self.storage_auto_expansion.as_ref().map(|p| {
                AutoExpansionDraft {
                    target_utilization_percent: p.target_utilization_percent,
                    max_volume_size_gib: p.max_volume_size_gib,
                    cooldown_seconds: p.cooldown_seconds,
                }
            }),
            tags: &self.tags,
        })
    }
}

/// The CRD as YAML, as `millrace crd` prints it and `deploy/crd.yaml` holds it.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    serde_yaml::to_string(&KafkaCluster::crd())
}
