//! The Raft log and vote, on disk.
//!
//! `raft.log` is an append-only file of framed records (`len: u32 LE`, `crc32c: u32 LE`, JSON):
//! appended entries, truncations, purges and commit marks, replayed in order at start-up. A torn
//! or corrupt tail (a crash mid-write) is cut off at the last whole record. Appends are fsynced
//! before openraft is told they are durable, as Raft requires before a follower answers
//! AppendEntries; the vote lives in `vote.json`, replaced atomically and fsynced before openraft
//! answers a vote. When purges leave the file mostly dead it is rewritten with the live records.
//!
//! Every entry is also kept in memory: the metadata log is small, and snapshots bound it.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, RaftLogId, RaftLogReader};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::directory::{sync_dir, write_atomically};
use super::{io_error, Entry, LogId, StorageError, TypeConfig, Vote};

const LOG_FILE: &str = "raft.log";
const VOTE_FILE: &str = "vote.json";
/// Rewrite the log file once it is this large and mostly purged.
const COMPACT_AT_BYTES: u64 = 8 << 20;
const MAX_RECORD_BYTES: u32 = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
enum Record {
    Entry(Entry),
    /// Entries from this index on were removed (conflicting with the leader).
    TruncateFrom(u64),
    /// Entries up to and including this id were removed (covered by a snapshot).
    PurgeUpTo(LogId),
    Committed(Option<LogId>),
}

struct LogFile {
    path: PathBuf,
    file: File,
    len: u64,
}

impl LogFile {
    /// Opens (creating) the file and returns it with its records, cutting off a damaged tail.
    fn open(path: &Path) -> std::io::Result<(LogFile, Vec<Record>)> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut reader = BufReader::new(file.try_clone()?);
        let mut records = Vec::new();
        let mut good_len = 0u64;
        loop {
            let mut header = [0u8; 8];
            if reader.read_exact(&mut header).is_err() {
                break;
            }
            let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
            let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
            if len > MAX_RECORD_BYTES {
                break;
            }
            let mut body = vec![0u8; len as usize];
            if reader.read_exact(&mut body).is_err() || crc32c::crc32c(&body) != crc {
                break;
            }
            match serde_json::from_slice(&body) {
                Ok(record) => records.push(record),
                Err(_) => break,
            }
            good_len += 8 + u64::from(len);
        }
        let actual_len = file.metadata()?.len();
        if actual_len != good_len {
            tracing::warn!(path = %path.display(), actual_len, good_len, "cutting off a damaged Raft log tail");
            file.set_len(good_len)?;
            file.sync_all()?;
        }
        Ok((
            LogFile {
                path: path.to_path_buf(),
                file,
                len: good_len,
            },
            records,
        ))
    }

    fn append(&mut self, records: &[Record], sync: bool) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for record in records {
            encode(record, &mut buf)?;
        }
        self.file.write_all(&buf)?;
        self.len += buf.len() as u64;
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Atomically replaces the file with `records`.
    fn rewrite(&mut self, records: &[Record]) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for record in records {
            encode(record, &mut buf)?;
        }
        write_atomically(&self.path, &buf)?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)?;
        self.len = buf.len() as u64;
        Ok(())
    }
}

fn encode(record: &Record, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let body = serde_json::to_vec(record).map_err(io_error)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|l| *l <= MAX_RECORD_BYTES)
        .ok_or_else(|| std::io::Error::other("Raft log record too large"))?;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    buf.extend_from_slice(&body);
    Ok(())
}

struct LogContents {
    file: LogFile,
    dir: PathBuf,
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    committed: Option<LogId>,
    vote: Option<Vote>,
}

impl LogContents {
    fn apply(&mut self, record: Record) {
        match record {
            Record::Entry(entry) => {
                let index = entry.get_log_id().index;
                self.entries.split_off(&index);
                self.entries.insert(index, entry);
            }
            Record::TruncateFrom(index) => {
                self.entries.split_off(&index);
            }
            Record::PurgeUpTo(log_id) => {
                self.entries = self.entries.split_off(&(log_id.index + 1));
                self.last_purged = Some(log_id);
            }
            Record::Committed(log_id) => self.committed = log_id,
        }
    }

    fn maybe_compact(&mut self) -> std::io::Result<()> {
        if self.file.len < COMPACT_AT_BYTES {
            return Ok(());
        }
        let mut records = Vec::with_capacity(self.entries.len() + 2);
        if let Some(purged) = self.last_purged {
            records.push(Record::PurgeUpTo(purged));
        }
        records.push(Record::Committed(self.committed));
        records.extend(self.entries.values().cloned().map(Record::Entry));
        self.file.rewrite(&records)?;
        sync_dir(&self.dir)
    }
}

/// openraft's log storage; clones share the same log (a clone is also the log reader).
#[derive(Clone)]
pub struct LogStore {
    state: Arc<Mutex<LogContents>>,
}

