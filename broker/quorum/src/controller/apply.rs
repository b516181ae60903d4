//! Applying one committed command to the metadata. Deterministic: the outcome depends only on
//! the state, the command and its log index.

use std::sync::Arc;

use crate::command::{Command, CommandOutcome, CommandResult, Rejection};
use crate::controller::partitions::{self, validate_replica_list};
use crate::metadata::{BrokerRecord, ClusterMetadata, PartitionState, TopicRecord};

/// Largest producer-id block one request may take.
pub const MAX_PRODUCER_ID_BLOCK: i64 = 1_000_000;
/// Kafka's limit on topic name length.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Applies `command`, committed at `index`. On a rejection `cluster` is left as it was.
pub fn apply_command(
    cluster: &mut ClusterMetadata,
    command: &Command,
    index: u64,
) -> CommandResult {
    let mut next = cluster.clone();
    let outcome = apply_to(&mut next, command, index)?;
    next.applied_index = index;
    *cluster = next;
    Ok(outcome)
}

fn apply_to(cluster: &mut ClusterMetadata, command: &Command, index: u64) -> CommandResult {
    match command {
        Command::InitializeCluster { cluster_id } => {
            if cluster.cluster_id.is_empty() {
                cluster.cluster_id = cluster_id.clone();
            }
            Ok(CommandOutcome::Done)
        }
        Command::RegisterBroker(registration) => {
            if let Some(existing) = cluster.brokers.get(&registration.broker_id) {
                if existing.incarnation_id == registration.incarnation_id {
                    return Ok(broker_outcome(existing));
                }
                // A new process: the old incarnation's leaderships and ISR places go first.
                fence(cluster, registration.broker_id);
            }
            let record = BrokerRecord {
                id: registration.broker_id,
                rack: registration.rack.clone(),
                host: registration.host.clone(),
                port: registration.port,
                incarnation_id: registration.incarnation_id,
                epoch: index,
                fenced: true,
                in_controlled_shutdown: false,
            };
            let outcome = broker_outcome(&record);
            cluster.brokers.insert(record.id, record);
            Ok(outcome)
        }
        Command::UnfenceBroker {
            broker_id,
            broker_epoch,
        } => {
            let broker = current_broker(cluster, *broker_id, *broker_epoch)?;
            if broker.in_controlled_shutdown {
                return Err(Rejection::InvalidRequest(
                    "broker is in controlled shutdown".into(),
                ));
            }
            if broker.fenced {
                cluster.brokers.get_mut(broker_id).expect("checked").fenced = false;
                update_partitions(cluster, partitions::on_broker_unfenced);
            }
            Ok(broker_outcome(&cluster.brokers[broker_id]))
        }
        Command::FenceBroker {
            broker_id,
            broker_epoch,
        } => {
            current_broker(cluster, *broker_id, *broker_epoch)?;
            fence(cluster, *broker_id);
            Ok(broker_outcome(&cluster.brokers[broker_id]))
        }
        Command::BeginControlledShutdown { broker_id } => {
            let broker = cluster
                .brokers
                .get_mut(broker_id)
                .ok_or(Rejection::UnknownBroker(*broker_id))?;
            broker.in_controlled_shutdown = true;
            let id = *broker_id;
            update_partitions(cluster, |p, c| partitions::on_controlled_shutdown(p, id, c));
            Ok(broker_outcome(&cluster.brokers[broker_id]))
        }
        Command::CreateTopic {
            name,
            topic_id,
            configs,
            assignments,
        } => {
            validate_topic_name(name)?;
            if cluster.topics.contains_key(name) {
                return Err(Rejection::TopicAlreadyExists);
            }
            if assignments.is_empty() {
                return Err(Rejection::InvalidPartitions(
                    "at least one partition".into(),
                ));
            }
            let partitions = new_partitions(cluster, 0, assignments, None)?;
            let topic = Arc::new(TopicRecord {
                name: name.clone(),
                id: *topic_id,
                configs: configs.clone(),
                partitions,
            });
            cluster.topics.insert(name.clone(), topic.clone());
            Ok(CommandOutcome::Topic(topic))
        }
        Command::DeleteTopic { name } => {
            cluster
                .topics
                .remove(name)
                .ok_or(Rejection::UnknownTopicOrPartition)?;
            Ok(CommandOutcome::Done)
        }
        Command::CreatePartitions { name, assignments } => {
            let topic = cluster
                .topics
                .get(name)
                .ok_or(Rejection::UnknownTopicOrPartition)?;
            let existing = topic.partitions.len();
            let replication_factor = topic
                .partitions
                .first()
                .map(|p| p.replicas.len() - p.removing_replicas.len());
            if assignments.is_empty() {
                return Err(Rejection::InvalidPartitions("no new partitions".into()));
            }
            let added = new_partitions(cluster, existing, assignments, replication_factor)?;
            let topic = Arc::make_mut(cluster.topics.get_mut(name).expect("checked"));
            topic.partitions.extend(added);
            Ok(CommandOutcome::Topic(cluster.topics[name].clone()))
        }
        Command::AlterTopicConfigs { name, set, delete } => {
            let topic = cluster
                .topics
                .get_mut(name)
                .ok_or(Rejection::UnknownTopicOrPartition)?;
            let topic = Arc::make_mut(topic);
            for key in delete {
                topic.configs.remove(key);
            }
            topic
                .configs
                .extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
            Ok(CommandOutcome::Topic(cluster.topics[name].clone()))
        }
        Command::AlterPartition {
            topic,
            partition,
            leader_id,
            leader_epoch,
            partition_epoch,
            new_isr,
        } => {
            let current = lookup(cluster, topic, *partition)?;
            let next = partitions::alter_partition(
                current,
                cluster,
                *leader_id,
                *leader_epoch,
                *partition_epoch,
                new_isr,
            )?;
            Ok(replace_partition(cluster, topic, next))
        }
        Command::ElectLeader {
            topic,
            partition,
            kind,
        } => {
            let next =
                partitions::elect_leader(lookup(cluster, topic, *partition)?, cluster, *kind)?;
            Ok(replace_partition(cluster, topic, next))
        }
        Command::BeginReassignment {
            topic,
            partition,
            target_replicas,
        } => {
            let next = partitions::begin_reassignment(
                lookup(cluster, topic, *partition)?,
                cluster,
                target_replicas,
            )?;
            Ok(replace_partition(cluster, topic, next))
        }
        Command::CompleteReassignment { topic, partition } => {
            let current = lookup(cluster, topic, *partition)?;
            if !current.is_reassigning() {
                return Err(Rejection::NoReassignmentInProgress);
            }
            let mut next = current.clone();
            if !partitions::try_complete_reassignment(&mut next, cluster) {
                return Err(Rejection::ReassignmentInProgress);
            }
            next.partition_epoch = current.partition_epoch + 1;
            Ok(replace_partition(cluster, topic, next))
        }
        Command::UnregisterBroker { broker_id } => {
            if !cluster.brokers.contains_key(broker_id) {
                return Err(Rejection::UnknownBroker(*broker_id));
            }
            let held: Vec<String> = cluster
                .partitions()
                .filter(|(_, p)| {
                    p.replicas.contains(broker_id) || p.adding_replicas.contains(broker_id)
                })
                .map(|(topic, p)| format!("{topic}-{}", p.partition))
                .collect();
            if !held.is_empty() {
                let first: Vec<&str> = held.iter().take(5).map(String::as_str).collect();
                return Err(Rejection::BrokerHoldsReplicas(
                    *broker_id,
                    format!("{} partition(s): {}", held.len(), first.join(", ")),
                ));
            }
            cluster.brokers.remove(broker_id);
            Ok(CommandOutcome::Done)
        }
        Command::AllocateProducerIdBlock {
            broker_id,
            block_size,
        } => {
            if !cluster.brokers.contains_key(broker_id) {
                return Err(Rejection::UnknownBroker(*broker_id));
            }
            if !(1..=MAX_PRODUCER_ID_BLOCK).contains(block_size) {
                return Err(Rejection::InvalidRequest(format!(
                    "producer id block size must be 1..={MAX_PRODUCER_ID_BLOCK}"
                )));
            }
            let start = cluster.next_producer_id;
            cluster.next_producer_id = start
                .checked_add(*block_size)
                .ok_or_else(|| Rejection::InvalidRequest("producer ids exhausted".into()))?;
            Ok(CommandOutcome::ProducerIdBlock {
                start,
                len: *block_size,
            })
        }
    }
}

