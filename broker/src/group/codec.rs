//! Records of the internal `__consumer_offsets` topic.
//!
//! Every record is a committed offset: the key names (group, topic, partition), the value holds
//! the offset, or is null (a tombstone) when the offset was deleted with its group. Replaying a
//! partition in order rebuilds the committed offsets: the latest record for a key wins.
//!
//! The key and value formats are Millrace's own, not Kafka's; both start with a big-endian `u16`
//! version so they can evolve (records with an unknown key version are skipped on load).
//!
//! Key, version 1:   `u16 1 | u32 len | group | u16 len | topic | i32 partition`
//! Value, version 1: `u16 1 | i64 offset | i32 leader epoch | i32 len (-1: null) | metadata
//!                   | i64 commit timestamp (ms)`

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

pub const OFFSET_KEY_VERSION: u16 = 1;
pub const OFFSET_VALUE_VERSION: u16 = 1;

/// Which committed offset a record is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OffsetKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    /// -1 when the client did not send one.
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp_ms: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("record is truncated")]
    Truncated,
    #[error("record holds invalid UTF-8")]
    InvalidUtf8,
    #[error("{0} is too long to encode")]
    TooLong(&'static str),
    #[error("value version {0} is unknown")]
    UnknownValueVersion(u16),
}

pub fn encode_key(key: &OffsetKey) -> Result<Bytes, CodecError> {
    let topic_len = u16::try_from(key.topic.len()).map_err(|_| CodecError::TooLong("topic"))?;
    let group_len = u32::try_from(key.group.len()).map_err(|_| CodecError::TooLong("group id"))?;
    let mut buf = BytesMut::with_capacity(12 + key.group.len() + key.topic.len());
    buf.put_u16(OFFSET_KEY_VERSION);
    buf.put_u32(group_len);
    buf.put_slice(key.group.as_bytes());
    buf.put_u16(topic_len);
    buf.put_slice(key.topic.as_bytes());
    buf.put_i32(key.partition);
    Ok(buf.freeze())
}

/// `Ok(None)` for a key of a version this broker does not know.
pub fn decode_key(mut buf: &[u8]) -> Result<Option<OffsetKey>, CodecError> {
    let version = take_u16(&mut buf)?;
    if version != OFFSET_KEY_VERSION {
        return Ok(None);
    }
    let group_len = take_u32(&mut buf)? as usize;
    let group = take_str(&mut buf, group_len)?;
    let topic_len = take_u16(&mut buf)? as usize;
    let topic = take_str(&mut buf, topic_len)?;
    let partition = take_i32(&mut buf)?;
    Ok(Some(OffsetKey {
        group,
        topic,
        partition,
    }))
}

pub fn encode_value(value: &CommittedOffset) -> Result<Bytes, CodecError> {
    let metadata = value.metadata.as_deref();
    let metadata_len = match metadata {
        Some(m) => i32::try_from(m.len()).map_err(|_| CodecError::TooLong("metadata"))?,
        None => -1,
    };
    let mut buf = BytesMut::with_capacity(26 + metadata.map_or(0, str::len));
    buf.put_u16(OFFSET_VALUE_VERSION);
    buf.put_i64(value.offset);
    buf.put_i32(value.leader_epoch);
    buf.put_i32(metadata_len);
    if let Some(m) = metadata {
        buf.put_slice(m.as_bytes());
    }
    buf.put_i64(value.commit_timestamp_ms);
    Ok(buf.freeze())
}

pub fn decode_value(mut buf: &[u8]) -> Result<CommittedOffset, CodecError> {
    let version = take_u16(&mut buf)?;
    if version != OFFSET_VALUE_VERSION {
        return Err(CodecError::UnknownValueVersion(version));
    }
    let offset = take_i64(&mut buf)?;
    let leader_epoch = take_i32(&mut buf)?;
    let metadata_len = take_i32(&mut buf)?;
    let metadata = if metadata_len < 0 {
        None
    } else {
        Some(take_str(&mut buf, metadata_len as usize)?)
    };
    let commit_timestamp_ms = take_i64(&mut buf)?;
    Ok(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

/// One uncompressed v2 record batch holding `entries` in order (`None`: a tombstone).
pub fn encode_batch(
    entries: &[(OffsetKey, Option<CommittedOffset>)],
    timestamp_ms: i64,
) -> anyhow::Result<Bytes> {
    let mut records = Vec::with_capacity(entries.len());
    for (index, (key, value)) in entries.iter().enumerate() {
        records.push(Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: index as i64,
            // Not an idempotent producer: the batch's base sequence must be -1. The encoder
            // starts a new batch whenever `offset - sequence` changes, so the sequence follows
            // the offset to keep every record in one batch (one atomic append).
            sequence: index as i32 - 1,
            timestamp: timestamp_ms,
            key: Some(encode_key(key)?),
            value: value.as_ref().map(encode_value).transpose()?,
            headers: Default::default(),
        });
    }
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )?;
    Ok(buf.freeze())
}

