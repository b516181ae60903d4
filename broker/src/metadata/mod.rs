//! Cluster metadata held by the broker: topics, their partitions and configuration.
//!
//! On a single node this is a file written atomically on every change; the replicated-cluster
//! issue moves the same records into a Raft state machine. Callers only use the
//! [`TopicRegistry`] methods, so that move does not touch them.

pub mod names;
pub mod topic_config;
pub mod topics;

pub use topic_config::{ConfigError, TopicConfig};
pub use topics::{TopicError, TopicRecord, TopicRegistry};