fn broker_outcome(broker: &BrokerRecord) -> CommandOutcome {
    CommandOutcome::Broker {
        broker_id: broker.id,
        epoch: broker.epoch,
        fenced: broker.fenced,
    }
}

fn current_broker(
    cluster: &ClusterMetadata,
    broker_id: i32,
    broker_epoch: u64,
) -> Result<&BrokerRecord, Rejection> {
    let broker = cluster
        .brokers
        .get(&broker_id)
        .ok_or(Rejection::UnknownBroker(broker_id))?;
    if broker.epoch != broker_epoch {
        return Err(Rejection::StaleBrokerEpoch);
    }
    Ok(broker)
}

fn fence(cluster: &mut ClusterMetadata, broker_id: i32) {
    let broker = cluster.brokers.get_mut(&broker_id).expect("caller checked");
    broker.fenced = true;
    broker.in_controlled_shutdown = false;
    update_partitions(cluster, |p, c| {
        partitions::on_broker_fenced(p, broker_id, c)
    });
}

/// Replaces every partition for which `change` returns a new state.
fn update_partitions(
    cluster: &mut ClusterMetadata,
    change: impl Fn(&PartitionState, &ClusterMetadata) -> Option<PartitionState>,
) {
    let mut changes: Vec<(String, PartitionState)> = Vec::new();
    for (topic, partition) in cluster.partitions() {
        if let Some(next) = change(partition, cluster) {
            changes.push((topic.to_string(), next));
        }
    }
    for (topic, next) in changes {
        replace_partition(cluster, &topic, next);
    }
}

