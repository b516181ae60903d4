//! The physical reference: how fast this machine writes sequentially when the data must reach
//! the disk (`File::sync_data`, i.e. fdatasync, every 4 MiB, like a log segment flushed as it
//! grows).
//!
//! What a broker sustains is bounded by the disk, not by the caches in front of it: on a
//! virtual machine the host's write cache takes the first gigabytes at several times the
//! disk's rate (on the development machine 2,000-2,400 MB/s for 1-4 GiB after an idle spell,
//! once 4 GiB at 2,145 MB/s, falling in steps, then 360-390 MB/s for as long as the writes go
//! on). So the reference is written in stretches of 256 MiB until the last `mib` of them ran at
//! a steady rate (within 30%) below 60% of the fastest stretch, or, when the rate never drops,
//! until eight times `mib` were written (twelve at most); the sustained rate is that of the
//! last `mib`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

const STRETCH_MIB: usize = 256;

/// One reading: MB/s of the fastest stretch (caches filling) and the sustained rate, with the
/// MiB written before it was measured.
pub struct DiskReading {
    pub fastest_mb_s: f64,
    pub sustained_mb_s: f64,
    pub warm_up_mib: usize,
}

pub fn sequential_write(dir: &Path, mib: usize) -> anyhow::Result<DiskReading> {
    let path = dir.join("disk-reference");
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)?;
    let stretch = STRETCH_MIB.min(mib).max(1);
    let measured = mib.div_ceil(stretch);
    let mut rates: Vec<f64> = Vec::new();
    let reading = loop {
        rates.push(write_synced(&mut file, stretch)?);
        if rates.len() < measured {
            continue;
        }
        let fastest = rates.iter().copied().fold(0.0, f64::max);
        let last = &rates[rates.len() - measured..];
        let (low, high) = last
            .iter()
            .fold((f64::MAX, 0.0f64), |(l, h), &r| (l.min(r), h.max(r)));
        let steady = high <= 1.3 * low;
        let dropped = high < 0.6 * fastest;
        let written = rates.len() * stretch;
        if (steady && (dropped || written >= 8 * mib)) || written >= 12 * mib {
            // Rates of equal stretches: the rate of their sum is the harmonic mean.
            let seconds_per_mb: f64 = last.iter().map(|r| 1.0 / r).sum();
            break DiskReading {
                fastest_mb_s: fastest,
                sustained_mb_s: last.len() as f64 / seconds_per_mb,
                warm_up_mib: written - last.len() * stretch,
            };
        }
    };
    std::fs::remove_file(&path)?;
    Ok(reading)
}

/// Appends `mib` MiB to `file` with an fdatasync every 4 MiB; returns the rate in MB/s.
fn write_synced(file: &mut File, mib: usize) -> anyhow::Result<f64> {
    let block = vec![0xa5u8; 1024 * 1024];
    let started = Instant::now();
    for written in 1..=mib {
        file.write_all(&block)?;
        if written % 4 == 0 || written == mib {
            file.sync_data()?;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok((mib * 1024 * 1024) as f64 / 1e6 / seconds)
}
