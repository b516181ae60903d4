//! A cluster as a door received it, before parsing: the REST create request and the
//! KafkaCluster spec each lend their values to a [`ClusterDraft`], and this one parser turns it
//! into the domain's name, spec and tags. Both doors use the same field names, so an error's
//! field reads right in either (`brokerNodeGroupInfo.storageInfo.ebsStorageInfo.volumeSize`;
//! the controller puts `spec.` in front).

use std::collections::BTreeMap;

use super::{
    parse_storage_class, At, BrokerCount, BrokerNodeGroup, ClusterName, ClusterSpec,
    ConfigurationRef, DomainError, InstanceType, ProvisionedThroughput, StorageAutoExpansion,
    StorageInfo, Tags, VersionCatalog, VolumeSize, Zones,
};

/// The raw values of a cluster to create (or, from the controller, of the spec it wants now).
#[derive(Debug, Clone, Copy)]
pub struct ClusterDraft<'a> {
    pub cluster_name: &'a str,
    /// `None`: the newest installed version.
    pub kafka_version: Option<&'a str>,
    pub number_of_broker_nodes: i64,
    pub instance_type: &'a str,
    /// `None`: the default zones.
    pub zones: Option<&'a [String]>,
    pub ebs: Option<EbsDraft<'a>>,
    /// Whether `instanceStorageInfo` was given.
    pub instance_store: bool,
    pub configuration: Option<(&'a str, i64)>,
    pub storage_auto_expansion: Option<AutoExpansionDraft>,
    pub tags: &'a BTreeMap<String, String>,
}

/// The raw `ebsStorageInfo`.
#[derive(Debug, Clone, Copy)]
pub struct EbsDraft<'a> {
    pub volume_size: i64,
    /// `(enabled, volumeThroughput)`.
    pub provisioned_throughput: Option<(bool, Option<i64>)>,
    pub storage_class: Option<&'a str>,
}

/// The raw `storageAutoExpansion`.
#[derive(Debug, Clone, Copy)]
pub struct AutoExpansionDraft {
    pub target_utilization_percent: i64,
    pub max_volume_size_gib: i64,
    pub cooldown_seconds: Option<i64>,
}

const STORAGE: &str = "brokerNodeGroupInfo.storageInfo";

impl EbsDraft<'_> {
    /// The volumes' storage; `field` names where `ebsStorageInfo` was given.
    pub fn parse(&self, field: &str) -> Result<StorageInfo, DomainError> {
        let volume_size = VolumeSize::parse(self.volume_size).at(&format!("{field}.volumeSize"))?;
        let provisioned_throughput = self
            .provisioned_throughput
            .map(|(enabled, throughput)| ProvisionedThroughput::parse(enabled, throughput))
            .transpose()
            .at(&format!("{field}.provisionedThroughput"))?;
        Ok(StorageInfo::Ebs {
            volume_size,
            provisioned_throughput,
        })
    }
}

impl AutoExpansionDraft {
    pub fn parse(&self, field: &str) -> Result<StorageAutoExpansion, DomainError> {
        StorageAutoExpansion::parse(
            self.target_utilization_percent,
            self.max_volume_size_gib,
            self.cooldown_seconds,
            field,
        )
    }
}

impl ClusterDraft<'_> {
    /// The cluster's name, spec and tags, or the first field that is wrong.
    pub fn parse(
        &self,
        versions: &VersionCatalog,
    ) -> Result<(ClusterName, ClusterSpec, Tags), DomainError> {
        let name = ClusterName::parse(self.cluster_name).at("clusterName")?;
        let kafka_version = match self.kafka_version {
            Some(version) => versions.parse(version).at("kafkaVersion")?,
            None => versions.latest().ok_or_else(|| {
                DomainError::new("kafkaVersion", "no broker version is installed")
            })?,
        };
        let zones = match self.zones {
            Some(zones) => Zones::parse(zones.to_vec()).at("brokerNodeGroupInfo.zones")?,
            None => Zones::default_zones(),
        };
        let number_of_broker_nodes =
            BrokerCount::parse(self.number_of_broker_nodes, &zones).at("numberOfBrokerNodes")?;
        let instance_type =
            InstanceType::parse(self.instance_type).at("brokerNodeGroupInfo.instanceType")?;
        let storage = match (&self.ebs, self.instance_store) {
            (Some(ebs), false) => ebs.parse(&format!("{STORAGE}.ebsStorageInfo"))?,
            (None, true) => StorageInfo::InstanceStore,
            _ => {
                return Err(DomainError::new(
                    STORAGE,
                    "give exactly one of ebsStorageInfo and instanceStorageInfo",
                ))
            }
        };
        let storage_class = self
            .ebs
            .and_then(|ebs| ebs.storage_class)
            .map(parse_storage_class)
            .transpose()
            .at(&format!("{STORAGE}.ebsStorageInfo.storageClass"))?;
        let storage_auto_expansion = self
            .storage_auto_expansion
            .map(|policy| policy.parse("storageAutoExpansion"))
            .transpose()?;
        if let Some(policy) = &storage_auto_expansion {
            policy.check_for(&storage)?;
        }
        let configuration = self.configuration.map(|(arn, revision)| ConfigurationRef {
            arn: arn.to_owned(),
            revision,
        });
        let tags = Tags::parse(self.tags.clone()).at("tags")?;
        let spec = ClusterSpec {
            kafka_version,
            number_of_broker_nodes,
            broker_node_group: BrokerNodeGroup {
                instance_type,
                zones,
                storage,
                storage_class,
            },
            configuration,
            storage_auto_expansion,
        };
        Ok((name, spec, tags))
    }
}
