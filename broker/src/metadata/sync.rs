//! Makes this broker's partitions follow the cluster metadata: opens the partitions assigned
//! to it, applies leaders, epochs and ISRs, starts or stops following leaders, moves group
//! coordination with the leadership of the offsets partitions, and deletes the data of
//! partitions it no longer hosts. A change of the broker's dynamic settings re-applies the
//! topic configurations they are defaults of.

use std::collections::BTreeSet;
use std::sync::Arc;

use millrace_quorum::{ClusterMetadata, NO_LEADER};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::broker::{Broker, OFFSETS_TOPIC};
use crate::partition::TopicPartition;

/// Applies every metadata change until `shutdown`.
pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut metadata = broker.subscribe_metadata();
    let mut dynamic = broker.dynamic.subscribe();
    let mut applied: Option<(u64, u64)> = None;
    loop {
        let current = metadata.borrow_and_update().clone();
        let settings = *dynamic.borrow_and_update();
        let version = (current.applied_index, settings);
        if applied != Some(version) {
            let target = broker.clone();
            let snapshot = current.clone();
            match tokio::task::spawn_blocking(move || apply(&target, &snapshot)).await {
                Ok(()) => applied = Some(version),
                Err(error) => warn!(%error, "applying metadata failed"),
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            changed = metadata.changed() => if changed.is_err() { return },
            changed = dynamic.changed() => if changed.is_err() { return },
        }
    }
}

/// One pass: local partitions made to match `metadata`. Runs on a blocking thread (it opens
/// and deletes files); the fetchers it starts run on the runtime.
pub fn apply(broker: &Arc<Broker>, metadata: &ClusterMetadata) {
    let me = broker.config.node_id;
    let mut hosted = BTreeSet::new();
    for topic in metadata.topics.values() {
        let log_config = broker.topic_config(topic).log_config();
        let offsets_partitions = topic.partitions.len();
        for state in &topic.partitions {
            if !state.replicas.contains(&me) && !state.adding_replicas.contains(&me) {
                continue;
            }
            let id = TopicPartition {
                topic: topic.name.clone(),
                partition: state.partition,
            };
            hosted.insert(id.clone());
            let partition = match broker.partitions.ensure_partition(
                &topic.name,
                topic.id,
                state.partition,
                &log_config,
            ) {
                Ok(partition) => partition,
                Err(error) => {
                    warn!(partition = %id, %error, "cannot open partition");
                    continue;
                }
            };
            partition.set_log_config(log_config.clone());
            let was_leader = partition.is_leader();
            partition.update_leadership(state, me);
            if state.leader == me {
                broker.fetchers.unfollow(&id);
                if topic.name == OFFSETS_TOPIC {
                    broker
                        .groups
                        .lead_offsets_partition(partition.clone(), offsets_partitions);
                }
                if !was_leader {
                    info!(partition = %id, epoch = state.leader_epoch, "leading");
                }
            } else {
                if topic.name == OFFSETS_TOPIC {
                    broker
                        .groups
                        .resign_offsets_partition(state.partition as usize);
                }
                match metadata.broker(state.leader) {
                    Some(leader) if state.leader != NO_LEADER => {
                        broker.fetchers.follow(
                            partition.clone(),
                            leader.id,
                            format!("{}:{}", leader.host, leader.port),
                            state.leader_epoch,
                        );
                    }
                    _ => broker.fetchers.unfollow(&id),
                }
            }
        }
    }
    for partition in broker.partitions.all() {
        if hosted.contains(&partition.id) {
            continue;
        }
        broker.fetchers.unfollow(&partition.id);
        if partition.id.topic == OFFSETS_TOPIC {
            broker
                .groups
                .resign_offsets_partition(partition.id.partition as usize);
        }
        if let Err(error) = broker.partitions.remove(&partition.id) {
            warn!(partition = %partition.id, %error, "cannot delete partition data");
        }
    }
}
