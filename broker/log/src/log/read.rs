//! Reads: fetch by offset, lookups by timestamp, and header walks.
//!
//! A fetch costs one positional index search plus, per segment touched, one header read and one
//! read of the whole byte range; batches are returned exactly as stored.

use bytes::{Bytes, BytesMut};

use super::Log;
use crate::batch::{BatchHeader, HEADER_SIZE};
use crate::error::LogError;
use crate::segment::Segment;

impl Log {
    /// Whole batches from the one containing `start_offset`, excluding any batch that reaches
    /// `max_offset` (exclusive bound, e.g. the high watermark: a batch is returned only when all
    /// of its offsets are below it) and stopping at `max_bytes` — except that the first batch is
    /// always returned whole, however large, so a consumer can never get stuck behind it.
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<Bytes, LogError> {
        let log_end_offset = self.log_end_offset();
        if start_offset < self.log_start_offset || start_offset > log_end_offset {
            return Err(self.out_of_range(start_offset));
        }
        let mut out = BytesMut::new();
        if start_offset >= max_offset || start_offset == log_end_offset {
            return Ok(out.freeze());
        }
        let first = self.segment_index_for(start_offset);
        for (i, segment) in self.segments.iter().enumerate().skip(first) {
            let position = if i == first {
                match segment.find_batch(start_offset)? {
                    Some((position, _)) => position,
                    None => continue,
                }
            } else {
                0
            };
            let remaining = max_bytes.saturating_sub(out.len());
            let (chunk, stopped) =
                read_batches(segment, position, remaining, max_offset, out.is_empty())?;
            out.extend_from_slice(&chunk);
            if stopped {
                break;
            }
        }
        Ok(out.freeze())
    }

    /// ListOffsets by timestamp. Batches are never decompressed, so the answer is batch-grained:
    /// the base offset of the first batch whose max timestamp is >= `timestamp` (never below the
    /// log start offset) and that batch's max timestamp. A consumer seeking there sees every
    /// record with a timestamp >= `timestamp`, plus possibly a few earlier ones from that batch.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, LogError> {
        let first = self.segment_index_for(self.log_start_offset);
        for segment in &self.segments[first..] {
            if let Some(header) = segment.find_timestamp(timestamp, self.log_start_offset)? {
                return Ok(Some((
                    header.base_offset.max(self.log_start_offset),
                    header.max_timestamp,
                )));
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP: the largest batch max timestamp and the base offset of the
    /// first batch carrying it. `None` for an empty log.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let mut best: Option<(i64, i64)> = None;
        for (timestamp, offset) in self.segments.iter().filter_map(Segment::max_timestamp) {
            if best.is_none_or(|(max, _)| timestamp > max) {
                best = Some((timestamp, offset));
            }
        }
        best
    }

    /// Headers of every batch from the one containing `from_offset` (clamped to the log start)
    /// to the end, e.g. to rebuild idempotent-producer state.
    pub fn batch_headers_from(&self, from_offset: i64) -> Result<Vec<BatchHeader>, LogError> {
        let from_offset = from_offset.max(self.log_start_offset);
        let first = self.segment_index_for(from_offset);
        let mut headers = Vec::new();
        for (i, segment) in self.segments.iter().enumerate().skip(first) {
            let position = if i == first {
                match segment.find_batch(from_offset)? {
                    Some((position, _)) => position,
                    None => continue,
                }
            } else {
                0
            };
            headers.extend(segment.headers_from(position)?);
        }
        Ok(headers)
    }

    pub(super) fn out_of_range(&self, offset: i64) -> LogError {
        LogError::OffsetOutOfRange {
            offset,
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset(),
        }
    }
}

/// Reads whole batches of one segment from `position`. Returns the bytes and whether the read
/// stopped inside this segment (on `max_offset` or `max_bytes`) rather than at its end.
fn read_batches(
    segment: &Segment,
    position: u64,
    max_bytes: usize,
    max_offset: i64,
    first_in_response: bool,
) -> Result<(Vec<u8>, bool), LogError> {
    let Some(first) = segment.header_at(position)? else {
        return Ok((Vec::new(), false));
    };
    if first.last_offset() >= max_offset {
        return Ok((Vec::new(), true));
    }
    let available = (segment.size() - position) as usize;
    let mut want = max_bytes.min(available);
    if first_in_response {
        want = want.max(first.total_size());
    }
    let mut buf = segment.read_at(position, want)?;
    let mut end = 0;
    while end + HEADER_SIZE <= buf.len() {
        let header = BatchHeader::parse(&buf[end..])?;
        if end + header.total_size() > buf.len() || header.last_offset() >= max_offset {
            break;
        }
        end += header.total_size();
    }
    buf.truncate(end);
    Ok((buf, end < available))
}
