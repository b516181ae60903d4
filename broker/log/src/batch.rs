//! Kafka record batch (magic v2) headers.
//!
//! The log stores batches exactly as producers sent them and never decompresses them, so all it
//! needs is the fixed 61-byte header: offsets, timestamps, producer fields and the CRC. The CRC
//! (CRC-32C) covers everything from `attributes` to the end of the batch, which is why the leader
//! may overwrite `baseOffset` and `partitionLeaderEpoch` in place without recomputing it.

use crate::error::LogError;

/// Size of the fixed batch header.
pub const HEADER_SIZE: usize = 61;
/// `baseOffset` + `batchLength`: the bytes not counted by `batchLength`.
pub const LOG_OVERHEAD: usize = 12;
/// The only supported batch format.
pub const MAGIC_V2: i8 = 2;

const BASE_OFFSET_POS: usize = 0;
const LEADER_EPOCH_POS: usize = 12;
/// The bytes before `magic`: the fields the leader may rewrite, and the length.
pub const PREFIX_SIZE: usize = 16;
const MAGIC_POS: usize = 16;
const CRC_POS: usize = 17;
const ATTRIBUTES_POS: usize = 21;
const NO_SEQUENCE: i32 = -1;

/// The parsed header of one magic v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i64(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}
fn be_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(buf[at..at + 2].try_into().expect("2 bytes"))
}

impl BatchHeader {
    /// Parses the header at the start of `buf`. Rejects short buffers, magic other than 2 and
    /// `batchLength` too small to hold a header; it does not check the CRC (see `verify_crc`).
    pub fn parse(buf: &[u8]) -> Result<Self, LogError> {
        if buf.len() < HEADER_SIZE {
            return Err(LogError::CorruptMessage(format!(
                "{} bytes are too few for a record batch header",
                buf.len()
            )));
        }
        let header = BatchHeader {
            base_offset: be_i64(buf, BASE_OFFSET_POS),
            batch_length: be_i32(buf, 8),
            partition_leader_epoch: be_i32(buf, LEADER_EPOCH_POS),
            magic: buf[MAGIC_POS] as i8,
            crc: be_i32(buf, CRC_POS) as u32,
            attributes: be_i16(buf, ATTRIBUTES_POS),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            records_count: be_i32(buf, 57),
        };
        if header.magic != MAGIC_V2 {
            return Err(LogError::CorruptMessage(format!(
                "unsupported record batch magic {}",
                header.magic
            )));
        }
        if (header.batch_length as i64) < (HEADER_SIZE - LOG_OVERHEAD) as i64 {
            return Err(LogError::CorruptMessage(format!(
                "batch length {} is smaller than a batch header",
                header.batch_length
            )));
        }
        Ok(header)
    }

    /// Checks the CRC-32C over `attributes..end`. `batch` must be exactly this whole batch.
    pub fn verify_crc(&self, batch: &[u8]) -> Result<(), LogError> {
        if batch.len() != self.total_size() {
            return Err(LogError::CorruptMessage(format!(
                "batch has {} bytes, its header says {}",
                batch.len(),
                self.total_size()
            )));
        }
        let computed = crc32c::crc32c(&batch[ATTRIBUTES_POS..]);
        if computed != self.crc {
            return Err(LogError::CorruptMessage(format!(
                "CRC mismatch: stored {:#010x}, computed {computed:#010x}",
                self.crc
            )));
        }
        Ok(())
    }

    /// Size of the whole batch including the 12 bytes of offset and length.
    pub fn total_size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// The batch's first [`PREFIX_SIZE`] bytes as this header has them: `baseOffset`,
    /// `batchLength` and `partitionLeaderEpoch`. The leader owns the offset and the epoch, and
    /// both lie outside the CRC, so a batch stored with this prefix in place of the producer's
    /// is still the producer's batch.
    pub fn prefix(&self) -> [u8; PREFIX_SIZE] {
        let mut prefix = [0u8; PREFIX_SIZE];
        prefix[BASE_OFFSET_POS..BASE_OFFSET_POS + 8]
            .copy_from_slice(&self.base_offset.to_be_bytes());
        prefix[8..12].copy_from_slice(&self.batch_length.to_be_bytes());
        prefix[LEADER_EPOCH_POS..LEADER_EPOCH_POS + 4]
            .copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        prefix
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }

    /// 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> u8 {
        (self.attributes & 0x07) as u8
    }

    /// True when timestamps are broker append times rather than producer create times.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & 0x08 != 0
    }

    /// Sequence of the last record; sequences wrap from `i32::MAX` to 0 as in Kafka.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        let delta = self.last_offset_delta;
        if self.base_sequence > i32::MAX - delta {
            delta - (i32::MAX - self.base_sequence) - 1
        } else {
            self.base_sequence + delta
        }
    }
}

