//! Broker storage: an EBS-style persistent volume of a given size, or the instance store.

use serde::{Deserialize, Serialize};

pub const MIN_VOLUME_GIB: u32 = 1;
pub const MAX_VOLUME_GIB: u32 = 16384;

/// Per-broker volume size in GiB, 1 to 16384 (MSK's range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VolumeSize(u32);

impl VolumeSize {
    pub fn parse(gib: i64) -> Result<Self, String> {
        if !(i64::from(MIN_VOLUME_GIB)..=i64::from(MAX_VOLUME_GIB)).contains(&gib) {
            return Err(format!(
                "must be between {MIN_VOLUME_GIB} and {MAX_VOLUME_GIB} GiB, not {gib}"
            ));
        }
        Ok(Self(gib as u32))
    }

    pub fn gib(self) -> u32 {
        self.0
    }
}

pub const MIN_THROUGHPUT_MIB_S: u32 = 250;
pub const MAX_THROUGHPUT_MIB_S: u32 = 2375;

/// Provisioned volume throughput in MiB/s (MSK: 250 to 2375), when enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvisionedThroughput {
    pub enabled: bool,
    pub volume_throughput: Option<u32>,
}

impl ProvisionedThroughput {
    pub fn parse(enabled: bool, volume_throughput: Option<i64>) -> Result<Self, String> {
        match (enabled, volume_throughput) {
            (true, None) => Err("volumeThroughput is required when enabled".into()),
            (_, Some(t))
                if !(i64::from(MIN_THROUGHPUT_MIB_S)..=i64::from(MAX_THROUGHPUT_MIB_S))
                    .contains(&t) =>
            {
                Err(format!(
                    "volumeThroughput must be between {MIN_THROUGHPUT_MIB_S} and \
                     {MAX_THROUGHPUT_MIB_S} MiB/s, not {t}"
                ))
            }
            (enabled, t) => Ok(Self {
                enabled,
                volume_throughput: t.map(|t| t as u32),
            }),
        }
    }
}

/// Where a broker keeps its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum StorageInfo {
    /// Persistent: outlives the node and is re-attached to its replacement.
    #[serde(rename_all = "camelCase")]
    Ebs {
        volume_size: VolumeSize,
        provisioned_throughput: Option<ProvisionedThroughput>,
    },
    /// Ephemeral: lives and dies with the node.
    InstanceStore,
}

impl StorageInfo {
    pub fn is_persistent(&self) -> bool {
        matches!(self, StorageInfo::Ebs { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_size_range() {
        assert!(VolumeSize::parse(0).is_err());
        assert_eq!(VolumeSize::parse(1).unwrap().gib(), 1);
        assert_eq!(VolumeSize::parse(16384).unwrap().gib(), 16384);
        assert!(VolumeSize::parse(16385).is_err());
    }

    #[test]
    fn throughput_needs_a_value_when_enabled() {
        assert!(ProvisionedThroughput::parse(true, None).is_err());
        assert!(ProvisionedThroughput::parse(true, Some(100)).is_err());
        assert!(ProvisionedThroughput::parse(true, Some(250)).is_ok());
        assert!(ProvisionedThroughput::parse(false, None).is_ok());
    }
}
