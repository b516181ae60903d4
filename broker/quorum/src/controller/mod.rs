//! The active controller's logic, free of I/O: placement, partition state transitions, broker
//! sessions, and the state machine's `apply_command`. Whichever node is the Raft leader runs the
//! decisions; every node runs `apply_command` on the committed log.

pub mod apply;
pub mod liveness;
pub mod partitions;
pub mod placement;

#[cfg(test)]
mod apply_tests;
#[cfg(test)]
mod partitions_tests;

#[cfg(test)]
pub(crate) mod test_support {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use uuid::Uuid;

    use crate::metadata::{BrokerRecord, ClusterMetadata, PartitionState, TopicRecord};

    pub fn broker(id: i32, rack: Option<&str>) -> BrokerRecord {
        BrokerRecord {
            id,
            rack: rack.map(str::to_string),
            host: "127.0.0.1".into(),
            port: 9092 + id as u16,
            incarnation_id: Uuid::from_u128(id as u128),
            epoch: 100 + id as u64,
            fenced: false,
            in_controlled_shutdown: false,
        }
    }

    pub fn cluster_with_brokers(brokers: &[(i32, Option<&str>)]) -> ClusterMetadata {
        ClusterMetadata {
            brokers: brokers
                .iter()
                .map(|(id, rack)| (*id, broker(*id, *rack)))
                .collect(),
            ..ClusterMetadata::default()
        }
    }

    pub fn add_topic(cluster: &mut ClusterMetadata, name: &str, assignments: &[Vec<i32>]) {
        let partitions = assignments
            .iter()
            .enumerate()
            .map(|(i, r)| PartitionState::new(i as i32, r.clone()))
            .collect();
        cluster.topics.insert(
            name.to_string(),
            Arc::new(TopicRecord {
                name: name.to_string(),
                id: Uuid::new_v4(),
                configs: BTreeMap::new(),
                partitions,
            }),
        );
    }

    pub fn count_by(ids: impl Iterator<Item = i32>) -> BTreeMap<i32, usize> {
        ids.fold(BTreeMap::new(), |mut m, id| {
            *m.entry(id).or_default() += 1;
            m
        })
    }
}
