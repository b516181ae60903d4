//! The replicated state machine: `ClusterMetadata`, published on a watch channel as it is
//! applied, and its snapshots (`snapshot.json`, replaced atomically).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, Snapshot};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::directory::write_atomically;
use super::{io_error, Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::command::{CommandOutcome, CommandResult};
use crate::controller::apply::apply_command;
use crate::metadata::ClusterMetadata;

const SNAPSHOT_FILE: &str = "snapshot.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    metadata: ClusterMetadata,
}

struct Applied {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    metadata: Arc<ClusterMetadata>,
    snapshot: Option<StoredSnapshot>,
}

/// Clones share one state machine (a clone is also the snapshot builder).
#[derive(Clone)]
pub struct StateMachine {
    dir: PathBuf,
    applied: Arc<Mutex<Applied>>,
    published: watch::Sender<Arc<ClusterMetadata>>,
}

fn snapshot_error(verb: ErrorVerb, e: std::io::Error) -> StorageError {
    StorageError::from_io_error(ErrorSubject::Snapshot(None), verb, e)
}

impl StateMachine {
    /// Starts from the snapshot in `dir`, if any; openraft re-applies the log after it.
    pub fn open(dir: &Path) -> anyhow::Result<StateMachine> {
        let path = dir.join(SNAPSHOT_FILE);
        let snapshot: Option<StoredSnapshot> = if path.exists() {
            Some(serde_json::from_slice(&std::fs::read(&path)?)?)
        } else {
            None
        };
        let applied = match &snapshot {
            Some(s) => Applied {
                last_applied: s.meta.last_log_id,
                membership: s.meta.last_membership.clone(),
                metadata: Arc::new(s.metadata.clone()),
                snapshot: snapshot.clone(),
            },
            None => Applied {
                last_applied: None,
                membership: StoredMembership::default(),
                metadata: Arc::new(ClusterMetadata::default()),
                snapshot: None,
            },
        };
        let (published, _) = watch::channel(applied.metadata.clone());
        Ok(StateMachine {
            dir: dir.to_path_buf(),
            applied: Arc::new(Mutex::new(applied)),
            published,
        })
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterMetadata>> {
        self.published.subscribe()
    }

    fn publish(&self, metadata: Arc<ClusterMetadata>) {
        self.published.send_replace(metadata);
    }

    fn install(&self, stored: StoredSnapshot) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(&stored).map_err(io_error)?;
        write_atomically(&self.dir.join(SNAPSHOT_FILE), &bytes)?;
        let metadata = Arc::new(stored.metadata.clone());
        {
            let mut applied = self.applied.lock();
            applied.last_applied = stored.meta.last_log_id;
            applied.membership = stored.meta.last_membership.clone();
            applied.metadata = metadata.clone();
            applied.snapshot = Some(stored);
        }
        self.publish(metadata);
        Ok(())
    }
}

fn to_snapshot(stored: &StoredSnapshot) -> std::io::Result<Snapshot<TypeConfig>> {
    let data = serde_json::to_vec(&stored.metadata).map_err(io_error)?;
    Ok(Snapshot {
        meta: stored.meta.clone(),
        snapshot: Box::new(Cursor::new(data)),
    })
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let stored = {
            let applied = self.applied.lock();
            let snapshot_id = match applied.last_applied {
                Some(id) => format!(
                    "{}-{}-{}",
                    id.leader_id.term,
                    id.index,
                    uuid::Uuid::new_v4().simple()
                ),
                None => format!("empty-{}", uuid::Uuid::new_v4().simple()),
            };
            StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: applied.last_applied,
                    last_membership: applied.membership.clone(),
                    snapshot_id,
                },
                metadata: (*applied.metadata).clone(),
            }
        };
        let bytes = serde_json::to_vec(&stored)
            .map_err(|e| snapshot_error(ErrorVerb::Write, io_error(e)))?;
        let path = self.dir.join(SNAPSHOT_FILE);
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| snapshot_error(ErrorVerb::Write, io_error(e)))?
            .map_err(|e| snapshot_error(ErrorVerb::Write, e))?;
        let snapshot = to_snapshot(&stored).map_err(|e| snapshot_error(ErrorVerb::Read, e))?;
        self.applied.lock().snapshot = Some(stored);
        Ok(snapshot)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let applied = self.applied.lock();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut results = Vec::new();
        let metadata = {
            let mut applied = self.applied.lock();
            let mut metadata = (*applied.metadata).clone();
            for entry in entries {
                applied.last_applied = Some(entry.log_id);
                let result = match entry.payload {
                    EntryPayload::Blank => Ok(CommandOutcome::Done),
                    EntryPayload::Normal(command) => {
                        let result = apply_command(&mut metadata, &command, entry.log_id.index);
                        if let Err(rejection) = &result {
                            tracing::debug!(index = entry.log_id.index, ?command, %rejection, "command rejected");
                        }
                        result
                    }
                    EntryPayload::Membership(membership) => {
                        applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                        Ok(CommandOutcome::Done)
                    }
                };
                results.push(result);
            }
            let metadata = Arc::new(metadata);
            applied.metadata = metadata.clone();
            metadata
        };
        self.publish(metadata);
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let metadata: ClusterMetadata = serde_json::from_slice(snapshot.get_ref())
            .map_err(|e| snapshot_error(ErrorVerb::Read, io_error(e)))?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            metadata,
        };
        let machine = self.clone();
        tokio::task::spawn_blocking(move || machine.install(stored))
            .await
            .map_err(|e| snapshot_error(ErrorVerb::Write, io_error(e)))?
            .map_err(|e| snapshot_error(ErrorVerb::Write, e))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let stored = self.applied.lock().snapshot.clone();
        stored
            .as_ref()
            .map(to_snapshot)
            .transpose()
            .map_err(|e| snapshot_error(ErrorVerb::Read, e))
    }
}
