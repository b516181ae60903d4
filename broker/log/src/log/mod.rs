//! The partition log (Kafka's `UnifiedLog`): an ordered list of segments, the last one active.
//!
//! Durability model. `flush` fsyncs the segments that may hold unflushed data and then records
//! the log end offset as the *recovery point* in `recovery-point-offset-checkpoint`. Rolling a
//! segment makes a flush due at once (made by the flush task, not under the roll's lock), so a
//! non-active segment is above the recovery point only until that flush. On open, segments
//! entirely below the recovery point are trusted (their indexes are checked cheaply and
//! rebuilt only if inconsistent); the segment holding the recovery point and any later one are
//! re-scanned batch by batch, CRC-checking only the batches at or above the recovery point, and
//! cut at the first torn or corrupt batch (later segments are deleted). After a clean flush
//! that means walking the active segment's headers once.
//!
//! A flush due by `flush.ms` runs in two steps ([`Log::begin_flush`], then
//! [`PendingFlush::sync`] without the log's lock, then [`Log::complete_flush`]): the fsyncs of
//! the segments *and* of the recovery-point checkpoint (the file and its directory) happen while
//! appends go on. The checkpoint file is shared between that
//! step and the log through [`RecoveryPointFile`], which also makes sure that a flush begun
//! before a truncation never records its older, higher recovery point after it.
//!
//! Deleted segments are renamed to `<name>.deleted` and removed by the caller once it has
//! released the log ([`Log::take_deleted_files`]), or at the next open.
//!
//! Other state in the directory: `log-start-offset-checkpoint` (raised by DeleteRecords and
//! retention) and `leader-epoch-checkpoint` (see `epoch.rs`).

mod append;
mod read;
mod retention;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_recovery;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::batch::BatchHeader;
use crate::checkpoint::{self, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE};
use crate::config::LogConfig;
use crate::epoch::EpochCache;
use crate::error::LogError;
use crate::segment::{self, Segment, DELETED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};

/// The result of an append: the offsets assigned and what the produce response needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: i64,
    pub last_offset: i64,
    /// Largest batch max timestamp of the append, -1 if no batch carried one.
    pub max_timestamp: i64,
    /// Base offset of the first batch carrying `max_timestamp` (batches are not decompressed).
    pub offset_of_max_timestamp: i64,
    pub record_count: i64,
    /// The appended batch headers, with their assigned offsets and leader epoch.
    pub batches: Vec<BatchHeader>,
}

/// One partition's log. Not internally synchronised: the broker wraps it in a mutex.
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    /// Sorted by base offset, never empty; the last one is the active segment.
    segments: Vec<Segment>,
    log_start_offset: i64,
    recovery_point: i64,
    recovery_file: Arc<Mutex<RecoveryPointFile>>,
    unflushed_messages: i64,
    first_unflushed_ms: Option<i64>,
    /// A roll left unflushed data in a non-active segment: the next flush check is due.
    flush_due_now: bool,
    /// Files of deleted segments, renamed and not yet removed ([`Log::take_deleted_files`]).
    deleted_files: Vec<PathBuf>,
    epochs: EpochCache,
}

