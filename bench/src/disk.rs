//! The physical reference: how fast this machine writes sequentially when the data must reach
//! the disk (`File::sync_data`, i.e. fdatasync, every 4 MiB, like a log segment flushed as it
//! grows).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

pub fn sequential_write_mb_s(dir: &Path, mib: usize) -> anyhow::Result<f64> {
    let path = dir.join("disk-reference");
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)?;
    let block = vec![0xa5u8; 1024 * 1024];
    let started = Instant::now();
    for written in 1..=mib {
        file.write_all(&block)?;
        if written % 4 == 0 || written == mib {
            file.sync_data()?;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    Ok((mib * 1024 * 1024) as f64 / 1e6 / seconds)
}