fn lookup<'a>(
    cluster: &'a ClusterMetadata,
    topic: &str,
    partition: i32,
) -> Result<&'a PartitionState, Rejection> {
    cluster
        .partition(topic, partition)
        .ok_or(Rejection::UnknownTopicOrPartition)
}

fn replace_partition(
    cluster: &mut ClusterMetadata,
    topic: &str,
    next: PartitionState,
) -> CommandOutcome {
    let record = Arc::make_mut(cluster.topics.get_mut(topic).expect("partition looked up"));
    let index = next.partition as usize;
    record.partitions[index] = next.clone();
    CommandOutcome::Partition(next)
}

/// New partition states numbered from `first`, each with `replication_factor` replicas (by
/// default the first assignment's): the ISR is the eligible replicas, the leader the first.
fn new_partitions(
    cluster: &ClusterMetadata,
    first: usize,
    assignments: &[Vec<i32>],
    replication_factor: Option<usize>,
) -> Result<Vec<PartitionState>, Rejection> {
    let replication_factor = replication_factor.unwrap_or(assignments[0].len());
    let mut result = Vec::with_capacity(assignments.len());
    for (i, replicas) in assignments.iter().enumerate() {
        validate_replica_list(replicas).map_err(Rejection::InvalidReplicaAssignment)?;
        if replicas.len() != replication_factor {
            return Err(Rejection::InvalidReplicaAssignment(
                "every partition needs the same number of replicas".into(),
            ));
        }
        if let Some(unknown) = replicas.iter().find(|b| !cluster.brokers.contains_key(b)) {
            return Err(Rejection::UnknownBroker(*unknown));
        }
        let partition = i32::try_from(first + i)
            .map_err(|_| Rejection::InvalidPartitions("too many partitions".into()))?;
        let mut state = PartitionState::new(partition, replicas.clone());
        state.isr.retain(|r| cluster.is_eligible(*r));
        if state.isr.is_empty() {
            return Err(Rejection::InvalidReplicationFactor(
                "none of the replicas is available".into(),
            ));
        }
        state.leader = state.isr[0];
        result.push(state);
    }
    Ok(result)
}

/// Kafka's rule: 1..=249 characters of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), Rejection> {
    let legal = !name.is_empty()
        && name.len() <= MAX_TOPIC_NAME_LEN
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if legal {
        Ok(())
    } else {
        Err(Rejection::InvalidRequest(format!(
            "illegal topic name {name:?}: 1 to {MAX_TOPIC_NAME_LEN} of [a-zA-Z0-9._-]"
        )))
    }
}
