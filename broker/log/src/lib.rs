//! Millrace's storage engine: one append-only, segmented log per partition, in Kafka's model.
//!
//! - [`batch`]: record batch v2 headers, CRC-32C checks, produce payload validation.
//! - `index`: sparse offset and time indexes of a segment.
//! - `segment`: one `.log` file with its two indexes.
//! - [`Log`]: the partition log — rolling, recovery, retention, flushing, reads, epochs.
//! - `checkpoint` / `epoch`: small atomically replaced state files in the partition directory.
//!
//! The log knows nothing about the wire protocol: it takes and returns raw batch bytes, stored
//! exactly as producers sent them.

pub mod batch;
pub mod checkpoint;
mod config;
mod epoch;
mod error;
mod index;
mod log;
mod segment;
#[cfg(test)]
mod test_util;

pub use batch::{validate_batches, BatchHeader, ValidatedBatches};
pub use config::LogConfig;
pub use error::LogError;
pub use log::{AppendInfo, Log, PendingFlush};
pub use segment::remove_deleted_files;
