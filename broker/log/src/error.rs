//! The storage engine's single error type. Every variant maps to exactly one Kafka error code so
//! the broker can answer a request without inspecting messages.

/// Errors returned by the log. See [`LogError::kafka_error_code`] for the wire mapping.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A batch failed its CRC, had an impossible length, or an unsupported magic byte.
    #[error("corrupt record batch: {0}")]
    CorruptMessage(String),
    /// A batch is larger than `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge { size: usize, max: usize },
    /// The requested offset is outside `[log_start_offset, log_end_offset]`.
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// A batch is well formed but breaks a rule of the log (record counts, offsets).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// The disk failed us. The in-memory state may then disagree with the files, so the broker
    /// should take the partition offline and reopen it later (recovery repairs the tail), as
    /// Kafka does with a failed log directory.
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl LogError {
    /// The Kafka protocol error code the broker should answer with.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            LogError::CorruptMessage(_) => 2,
            LogError::RecordTooLarge { .. } => 10,
            LogError::OffsetOutOfRange { .. } => 1,
            LogError::InvalidRecord(_) => 87,
            LogError::Io(_) => 56,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_match_kafka() {
        assert_eq!(LogError::CorruptMessage("x".into()).kafka_error_code(), 2);
        assert_eq!(
            LogError::RecordTooLarge { size: 2, max: 1 }.kafka_error_code(),
            10
        );
        let out_of_range = LogError::OffsetOutOfRange {
            offset: 9,
            log_start_offset: 0,
            log_end_offset: 1,
        };
        assert_eq!(out_of_range.kafka_error_code(), 1);
        assert_eq!(LogError::InvalidRecord("x".into()).kafka_error_code(), 87);
        assert_eq!(
            LogError::Io(std::io::Error::other("disk")).kafka_error_code(),
            56
        );
    }
}
