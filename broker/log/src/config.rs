//! Per-partition log configuration, the storage subset of Kafka's topic configs.

/// Storage settings of one partition log. Names follow Kafka's topic configs
/// (`segment.bytes`, `segment.ms`, `retention.ms`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment when the active one would grow past this size (`segment.bytes`).
    /// Positions in the offset index are 32-bit, so values above `i32::MAX` act as `i32::MAX`.
    pub segment_bytes: u64,
    /// Roll when the active segment's first batch is older than this (`segment.ms`).
    pub segment_ms: i64,
    /// Delete segments whose newest timestamp is older than this; -1 means unlimited.
    pub retention_ms: i64,
    /// Delete oldest segments while the log is larger than this; -1 means unlimited.
    pub retention_bytes: i64,
    /// fsync after this many unflushed records; `i64::MAX` never flushes by count.
    pub flush_messages: i64,
    /// fsync when the oldest unflushed append is older than this (checked by `maybe_flush`).
    pub flush_ms: i64,
    /// Bytes of log between two offset-index entries (`index.interval.bytes`).
    pub index_interval_bytes: u32,
    /// Largest accepted record batch (`max.message.bytes`).
    pub max_batch_bytes: usize,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * DAY_MS,
            retention_ms: 7 * DAY_MS,
            retention_bytes: -1,
            flush_messages: i64::MAX,
            flush_ms: 1000,
            index_interval_bytes: 4096,
            max_batch_bytes: (1 << 20) + 12,
        }
    }
}

impl LogConfig {
    /// The segment size limit actually enforced (index positions are u32, Kafka caps at i32).
    pub(crate) fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes.clamp(1, i32::MAX as u64)
    }
}
