//! Millrace's Kafka-compatible broker.
//!
//! - [`server`] accepts connections and reads frames; [`dispatch`] decodes them with the
//!   `kafka-protocol` crate and routes them to [`handlers`], one module per API family.
//! - Handlers call [`partition`] (a log from `millrace-log` plus high watermark and producer
//!   state), [`metadata`] (topics and their configuration) and [`group`] (consumer groups);
//!   none of those know the wire.
//! - [`admin`] serves `/health`, `/ready` and `/metrics` over HTTP.

pub mod admin;
pub mod broker;
pub mod capacity;
pub mod config;
pub mod dispatch;
pub mod group;
pub mod handlers;
pub mod metadata;
pub mod metrics;
pub mod partition;
pub mod producer_ids;
pub mod replication;
pub mod run;
pub mod server;
