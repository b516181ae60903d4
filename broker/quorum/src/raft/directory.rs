//! The quorum directory (`<data-dir>/quorum/`): its identity and crash-safe small files.
//!
//! Layout:
//! - `directory.json` — `{node_id, directory_id}`, written once when the directory is created;
//!   the directory id is random, so a wiped directory comes back as a different Raft member.
//! - `vote.json` — the Raft vote, replaced atomically and fsynced before any answer depends on it.
//! - `raft.log` — the Raft log (see `log_store`).
//! - `snapshot.json` — the latest state-machine snapshot, replaced atomically.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::NodeKey;

const IDENTITY_FILE: &str = "directory.json";

#[derive(Debug, Serialize, Deserialize)]
struct Identity {
    node_id: i32,
    directory_id: Uuid,
}

/// An opened quorum directory.
#[derive(Debug, Clone)]
pub struct QuorumDirectory {
    pub path: PathBuf,
    pub key: NodeKey,
    /// Created by this start: nothing of a previous life survived.
    pub created: bool,
}

impl QuorumDirectory {
    /// Opens `path`, creating it with a new random directory id when it has no identity. Files
    /// left without an identity (a partly wiped directory) are discarded: they cannot be trusted
    /// to be this member's complete Raft state.
    pub fn open(path: &Path, node_id: i32) -> anyhow::Result<Self> {
        fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        let identity_path = path.join(IDENTITY_FILE);
        if identity_path.exists() {
            let identity: Identity = serde_json::from_slice(&fs::read(&identity_path)?)
                .with_context(|| format!("reading {}", identity_path.display()))?;
            anyhow::ensure!(
                identity.node_id == node_id,
                "{} belongs to node {}, not {node_id}",
                path.display(),
                identity.node_id
            );
            return Ok(QuorumDirectory {
                path: path.to_path_buf(),
                key: NodeKey {
                    node_id,
                    directory_id: identity.directory_id,
                },
                created: false,
            });
        }
        for leftover in ["vote.json", "raft.log", "snapshot.json"] {
            let file = path.join(leftover);
            if file.exists() {
                tracing::warn!(file = %file.display(), "discarding quorum state without a directory identity");
                fs::remove_file(&file)?;
            }
        }
        let identity = Identity {
            node_id,
            directory_id: Uuid::new_v4(),
        };
        write_atomically(&identity_path, &serde_json::to_vec_pretty(&identity)?)?;
        tracing::info!(node_id, directory_id = %identity.directory_id, "created quorum directory");
        Ok(QuorumDirectory {
            path: path.to_path_buf(),
            key: NodeKey {
                node_id,
                directory_id: identity.directory_id,
            },
            created: true,
        })
    }
}

/// Replaces `path` with `contents` so that a crash leaves either the old or the new file, and the
/// new one is on disk when this returns: write a temporary file, fsync it, rename, fsync the dir.
pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_id_survives_restarts_and_changes_when_wiped() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("quorum");
        let first = QuorumDirectory::open(&dir, 2).unwrap();
        assert!(first.created);
        fs::write(dir.join("vote.json"), b"{}").unwrap();
        let again = QuorumDirectory::open(&dir, 2).unwrap();
        assert!(!again.created);
        assert_eq!(again.key, first.key);
        assert!(
            QuorumDirectory::open(&dir, 3).is_err(),
            "another node's directory"
        );

        fs::remove_file(dir.join(IDENTITY_FILE)).unwrap();
        let wiped = QuorumDirectory::open(&dir, 2).unwrap();
        assert!(wiped.created);
        assert_ne!(wiped.key, first.key);
        assert!(!dir.join("vote.json").exists(), "orphaned state discarded");
    }
}
