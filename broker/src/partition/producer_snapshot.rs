//! The producer-state snapshot (Kafka's `.snapshot` files, in one file): the idempotent-producer
//! table as of an offset, so that opening a partition replays only the batch headers after that
//! offset instead of the whole log.
//!
//! It is written after a flush (the records up to its offset are on disk by then) once the log
//! has grown [`SNAPSHOT_EVERY_OFFSETS`] past the last snapshot, and at every clean shutdown. A
//! snapshot is a statement about one history of the log: a truncation below its offset (a
//! follower cutting a diverged log) discards it, and a writer that took its copy before such a
//! truncation does not write it (the *generation* changed).

use std::io;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use tracing::warn;

use super::producer_state::ProducerStateTable;

const FILE: &str = "producer-state-snapshot";

/// How far the log grows past the last snapshot before a flush writes a new one: a restart
/// replays at most about this many offsets' batch headers (plus the unflushed tail).
pub const SNAPSHOT_EVERY_OFFSETS: i64 = 100_000;

/// The producer table as of `offset` (every batch below it recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerSnapshot {
    pub offset: i64,
    pub table: ProducerStateTable,
}

struct Written {
    /// Offset of the snapshot on disk; -1 for none.
    offset: i64,
    /// Bumped whenever the log is cut below what a snapshot taken earlier describes.
    generation: u64,
}

/// The snapshot file of one partition directory.
pub struct ProducerSnapshots {
    dir: PathBuf,
    written: Mutex<Written>,
}

impl ProducerSnapshots {
    /// The partition's snapshots, and the snapshot on disk if there is a readable one.
    pub fn open(dir: &Path) -> io::Result<(ProducerSnapshots, Option<ProducerSnapshot>)> {
        let snapshot = read(dir)?;
        let snapshots = ProducerSnapshots {
            dir: dir.to_path_buf(),
            written: Mutex::new(Written {
                offset: snapshot.as_ref().map_or(-1, |s| s.offset),
                generation: 0,
            }),
        };
        Ok((snapshots, snapshot))
    }

    /// The current generation, to pass to [`ProducerSnapshots::write`] with a copy of the
    /// table taken at the same time (under the partition's lock).
    pub fn generation(&self) -> u64 {
        self.written.lock().generation
    }

    /// How many offsets a start-up would replay: from the snapshot (or the log start, when it
    /// is further) to the log end.
    pub fn offsets_to_replay(&self, log_start: i64, log_end: i64) -> i64 {
        log_end - self.written.lock().offset.max(log_start)
    }

    /// Whether the log is far enough past the last snapshot for a new one.
    pub fn due(&self, log_start: i64, log_end: i64) -> bool {
        self.offsets_to_replay(log_start, log_end) >= SNAPSHOT_EVERY_OFFSETS
    }

    /// Writes `snapshot` unless the log was cut since its copy was taken (`generation`).
    pub fn write(&self, generation: u64, snapshot: &ProducerSnapshot) -> io::Result<()> {
        let mut written = self.written.lock();
        if written.generation != generation || written.offset == snapshot.offset {
            return Ok(());
        }
        let mut entries = vec![snapshot.offset.to_string()];
        entries.extend(snapshot.table.to_lines());
        millrace_log::checkpoint::write(&self.dir, FILE, &entries)?;
        written.offset = snapshot.offset;
        Ok(())
    }

    /// The log is being cut at `offset`: returns the snapshot on disk when it describes only
    /// records below `offset` (still true after the cut), and discards it otherwise.
    pub fn keep_below(&self, offset: i64) -> io::Result<Option<ProducerSnapshot>> {
        let mut written = self.written.lock();
        written.generation += 1;
        if written.offset >= 0 && written.offset <= offset {
            if let Some(snapshot) = read(&self.dir)?.filter(|s| s.offset <= offset) {
                return Ok(Some(snapshot));
            }
        }
        remove(&self.dir)?;
        written.offset = -1;
        Ok(None)
    }

    /// Discards the snapshot (the log restarted elsewhere).
    pub fn discard(&self) -> io::Result<()> {
        self.keep_below(-1).map(drop)
    }
}

fn read(dir: &Path) -> io::Result<Option<ProducerSnapshot>> {
    let Some(entries) = millrace_log::checkpoint::read(dir, FILE)? else {
        return Ok(None);
    };
    let parsed = entries.split_first().and_then(|(offset, producers)| {
        Some(ProducerSnapshot {
            offset: offset.trim().parse().ok().filter(|&o: &i64| o >= 0)?,
            table: ProducerStateTable::from_lines(producers)?,
        })
    });
    if parsed.is_none() {
        warn!(dir = %dir.display(), "ignoring an unreadable producer-state snapshot");
    }
    Ok(parsed)
}

fn remove(dir: &Path) -> io::Result<()> {
    match std::fs::remove_file(dir.join(FILE)) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(offset: i64) -> ProducerSnapshot {
        ProducerSnapshot {
            offset,
            table: ProducerStateTable::default(),
        }
    }

    #[test]
    fn a_snapshot_is_due_every_interval_and_a_copy_from_before_a_cut_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let (snapshots, found) = ProducerSnapshots::open(dir.path()).unwrap();
        assert_eq!(found, None);
        assert!(!snapshots.due(0, SNAPSHOT_EVERY_OFFSETS - 1));
        assert!(snapshots.due(0, SNAPSHOT_EVERY_OFFSETS));
        assert!(!snapshots.due(5, SNAPSHOT_EVERY_OFFSETS));
        snapshots
            .write(snapshots.generation(), &snapshot(SNAPSHOT_EVERY_OFFSETS))
            .unwrap();
        assert!(!snapshots.due(0, 2 * SNAPSHOT_EVERY_OFFSETS - 1));
        assert!(snapshots.due(0, 2 * SNAPSHOT_EVERY_OFFSETS));
        assert_eq!(snapshots.offsets_to_replay(0, SNAPSHOT_EVERY_OFFSETS), 0);

        // A copy taken, then the log cut below it: the copy is not written.
        let generation = snapshots.generation();
        assert_eq!(snapshots.keep_below(10).unwrap(), None);
        snapshots.write(generation, &snapshot(20)).unwrap();
        let (_, found) = ProducerSnapshots::open(dir.path()).unwrap();
        assert_eq!(found, None);
        snapshots
            .write(snapshots.generation(), &snapshot(5))
            .unwrap();
        let (_, found) = ProducerSnapshots::open(dir.path()).unwrap();
        assert_eq!(found, Some(snapshot(5)));
    }
}