/// Splits a produce payload (one or more concatenated batches) into validated batches: magic 2,
/// consistent lengths, CRC, `records_count >= 0`, `0 <= last_offset_delta` with no more records
/// than offsets, and each batch at most `max_batch_bytes`.
pub fn validate_batches(buf: &[u8], max_batch_bytes: usize) -> Result<Vec<BatchHeader>, LogError> {
    if buf.is_empty() {
        return Err(LogError::InvalidRecord("no record batches".into()));
    }
    let mut headers = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let rest = &buf[pos..];
        if rest.len() < LOG_OVERHEAD {
            return Err(LogError::CorruptMessage(format!(
                "{} trailing bytes after the last batch",
                rest.len()
            )));
        }
        let declared = LOG_OVERHEAD as i64 + be_i32(rest, 8) as i64;
        if declared > max_batch_bytes as i64 {
            return Err(LogError::RecordTooLarge {
                size: declared as usize,
                max: max_batch_bytes,
            });
        }
        let header = BatchHeader::parse(rest)?;
        let size = header.total_size();
        if size > rest.len() {
            return Err(LogError::CorruptMessage(format!(
                "batch declares {size} bytes but only {} remain",
                rest.len()
            )));
        }
        header.verify_crc(&rest[..size])?;
        if header.records_count < 0 {
            return Err(LogError::InvalidRecord(format!(
                "negative record count {}",
                header.records_count
            )));
        }
        if header.last_offset_delta < 0
            || header.records_count as i64 > header.last_offset_delta as i64 + 1
        {
            return Err(LogError::InvalidRecord(format!(
                "last offset delta {} cannot hold {} records",
                header.last_offset_delta, header.records_count
            )));
        }
        headers.push(header);
        pos += size;
    }
    Ok(headers)
}

/// A produce payload that passed [`validate_batches`]: its bytes and their batch headers. The
/// broker validates once (it needs the headers for its producer-sequence checks) and appends
/// the same value, so the CRCs are computed once per append.
#[derive(Debug, Clone)]
pub struct ValidatedBatches<'a> {
    bytes: &'a [u8],
    headers: Vec<BatchHeader>,
}

impl<'a> ValidatedBatches<'a> {
    pub fn new(bytes: &'a [u8], max_batch_bytes: usize) -> Result<Self, LogError> {
        let headers = validate_batches(bytes, max_batch_bytes)?;
        Ok(ValidatedBatches { bytes, headers })
    }

    pub fn headers(&self) -> &[BatchHeader] {
        &self.headers
    }

    pub(crate) fn into_parts(self) -> (&'a [u8], Vec<BatchHeader>) {
        (self.bytes, self.headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{encode_batch, simple_records};
    use kafka_protocol::records::Compression;

    #[test]
    fn parses_header_fields() {
        let buf = encode_batch(&simple_records(3, 1_000, 10), Compression::None);
        let header = BatchHeader::parse(&buf).unwrap();
        assert_eq!(header.magic, 2);
        assert_eq!(header.records_count, 3);
        assert_eq!(header.last_offset_delta, 2);
        assert_eq!(header.base_timestamp, 1_000);
        assert_eq!(header.max_timestamp, 1_002);
        assert_eq!(header.total_size(), buf.len());
        header.verify_crc(&buf).unwrap();
        assert_eq!(validate_batches(&buf, 1 << 20).unwrap(), vec![header]);
    }

    #[test]
    fn rejects_corruption() {
        let good = encode_batch(&simple_records(2, 0, 10), Compression::None);
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 0xff;
        assert!(matches!(
            validate_batches(&flipped, 1 << 20),
            Err(LogError::CorruptMessage(_))
        ));
        let mut magic = good.clone();
        magic[16] = 1;
        assert!(matches!(
            validate_batches(&magic, 1 << 20),
            Err(LogError::CorruptMessage(_))
        ));
        assert!(matches!(
            validate_batches(&good[..good.len() - 1], 1 << 20),
            Err(LogError::CorruptMessage(_))
        ));
        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0; 5]);
        assert!(matches!(
            validate_batches(&trailing, 1 << 20),
            Err(LogError::CorruptMessage(_))
        ));
        assert!(matches!(
            validate_batches(&good, 20),
            Err(LogError::RecordTooLarge { .. })
        ));
        assert!(matches!(
            validate_batches(&[], 100),
            Err(LogError::InvalidRecord(_))
        ));
    }

    #[test]
    fn a_prefix_with_new_offset_and_epoch_keeps_the_crc_valid() {
        let mut buf = encode_batch(&simple_records(2, 0, 10), Compression::None);
        let mut header = BatchHeader::parse(&buf).unwrap();
        (header.base_offset, header.partition_leader_epoch) = (1234, 7);
        buf[..PREFIX_SIZE].copy_from_slice(&header.prefix());
        let header = validate_batches(&buf, 1 << 20).unwrap()[0];
        assert_eq!(
            (header.base_offset, header.partition_leader_epoch),
            (1234, 7)
        );
        assert_eq!(header.last_offset(), 1235);
    }

    #[test]
    fn last_sequence_wraps() {
        let mut header =
            BatchHeader::parse(&encode_batch(&simple_records(1, 0, 1), Compression::None)).unwrap();
        header.base_sequence = i32::MAX - 1;
        header.last_offset_delta = 3;
        assert_eq!(header.last_sequence(), 1);
        header.base_sequence = 5;
        assert_eq!(header.last_sequence(), 8);
        header.base_sequence = -1;
        assert_eq!(header.last_sequence(), -1);
    }
}
