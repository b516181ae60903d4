//! A cluster's name and its desired specification.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{BrokerCount, InstanceType, KafkaVersion, StorageInfo, Zones};

const MAX_NAME: usize = 64;

/// 1 to 64 characters of `[A-Za-z0-9-]`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClusterName(String);

impl ClusterName {
    pub fn parse(name: &str) -> Result<Self, String> {
        let rule = "must be 1 to 64 characters of A-Z, a-z, 0-9 and -, starting with a letter";
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(format!("{rule} (got {} characters)", name.chars().count()));
        }
        if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(format!("{rule} (got {name:?})"));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(format!("{rule} (got {bad:?})"));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ClusterName {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Self::parse(&value)
    }
}

impl From<ClusterName> for String {
    fn from(value: ClusterName) -> String {
        value.0
    }
}

impl std::fmt::Display for ClusterName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The stable, ARN-like name of a cluster.
pub fn cluster_arn(name: &ClusterName, id: Uuid) -> String {
    format!("arn:millrace:kafka:local:cluster/{name}/{id}")
}

/// A configuration revision applied to a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationRef {
    pub arn: String,
    pub revision: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerNodeGroup {
    pub instance_type: InstanceType,
    pub zones: Zones,
    pub storage: StorageInfo,
    /// The Kubernetes StorageClass of the persistent volumes (None: the platform's default).
    /// Fixed at create. The local platform has one kind of volume and only records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
}

/// A Kubernetes StorageClass name: a DNS subdomain (lowercase letters, digits, `-` and `.`,
/// at most 253 characters, starting and ending with a letter or digit).
pub fn parse_storage_class(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "{name:?} is not a StorageClass name (a DNS subdomain: lowercase letters, digits, - \
             and ., at most 253 characters)"
        ))
    }
}

/// What the user asked for: the reconciler's desired state, stored as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    pub kafka_version: KafkaVersion,
    pub number_of_broker_nodes: BrokerCount,
    pub broker_node_group: BrokerNodeGroup,
    pub configuration: Option<ConfigurationRef>,
    /// Grow the persistent volumes by themselves as they fill (absent: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_auto_expansion: Option<super::StorageAutoExpansion>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_msk_rules() {
        assert!(ClusterName::parse("orders-1").is_ok());
        assert!(ClusterName::parse(&"a".repeat(64)).is_ok());
        assert!(ClusterName::parse(&"a".repeat(65)).is_err());
        assert!(ClusterName::parse("").is_err());
        assert!(ClusterName::parse("1orders").is_err());
        assert!(ClusterName::parse("orders_1").is_err());
        assert!(ClusterName::parse("ordérs").is_err());
    }
}
