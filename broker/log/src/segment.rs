//! One log segment: a `.log` file of whole record batches plus its `.index` and `.timeindex`,
//! all named by the segment's base offset as a 20-digit zero-padded number (Kafka's layout, so
//! operators' tooling and habits carry over).
//!
//! All I/O is positional (`pread`/`pwrite` through `FileExt`): the segment remembers its own
//! size, never depends on a shared file cursor, and many readers can use one `File`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::batch::{BatchHeader, HEADER_SIZE, PREFIX_SIZE};
use crate::error::LogError;
use crate::index::{IndexFile, OffsetEntry, TimeEntry};

pub(crate) const LOG_SUFFIX: &str = "log";
pub(crate) const INDEX_SUFFIX: &str = "index";
pub(crate) const TIME_INDEX_SUFFIX: &str = "timeindex";
/// Added to the names of a deleted segment's files until they are removed.
pub(crate) const DELETED_SUFFIX: &str = "deleted";

/// Batches per `pwritev`: two slices each, well under the kernel's `IOV_MAX` of 1024.
const BATCHES_PER_WRITE: usize = 256;

/// Writes `batches` at `position` with each batch's prefix taken from its header, by vectored
/// positional writes (one system call per [`BATCHES_PER_WRITE`] batches, unless the kernel
/// writes less than asked).
fn write_with_prefixes(
    file: &File,
    batches: &[u8],
    headers: &[BatchHeader],
    mut position: u64,
) -> io::Result<()> {
    let mut start = 0;
    for chunk in headers.chunks(BATCHES_PER_WRITE) {
        let prefixes: Vec<[u8; PREFIX_SIZE]> = chunk.iter().map(BatchHeader::prefix).collect();
        let mut slices = Vec::with_capacity(2 * chunk.len());
        for (header, prefix) in chunk.iter().zip(&prefixes) {
            let end = start + header.total_size();
            slices.push(IoSlice::new(prefix));
            slices.push(IoSlice::new(&batches[start + PREFIX_SIZE..end]));
            start = end;
        }
        let mut slices = &mut slices[..];
        while !slices.is_empty() {
            let written = match rustix::io::pwritev(file, slices, position) {
                Ok(written) => written,
                Err(rustix::io::Errno::INTR) => continue,
                Err(error) => return Err(error.into()),
            };
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            position += written as u64;
            IoSlice::advance_slices(&mut slices, written);
        }
    }
    debug_assert_eq!(start, batches.len(), "headers describe every byte");
    Ok(())
}

pub(crate) fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}.{suffix}")
}

/// What the segment knows about its batches, maintained on append and rebuilt by a scan.
#[derive(Debug, Clone, Copy)]
struct Stats {
    next_offset: i64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    /// Max timestamp of the first batch: `segment.ms` is measured from it, as in Kafka.
    rolling_timestamp: Option<i64>,
    bytes_since_index_entry: u64,
}

impl Stats {
    fn empty(base_offset: i64) -> Self {
        Stats {
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            rolling_timestamp: None,
            bytes_since_index_entry: 0,
        }
    }
}

pub(crate) struct Segment {
    base_offset: i64,
    log: File,
    log_path: PathBuf,
    offset_index: IndexFile<OffsetEntry>,
    time_index: IndexFile<TimeEntry>,
    size: u64,
    stats: Stats,
}

