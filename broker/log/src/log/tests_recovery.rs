//! Crash recovery: torn writes, garbage, lost or damaged indexes, and a randomized
//! append/reopen round trip.

use std::fs::{self, OpenOptions};
use std::io::Write;

use kafka_protocol::records::Compression;

use super::tests::{batch, offsets, small_config};
use super::*;
use crate::test_util::{encode_batch, simple_records, Rng};

fn segment_path(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(segment::file_name(base, suffix))
}

fn active_base(log: &Log) -> i64 {
    log.active().base_offset()
}

fn assert_all_readable(log: &Log) {
    let start = log.log_start_offset();
    let all = offsets(&log.read(start, usize::MAX, i64::MAX).unwrap());
    assert_eq!(all, (start..log.log_end_offset()).collect::<Vec<_>>());
    for offset in start..log.log_end_offset() {
        let got = offsets(&log.read(offset, 1, i64::MAX).unwrap());
        assert!(got.contains(&offset), "offset {offset} not in {got:?}");
    }
}

#[test]
fn torn_last_batch_is_dropped_and_whole_batches_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    for _ in 0..20 {
        log.append_as_leader(&batch(3, 0), 0, 0).unwrap();
    }
    let base = active_base(&log);
    let active_size = log.active().size();
    drop(log); // no flush: as if killed
    let path = segment_path(dir.path(), base, LOG_SUFFIX);
    let torn = active_size - 10;
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(torn)
        .unwrap();

    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.log_end_offset(), 57);
    assert!(fs::metadata(&path).unwrap().len() < torn);
    assert_all_readable(&log);
    assert_eq!(
        log.append_as_leader(&batch(1, 0), 0, 0)
            .unwrap()
            .first_offset,
        57
    );
}

#[test]
fn garbage_after_the_last_batch_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    for _ in 0..5 {
        log.append_as_leader(&batch(2, 0), 0, 0).unwrap();
    }
    log.flush().unwrap();
    let (base, size) = (active_base(&log), log.active().size());
    drop(log);
    let path = segment_path(dir.path(), base, LOG_SUFFIX);
    let mut file = OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(&[
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x10, 0x00, 0xde, 0xad,
    ])
    .unwrap();
    drop(file);

    let log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(fs::metadata(&path).unwrap().len(), size);
    assert_all_readable(&log);
}

#[test]
fn corrupt_unflushed_batch_ends_the_log_and_later_segments_go() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    for _ in 0..5 {
        log.append_as_leader(&batch(2, 0), 0, 0).unwrap();
    }
    log.flush().unwrap();
    let first_size = log.active().size();
    for _ in 0..20 {
        log.append_as_leader(&batch(2, 0), 0, 0).unwrap();
    }
    assert!(log.segment_count() > 2);
    drop(log);
    // Flip a byte inside batch 6 (offsets 12..13) of the first segment. Rolls flush, so the
    // recovery-point checkpoint is removed to make the whole log count as unflushed.
    fs::remove_file(dir.path().join(RECOVERY_POINT_FILE)).unwrap();
    let path = segment_path(dir.path(), 0, LOG_SUFFIX);
    let contents = fs::read(&path).unwrap();
    let one = batch(2, 0).len() as u64;
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    use std::os::unix::fs::FileExt;
    let at = first_size + one + 40;
    file.write_all_at(&[contents[at as usize] ^ 0xff], at)
        .unwrap();

    let log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.log_end_offset(), 12);
    assert_eq!(log.segment_count(), 1);
    assert_all_readable(&log);
}

/// A log of 40 batches of two records (timestamps 0, 10, ...), flushed, and its segments' bases.
fn forty_flushed_batches(dir: &Path, config: &LogConfig) -> (Log, Vec<i64>) {
    let mut log = Log::open(dir, config.clone(), 0).unwrap();
    for i in 0..40 {
        log.append_as_leader(&batch(2, i * 10), 0, 0).unwrap();
    }
    log.flush().unwrap();
    let bases = log.segments.iter().map(Segment::base_offset).collect();
    (log, bases)
}

#[test]
fn intact_indexes_of_flushed_segments_are_kept_even_the_active_ones() {
    let dir = tempfile::tempdir().unwrap();
    // Eleven batches of 125 bytes a segment: 40 batches leave room in the active one.
    let config = LogConfig {
        segment_bytes: 1400,
        ..small_config()
    };
    let (log, bases) = forty_flushed_batches(dir.path(), &config);
    let active = *bases.last().unwrap();
    drop(log);
    assert!(bases.len() > 2);
    let modified = |base: i64| {
        [INDEX_SUFFIX, TIME_INDEX_SUFFIX].map(|suffix| {
            fs::metadata(segment_path(dir.path(), base, suffix))
                .unwrap()
                .modified()
                .unwrap()
        })
    };
    let before: Vec<_> = bases.iter().map(|&base| modified(base)).collect();
    std::thread::sleep(std::time::Duration::from_millis(20));

    // Everything flushed: no index is rewritten, the active segment's included.
    let mut log = Log::open(dir.path(), config.clone(), 0).unwrap();
    let after: Vec<_> = bases.iter().map(|&base| modified(base)).collect();
    assert_eq!(before, after);
    assert_eq!(log.log_end_offset(), 80);
    assert_all_readable(&log);

    // Records after the last flush: the active segment is scanned and its indexes rebuilt.
    log.append_as_leader(&batch(2, 500), 0, 0).unwrap();
    assert_eq!(active_base(&log), active);
    drop(log);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let log = Log::open(dir.path(), config, 0).unwrap();
    assert_ne!(modified(active), before[bases.len() - 1]);
    assert_eq!(modified(bases[0]), before[0]);
    assert_eq!(log.log_end_offset(), 82);
    assert_all_readable(&log);
}