/// Splits a read from the log into its complete record batches. Returns the batches and the
/// offset following the last of them (`None` when the buffer holds no complete batch, e.g. a
/// batch larger than the read size).
pub fn split_batches(records: &Bytes) -> (Vec<Bytes>, Option<i64>) {
    // Batch header: base offset (8) | batch length (4) | leader epoch (4) | magic (1) | crc (4)
    // | attributes (2) | last offset delta (4) | ...
    const LAST_OFFSET_DELTA_AT: usize = 23;
    let mut batches = Vec::new();
    let mut next_offset = None;
    let mut position = 0;
    while records.len() - position >= LAST_OFFSET_DELTA_AT + 4 {
        let header = &records[position..];
        let base_offset = i64::from_be_bytes(header[0..8].try_into().expect("8 bytes"));
        let batch_length = i32::from_be_bytes(header[8..12].try_into().expect("4 bytes"));
        let Ok(batch_length) = usize::try_from(batch_length) else {
            break;
        };
        let size = 12 + batch_length;
        if size > header.len() {
            break;
        }
        let last_offset_delta = i32::from_be_bytes(
            header[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
                .try_into()
                .expect("4 bytes"),
        );
        batches.push(records.slice(position..position + size));
        next_offset = Some(base_offset + i64::from(last_offset_delta) + 1);
        position += size;
    }
    (batches, next_offset)
}

/// The (key, value) pairs of one record batch, in offset order; control records are skipped.
pub fn decode_batch(batch: &Bytes) -> anyhow::Result<Vec<(Option<Bytes>, Option<Bytes>)>> {
    let mut buf = batch.clone();
    let records = RecordBatchDecoder::decode(&mut buf)?;
    Ok(records
        .records
        .into_iter()
        .filter(|record| !record.control)
        .map(|record| (record.key, record.value))
        .collect())
}

fn take<'a>(buf: &mut &'a [u8], len: usize) -> Result<&'a [u8], CodecError> {
    if buf.len() < len {
        return Err(CodecError::Truncated);
    }
    let (head, tail) = buf.split_at(len);
    *buf = tail;
    Ok(head)
}

fn take_u16(buf: &mut &[u8]) -> Result<u16, CodecError> {
    Ok(take(buf, 2)?.get_u16())
}

fn take_u32(buf: &mut &[u8]) -> Result<u32, CodecError> {
    Ok(take(buf, 4)?.get_u32())
}

fn take_i32(buf: &mut &[u8]) -> Result<i32, CodecError> {
    Ok(take(buf, 4)?.get_i32())
}

fn take_i64(buf: &mut &[u8]) -> Result<i64, CodecError> {
    Ok(take(buf, 8)?.get_i64())
}

fn take_str(buf: &mut &[u8], len: usize) -> Result<String, CodecError> {
    let bytes = take(buf, len)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| CodecError::InvalidUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(partition: i32) -> OffsetKey {
        OffsetKey {
            group: "payments".into(),
            topic: "orders".into(),
            partition,
        }
    }

    fn value(offset: i64, metadata: Option<&str>) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: 3,
            metadata: metadata.map(str::to_string),
            commit_timestamp_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn key_and_value_round_trip() {
        let encoded = encode_key(&key(7)).unwrap();
        assert_eq!(decode_key(&encoded).unwrap(), Some(key(7)));
        for metadata in [None, Some(""), Some("checkpoint-42")] {
            let encoded = encode_value(&value(99, metadata)).unwrap();
            assert_eq!(decode_value(&encoded).unwrap(), value(99, metadata));
        }
    }

    #[test]
    fn unknown_key_version_is_skipped_and_truncation_is_an_error() {
        let mut encoded = encode_key(&key(1)).unwrap().to_vec();
        assert_eq!(
            decode_key(&encoded[..encoded.len() - 1]),
            Err(CodecError::Truncated)
        );
        encoded[1] = 9;
        assert_eq!(decode_key(&encoded), Ok(None));
        let encoded = encode_value(&value(1, None)).unwrap();
        assert_eq!(decode_value(&encoded[..10]), Err(CodecError::Truncated));
    }

    #[test]
    fn batches_round_trip_and_split() {
        let first = encode_batch(&[(key(0), Some(value(5, None))), (key(1), None)], 1).unwrap();
        let second = encode_batch(&[(key(0), Some(value(6, Some("m"))))], 2).unwrap();
        let mut joined = BytesMut::new();
        joined.extend_from_slice(&first);
        joined.extend_from_slice(&second);
        // A partial third batch is left out.
        joined.extend_from_slice(&second[..20]);
        let (batches, next) = split_batches(&first);
        assert_eq!(batches.len(), 1, "all entries go into one batch");
        assert_eq!(next, Some(2));
        let header = RecordBatchDecoder::decode_batch_info(&mut first.clone()).unwrap();
        assert_eq!(header[0].base_sequence, -1);
        assert_eq!(header[0].producer_id, -1);
        let (batches, next) = split_batches(&joined.freeze());
        assert_eq!(batches.len(), 2);
        // Both batches were encoded with base offset 0: the second has one record.
        assert_eq!(next, Some(1));
        let records = decode_batch(&batches[0]).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(
            decode_key(records[1].0.as_ref().unwrap()).unwrap(),
            Some(key(1))
        );
        assert!(records[1].1.is_none());
        let records = decode_batch(&batches[1]).unwrap();
        assert_eq!(
            decode_value(records[0].1.as_ref().unwrap()).unwrap(),
            value(6, Some("m"))
        );
    }
}
