//! Sparse offset and time indexes, one pair per segment (Kafka's `OffsetIndex`/`TimeIndex`).
//!
//! Entry formats (big-endian, offsets relative to the segment's base offset so they fit in 4
//! bytes, as in Kafka):
//! - offset index, 8 bytes: `relative_offset u32 | position u32`, the base offset of a batch and
//!   its byte position in the `.log` file; one entry every `index_interval_bytes`.
//! - time index, 12 bytes: `timestamp i64 | relative_offset u32`, the largest timestamp seen so
//!   far in the segment and the first batch carrying it; appended only when it grows.
//!
//! Files are not preallocated: entries are appended at the end, so the file length is always
//! the number of entries times the entry size, a torn tail shows up as a partial entry, and no
//! "trim on close" step is needed. Lookups binary-search with positional reads (`pread`) rather
//! than keeping entries in memory or mapping the file: the page cache already holds hot index
//! pages, memory stays flat with thousands of segments, and there is no `unsafe` mmap whose
//! file can be truncated underneath us.

use std::fs::{File, OpenOptions};
use std::io;
use std::marker::PhantomData;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// One fixed-size index entry.
pub(crate) trait IndexEntry: Copy {
    const SIZE: usize;
    fn encode(&self, base_offset: i64) -> Vec<u8>;
    fn decode(base_offset: i64, buf: &[u8]) -> Self;
}

/// Offset index entry: a batch's base offset and its byte position in the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub offset: i64,
    pub position: u32,
}

/// Time index entry: the segment's max timestamp so far and the offset of the batch holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub offset: i64,
}

fn relative(offset: i64, base_offset: i64) -> [u8; 4] {
    ((offset - base_offset) as u32).to_be_bytes()
}

fn absolute(base_offset: i64, buf: &[u8]) -> i64 {
    base_offset + u32::from_be_bytes(buf.try_into().expect("4 bytes")) as i64
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, base_offset: i64) -> Vec<u8> {
        let mut out = relative(self.offset, base_offset).to_vec();
        out.extend_from_slice(&self.position.to_be_bytes());
        out
    }
    fn decode(base_offset: i64, buf: &[u8]) -> Self {
        OffsetEntry {
            offset: absolute(base_offset, &buf[0..4]),
            position: u32::from_be_bytes(buf[4..8].try_into().expect("4 bytes")),
        }
    }
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, base_offset: i64) -> Vec<u8> {
        let mut out = self.timestamp.to_be_bytes().to_vec();
        out.extend_from_slice(&relative(self.offset, base_offset));
        out
    }
    fn decode(base_offset: i64, buf: &[u8]) -> Self {
        TimeEntry {
            timestamp: i64::from_be_bytes(buf[0..8].try_into().expect("8 bytes")),
            offset: absolute(base_offset, &buf[8..12]),
        }
    }
}

/// An append-only file of fixed-size entries sorted by their key.
pub(crate) struct IndexFile<E: IndexEntry> {
    file: File,
    path: PathBuf,
    base_offset: i64,
    len: u64,
    last: Option<E>,
    _entry: PhantomData<E>,
}

impl<E: IndexEntry> IndexFile<E> {
    /// Opens or creates the index. Returns the index and whether its length was a whole number
    /// of entries (a torn tail is cut off, but the caller should distrust the index).
    pub fn open(path: &Path, base_offset: i64) -> io::Result<(Self, bool)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let bytes = file.metadata()?.len();
        let whole = bytes % E::SIZE as u64 == 0;
        if !whole {
            file.set_len(bytes - bytes % E::SIZE as u64)?;
        }
        let mut index = IndexFile {
            file,
            path: path.to_path_buf(),
            base_offset,
            len: bytes / E::SIZE as u64,
            last: None,
            _entry: PhantomData,
        };
        index.last = index
            .len
            .checked_sub(1)
            .map(|i| index.entry(i))
            .transpose()?;
        Ok((index, whole))
    }

    #[cfg(test)]
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn last(&self) -> Option<E> {
        self.last
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn entry(&self, i: u64) -> io::Result<E> {
        let mut buf = vec![0u8; E::SIZE];
        self.file.read_exact_at(&mut buf, i * E::SIZE as u64)?;
        Ok(E::decode(self.base_offset, &buf))
    }

    pub fn append(&mut self, entry: E) -> io::Result<()> {
        let bytes = entry.encode(self.base_offset);
        self.file.write_all_at(&bytes, self.len * E::SIZE as u64)?;
        self.len += 1;
        self.last = Some(entry);
        Ok(())
    }

    /// The last entry for which `before` holds, given that `before` is true for a prefix of the
    /// entries and false afterwards.
    pub fn search_last(&self, before: impl Fn(&E) -> bool) -> io::Result<Option<E>> {
        let (mut lo, mut hi) = (0u64, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if before(&self.entry(mid)?) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1).map(|i| self.entry(i)).transpose()
    }

    /// Replaces the whole content, used when rebuilding an index from its segment.
    pub fn rewrite(&mut self, entries: &[E]) -> io::Result<()> {
        let bytes: Vec<u8> = entries
            .iter()
            .flat_map(|e| e.encode(self.base_offset))
            .collect();
        self.file.set_len(0)?;
        self.file.write_all_at(&bytes, 0)?;
        self.len = entries.len() as u64;
        self.last = entries.last().copied();
        Ok(())
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    /// A second handle on the index file, to fsync it without holding the log.
    pub fn clone_file(&self) -> io::Result<File> {
        self.file.try_clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_search_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.index");
        let (mut index, whole) = IndexFile::<OffsetEntry>::open(&path, 100).unwrap();
        assert!(whole);
        for i in 0..10u32 {
            let entry = OffsetEntry {
                offset: 100 + 10 * i as i64,
                position: 1000 * i,
            };
            index.append(entry).unwrap();
        }
        let found = index.search_last(|e| e.offset <= 155).unwrap().unwrap();
        assert_eq!(
            found,
            OffsetEntry {
                offset: 150,
                position: 5000
            }
        );
        assert_eq!(index.search_last(|e| e.offset <= 99).unwrap(), None);
        drop(index);

        // A torn tail (half an entry) is cut and reported.
        let file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all_at(&[1, 2, 3], 80).unwrap();
        let (index, whole) = IndexFile::<OffsetEntry>::open(&path, 100).unwrap();
        assert!(!whole);
        assert_eq!(index.len(), 10);
        assert_eq!(index.last().unwrap().offset, 190);
    }

    #[test]
    fn time_entries_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.timeindex");
        let (mut index, _) = IndexFile::<TimeEntry>::open(&path, 7).unwrap();
        index
            .rewrite(&[
                TimeEntry {
                    timestamp: 5,
                    offset: 7,
                },
                TimeEntry {
                    timestamp: 9,
                    offset: 12,
                },
            ])
            .unwrap();
        let (index, _) = IndexFile::<TimeEntry>::open(&path, 7).unwrap();
        assert_eq!(
            index
                .search_last(|e| e.timestamp < 9)
                .unwrap()
                .unwrap()
                .offset,
            7
        );
        assert_eq!(
            index.last(),
            Some(TimeEntry {
                timestamp: 9,
                offset: 12
            })
        );
    }
}
