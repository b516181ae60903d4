//! Producer ids for idempotent producers (InitProducerId), unique across restarts.
//!
//! Ids are handed out from blocks; the end of the current block is persisted before any id of
//! it is used, so a restart continues after the last block and never reuses an id.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

const BLOCK_SIZE: i64 = 1000;

struct Block {
    next: i64,
    end: i64,
}

pub struct ProducerIdAllocator {
    path: PathBuf,
    block: Mutex<Block>,
}

impl ProducerIdAllocator {
    pub fn open(data_dir: &Path) -> anyhow::Result<ProducerIdAllocator> {
        let path = data_dir.join("producer-id-block");
        let next = match fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse::<i64>()
                .map_err(|e| anyhow::anyhow!("{} is corrupt ({text:?}): {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e.into()),
        };
        Ok(ProducerIdAllocator {
            path,
            block: Mutex::new(Block { next, end: next }),
        })
    }

    pub fn allocate(&self) -> std::io::Result<i64> {
        let mut block = self.block.lock();
        if block.next >= block.end {
            let end = block.next + BLOCK_SIZE;
            let tmp = self.path.with_extension("tmp");
            let mut file = fs::File::create(&tmp)?;
            file.write_all(end.to_string().as_bytes())?;
            file.sync_all()?;
            fs::rename(&tmp, &self.path)?;
            block.end = end;
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_reused_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = ProducerIdAllocator::open(dir.path()).unwrap();
        let a = first.allocate().unwrap();
        let b = first.allocate().unwrap();
        assert_eq!((a, b), (0, 1));
        drop(first);
        let second = ProducerIdAllocator::open(dir.path()).unwrap();
        assert!(second.allocate().unwrap() > b);
    }
}