impl Segment {
    /// Creates an empty segment (replacing any stale files of the same name).
    pub fn create(dir: &Path, base_offset: i64) -> io::Result<Segment> {
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            remove_if_exists(&dir.join(file_name(base_offset, suffix)))?;
        }
        let log_path = dir.join(file_name(base_offset, LOG_SUFFIX));
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)?;
        let (offset_index, _) =
            IndexFile::open(&dir.join(file_name(base_offset, INDEX_SUFFIX)), base_offset)?;
        let (time_index, _) = IndexFile::open(
            &dir.join(file_name(base_offset, TIME_INDEX_SUFFIX)),
            base_offset,
        )?;
        Ok(Segment {
            base_offset,
            log,
            log_path,
            offset_index,
            time_index,
            size: 0,
            stats: Stats::empty(base_offset),
        })
    }

    /// Opens an existing segment. A segment whose batches all end at or below the recovery
    /// point (a `trusted` one, whose successor starts there, or the active one after a flush
    /// and a clean shutdown) keeps its indexes if they are consistent with the log: only the
    /// batches after the last offset-index entry are read. Otherwise the log is scanned batch
    /// by batch, CRC-checking batches whose last offset is at or above `recovery_point`, cut at
    /// the first bad batch, and the indexes are rebuilt.
    /// Returns the segment and whether bytes were cut off.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        recovery_point: i64,
        trusted: bool,
        index_interval: u32,
    ) -> Result<(Segment, bool), LogError> {
        let index_path = dir.join(file_name(base_offset, INDEX_SUFFIX));
        let time_path = dir.join(file_name(base_offset, TIME_INDEX_SUFFIX));
        let indexes_existed = index_path.exists() && time_path.exists();
        let log_path = dir.join(file_name(base_offset, LOG_SUFFIX));
        let log = OpenOptions::new().read(true).write(true).open(&log_path)?;
        let size = log.metadata()?.len();
        let (offset_index, offset_whole) = IndexFile::open(&index_path, base_offset)?;
        let (time_index, time_whole) = IndexFile::open(&time_path, base_offset)?;
        let mut segment = Segment {
            base_offset,
            log,
            log_path,
            offset_index,
            time_index,
            size,
            stats: Stats::empty(base_offset),
        };
        if indexes_existed && offset_whole && time_whole {
            match segment.load_from_indexes() {
                // The batches read past the last index entry were not CRC-checked: trusted
                // only when they too are below the recovery point (flushed whole).
                Ok(stats) if trusted || stats.next_offset <= recovery_point => {
                    segment.stats = stats;
                    return Ok((segment, false));
                }
                Ok(_) => {}
                Err(reason) => tracing::warn!(
                    segment = %segment.log_path.display(),
                    %reason,
                    "index inconsistent with its segment, rebuilding"
                ),
            }
        }
        let verify_from = if trusted { i64::MAX } else { recovery_point };
        let truncated = segment.rebuild(verify_from, index_interval)?;
        Ok((segment, truncated))
    }

    /// Trusts the indexes after checking that their last entries point into the log, then walks
    /// only the batches after the last offset-index entry to find the segment's end.
    fn load_from_indexes(&self) -> Result<Stats, String> {
        let mut stats = Stats::empty(self.base_offset);
        let mut position = 0;
        if let Some(entry) = self.offset_index.last() {
            let header = self
                .header_at(entry.position as u64)
                .map_err(|e| e.to_string())?;
            match header {
                Some(h) if h.base_offset == entry.offset => position = entry.position as u64,
                _ => {
                    return Err(format!(
                        "offset index entry {entry:?} does not point at a batch"
                    ))
                }
            }
        }
        if let Some(entry) = self.time_index.last() {
            stats.max_timestamp = entry.timestamp;
            stats.offset_of_max_timestamp = entry.offset;
        }
        stats.bytes_since_index_entry = self.size - position;
        while position < self.size {
            let header = match self.header_at(position) {
                Ok(Some(h)) if h.base_offset >= stats.next_offset => h,
                _ => return Err(format!("no valid batch at position {position}")),
            };
            position += header.total_size() as u64;
            stats.next_offset = header.last_offset() + 1;
            if header.max_timestamp > stats.max_timestamp {
                stats.max_timestamp = header.max_timestamp;
                stats.offset_of_max_timestamp = header.base_offset;
            }
        }
        if position != self.size {
            return Err("last batch runs past the end of the log".into());
        }
        if let Some(entry) = self.time_index.last() {
            if entry.offset >= stats.next_offset {
                return Err(format!("time index entry {entry:?} is beyond the log"));
            }
        }
        if self.size > 0 {
            stats.rolling_timestamp = self.header_at(0).ok().flatten().map(|h| h.max_timestamp);
        }
        Ok(stats)
    }

    /// Scans the whole log, truncates it after the last good batch and rewrites both indexes.
    /// Batches whose last offset is below `verify_crc_from` are only length-checked.
    fn rebuild(&mut self, verify_crc_from: i64, index_interval: u32) -> Result<bool, LogError> {
        self.stats = Stats::empty(self.base_offset);
        let (mut offset_entries, mut time_entries) = (Vec::new(), Vec::new());
        let mut position = 0;
        while position < self.size {
            let Some(header) = self.valid_batch_at(position, verify_crc_from) else {
                break;
            };
            let (offset_entry, time_entry) =
                self.observe(&header, position, index_interval, time_entries.last());
            offset_entries.extend(offset_entry);
            time_entries.extend(time_entry);
            position += header.total_size() as u64;
        }
        let truncated = position < self.size;
        if truncated {
            tracing::warn!(
                segment = %self.log_path.display(),
                valid_bytes = position,
                dropped_bytes = self.size - position,
                "truncating log segment after the last valid batch"
            );
            self.log.set_len(position)?;
            self.size = position;
        }
        self.offset_index.rewrite(&offset_entries)?;
        self.time_index.rewrite(&time_entries)?;
        Ok(truncated)
    }

    /// The batch at `position` if it is whole, follows the previous one, and (when its last
    /// offset is at or above `verify_crc_from`) passes its CRC.
    fn valid_batch_at(&self, position: u64, verify_crc_from: i64) -> Option<BatchHeader> {
        let header = self.header_at(position).ok().flatten()?;
        let end = position + header.total_size() as u64;
        let fits_relative = header.last_offset() - self.base_offset <= u32::MAX as i64;
        if header.base_offset < self.stats.next_offset || end > self.size || !fits_relative {
            return None;
        }
        if header.last_offset() >= verify_crc_from {
            let batch = self.read_at(position, header.total_size()).ok()?;
            header.verify_crc(&batch).ok()?;
        }
        Some(header)
    }

    /// Updates the stats for a batch written at `position`, returning the index entries due
    /// (Kafka's rule: an entry once more than `index_interval` bytes were written since the last).
    fn observe(
        &mut self,
        header: &BatchHeader,
        position: u64,
        index_interval: u32,
        last_time_entry: Option<&TimeEntry>,
    ) -> (Option<OffsetEntry>, Option<TimeEntry>) {
        let stats = &mut self.stats;
        if header.max_timestamp > stats.max_timestamp {
            stats.max_timestamp = header.max_timestamp;
            stats.offset_of_max_timestamp = header.base_offset;
        }
        stats.rolling_timestamp.get_or_insert(header.max_timestamp);
        stats.next_offset = header.last_offset() + 1;
        let mut entries = (None, None);
        if stats.bytes_since_index_entry > index_interval as u64 {
            entries.0 = Some(OffsetEntry {
                offset: header.base_offset,
                position: position as u32,
            });
            if last_time_entry.is_none_or(|t| stats.max_timestamp > t.timestamp) {
                entries.1 = Some(TimeEntry {
                    timestamp: stats.max_timestamp,
                    offset: stats.offset_of_max_timestamp,
                });
            }
            stats.bytes_since_index_entry = 0;
        }
        stats.bytes_since_index_entry += header.total_size() as u64;
        (entries.0, entries.1)
    }

    /// Appends already validated batches (`headers` describe `batches` in order). Each batch's
    /// first [`PREFIX_SIZE`] bytes are written from its header ([`BatchHeader::prefix`]), so a
    /// leader's new offsets and epoch reach the file without a copy of the batch.
    pub fn append(
        &mut self,
        batches: &[u8],
        headers: &[BatchHeader],
        index_interval: u32,
    ) -> io::Result<()> {
        write_with_prefixes(&self.log, batches, headers, self.size)?;
        let mut position = self.size;
        for header in headers {
            let last_time = self.time_index.last();
            let (offset_entry, time_entry) =
                self.observe(header, position, index_interval, last_time.as_ref());
            if let Some(entry) = offset_entry {
                self.offset_index.append(entry)?;
            }
            if let Some(entry) = time_entry {
                self.time_index.append(entry)?;
            }
            position += header.total_size() as u64;
        }
        self.size += batches.len() as u64;
        Ok(())
    }

    /// Removes every batch whose last offset is at or above `offset`.
    pub fn truncate_to(&mut self, offset: i64, index_interval: u32) -> Result<(), LogError> {
        if let Some((position, _)) = self.find_batch(offset)? {
            self.log.set_len(position)?;
            self.size = position;
            self.rebuild(i64::MAX, index_interval)?;
        }
        Ok(())
    }

    /// The header of the batch at `position`, `None` at the end of the log.
    pub fn header_at(&self, position: u64) -> Result<Option<BatchHeader>, LogError> {
        if position >= self.size {
            return Ok(None);
        }
        let len = HEADER_SIZE.min((self.size - position) as usize);
        BatchHeader::parse(&self.read_at(position, len)?).map(Some)
    }

    pub fn read_at(&self, position: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.log.read_exact_at(&mut buf, position)?;
        Ok(buf)
    }

    /// The first batch whose last offset is at or above `offset`, with its position.
    pub fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, LogError> {
        let mut position = self
            .offset_index
            .search_last(|e| e.offset <= offset)?
            .map_or(0, |e| e.position as u64);
        while let Some(header) = self.header_at(position)? {
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
            position += header.total_size() as u64;
        }
        Ok(None)
    }

    /// The first batch holding an offset >= `min_offset` whose max timestamp is >= `timestamp`.
    pub fn find_timestamp(
        &self,
        timestamp: i64,
        min_offset: i64,
    ) -> Result<Option<BatchHeader>, LogError> {
        if self.is_empty() || self.stats.max_timestamp < timestamp {
            return Ok(None);
        }
        // Every batch before a time-index entry's offset has a smaller max timestamp.
        let start = self
            .time_index
            .search_last(|e| e.timestamp < timestamp)?
            .map_or(self.base_offset, |e| e.offset)
            .max(min_offset);
        let Some((mut position, _)) = self.find_batch(start)? else {
            return Ok(None);
        };
        while let Some(header) = self.header_at(position)? {
            if header.max_timestamp >= timestamp {
                return Ok(Some(header));
            }
            position += header.total_size() as u64;
        }
        Ok(None)
    }

    /// Headers of all batches from `position` to the end of the segment.
    pub fn headers_from(&self, mut position: u64) -> Result<Vec<BatchHeader>, LogError> {
        let mut headers = Vec::new();
        while let Some(header) = self.header_at(position)? {
            position += header.total_size() as u64;
            headers.push(header);
        }
        Ok(headers)
    }

    pub fn flush(&self) -> io::Result<()> {
        self.log.sync_data()?;
        self.offset_index.sync()?;
        self.time_index.sync()
    }

    /// Second handles on the segment's three files, to fsync them without holding the log.
    pub fn clone_files(&self) -> io::Result<Vec<File>> {
        Ok(vec![
            self.log.try_clone()?,
            self.offset_index.clone_file()?,
            self.time_index.clone_file()?,
        ])
    }

    /// Takes the segment out of the log: renames its files to `<name>.deleted` and returns
    /// their new paths, for the caller to remove without holding the log (see
    /// [`remove_deleted_files`]). The log file goes first: once it is renamed the segment is
    /// gone for a restart, which removes the rest.
    pub fn delete(self) -> io::Result<Vec<PathBuf>> {
        let mut renamed = Vec::with_capacity(3);
        for path in [
            &self.log_path,
            self.offset_index.path(),
            self.time_index.path(),
        ] {
            let mut target = path.as_os_str().to_owned();
            target.push(".");
            target.push(DELETED_SUFFIX);
            let target = PathBuf::from(target);
            match fs::rename(path, &target) {
                Ok(()) => renamed.push(target),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(renamed)
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn next_offset(&self) -> i64 {
        self.stats.next_offset
    }
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }
    /// (max timestamp, base offset of the first batch carrying it); `None` when empty.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        (!self.is_empty()).then_some((self.stats.max_timestamp, self.stats.offset_of_max_timestamp))
    }
    pub fn rolling_timestamp(&self) -> Option<i64> {
        self.stats.rolling_timestamp
    }
}

/// Removes the files of deleted segments ([`crate::Log::take_deleted_files`]). Freeing their
/// blocks can take tens of milliseconds (on a disk mounted with `discard`, about 55 ms per
/// 256 MiB on the development machine): meant to run without the log's lock.
pub fn remove_deleted_files(paths: &[PathBuf]) -> io::Result<()> {
    for path in paths {
        remove_if_exists(path)?;
    }
    Ok(())
}

pub(crate) fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
