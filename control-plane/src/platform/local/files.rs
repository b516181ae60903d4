//! Small files of the local platform's state, written atomically (temp file, fsync, rename,
//! fsync of the directory) so that a crash leaves the old or the new content, never half.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::platform::{PlatformError, Result};

pub fn write_json_atomically<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let context = || format!("writing {}", path.display());
    let dir = path
        .parent()
        .ok_or_else(|| PlatformError::Process(format!("{} has no parent", path.display())))?;
    fs::create_dir_all(dir).map_err(PlatformError::io(context()))?;
    let temp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| PlatformError::Process(format!("encoding {}: {e}", path.display())))?;
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)
        .map_err(PlatformError::io(context()))?;
    file.write_all(&bytes)
        .and_then(|_| file.sync_all())
        .map_err(PlatformError::io(context()))?;
    fs::rename(&temp, path).map_err(PlatformError::io(context()))?;
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(PlatformError::io(context()))?;
    Ok(())
}

/// `None` when the file does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| PlatformError::Process(format!("{} is not valid: {e}", path.display()))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(PlatformError::io(format!("reading {}", path.display()))(
            error,
        )),
    }
}

/// Removes a directory tree; one that is already gone is fine.
pub fn remove_dir_all(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(PlatformError::io(format!("removing {}", path.display()))(
            error,
        )),
    }
}
