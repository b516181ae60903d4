//! Removing data: retention by time and size, DeleteRecords, and truncation for replication.
//! Whole segments are deleted from the front; the active segment never is.

use std::path::PathBuf;

use super::Log;
use crate::checkpoint;
use crate::error::LogError;
use crate::segment::Segment;

impl Log {
    /// Deletes the oldest segments whose newest timestamp is older than `retention_ms`, then
    /// while the log exceeds `retention_bytes` by at least a whole segment. First rolls the
    /// active segment if `segment_ms` has passed, so that a quiet partition's data can expire.
    /// Returns the number of segments deleted.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        if !self.active().is_empty() && self.segment_expired(now_ms) {
            self.roll()?;
        }
        let mut deleted = 0;
        if self.config.retention_ms >= 0 {
            let cutoff = now_ms.saturating_sub(self.config.retention_ms);
            while self.segments.len() > 1
                && self.segments[0]
                    .max_timestamp()
                    .is_none_or(|(newest, _)| newest < cutoff)
            {
                let oldest = self.segments.remove(0);
                self.delete_segment(oldest)?;
                deleted += 1;
            }
        }
        if self.config.retention_bytes >= 0 {
            let mut excess = self.size_bytes() as i64 - self.config.retention_bytes;
            while self.segments.len() > 1 && excess >= self.segments[0].size() as i64 {
                excess -= self.segments[0].size() as i64;
                let oldest = self.segments.remove(0);
                self.delete_segment(oldest)?;
                deleted += 1;
            }
        }
        if deleted > 0 {
            tracing::info!(dir = %self.dir.display(), deleted, "retention deleted segments");
            let first_base = self.segments[0].base_offset();
            if first_base > self.log_start_offset {
                self.log_start_offset = first_base;
                self.persist_log_start_offset()?;
                self.epochs.truncate_from_start(first_base)?;
            }
        }
        Ok(deleted)
    }

    /// DeleteRecords: raises the log start offset to `offset` (at most the log end offset),
    /// persists it, and deletes the segments entirely below it. Returns the new log start offset.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, LogError> {
        if offset < 0 || offset > self.log_end_offset() {
            return Err(self.out_of_range(offset));
        }
        if offset > self.log_start_offset {
            self.log_start_offset = offset;
            self.persist_log_start_offset()?;
            self.epochs.truncate_from_start(offset)?;
            self.delete_segments_below_start()?;
        }
        Ok(self.log_start_offset)
    }

    /// Removes every batch that holds an offset at or above `offset`. A batch straddling
    /// `offset` goes entirely, so the log end offset may end up below `offset`. Truncating below
    /// the first segment empties the log and restarts it at `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        if offset < 0 {
            return Err(self.out_of_range(offset));
        }
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        if offset <= self.segments[0].base_offset() {
            self.replace_segments_with_empty_at(offset)?;
        } else {
            while self.active().base_offset() >= offset {
                let removed = self
                    .segments
                    .pop()
                    .expect("first segment starts below offset");
                self.delete_segment(removed)?;
            }
            let index_interval = self.config.index_interval_bytes;
            self.active_mut().truncate_to(offset, index_interval)?;
            // Make the shorter length durable, or recovery could resurrect the removed batches.
            self.active().flush()?;
        }
        checkpoint::sync_dir(&self.dir)?;
        let log_end_offset = self.log_end_offset();
        if self.log_start_offset > log_end_offset {
            self.log_start_offset = log_end_offset;
            self.persist_log_start_offset()?;
        }
        // Always rewritten: a flush under way may have recorded a point above the new end.
        self.write_recovery_point(self.recovery_point.min(log_end_offset), true)?;
        self.epochs.truncate_from_end(log_end_offset)?;
        tracing::info!(dir = %self.dir.display(), offset, log_end_offset, "truncated log");
        Ok(())
    }

    /// Empties the log and restarts it at `offset`, which may lie beyond the log end: a
    /// follower so far behind that its leader no longer has the records it would fetch next
    /// (retention or DeleteRecords removed them) starts again at the leader's log start.
    pub fn restart_at(&mut self, offset: i64) -> Result<(), LogError> {
        if offset < 0 {
            return Err(self.out_of_range(offset));
        }
        self.replace_segments_with_empty_at(offset)?;
        self.write_recovery_point(offset, true)?;
        self.epochs.clear()?;
        tracing::info!(dir = %self.dir.display(), offset, "emptied the log to restart it");
        Ok(())
    }

    fn replace_segments_with_empty_at(&mut self, offset: i64) -> Result<(), LogError> {
        for segment in std::mem::take(&mut self.segments) {
            self.delete_segment(segment)?;
        }
        self.segments.push(Segment::create(&self.dir, offset)?);
        checkpoint::sync_dir(&self.dir)?;
        self.log_start_offset = offset;
        self.persist_log_start_offset()
    }

    pub(super) fn delete_segments_below_start(&mut self) -> Result<usize, LogError> {
        let mut deleted = 0;
        while self.segments.len() > 1 && self.segments[1].base_offset() <= self.log_start_offset {
            let oldest = self.segments.remove(0);
            self.delete_segment(oldest)?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Takes a segment out of the log; its files are removed later, without the lock (see
    /// [`Log::take_deleted_files`]).
    fn delete_segment(&mut self, segment: Segment) -> Result<(), LogError> {
        self.deleted_files.extend(segment.delete()?);
        Ok(())
    }

    /// The files of segments deleted since the last call, renamed to `<name>.deleted`: the
    /// caller removes them with [`crate::remove_deleted_files`] once it has released the log.
    /// Removing a file frees its blocks, which can take tens of milliseconds (on a disk mounted
    /// with `discard`), and appends to the partition would wait for it under the lock. Files
    /// not taken are removed at the next [`Log::open`].
    pub fn take_deleted_files(&mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.deleted_files)
    }
}