impl Log {
    /// Opens (creating if needed) the log in `dir` and recovers it after a crash. Recovery does
    /// not depend on the clock; `now_ms` is taken for symmetry with the other timed calls.
    pub fn open(dir: &Path, config: LogConfig, now_ms: i64) -> Result<Log, LogError> {
        let _ = now_ms;
        fs::create_dir_all(dir)?;
        let recovery_point = checkpoint::read_offset(dir, RECOVERY_POINT_FILE)?.unwrap_or(0);
        let saved_start = checkpoint::read_offset(dir, LOG_START_OFFSET_FILE)?;
        let bases = segment_bases(dir)?;
        let mut segments = Vec::with_capacity(bases.len());
        for (i, &base) in bases.iter().enumerate() {
            let trusted = bases.get(i + 1).is_some_and(|&next| next <= recovery_point);
            let (segment, truncated) = Segment::open(
                dir,
                base,
                recovery_point,
                trusted,
                config.index_interval_bytes,
            )?;
            segments.push(segment);
            if truncated {
                // Nothing after a torn batch can be trusted to follow it.
                for &later in &bases[i + 1..] {
                    tracing::warn!(dir = %dir.display(), base_offset = later, "deleting segment after corruption");
                    for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX] {
                        segment::remove_if_exists(&dir.join(segment::file_name(later, suffix)))?;
                    }
                }
                break;
            }
        }
        if segments.is_empty() {
            segments.push(Segment::create(dir, saved_start.unwrap_or(0).max(0))?);
            checkpoint::sync_dir(dir)?;
        }
        let first_base = segments[0].base_offset();
        let log_end_offset = segments.last().map_or(first_base, Segment::next_offset);
        let log_start_offset = saved_start
            .unwrap_or(first_base)
            .max(first_base)
            .min(log_end_offset);
        let mut log = Log {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            recovery_point,
            recovery_file: Arc::new(Mutex::new(RecoveryPointFile {
                written: recovery_point,
                cuts: 0,
            })),
            unflushed_messages: 0,
            first_unflushed_ms: None,
            flush_due_now: false,
            deleted_files: Vec::new(),
            epochs: EpochCache::load(dir)?,
        };
        log.delete_segments_below_start()?;
        segment::remove_deleted_files(&log.take_deleted_files())?;
        log.epochs.truncate_from_end(log_end_offset)?;
        log.epochs.truncate_from_start(log_start_offset)?;
        if log.recovery_point != log_end_offset {
            log.flush()?;
        }
        tracing::debug!(
            dir = %dir.display(),
            log_start_offset,
            log_end_offset,
            segments = log.segments.len(),
            "opened log"
        );
        Ok(log)
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(Segment::size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest()
    }

