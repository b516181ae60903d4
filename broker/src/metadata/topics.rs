//! Why a topic change is refused, as one Kafka error code per reason. Topics themselves live in
//! the replicated cluster metadata (`millrace-quorum`).

use millrace_quorum::{QuorumError, Rejection};

use super::topic_config::ConfigError;

/// Most partitions one topic may have.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

/// Why a topic change was refused; each maps to one Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("topic {0:?} already exists")]
    AlreadyExists(String),
    #[error("topic {0:?} does not exist")]
    UnknownTopic(String),
    #[error("invalid topic name: {0}")]
    InvalidName(String),
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    #[error("invalid configuration {0}")]
    InvalidConfig(#[from] ConfigError),
    #[error("topic {0:?} is internal and cannot be changed by clients")]
    Internal(String),
    #[error("invalid replication factor: {0}")]
    InvalidReplicationFactor(String),
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    #[error("the metadata quorum is unavailable: {0}")]
    Unavailable(String),
    #[error("the metadata change timed out; it may or may not have been applied")]
    Timeout,
    #[error("refused by the controller: {0}")]
    Refused(String),
    #[error("could not open the topic's partitions: {0}")]
    Io(#[from] std::io::Error),
}

impl TopicError {
    /// Maps a quorum answer about topic `name`.
    pub fn from_quorum(name: &str, error: QuorumError) -> TopicError {
        match error {
            QuorumError::Rejected(Rejection::TopicAlreadyExists) => {
                TopicError::AlreadyExists(name.to_string())
            }
            QuorumError::Rejected(Rejection::UnknownTopicOrPartition) => {
                TopicError::UnknownTopic(name.to_string())
            }
            QuorumError::Rejected(Rejection::InvalidPartitions(reason)) => {
                TopicError::InvalidPartitions(reason)
            }
            QuorumError::Rejected(Rejection::InvalidReplicationFactor(reason)) => {
                TopicError::InvalidReplicationFactor(reason)
            }
            QuorumError::Rejected(Rejection::InvalidReplicaAssignment(reason)) => {
                TopicError::InvalidReplicaAssignment(reason)
            }
            QuorumError::Rejected(other) => TopicError::Refused(other.to_string()),
            QuorumError::NotLeader { .. } | QuorumError::Unavailable(_) => {
                TopicError::Unavailable(error.to_string())
            }
            QuorumError::Timeout => TopicError::Timeout,
        }
    }
}

impl TopicError {
    /// The Kafka error code for this refusal.
    pub fn code(&self) -> i16 {
        use kafka_protocol::ResponseError as E;
        match self {
            TopicError::AlreadyExists(_) => E::TopicAlreadyExists.code(),
            TopicError::UnknownTopic(_) => E::UnknownTopicOrPartition.code(),
            TopicError::InvalidName(_) => E::InvalidTopicException.code(),
            TopicError::InvalidPartitions(_) => E::InvalidPartitions.code(),
            TopicError::InvalidConfig(_) => E::InvalidConfig.code(),
            TopicError::Internal(_) => E::TopicAuthorizationFailed.code(),
            TopicError::InvalidReplicationFactor(_) => E::InvalidReplicationFactor.code(),
            TopicError::InvalidReplicaAssignment(_) => E::InvalidReplicaAssignment.code(),
            TopicError::Unavailable(_) => E::LeaderNotAvailable.code(),
            TopicError::Timeout => E::RequestTimedOut.code(),
            TopicError::Refused(_) => E::InvalidRequest.code(),
            TopicError::Io(_) => E::KafkaStorageError.code(),
        }
    }
}

/// Checks a topic creation before it goes to the controller: name, partition count, configs.
pub fn check_new_topic(
    name: &str,
    partitions: i32,
    configs: &std::collections::BTreeMap<String, String>,
) -> Result<(), TopicError> {
    super::names::validate_topic_name(name).map_err(TopicError::InvalidName)?;
    if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) {
        return Err(TopicError::InvalidPartitions(format!(
            "{partitions} is outside 1..={MAX_PARTITIONS_PER_TOPIC}"
        )));
    }
    super::TopicConfig::validate(configs)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn refuses_bad_names_partition_counts_and_configs() {
        let none = BTreeMap::new();
        assert!(check_new_topic("orders", 3, &none).is_ok());
        assert!(matches!(
            check_new_topic("bad name", 1, &none),
            Err(TopicError::InvalidName(_))
        ));
        assert!(matches!(
            check_new_topic("t", 0, &none),
            Err(TopicError::InvalidPartitions(_))
        ));
        let configs = BTreeMap::from([("retention.ms".to_string(), "x".to_string())]);
        assert!(matches!(
            check_new_topic("t", 1, &configs),
            Err(TopicError::InvalidConfig(_))
        ));
    }
}