#[test]
fn missing_or_damaged_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 0,
        ..small_config()
    };
    let (log, bases) = forty_flushed_batches(dir.path(), &config);
    let expected_max = log.max_timestamp();
    drop(log);
    assert!(bases.len() > 3);
    let index0 = segment_path(dir.path(), bases[0], INDEX_SUFFIX);
    let index_len = fs::metadata(&index0).unwrap().len();
    fs::remove_file(&index0).unwrap();
    fs::remove_file(segment_path(dir.path(), bases[1], TIME_INDEX_SUFFIX)).unwrap();
    // A torn tail and an entry pointing past the log.
    let mut torn = OpenOptions::new()
        .append(true)
        .open(segment_path(dir.path(), bases[2], INDEX_SUFFIX))
        .unwrap();
    torn.write_all(&[0, 0, 0]).unwrap();
    let mut beyond = OpenOptions::new()
        .append(true)
        .open(segment_path(dir.path(), bases[3], INDEX_SUFFIX))
        .unwrap();
    beyond.write_all(&[0, 0, 0, 1, 0, 1, 0, 0]).unwrap();

    let log = Log::open(dir.path(), config, 0).unwrap();
    assert_eq!(fs::metadata(&index0).unwrap().len(), index_len);
    assert_eq!(
        fs::metadata(segment_path(dir.path(), bases[3], INDEX_SUFFIX))
            .unwrap()
            .len()
            % 8,
        0
    );
    assert_eq!(log.max_timestamp(), expected_max);
    assert_eq!(log.offset_for_timestamp(125).unwrap(), Some((26, 131)));
    assert_all_readable(&log);
}

#[test]
fn stray_files_from_interrupted_work_are_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    log.append_as_leader(&batch(2, 0), 0, 0).unwrap();
    drop(log);
    fs::write(segment_path(dir.path(), 500, INDEX_SUFFIX), [0u8; 8]).unwrap();
    fs::write(
        dir.path().join("recovery-point-offset-checkpoint.tmp"),
        "0\n",
    )
    .unwrap();
    let log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert!(!segment_path(dir.path(), 500, INDEX_SUFFIX).exists());
    assert!(!dir
        .path()
        .join("recovery-point-offset-checkpoint.tmp")
        .exists());
    assert_eq!(log.log_end_offset(), 2);
}

/// Random batch sizes, codecs, segment sizes, flushes and crashes (a torn tail): after every
/// reopen each surviving offset is readable and the log continues where it ended.
#[test]
fn random_appends_survive_reopen() {
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Lz4,
        Compression::Zstd,
        Compression::Snappy,
    ];
    for seed in 1..=6u64 {
        let mut rng = Rng::new(seed * 7919);
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 500 + rng.below(4_000),
            index_interval_bytes: rng.below(600) as u32,
            ..LogConfig::default()
        };
        let mut log = Log::open(dir.path(), config.clone(), 0).unwrap();
        let mut timestamp = 0;
        for round in 0..8 {
            for _ in 0..rng.below(40) {
                let count = 1 + rng.below(12) as usize;
                let value_len = rng.below(300) as usize;
                let codec = codecs[rng.below(codecs.len() as u64) as usize];
                timestamp += rng.below(50) as i64;
                let bytes = encode_batch(&simple_records(count, timestamp, value_len), codec);
                let info = log.append_as_leader(&bytes, round, timestamp).unwrap();
                assert_eq!(info.record_count, count as i64);
            }
            if rng.below(3) == 0 {
                log.flush().unwrap();
            }
            let end_before = log.log_end_offset();
            let crash = rng.below(2) == 0 && !log.active().is_empty();
            let (base, size) = (active_base(&log), log.active().size());
            drop(log);
            if crash {
                let path = segment_path(dir.path(), base, LOG_SUFFIX);
                let cut = size - 1 - rng.below(size.min(100));
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_len(cut)
                    .unwrap();
            }
            log = Log::open(dir.path(), config.clone(), 0).unwrap();
            if crash {
                assert!(log.log_end_offset() < end_before);
                assert!(log.log_end_offset() >= base);
            } else {
                assert_eq!(
                    log.log_end_offset(),
                    end_before,
                    "seed {seed} round {round}"
                );
            }
            assert_all_readable(&log);
            let headers = log.batch_headers_from(0).unwrap();
            assert_eq!(
                headers.last().map_or(0, |h| h.last_offset() + 1),
                log.log_end_offset()
            );
        }
    }
}
