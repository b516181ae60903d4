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

pub const MIN_TARGET_UTILIZATION: u8 = 10;
pub const MAX_TARGET_UTILIZATION: u8 = 80;
pub const MIN_COOLDOWN_SECONDS: u32 = 60;
pub const MAX_COOLDOWN_SECONDS: u32 = 7 * 24 * 3600;
pub const DEFAULT_COOLDOWN_SECONDS: u32 = 3600;

/// Storage auto-expansion (MSK's storage auto scaling): when a broker's volume is fuller than
/// the target utilisation, the control plane grows every broker's volume, by an operation, to
/// a size at which that broker would be back under the target, never past the maximum, and
/// not again before the cool-down has passed since the last growth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageAutoExpansion {
    pub target_utilization_percent: u8,
    pub max_volume_size: VolumeSize,
    pub cooldown_seconds: u32,
}

impl StorageAutoExpansion {
    /// Checks a policy; `field` names where it was given (for the errors).
    pub fn parse(
        target_utilization_percent: i64,
        max_volume_size_gib: i64,
        cooldown_seconds: Option<i64>,
        field: &str,
    ) -> Result<Self, super::DomainError> {
        use super::DomainError;
        let range = i64::from(MIN_TARGET_UTILIZATION)..=i64::from(MAX_TARGET_UTILIZATION);
        if !range.contains(&target_utilization_percent) {
            return Err(DomainError::new(
                format!("{field}.targetUtilizationPercent"),
                format!(
                    "must be between {MIN_TARGET_UTILIZATION} and {MAX_TARGET_UTILIZATION}, not \
                     {target_utilization_percent}"
                ),
            ));
        }
        let max_volume_size = VolumeSize::parse(max_volume_size_gib)
            .map_err(|e| DomainError::new(format!("{field}.maxVolumeSizeGib"), e))?;
        let cooldown = cooldown_seconds.unwrap_or(i64::from(DEFAULT_COOLDOWN_SECONDS));
        if !(i64::from(MIN_COOLDOWN_SECONDS)..=i64::from(MAX_COOLDOWN_SECONDS)).contains(&cooldown)
        {
            return Err(DomainError::new(
                format!("{field}.cooldownSeconds"),
                format!(
                    "must be between {MIN_COOLDOWN_SECONDS} and {MAX_COOLDOWN_SECONDS}, not \
                     {cooldown}"
                ),
            ));
        }
        Ok(StorageAutoExpansion {
            target_utilization_percent: target_utilization_percent as u8,
            max_volume_size,
            cooldown_seconds: cooldown as u32,
        })
    }

    /// Auto-expansion grows persistent volumes, up to a maximum no smaller than their size.
    pub fn check_for(&self, storage: &StorageInfo) -> Result<(), super::DomainError> {
        let StorageInfo::Ebs { volume_size, .. } = storage else {
            return Err(super::DomainError::new(
                "storageAutoExpansion",
                "the cluster uses instance storage, which has no volume to grow",
            ));
        };
        if self.max_volume_size < *volume_size {
            return Err(super::DomainError::new(
                "storageAutoExpansion.maxVolumeSizeGib",
                format!(
                    "must be at least the volumes' current {} GiB",
                    volume_size.gib()
                ),
            ));
        }
        Ok(())
    }

    /// Whether a volume of `size` holding `used_bytes` (a GiB being `gib_bytes` on this
    /// platform) is past the target.
    pub fn exceeded(&self, size: VolumeSize, used_bytes: u64, gib_bytes: u64) -> bool {
        let capacity = u128::from(size.gib()) * u128::from(gib_bytes);
        u128::from(used_bytes) * 100 >= capacity * u128::from(self.target_utilization_percent)
    }

    /// The size to grow a volume of `size` holding `used_bytes` to: the smallest at which it
    /// is under the target again, at least one GiB more, at most the maximum. None when it is
    /// not past the target or already at the maximum.
    pub fn grown_size(
        &self,
        size: VolumeSize,
        used_bytes: u64,
        gib_bytes: u64,
    ) -> Option<VolumeSize> {
        if !self.exceeded(size, used_bytes, gib_bytes) || size >= self.max_volume_size {
            return None;
        }
        let needed_bytes =
            u128::from(used_bytes) * 100 / u128::from(self.target_utilization_percent);
        // The smallest whole size strictly under the target.
        let needed_gib = needed_bytes / u128::from(gib_bytes.max(1)) + 1;
        let wanted = needed_gib.max(u128::from(size.gib()) + 1);
        let capped = wanted.min(u128::from(self.max_volume_size.gib()));
        VolumeSize::parse(capped as i64).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_expansion_grows_past_the_target_up_to_the_maximum() {
        let policy = StorageAutoExpansion::parse(50, 10, None, "p").unwrap();
        assert_eq!(policy.cooldown_seconds, DEFAULT_COOLDOWN_SECONDS);
        let gib = 1 << 30;
        let size = VolumeSize::parse(2).unwrap();
        assert_eq!(policy.grown_size(size, gib / 2, gib), None, "25% used");
        // 1.4 GiB used of 2 (70%): 3 GiB is under 50%.
        assert_eq!(
            policy.grown_size(size, 14 * gib / 10, gib),
            Some(VolumeSize::parse(3).unwrap())
        );
        // 1.5 GiB used of 2 (75%): 3 GiB would be exactly 50%, so 4.
        assert_eq!(
            policy.grown_size(size, 3 * gib / 2, gib),
            Some(VolumeSize::parse(4).unwrap())
        );
        // Far past the maximum: the maximum.
        assert_eq!(
            policy.grown_size(size, 2 * gib, gib / 1024),
            Some(VolumeSize::parse(10).unwrap())
        );
        let at_max = VolumeSize::parse(10).unwrap();
        assert_eq!(policy.grown_size(at_max, 10 * gib, gib), None);
        for (target, max, cooldown, field) in [
            (5, 10, None, "p.targetUtilizationPercent"),
            (90, 10, None, "p.targetUtilizationPercent"),
            (50, 0, None, "p.maxVolumeSizeGib"),
            (50, 10, Some(1), "p.cooldownSeconds"),
        ] {
            let error = StorageAutoExpansion::parse(target, max, cooldown, "p").unwrap_err();
            assert_eq!(error.field, field);
        }
    }

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
