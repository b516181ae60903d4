//! Small text checkpoint files in the partition directory (recovery point, log start offset,
//! leader epochs), in Kafka's checkpoint layout: a version line, an entry-count line, then one
//! entry per line.
//!
//! They are replaced atomically: write `<name>.tmp`, fsync it, rename over the old file, fsync
//! the directory. A crash therefore leaves either the old or the new content, never a mix.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

const VERSION: &str = "0";

pub(crate) const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
pub(crate) const LOG_START_OFFSET_FILE: &str = "log-start-offset-checkpoint";
pub(crate) const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";

/// Atomically replaces `dir/name` with the given entry lines.
pub fn write(dir: &Path, name: &str, entries: &[String]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut contents = format!("{VERSION}\n{}\n", entries.len());
    for entry in entries {
        contents.push_str(entry);
        contents.push('\n');
    }
    let mut file = File::create(&tmp)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// The entry lines of `dir/name`; `Ok(None)` when the file does not exist or is unreadable as a
/// checkpoint (logged, and treated as absent: every caller has a safe default).
pub fn read(dir: &Path, name: &str) -> io::Result<Option<Vec<String>>> {
    let contents = match fs::read_to_string(dir.join(name)) {
        Ok(contents) => contents,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut lines = contents.lines();
    let count = match (lines.next(), lines.next().map(str::parse::<usize>)) {
        (Some(VERSION), Some(Ok(count))) => count,
        _ => {
            tracing::warn!(file = name, dir = %dir.display(), "ignoring malformed checkpoint");
            return Ok(None);
        }
    };
    let entries: Vec<String> = lines.map(str::to_owned).collect();
    if entries.len() != count {
        tracing::warn!(file = name, dir = %dir.display(), "ignoring checkpoint with wrong entry count");
        return Ok(None);
    }
    Ok(Some(entries))
}

/// Writes a single offset.
pub(crate) fn write_offset(dir: &Path, name: &str, offset: i64) -> io::Result<()> {
    write(dir, name, &[offset.to_string()])
}

/// Reads a single offset written by `write_offset`.
pub(crate) fn read_offset(dir: &Path, name: &str) -> io::Result<Option<i64>> {
    Ok(
        read(dir, name)?.and_then(|entries| match entries.as_slice() {
            [one] => one.trim().parse().ok(),
            _ => None,
        }),
    )
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_and_bad_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_offset(dir.path(), "cp").unwrap(), None);
        write_offset(dir.path(), "cp", 42).unwrap();
        assert_eq!(read_offset(dir.path(), "cp").unwrap(), Some(42));
        fs::write(dir.path().join("cp"), "0\n2\n1\n").unwrap();
        assert_eq!(read_offset(dir.path(), "cp").unwrap(), None);
        assert!(!dir.path().join("cp.tmp").exists());
    }
}
