//! Broker sizes (the catalog of instance types), zones and broker counts.

use serde::{Deserialize, Serialize};

/// One entry of the broker-size catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerType {
    pub name: &'static str,
    pub vcpus: u32,
    pub memory_gib: u32,
    /// The local disk an instance-store broker of this size gets, in GiB.
    pub instance_store_gib: u32,
}

/// The broker sizes on offer, named as in Amazon MSK.
pub const BROKER_TYPES: &[BrokerType] = &[
    BrokerType {
        name: "kafka.t3.small",
        vcpus: 2,
        memory_gib: 2,
        instance_store_gib: 20,
    },
    BrokerType {
        name: "kafka.m5.large",
        vcpus: 2,
        memory_gib: 8,
        instance_store_gib: 100,
    },
    BrokerType {
        name: "kafka.m5.xlarge",
        vcpus: 4,
        memory_gib: 16,
        instance_store_gib: 200,
    },
    BrokerType {
        name: "kafka.m5.2xlarge",
        vcpus: 8,
        memory_gib: 32,
        instance_store_gib: 400,
    },
];

/// A broker size from [`BROKER_TYPES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceType(&'static BrokerType);

impl InstanceType {
    pub fn parse(name: &str) -> Result<Self, String> {
        BROKER_TYPES
            .iter()
            .find(|t| t.name == name)
            .map(InstanceType)
            .ok_or_else(|| {
                let names: Vec<&str> = BROKER_TYPES.iter().map(|t| t.name).collect();
                format!(
                    "unknown instance type {name:?}; choose one of {}",
                    names.join(", ")
                )
            })
    }

    pub fn name(&self) -> &'static str {
        self.0.name
    }

    /// The local disk an instance-store broker of this size gets, in GiB.
    pub fn instance_store_gib(&self) -> u32 {
        self.0.instance_store_gib
    }

    pub fn broker_type(&self) -> &'static BrokerType {
        self.0
    }
}

impl TryFrom<String> for InstanceType {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Self::parse(&value)
    }
}

impl From<InstanceType> for String {
    fn from(value: InstanceType) -> String {
        value.name().to_owned()
    }
}

/// The zone labels a cluster's brokers are spread over (they become each broker's rack).
pub const DEFAULT_ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];
const MAX_ZONES: usize = 6;
const MAX_ZONE_LABEL: usize = 32;

/// Distinct zone labels, 1 to 6 of them, each `[a-z0-9-]{1,32}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Zones(Vec<String>);

impl Zones {
    pub fn parse(labels: Vec<String>) -> Result<Self, String> {
        if labels.is_empty() || labels.len() > MAX_ZONES {
            return Err(format!("give 1 to {MAX_ZONES} zones, not {}", labels.len()));
        }
        for (i, label) in labels.iter().enumerate() {
            let well_formed = !label.is_empty()
                && label.len() <= MAX_ZONE_LABEL
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !well_formed {
                return Err(format!(
                    "zone {label:?} must be 1 to {MAX_ZONE_LABEL} characters of a-z, 0-9 and -"
                ));
            }
            if labels[..i].contains(label) {
                return Err(format!("zone {label:?} is listed twice"));
            }
        }
        Ok(Self(labels))
    }

    pub fn default_zones() -> Self {
        Self(DEFAULT_ZONES.iter().map(|z| z.to_string()).collect())
    }

    pub fn labels(&self) -> &[String] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The zone of the n-th broker (0-based): brokers are spread round-robin.
    pub fn zone_of(&self, index: usize) -> &str {
        &self.0[index % self.0.len()]
    }
}

impl TryFrom<Vec<String>> for Zones {
    type Error = String;
    fn try_from(value: Vec<String>) -> Result<Self, String> {
        Self::parse(value)
    }
}

impl From<Zones> for Vec<String> {
    fn from(value: Zones) -> Self {
        value.0
    }
}

pub const MAX_BROKERS: u32 = 30;

/// The brokers numbered 1 to this (or all of them, in a smaller cluster) are the voters of a
/// cluster's metadata quorum, from its creation on: three tolerate one lost voter, as Kafka's
/// usual three controllers do. Every other broker follows the quorum as an observer, so that
/// adding or removing it never changes the quorum's majority.
pub const QUORUM_VOTERS: i32 = 3;

/// Number of broker nodes: 1 to 30 and a multiple of the number of zones, so every zone holds
/// the same number of brokers (MSK's rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BrokerCount(u32);

impl BrokerCount {
    pub fn parse(count: i64, zones: &Zones) -> Result<Self, String> {
        if !(1..=i64::from(MAX_BROKERS)).contains(&count) {
            return Err(format!("must be between 1 and {MAX_BROKERS}, not {count}"));
        }
        if count % zones.len() as i64 != 0 {
            return Err(format!(
                "must be a multiple of the number of zones ({}), not {count}",
                zones.len()
            ));
        }
        Ok(Self(count as u32))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_count_must_fill_every_zone_evenly() {
        let three = Zones::default_zones();
        assert!(BrokerCount::parse(3, &three).is_ok());
        assert!(BrokerCount::parse(6, &three).is_ok());
        assert!(BrokerCount::parse(4, &three)
            .unwrap_err()
            .contains("multiple"));
        assert!(BrokerCount::parse(0, &three).is_err());
        assert!(BrokerCount::parse(33, &three).is_err());
        let one = Zones::parse(vec!["zone-a".into()]).unwrap();
        assert_eq!(BrokerCount::parse(1, &one).unwrap().get(), 1);
    }

    #[test]
    fn zones_are_distinct_labels() {
        assert!(Zones::parse(vec![]).is_err());
        assert!(Zones::parse(vec!["a".into(), "a".into()]).is_err());
        assert!(Zones::parse(vec!["Zone A".into()]).is_err());
        assert_eq!(Zones::default_zones().zone_of(4), "zone-b");
    }

    #[test]
    fn instance_types_come_from_the_catalog() {
        assert_eq!(
            InstanceType::parse("kafka.m5.large")
                .unwrap()
                .broker_type()
                .memory_gib,
            8
        );
        assert!(InstanceType::parse("kafka.m7g.huge").is_err());
    }
}
