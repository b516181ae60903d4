//! Port allocation for local nodes: four ports per (cluster, broker), persisted in
//! `<root>/ports.json` so that a replaced node, and a restarted control plane, get the same
//! ones. A port is handed out only if nothing else has it and it can be bound right now.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::files::{read_json, write_json_atomically};
use crate::platform::{PlatformError, Result};

/// The ports of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePorts {
    pub kafka: u16,
    pub broker_admin: u16,
    pub agent: u16,
    pub controller: u16,
}

impl NodePorts {
    fn all(&self) -> [u16; 4] {
        [self.kafka, self.broker_admin, self.agent, self.controller]
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Allocation {
    cluster_id: Uuid,
    broker_id: i32,
    ports: NodePorts,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Allocations {
    allocations: Vec<Allocation>,
}

pub struct PortAllocator {
    file: PathBuf,
    lock_file: PathBuf,
    range: Range<u16>,
    bind_host: String,
}

impl PortAllocator {
    pub fn new(root: &Path, range: Range<u16>, bind_host: &str) -> PortAllocator {
        PortAllocator {
            file: root.join("ports.json"),
            lock_file: root.join("ports.lock"),
            range,
            bind_host: bind_host.to_string(),
        }
    }

    /// The ports of each broker, allocating those not allocated yet. Blocking: file lock,
    /// bind probes and an fsync.
    pub fn allocate(&self, cluster_id: Uuid, broker_ids: &[i32]) -> Result<Vec<NodePorts>> {
        let _lock = self.lock()?;
        let mut state: Allocations = read_json(&self.file)?.unwrap_or_default();
        let mut taken: std::collections::HashSet<u16> = state
            .allocations
            .iter()
            .flat_map(|a| a.ports.all())
            .collect();
        let mut candidates = self.range.clone();
        let mut changed = false;
        let mut result = Vec::with_capacity(broker_ids.len());
        for &broker_id in broker_ids {
            let existing = state
                .allocations
                .iter()
                .find(|a| a.cluster_id == cluster_id && a.broker_id == broker_id);
            if let Some(existing) = existing {
                result.push(existing.ports);
                continue;
            }
            let mut next = || -> Result<u16> {
                for port in candidates.by_ref() {
                    if !taken.contains(&port) && self.can_bind(port) {
                        taken.insert(port);
                        return Ok(port);
                    }
                }
                Err(PlatformError::PortsExhausted(format!(
                    "{}..{}",
                    self.range.start, self.range.end
                )))
            };
            let ports = NodePorts {
                kafka: next()?,
                broker_admin: next()?,
                agent: next()?,
                controller: next()?,
            };
            state.allocations.push(Allocation {
                cluster_id,
                broker_id,
                ports,
            });
            changed = true;
            result.push(ports);
        }
        if changed {
            write_json_atomically(&self.file, &state)?;
        }
        Ok(result)
    }

    /// Forgets every allocation of the cluster.
    pub fn release_cluster(&self, cluster_id: Uuid) -> Result<()> {
        let _lock = self.lock()?;
        let Some(mut state) = read_json::<Allocations>(&self.file)? else {
            return Ok(());
        };
        let before = state.allocations.len();
        state.allocations.retain(|a| a.cluster_id != cluster_id);
        if state.allocations.len() != before {
            write_json_atomically(&self.file, &state)?;
        }
        Ok(())
    }

    fn can_bind(&self, port: u16) -> bool {
        TcpListener::bind((self.bind_host.as_str(), port)).is_ok()
    }

    /// An exclusive lock on the allocation file, against another control plane (or another
    /// platform instance) on the same root dir. Released when the file is closed.
    fn lock(&self) -> Result<File> {
        let context = || format!("locking {}", self.lock_file.display());
        if let Some(dir) = self.lock_file.parent() {
            std::fs::create_dir_all(dir).map_err(PlatformError::io(context()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_file)
            .map_err(PlatformError::io(context()))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(PlatformError::io(context())(std::io::Error::last_os_error()));
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_stable_and_distinct() {
        let dir = tempfile::tempdir().unwrap();
        let allocator = PortAllocator::new(dir.path(), 41000..41100, "127.0.0.1");
        let cluster = Uuid::new_v4();
        let first = allocator.allocate(cluster, &[1, 2, 3]).unwrap();
        let mut all: Vec<u16> = first.iter().flat_map(|p| p.all()).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 12, "ports collide: {first:?}");

        // Same answer again, and from another allocator on the same root (a restarted control
        // plane), even for a subset in another order.
        let again = PortAllocator::new(dir.path(), 41000..41100, "127.0.0.1")
            .allocate(cluster, &[3, 1])
            .unwrap();
        assert_eq!(again, [first[2], first[0]]);

        let other = allocator.allocate(Uuid::new_v4(), &[1]).unwrap();
        assert!(!all.contains(&other[0].kafka));

        allocator.release_cluster(cluster).unwrap();
        let reused = allocator.allocate(Uuid::new_v4(), &[1]).unwrap();
        assert!(all.contains(&reused[0].kafka), "released ports are reused");
    }

    #[test]
    fn ports_in_use_are_skipped_and_exhaustion_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        // Below Linux's ephemeral range, so that no outgoing connection takes them meanwhile.
        let port = 24_100;
        let Ok(_busy) = TcpListener::bind(("127.0.0.1", port)) else {
            return; // someone else has it: the test cannot set its scene
        };
        let allocator = PortAllocator::new(dir.path(), port..port + 5, "127.0.0.1");
        let ports = allocator.allocate(Uuid::new_v4(), &[1]).unwrap();
        assert!(!ports[0].all().contains(&port));
        let error = allocator.allocate(Uuid::new_v4(), &[1]).unwrap_err();
        assert!(matches!(error, PlatformError::PortsExhausted(_)), "{error}");
    }
}
