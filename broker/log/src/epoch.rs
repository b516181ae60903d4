//! Leader epoch cache (Kafka's `leader-epoch-checkpoint`): for each leader epoch, the first
//! offset written in it. Replication uses it to answer OffsetForLeaderEpoch and to find where a
//! follower's log diverges from the leader's. Persisted on every change, which is rare.

use std::io;
use std::path::{Path, PathBuf};

use crate::checkpoint::{self, LEADER_EPOCH_FILE};

pub(crate) struct EpochCache {
    dir: PathBuf,
    /// (epoch, start offset), both strictly increasing.
    entries: Vec<(i32, i64)>,
}

impl EpochCache {
    pub fn load(dir: &Path) -> io::Result<EpochCache> {
        let mut entries = Vec::new();
        for line in checkpoint::read(dir, LEADER_EPOCH_FILE)?.unwrap_or_default() {
            let mut parts = line.split_whitespace().map(str::parse::<i64>);
            if let (Some(Ok(epoch)), Some(Ok(offset))) = (parts.next(), parts.next()) {
                entries.push((epoch as i32, offset));
            }
        }
        Ok(EpochCache {
            dir: dir.to_path_buf(),
            entries,
        })
    }

    fn persist(&self) -> io::Result<()> {
        let lines: Vec<String> = self
            .entries
            .iter()
            .map(|(e, o)| format!("{e} {o}"))
            .collect();
        checkpoint::write(&self.dir, LEADER_EPOCH_FILE, &lines)
    }

    /// Records that `epoch` starts at `start_offset` if it is newer than the latest epoch.
    /// Older epochs are ignored, as Kafka does.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> io::Result<()> {
        if epoch < 0 || self.latest().is_some_and(|latest| epoch <= latest) {
            return Ok(());
        }
        // A newer epoch starting at or before an older one's start replaces it.
        self.entries.retain(|&(_, offset)| offset < start_offset);
        self.entries.push((epoch, start_offset));
        self.persist()
    }

    pub fn latest(&self) -> Option<i32> {
        self.entries.last().map(|&(epoch, _)| epoch)
    }

    /// The largest epoch <= `epoch` and the start offset of the next epoch (or `log_end_offset`).
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        let index = self
            .entries
            .partition_point(|&(e, _)| e <= epoch)
            .checked_sub(1)?;
        let end = self
            .entries
            .get(index + 1)
            .map_or(log_end_offset, |&(_, start)| start);
        Some((self.entries[index].0, end))
    }

    /// Drops epochs starting at or after `offset` (the log was truncated to `offset`).
    pub fn truncate_from_end(&mut self, offset: i64) -> io::Result<()> {
        let before = self.entries.len();
        self.entries.retain(|&(_, start)| start < offset);
        if self.entries.len() != before {
            self.persist()?;
        }
        Ok(())
    }

    /// Forgets every epoch: the log was emptied and restarts elsewhere.
    pub fn clear(&mut self) -> io::Result<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        self.entries.clear();
        self.persist()
    }

    /// The log now starts at `offset`: epochs that ended before it go, and the epoch covering it
    /// starts at `offset`.
    pub fn truncate_from_start(&mut self, offset: i64) -> io::Result<()> {
        let covering = self.entries.partition_point(|&(_, start)| start <= offset);
        if covering == 0 || (covering == 1 && self.entries[0].1 == offset) {
            return Ok(());
        }
        self.entries.drain(..covering - 1);
        self.entries[0].1 = offset;
        self.persist()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_assign_lookup_truncate_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = EpochCache::load(dir.path()).unwrap();
        assert_eq!(cache.latest(), None);
        cache.assign(1, 0).unwrap();
        cache.assign(1, 5).unwrap();
        cache.assign(3, 10).unwrap();
        cache.assign(2, 12).unwrap();
        cache.assign(5, 20).unwrap();
        assert_eq!(cache.latest(), Some(5));
        assert_eq!(cache.end_offset_for(0, 30), None);
        assert_eq!(cache.end_offset_for(1, 30), Some((1, 10)));
        assert_eq!(cache.end_offset_for(4, 30), Some((3, 20)));
        assert_eq!(cache.end_offset_for(9, 30), Some((5, 30)));

        cache.truncate_from_end(20).unwrap();
        cache.truncate_from_start(12).unwrap();
        let reloaded = EpochCache::load(dir.path()).unwrap();
        assert_eq!(reloaded.entries, vec![(3, 12)]);
    }
}
