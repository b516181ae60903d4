//! The Raft layer: openraft's type configuration, durable storage, and the state machine.

pub mod directory;
pub mod log_store;
pub mod state_machine;

use std::fmt;
use std::io::Cursor;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::command::{Command, CommandResult};

/// A Raft member: a broker id *and* the id of its quorum directory (KIP-853's replica key).
///
/// Raft's safety rests on voters remembering their vote and log. A broker whose quorum directory
/// was wiped has forgotten both, so it comes back under a new key: the old key's promises can
/// never be answered for by the new directory (RPCs addressed to the old key are refused), and the
/// new key counts in no quorum until the leader has re-added it through a membership change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeKey {
    pub node_id: i32,
    pub directory_id: Uuid,
}

impl fmt::Display for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.node_id, self.directory_id.simple())
    }
}

impl FromStr for NodeKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (id, dir) = s
            .split_once('-')
            .ok_or_else(|| format!("invalid node key {s:?}"))?;
        Ok(NodeKey {
            node_id: id.parse().map_err(|_| format!("invalid node key {s:?}"))?,
            directory_id: dir.parse().map_err(|_| format!("invalid node key {s:?}"))?,
        })
    }
}

// As a string, so that it can key JSON maps (openraft's membership is a map by node id).
impl Serialize for NodeKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NodeKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

openraft::declare_raft_types!(
    /// Millrace's metadata quorum.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = NodeKey,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeKey>;
pub type Vote = openraft::Vote<NodeKey>;
pub type StorageError = openraft::StorageError<NodeKey>;
pub type StoredMembership = openraft::StoredMembership<NodeKey, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeKey, openraft::BasicNode>;
pub type RaftMetrics = openraft::RaftMetrics<NodeKey, openraft::BasicNode>;

pub(crate) fn io_error(e: impl std::error::Error + Send + Sync + 'static) -> std::io::Error {
    std::io::Error::other(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_keys_round_trip_as_json_map_keys() {
        let key = NodeKey {
            node_id: 3,
            directory_id: Uuid::new_v4(),
        };
        let map = std::collections::BTreeMap::from([(key, 1)]);
        let json = serde_json::to_string(&map).unwrap();
        let back: std::collections::BTreeMap<NodeKey, i32> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, map);
        assert!("3".parse::<NodeKey>().is_err());
    }
}
