//! What the broker adds to the replicated cluster metadata (`millrace-quorum`): topic name
//! rules, topic configuration, refusals as Kafka error codes, and [`sync`], which makes the
//! local partitions follow the metadata.

pub mod dynamic;
pub mod names;
pub mod sync;
pub mod topic_config;
pub mod topics;

pub use topic_config::{ConfigError, TopicConfig};
pub use topics::{check_new_topic, TopicError, MAX_PARTITIONS_PER_TOPIC};
