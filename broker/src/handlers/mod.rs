//! One module per API family. Each handler takes the decoded request and returns the typed
//! response; errors travel as Kafka error codes inside the response.

pub mod api_versions;
pub mod cluster;
pub mod configs;
pub mod fetch;
pub mod groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_for_leader_epoch;
pub mod partition_admin;
pub mod produce;
pub mod producer_id;
pub mod topics;

#[cfg(test)]
pub(crate) mod testing;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub(crate) fn str_bytes(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}