    /// OffsetForLeaderEpoch: the largest epoch <= `epoch` and where it ends (the start of the
    /// next epoch, or the log end offset for the latest one). `None` if `epoch` precedes them all.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// fsyncs when the oldest unflushed append is at least `flush_ms` old, or a roll left
    /// unflushed data behind.
    pub fn maybe_flush(&mut self, now_ms: i64) -> Result<bool, LogError> {
        match self.first_unflushed_ms {
            Some(first) if self.flush_due_now || now_ms - first >= self.config.flush_ms => {
                self.flush()?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Starts a flush that is due (by `flush.ms`, or after a roll): returns handles on every
    /// file that may hold unflushed data, to be fsynced (and the new recovery point written) by
    /// [`PendingFlush::sync`] *without* the caller holding the log (fsyncs can take tens of
    /// milliseconds; appends and reads go on meanwhile), then finished by
    /// [`Log::complete_flush`].
    pub fn begin_flush(&mut self, now_ms: i64) -> Result<Option<PendingFlush>, LogError> {
        match self.first_unflushed_ms {
            Some(first) if self.flush_due_now || now_ms - first >= self.config.flush_ms => {}
            _ => return Ok(None),
        }
        let first_dirty = self.segment_index_for(self.recovery_point);
        let mut files = Vec::new();
        for segment in &self.segments[first_dirty..] {
            files.extend(segment.clone_files()?);
        }
        self.unflushed_messages = 0;
        self.first_unflushed_ms = None;
        self.flush_due_now = false;
        Ok(Some(PendingFlush {
            files,
            up_to: self.log_end_offset(),
            dir: self.dir.clone(),
            recovery_file: self.recovery_file.clone(),
            cuts: lock(&self.recovery_file).cuts,
        }))
    }

    /// Records that a flush begun with [`Log::begin_flush`] reached the disk: moves the
    /// in-memory recovery point, unless the log was cut since the flush began (the cut set it).
    pub fn complete_flush(&mut self, flushed: PendingFlush) {
        if lock(&self.recovery_file).cuts == flushed.cuts {
            let point = flushed.up_to.min(self.log_end_offset());
            self.recovery_point = self.recovery_point.max(point);
        }
    }

    /// fsyncs every segment that may hold unflushed data, then advances the recovery point.
    pub fn flush(&mut self) -> Result<(), LogError> {
        let first_dirty = self.segment_index_for(self.recovery_point);
        for segment in &self.segments[first_dirty..] {
            segment.flush()?;
        }
        let log_end_offset = self.log_end_offset();
        if self.recovery_point != log_end_offset {
            self.write_recovery_point(log_end_offset, false)?;
        }
        self.unflushed_messages = 0;
        self.first_unflushed_ms = None;
        self.flush_due_now = false;
        Ok(())
    }

    /// Removes the partition's directory (topic deletion).
    pub fn delete(self) -> Result<(), LogError> {
        let dir = self.dir.clone();
        drop(self);
        fs::remove_dir_all(dir)?;
        Ok(())
    }

    fn active(&self) -> &Segment {
        self.segments
            .last()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a log always has an active segment")
    }

    /// Index of the segment whose range holds `offset` (the first one for offsets before it).
    fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1)
    }

    /// Records `offset` as the recovery point, in memory and in its checkpoint file. `cut` is
    /// for truncations: a flush begun before one then leaves the file alone.
    fn write_recovery_point(&mut self, offset: i64, cut: bool) -> Result<(), LogError> {
        let mut file = lock(&self.recovery_file);
        if cut {
            file.cuts += 1;
        }
        checkpoint::write_offset(&self.dir, RECOVERY_POINT_FILE, offset)?;
        file.written = offset;
        self.recovery_point = offset;
        Ok(())
    }

    fn persist_log_start_offset(&self) -> Result<(), LogError> {
        checkpoint::write_offset(&self.dir, LOG_START_OFFSET_FILE, self.log_start_offset)?;
        Ok(())
    }
}

/// Base offsets of the segments in `dir`, sorted. Removes leftovers of interrupted work: index
/// files without their log (a deletion cut short), deleted segments' files not yet removed,
/// and temporary checkpoint files.
fn segment_bases(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let (Some(stem), Some(ext)) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        let base = (stem.len() == 20)
            .then(|| stem.parse::<i64>().ok())
            .flatten();
        match (ext, base) {
            (LOG_SUFFIX, Some(base)) => bases.push(base),
            (INDEX_SUFFIX | TIME_INDEX_SUFFIX, Some(base))
                if !dir.join(segment::file_name(base, LOG_SUFFIX)).exists() =>
            {
                segment::remove_if_exists(&path)?
            }
            ("tmp" | DELETED_SUFFIX, _) => segment::remove_if_exists(&path)?,
            _ => {}
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// The recovery-point checkpoint file as the log and its flushes share it: what it holds, and
/// how many truncations the log has had (a flush begun before one must not write after it).
#[derive(Debug)]
struct RecoveryPointFile {
    written: i64,
    cuts: u64,
}

fn lock(file: &Mutex<RecoveryPointFile>) -> MutexGuard<'_, RecoveryPointFile> {
    // The guarded state is two integers, consistent whatever a panicking holder was doing.
    file.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Files of a flush in progress (see [`Log::begin_flush`]).
#[derive(Debug)]
pub struct PendingFlush {
    files: Vec<fs::File>,
    up_to: i64,
    dir: PathBuf,
    recovery_file: Arc<Mutex<RecoveryPointFile>>,
    /// The log's truncation count when the flush began.
    cuts: u64,
}

impl PendingFlush {
    /// fsyncs the files, then records the flushed log end as the recovery point in its
    /// checkpoint file, unless the log was truncated since the flush began or the file already
    /// holds a later point. Meant to be called without holding the log.
    pub fn sync(&self) -> Result<(), LogError> {
        for file in &self.files {
            file.sync_all()?;
        }
        let mut file = lock(&self.recovery_file);
        if file.cuts == self.cuts && self.up_to > file.written {
            checkpoint::write_offset(&self.dir, RECOVERY_POINT_FILE, self.up_to)?;
            file.written = self.up_to;
        }
        Ok(())
    }
}
