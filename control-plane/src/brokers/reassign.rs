//! Moving partitions between brokers: Kafka's AlterPartitionReassignments and
//! ListPartitionReassignments (v0, which every broker version we run answers), sent to the active
//! controller's broker, whose metadata is never behind; and UnregisterBroker v0 for a broker
//! that was removed.

use std::time::Duration;

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
    UnregisterBrokerRequest, UnregisterBrokerResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::kafka::call;
use super::BrokerError;

const VERSION: i16 = 0;

/// A partition whose replicas are being moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassigning {
    pub topic: String,
    pub partition: i32,
    /// The replicas once the move is done (the metadata's replicas without the removing ones).
    pub target: Vec<i32>,
    /// Replicas still catching up.
    pub adding: Vec<i32>,
}

/// A partition the controller refused to move, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub topic: String,
    pub partition: i32,
    pub error_code: i16,
    pub message: String,
}

/// Every reassignment in progress.
pub async fn list(address: &str, timeout: Duration) -> Result<Vec<Reassigning>, BrokerError> {
    let request = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(timeout.as_millis() as i32)
        .with_topics(None);
    let response: ListPartitionReassignmentsResponse = call(
        address,
        ApiKey::ListPartitionReassignments,
        VERSION,
        &request,
        timeout,
    )
    .await?;
    if response.error_code != 0 {
        return Err(answered_error(
            address,
            "ListPartitionReassignments",
            response.error_code,
            response.error_message.as_deref(),
        ));
    }
    let ids = |ids: &[BrokerId]| ids.iter().map(|b| b.0).collect::<Vec<i32>>();
    Ok(response
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|p| {
                let removing = ids(&p.removing_replicas);
                Reassigning {
                    topic: topic.name.to_string(),
                    partition: p.partition_index,
                    target: ids(&p.replicas)
                        .into_iter()
                        .filter(|r| !removing.contains(r))
                        .collect(),
                    adding: ids(&p.adding_replicas),
                }
            })
        })
        .collect())
}

/// Starts moving each `(topic, partition, replicas)`; returns the partitions refused.
pub async fn alter(
    address: &str,
    moves: &[(String, i32, Vec<i32>)],
    timeout: Duration,
) -> Result<Vec<Refused>, BrokerError> {
    let mut topics: Vec<ReassignableTopic> = Vec::new();
    for (topic, partition, replicas) in moves {
        let partition = ReassignablePartition::default()
            .with_partition_index(*partition)
            .with_replicas(Some(replicas.iter().map(|b| BrokerId(*b)).collect()));
        match topics.iter_mut().find(|t| *t.name.0 == **topic) {
            Some(existing) => existing.partitions.push(partition),
            None => topics.push(
                ReassignableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(timeout.as_millis() as i32)
        .with_topics(topics);
    let response: AlterPartitionReassignmentsResponse = call(
        address,
        ApiKey::AlterPartitionReassignments,
        VERSION,
        &request,
        timeout,
    )
    .await?;
    if response.error_code != 0 {
        return Err(answered_error(
            address,
            "AlterPartitionReassignments",
            response.error_code,
            response.error_message.as_deref(),
        ));
    }
    Ok(response
        .responses
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .filter(|p| p.error_code != 0)
                .map(|p| Refused {
                    topic: topic.name.to_string(),
                    partition: p.partition_index,
                    error_code: p.error_code,
                    message: p
                        .error_message
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                })
        })
        .collect())
}

/// The error a whole request was answered with.
fn answered_error(address: &str, api: &str, code: i16, message: Option<&str>) -> BrokerError {
    BrokerError::Protocol {
        address: address.to_owned(),
        message: format!(
            "{api} answered error code {code}{}",
            message.map(|m| format!(": {m}")).unwrap_or_default()
        ),
    }
}

/// Kafka's BROKER_ID_NOT_REGISTERED.
const BROKER_ID_NOT_REGISTERED: i16 = 102;

/// Unregisters `broker_id`; answers false when it was not registered (already done).
pub async fn unregister(
    address: &str,
    broker_id: i32,
    timeout: Duration,
) -> Result<bool, BrokerError> {
    let request = UnregisterBrokerRequest::default().with_broker_id(BrokerId(broker_id));
    let response: UnregisterBrokerResponse = call(
        address,
        ApiKey::UnregisterBroker,
        VERSION,
        &request,
        timeout,
    )
    .await?;
    match response.error_code {
        0 => Ok(true),
        BROKER_ID_NOT_REGISTERED => Ok(false),
        code => Err(answered_error(
            address,
            "UnregisterBroker",
            code,
            response.error_message.as_deref(),
        )),
    }
}
