//! The data directory's capacity, when the platform sets one that the file system does not
//! enforce (the local platform's volumes are directories): it writes the capacity in bytes to
//! `capacity-bytes` in the data directory. Client writes that would take the directory past it
//! are refused with KAFKA_STORAGE_ERROR (retriable: clients retry) before anything is appended,
//! so nothing acknowledged is at stake, and reads go on. Replication is not refused: a follower
//! copies what its leader admitted.
//!
//! What the directory holds is measured every second (and counted up between measurements by
//! the appends admitted); the file is read again each time, so a volume grown while the broker
//! runs takes effect within a second, as space freed by retention does. A file rather than a
//! flag: every broker version started over the volume obeys it or, being older, ignores it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::{info, warn};

/// No capacity set.
const UNLIMITED: u64 = u64::MAX;
/// The file, in the data directory, a platform sets the capacity in.
pub const CAPACITY_FILE: &str = "capacity-bytes";

pub struct Capacity {
    file: PathBuf,
    data_dir: PathBuf,
    capacity: AtomicU64,
    used: AtomicU64,
}

impl Capacity {
    pub fn new(data_dir: &Path) -> Capacity {
        let capacity = Capacity {
            file: data_dir.join(CAPACITY_FILE),
            data_dir: data_dir.to_path_buf(),
            capacity: AtomicU64::new(UNLIMITED),
            used: AtomicU64::new(0),
        };
        capacity.measure();
        capacity
    }

    /// Reads the capacity file again and measures the data directory. Blocking (it walks the
    /// directory).
    pub fn measure(&self) {
        let file = &self.file;
        let read = std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|text| text.trim().parse::<u64>().map_err(|e| e.to_string()));
        match read {
            Ok(bytes) => {
                let before = self.capacity.swap(bytes, Ordering::Relaxed);
                if before != bytes {
                    info!(capacity_bytes = bytes, "data directory capacity");
                }
            }
            Err(_) if !file.exists() => {
                self.capacity.store(UNLIMITED, Ordering::Relaxed);
                return;
            }
            // A capacity that cannot be read keeps the last one (at start: unlimited).
            Err(error) => warn!(file = %file.display(), %error, "capacity file unreadable"),
        }
        self.used
            .store(directory_bytes(&self.data_dir), Ordering::Relaxed);
    }

    /// Whether `bytes` more fit; Err with the reason when they do not.
    pub fn admit(&self, bytes: usize) -> Result<(), String> {
        let capacity = self.capacity.load(Ordering::Relaxed);
        if capacity == UNLIMITED {
            return Ok(());
        }
        let used = self.used.load(Ordering::Relaxed);
        if used.saturating_add(bytes as u64) > capacity {
            return Err(format!(
                "the broker's volume is full ({used} of {capacity} bytes used): writes resume \
                 once retention frees space or the volume grows"
            ));
        }
        Ok(())
    }

    /// Counts `bytes` just appended until the next measurement.
    pub fn appended(&self, bytes: usize) {
        self.used.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The capacity, when one is set.
    pub fn capacity_bytes(&self) -> Option<u64> {
        Some(self.capacity.load(Ordering::Relaxed)).filter(|c| *c != UNLIMITED)
    }
}

/// Bytes allocated under `dir` (files vanishing during the walk are skipped).
fn directory_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if metadata.is_dir() {
                pending.push(entry.path());
            }
            total += metadata.blocks() * 512;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_past_the_capacity_are_refused_until_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        let file = data.join(CAPACITY_FILE);
        std::fs::write(&file, "100000").unwrap();
        let capacity = Capacity::new(data);
        assert_eq!(capacity.capacity_bytes(), Some(100_000));
        assert!(capacity.admit(50_000).is_ok());
        capacity.appended(50_000);
        let refusal = capacity.admit(60_000).unwrap_err();
        assert!(refusal.contains("full"), "{refusal}");

        std::fs::write(&file, "1000000\n").unwrap();
        capacity.measure();
        assert!(
            capacity.admit(60_000).is_ok(),
            "a grown volume admits writes again"
        );

        // What is on disk counts once measured.
        std::fs::write(data.join("segment"), vec![7u8; 200_000]).unwrap();
        std::fs::write(&file, "150000").unwrap();
        capacity.measure();
        assert!(capacity.used_bytes() >= 200_000);
        assert!(capacity.admit(1).is_err());
    }

    #[test]
    fn without_a_capacity_file_everything_is_admitted() {
        let dir = tempfile::tempdir().unwrap();
        let capacity = Capacity::new(dir.path());
        assert_eq!(capacity.capacity_bytes(), None);
        assert!(capacity.admit(usize::MAX).is_ok());
    }
}
