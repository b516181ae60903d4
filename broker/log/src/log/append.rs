//! Appends: the leader assigns offsets, a follower copies the leader's; both roll segments and
//! apply the flush-by-count policy.

use super::{AppendInfo, Log};
use crate::batch::{validate_batches, BatchHeader, ValidatedBatches};
use crate::checkpoint;
use crate::error::LogError;
use crate::segment::Segment;

impl Log {
    /// Validates the producer's batches, assigns offsets from the log end offset, sets the
    /// leader epoch (both outside the CRC, so batches stay byte-for-byte as sent) and appends.
    pub fn append_as_leader(
        &mut self,
        batches: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let validated = ValidatedBatches::new(batches, self.config.max_batch_bytes)?;
        self.append_validated_as_leader(validated, leader_epoch, now_ms)
    }

    /// [`Log::append_as_leader`] for batches the caller validated already.
    pub fn append_validated_as_leader(
        &mut self,
        batches: ValidatedBatches<'_>,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        // The new offsets and epoch go into the headers only: the segment writes each batch's
        // prefix from its header, so the producer's bytes are never copied to be rewritten.
        let (bytes, mut headers) = batches.into_parts();
        let mut next_offset = self.log_end_offset();
        for header in &mut headers {
            // Producers number records 0..n-1; anything else would leave holes in the log.
            if header.records_count < 1 || header.last_offset_delta != header.records_count - 1 {
                return Err(LogError::InvalidRecord(format!(
                    "batch with {} records and last offset delta {}",
                    header.records_count, header.last_offset_delta
                )));
            }
            header.base_offset = next_offset;
            header.partition_leader_epoch = leader_epoch;
            next_offset = header.last_offset() + 1;
        }
        self.append_validated(bytes, headers, now_ms)
    }

    /// Appends batches fetched from the leader; they keep their offsets and epochs, and must
    /// start at the log end offset and follow each other without gaps.
    pub fn append_as_follower(
        &mut self,
        batches: &[u8],
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        // No size limit: the leader admitted these batches under the limit in force there, and
        // a follower whose own limit differs (a setting changed one broker at a time, or made
        // smaller after the batches were written) must still copy them, as Kafka's do.
        let headers = validate_batches(batches, i32::MAX as usize)?;
        let mut expected = self.log_end_offset();
        if let Some(first) = headers.first() {
            // An empty log restarted at its leader's log start, which may fall inside a batch:
            // the leader serves that whole batch, so the log restarts at the batch's base offset
            // (as Kafka's followers do) and keeps its log start where it was.
            let log_start = self.log_start_offset;
            if log_start == expected
                && first.base_offset < expected
                && first.last_offset() >= expected
            {
                self.restart_at(first.base_offset)?;
                self.log_start_offset = log_start;
                self.persist_log_start_offset()?;
                expected = first.base_offset;
            }
        }
        for header in &headers {
            if header.base_offset != expected {
                return Err(LogError::InvalidRecord(format!(
                    "batch starts at offset {} but the log expects {expected}",
                    header.base_offset
                )));
            }
            expected = header.last_offset() + 1;
        }
        self.append_validated(batches, headers, now_ms)
    }

    /// Appends `bytes`, the batches `headers` describe in order; each batch is written with its
    /// header's offset and epoch (see [`Segment::append`]).
    fn append_validated(
        &mut self,
        bytes: &[u8],
        headers: Vec<BatchHeader>,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let first_offset = headers[0].base_offset;
        let last_offset = headers[headers.len() - 1].last_offset();
        self.maybe_roll(bytes.len() as u64, last_offset, now_ms)?;
        for header in &headers {
            self.epochs
                .assign(header.partition_leader_epoch, header.base_offset)?;
        }
        let index_interval = self.config.index_interval_bytes;
        self.active_mut().append(bytes, &headers, index_interval)?;

        let (mut max_timestamp, mut offset_of_max_timestamp) = (-1, first_offset);
        for header in &headers {
            if header.max_timestamp > max_timestamp {
                max_timestamp = header.max_timestamp;
                offset_of_max_timestamp = header.base_offset;
            }
        }
        let record_count = headers.iter().map(|h| h.records_count as i64).sum();
        self.unflushed_messages += record_count;
        self.first_unflushed_ms.get_or_insert(now_ms);
        if self.unflushed_messages >= self.config.flush_messages {
            self.flush()?;
        }
        Ok(AppendInfo {
            first_offset,
            last_offset,
            max_timestamp,
            offset_of_max_timestamp,
            record_count,
            batches: headers,
        })
    }

    /// Rolls before an append that would overfill the active segment, arrives after
    /// `segment_ms`, or holds offsets too far from the base for 32-bit relative index entries.
    fn maybe_roll(
        &mut self,
        incoming_bytes: u64,
        last_offset: i64,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let active = self.active();
        if active.is_empty() {
            return Ok(());
        }
        let full = active.size() + incoming_bytes > self.config.effective_segment_bytes();
        let expired = self.segment_expired(now_ms);
        let offsets_overflow = last_offset - active.base_offset() > u32::MAX as i64;
        if full || expired || offsets_overflow {
            self.roll()?;
        }
        Ok(())
    }

    pub(super) fn segment_expired(&self, now_ms: i64) -> bool {
        self.active()
            .rolling_timestamp()
            .is_some_and(|first| now_ms.saturating_sub(first) > self.config.segment_ms)
    }

    /// Starts a new active segment at the log end offset. The old segment's unflushed data is
    /// not fsynced here, under the caller's lock (that held every append behind up to
    /// `flush.ms` of writes): a flush is due at once instead, and the flush task makes it
    /// without the lock ([`Log::begin_flush`]), as Kafka's roll schedules its flush. Until then
    /// recovery scans from the old segment.
    pub(super) fn roll(&mut self) -> Result<(), LogError> {
        if self.first_unflushed_ms.is_some() {
            self.flush_due_now = true;
        }
        let segment = Segment::create(&self.dir, self.log_end_offset())?;
        checkpoint::sync_dir(&self.dir)?;
        tracing::debug!(dir = %self.dir.display(), base_offset = segment.base_offset(), "rolled segment");
        self.segments.push(segment);
        Ok(())
    }
}