impl LogStore {
    pub fn open(dir: &Path) -> anyhow::Result<LogStore> {
        let (file, records) = LogFile::open(&dir.join(LOG_FILE))?;
        let vote_path = dir.join(VOTE_FILE);
        let vote = if vote_path.exists() {
            Some(serde_json::from_slice(&fs::read(&vote_path)?)?)
        } else {
            None
        };
        let mut state = LogContents {
            file,
            dir: dir.to_path_buf(),
            entries: BTreeMap::new(),
            last_purged: None,
            committed: None,
            vote,
        };
        for record in records {
            state.apply(record);
        }
        Ok(LogStore {
            state: Arc::new(Mutex::new(state)),
        })
    }

    /// Runs blocking file I/O off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut LogContents) -> std::io::Result<T> + Send + 'static,
    ) -> std::io::Result<T> {
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || f(&mut state.lock()))
            .await
            .map_err(io_error)?
    }
}

fn log_error(verb: ErrorVerb, e: std::io::Error) -> StorageError {
    StorageError::from_io_error(ErrorSubject::Logs, verb, e)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let state = self.state.lock();
        Ok(state.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let state = self.state.lock();
        let last = state
            .entries
            .values()
            .next_back()
            .map(|e| *e.get_log_id())
            .or(state.last_purged);
        Ok(LogState {
            last_purged_log_id: state.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        self.blocking(move |state| {
            let path = state.dir.join(VOTE_FILE);
            write_atomically(&path, &serde_json::to_vec(&vote).map_err(io_error)?)?;
            state.vote = Some(vote);
            Ok(())
        })
        .await
        .map_err(|e| StorageError::from_io_error(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.state.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not fsynced: losing it only makes a restart re-learn the commit index from the leader.
        let mut state = self.state.lock();
        state.committed = committed;
        state
            .file
            .append(&[Record::Committed(committed)], false)
            .map_err(|e| log_error(ErrorVerb::Write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.state.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let records: Vec<Record> = entries.into_iter().map(Record::Entry).collect();
        let result = self
            .blocking(move |state| {
                state.file.append(&records, true)?;
                for record in records {
                    state.apply(record);
                }
                Ok(())
            })
            .await;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::new(e.kind(), e.to_string())));
                Err(log_error(ErrorVerb::Write, e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.blocking(move |state| {
            let record = Record::TruncateFrom(log_id.index);
            state.file.append(std::slice::from_ref(&record), true)?;
            state.apply(record);
            Ok(())
        })
        .await
        .map_err(|e| log_error(ErrorVerb::Write, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.blocking(move |state| {
            let record = Record::PurgeUpTo(log_id);
            state.file.append(std::slice::from_ref(&record), true)?;
            state.apply(record);
            state.maybe_compact()
        })
        .await
        .map_err(|e| log_error(ErrorVerb::Write, e))
    }
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftLogStorageExt;
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::raft::NodeKey;

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, NodeKey::default()), index),
            payload: EntryPayload::Blank,
        }
    }

    fn indexes(store: &LogStore) -> Vec<(u64, u64)> {
        store
            .state
            .lock()
            .entries
            .values()
            .map(|e| (e.log_id.leader_id.term, e.log_id.index))
            .collect()
    }

    #[tokio::test]
    async fn appends_truncations_purges_and_votes_survive_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let mut store = LogStore::open(tmp.path()).unwrap();
            store
                .blocking_append((1..=5).map(|i| entry(1, i)))
                .await
                .unwrap();
            store.truncate(*entry(1, 4).get_log_id()).await.unwrap();
            store.blocking_append([entry(2, 4)]).await.unwrap();
            store.purge(*entry(1, 1).get_log_id()).await.unwrap();
            store
                .save_vote(&Vote::new(2, NodeKey::default()))
                .await
                .unwrap();
        }
        let mut store = LogStore::open(tmp.path()).unwrap();
        assert_eq!(indexes(&store), vec![(1, 2), (1, 3), (2, 4)]);
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id.unwrap().index, 1);
        assert_eq!(state.last_log_id.unwrap().index, 4);
        assert_eq!(
            store.read_vote().await.unwrap(),
            Some(Vote::new(2, NodeKey::default()))
        );
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_off() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let mut store = LogStore::open(tmp.path()).unwrap();
            store
                .blocking_append((1..=3).map(|i| entry(1, i)))
                .await
                .unwrap();
        }
        let path = tmp.path().join(LOG_FILE);
        let len = fs::metadata(&path).unwrap().len();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len - 3).unwrap();
        let mut store = LogStore::open(tmp.path()).unwrap();
        assert_eq!(indexes(&store), vec![(1, 1), (1, 2)]);
        store.blocking_append([entry(1, 3)]).await.unwrap();
        drop(store);
        assert_eq!(indexes(&LogStore::open(tmp.path()).unwrap()).len(), 3);
    }

    #[tokio::test]
    async fn compaction_keeps_only_live_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(tmp.path()).unwrap();
        store
            .blocking_append((1..=10).map(|i| entry(1, i)))
            .await
            .unwrap();
        store.purge(*entry(1, 8).get_log_id()).await.unwrap();
        store.state.lock().file.len = COMPACT_AT_BYTES;
        store.purge(*entry(1, 9).get_log_id()).await.unwrap();
        drop(store);
        let store = LogStore::open(tmp.path()).unwrap();
        assert_eq!(indexes(&store), vec![(1, 10)]);
        assert_eq!(store.state.lock().last_purged.unwrap().index, 9);
    }
}
