//! Behaviour of the partition log on real files: appends, reads, retention, epochs.

use kafka_protocol::records::Compression;

use super::*;
use crate::batch::validate_batches;
use crate::test_util::{decode_all, encode_batch, simple_records};

pub(super) fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

/// An uncompressed batch of `records` records with timestamps from `timestamp`.
pub(super) fn batch(records: usize, timestamp: i64) -> Vec<u8> {
    encode_batch(&simple_records(records, timestamp, 20), Compression::None)
}

pub(super) fn offsets(buf: &[u8]) -> Vec<i64> {
    decode_all(buf).iter().map(|r| r.offset).collect()
}

#[test]
fn append_and_read_round_trip_assigns_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    let info = log.append_as_leader(&batch(3, 100), 0, 0).unwrap();
    assert_eq!(
        (info.first_offset, info.last_offset, info.record_count),
        (0, 2, 3)
    );
    assert_eq!((info.max_timestamp, info.offset_of_max_timestamp), (102, 0));
    let mut two = batch(2, 200);
    two.extend(batch(4, 300));
    let info = log.append_as_leader(&two, 0, 0).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (3, 8));
    assert_eq!(
        info.batches
            .iter()
            .map(|b| b.base_offset)
            .collect::<Vec<_>>(),
        vec![3, 5]
    );
    assert_eq!(log.log_end_offset(), 9);

    let all = log.read(0, 1 << 20, i64::MAX).unwrap();
    assert_eq!(offsets(&all), (0..9).collect::<Vec<_>>());
    let values: Vec<_> = decode_all(&all)
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    assert_eq!(values[3].len(), 20);
    // Reading from the middle of a batch returns that whole batch.
    assert_eq!(
        offsets(&log.read(6, 1 << 20, i64::MAX).unwrap()),
        vec![5, 6, 7, 8]
    );
    assert!(log.read(9, 1 << 20, i64::MAX).unwrap().is_empty());
    assert!(matches!(
        log.read(10, 100, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn reads_across_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    for i in 0..60 {
        log.append_as_leader(&batch(2, i * 10), 0, 0).unwrap();
    }
    assert!(log.segment_count() > 5, "{} segments", log.segment_count());
    assert_eq!(
        offsets(&log.read(0, 1 << 20, i64::MAX).unwrap()),
        (0..120).collect::<Vec<_>>()
    );
    for offset in 0..120 {
        let got = offsets(&log.read(offset, 300, i64::MAX).unwrap());
        assert_eq!(got[0], offset - offset % 2, "read from {offset}");
        assert!(got.windows(2).all(|w| w[1] == w[0] + 1));
    }
    let headers = log.batch_headers_from(51).unwrap();
    assert_eq!(headers.len(), 35);
    assert_eq!(headers[0].base_offset, 50);
}

#[test]
fn read_respects_max_offset_max_bytes_and_returns_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    for _ in 0..4 {
        log.append_as_leader(&batch(3, 0), 0, 0).unwrap();
    }
    assert_eq!(
        offsets(&log.read(0, 1 << 20, 6).unwrap()),
        (0..6).collect::<Vec<_>>()
    );
    // A batch straddling max_offset is not exposed.
    assert_eq!(offsets(&log.read(0, 1 << 20, 5).unwrap()), vec![0, 1, 2]);
    assert!(log.read(4, 1 << 20, 4).unwrap().is_empty());
    // max_bytes smaller than a batch still yields exactly one whole batch.
    assert_eq!(offsets(&log.read(4, 1, i64::MAX).unwrap()), vec![3, 4, 5]);
    let one_batch = batch(3, 0).len();
    assert_eq!(
        offsets(&log.read(0, 2 * one_batch + 1, i64::MAX).unwrap()).len(),
        6
    );
}

#[test]
fn compressed_batches_pass_through_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    let codecs = [
        Compression::Gzip,
        Compression::Lz4,
        Compression::Zstd,
        Compression::Snappy,
        Compression::None,
    ];
    let sent: Vec<Vec<u8>> = codecs
        .iter()
        .map(|&codec| encode_batch(&simple_records(5, 1_000, 200), codec))
        .collect();
    for (i, original) in sent.iter().enumerate() {
        let info = log.append_as_leader(original, 4, 0).unwrap();
        assert_eq!(info.batches[0].compression(), codecs[i] as u8);
    }
    let stored = log.read(0, 1 << 20, i64::MAX).unwrap();
    let mut position = 0;
    for (i, original) in sent.iter().enumerate() {
        let got = &stored[position..position + original.len()];
        // Only baseOffset (0..8) and partitionLeaderEpoch (12..16) may differ.
        assert_eq!(got[8..12], original[8..12]);
        assert_eq!(got[16..], original[16..], "codec {:?}", codecs[i]);
        assert_eq!(
            i64::from_be_bytes(got[0..8].try_into().unwrap()),
            5 * i as i64
        );
        assert_eq!(i32::from_be_bytes(got[12..16].try_into().unwrap()), 4);
        position += original.len();
    }
    let records = decode_all(&stored);
    assert_eq!(records.len(), 25);
    assert_eq!(
        records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..25).collect::<Vec<_>>()
    );
    assert_eq!(records[7].value.as_ref().unwrap().len(), 200);
}

#[test]
fn one_append_of_more_batches_than_one_vectored_write_takes_keeps_them_all_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    log.append_as_leader(&batch(1, 0), 2, 0).unwrap();
    // 600 batches of 2 records: the segment writes them 256 batches at a time.
    let many: Vec<u8> = (0..600).flat_map(|i| batch(2, i)).collect();
    let info = log.append_as_leader(&many, 3, 0).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (1, 1_200));
    let stored = log.read(1, 1 << 24, i64::MAX).unwrap();
    assert_eq!(stored.len(), many.len());
    let headers = validate_batches(&stored, 1 << 20).unwrap();
    assert_eq!(headers.len(), 600);
    for (i, header) in headers.iter().enumerate() {
        assert_eq!(header.base_offset, 1 + 2 * i as i64);
        assert_eq!(header.partition_leader_epoch, 3);
    }
    assert_eq!(offsets(&stored), (1..=1_200).collect::<Vec<_>>());
}

#[test]
fn corrupt_or_invalid_batches_are_rejected_and_leave_the_log_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    let mut corrupt = batch(2, 0);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    let err = log.append_as_leader(&corrupt, 0, 0).unwrap_err();
    assert_eq!(err.kafka_error_code(), 2);
    log.set_config(LogConfig {
        max_batch_bytes: 50,
        ..LogConfig::default()
    });
    assert_eq!(log.config().max_batch_bytes, 50);
    assert_eq!(
        log.append_as_leader(&batch(2, 0), 0, 0)
            .unwrap_err()
            .kafka_error_code(),
        10
    );
    assert_eq!((log.log_end_offset(), log.size_bytes()), (0, 0));
}

#[test]
fn follower_append_keeps_offsets_and_requires_contiguity() {
    let dir = tempfile::tempdir().unwrap();
    let mut leader = Log::open(&dir.path().join("leader"), small_config(), 0).unwrap();
    leader.append_as_leader(&batch(3, 0), 1, 0).unwrap();
    leader.append_as_leader(&batch(2, 0), 2, 0).unwrap();
    let fetched = leader.read(0, 1 << 20, i64::MAX).unwrap();

    let mut follower = Log::open(&dir.path().join("follower"), small_config(), 0).unwrap();
    let late = leader.read(3, 1 << 20, i64::MAX).unwrap();
    assert_eq!(
        follower
            .append_as_follower(&late, 0)
            .unwrap_err()
            .kafka_error_code(),
        87
    );
    let info = follower.append_as_follower(&fetched, 0).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (0, 4));
    assert_eq!(follower.read(0, 1 << 20, i64::MAX).unwrap(), fetched);
    assert_eq!(follower.latest_epoch(), Some(2));
    assert_eq!(follower.end_offset_for_epoch(1), Some((1, 3)));
}

#[test]
fn retention_by_time_deletes_old_segments_but_never_the_active_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: 1_000,
        segment_ms: 500,
        ..small_config()
    };
    let mut log = Log::open(dir.path(), config, 0).unwrap();
    for i in 0..30 {
        log.append_as_leader(&batch(2, i * 100), 0, i * 100)
            .unwrap();
    }
    let segments = log.segment_count();
    assert!(segments > 3);
    // At 3_500 everything with newest timestamp < 2_500 is expired.
    let deleted = log.apply_retention(3_500).unwrap();
    assert!(deleted > 0 && deleted < segments);
    assert!(log.log_start_offset() > 0);
    let first = log.read(log.log_start_offset(), 1 << 20, i64::MAX).unwrap();
    assert!(decode_all(&first).iter().any(|r| r.timestamp >= 2_500));
    // Much later: the active segment is rolled (segment.ms) and all old data goes.
    log.apply_retention(1_000_000).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_start_offset(), 60);
    assert_eq!(log.log_end_offset(), 60);
    assert_eq!(log.size_bytes(), 0);
    let info = log.append_as_leader(&batch(1, 0), 0, 0).unwrap();
    assert_eq!(info.first_offset, 60);
}

/// Small segments, and retention by size only: 2,000 bytes.
fn size_retention_config() -> LogConfig {
    LogConfig {
        retention_bytes: 2_000,
        retention_ms: -1,
        ..small_config()
    }
}

#[test]
fn retention_by_size_keeps_at_least_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = size_retention_config();
    let mut log = Log::open(dir.path(), config, 0).unwrap();
    for _ in 0..40 {
        log.append_as_leader(&batch(2, 0), 0, 0).unwrap();
    }
    let before = log.size_bytes();
    let deleted = log.apply_retention(0).unwrap();
    assert!(deleted > 0);
    assert!(log.size_bytes() >= 2_000 && log.size_bytes() < before);
    assert!(
        log.size_bytes() < 2_000 + 1_024,
        "at most one segment over the limit"
    );
    assert!(matches!(
        log.read(0, 10, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let start = log.log_start_offset();
    assert_eq!(offsets(&log.read(start, 1, i64::MAX).unwrap())[0], start);
}

/// Names in `dir` ending in `.suffix`, sorted.
fn files_ending(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(&format!(".{suffix}")))
        .collect();
    names.sort();
    names
}

#[test]
fn deleted_segments_are_renamed_and_removed_by_the_caller_or_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let config = size_retention_config();
    let mut log = Log::open(dir.path(), config.clone(), 0).unwrap();
    for _ in 0..40 {
        log.append_as_leader(&batch(2, 0), 0, 0).unwrap();
    }
    let segments_before = log.segment_count();
    let deleted = log.apply_retention(0).unwrap();
    assert!(deleted > 0);
    assert_eq!(
        files_ending(dir.path(), LOG_SUFFIX).len(),
        segments_before - deleted
    );
    // Renamed out of the log, under the lock; removed by whoever takes them, after it.
    let renamed = files_ending(dir.path(), DELETED_SUFFIX);
    assert_eq!(renamed.len(), 3 * deleted, "{renamed:?}");
    assert!(
        renamed[0].starts_with("00000000000000000000."),
        "{renamed:?}"
    );
    let taken = log.take_deleted_files();
    assert_eq!(taken.len(), 3 * deleted);
    assert!(log.take_deleted_files().is_empty(), "taken once");
    segment::remove_deleted_files(&taken).unwrap();
    assert!(files_ending(dir.path(), DELETED_SUFFIX).is_empty());

    // Files nobody took (a crash before their removal) go when the log is opened again.
    log.delete_records_before(log.log_end_offset()).unwrap();
    assert!(!files_ending(dir.path(), DELETED_SUFFIX).is_empty());
    let end = log.log_end_offset();
    drop(log);
    let log = Log::open(dir.path(), config, 0).unwrap();
    assert!(files_ending(dir.path(), DELETED_SUFFIX).is_empty());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (end, end));
}

#[test]
fn delete_records_persists_the_log_start_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    for _ in 0..30 {
        log.append_as_leader(&batch(2, 0), 0, 0).unwrap();
    }
    let segments = log.segment_count();
    assert!(matches!(
        log.delete_records_before(61),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.delete_records_before(35).unwrap(), 35);
    assert_eq!(log.delete_records_before(10).unwrap(), 35);
    assert!(log.segment_count() < segments);
    assert!(matches!(
        log.read(34, 10, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(offsets(&log.read(35, 1, i64::MAX).unwrap()), vec![34, 35]);
    drop(log);
    let log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.log_start_offset(), 35);
    assert_eq!(log.log_end_offset(), 60);
}

#[test]
fn offset_for_timestamp_and_max_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.max_timestamp(), None);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
    for i in 0..40 {
        // Batch i holds offsets 2i, 2i+1 with timestamps 1000i, 1000i+1.
        log.append_as_leader(&batch(2, i * 1_000), 0, 0).unwrap();
    }
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 1)));
    assert_eq!(log.offset_for_timestamp(2).unwrap(), Some((2, 1_001)));
    assert_eq!(
        log.offset_for_timestamp(25_001).unwrap(),
        Some((50, 25_001))
    );
    assert_eq!(
        log.offset_for_timestamp(25_002).unwrap(),
        Some((52, 26_001))
    );
    assert_eq!(log.offset_for_timestamp(39_002).unwrap(), None);
    assert_eq!(log.max_timestamp(), Some((39_001, 78)));
    log.delete_records_before(21).unwrap();
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((21, 10_001)));
}

#[test]
fn truncate_to_removes_the_tail_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    for epoch in 0..30 {
        log.append_as_leader(&batch(2, 0), epoch / 10, 0).unwrap();
    }
    log.flush().unwrap();
    log.truncate_to(25).unwrap();
    // The batch holding 24..25 straddles the cut and goes entirely.
    assert_eq!(log.log_end_offset(), 24);
    assert_eq!(log.latest_epoch(), Some(1));
    assert_eq!(log.end_offset_for_epoch(2), Some((1, 24)));
    assert_eq!(
        offsets(&log.read(0, 1 << 20, i64::MAX).unwrap()),
        (0..24).collect::<Vec<_>>()
    );
    log.append_as_leader(&batch(1, 0), 3, 0).unwrap();
    drop(log);
    let mut log = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.log_end_offset(), 25);
    assert_eq!(log.end_offset_for_epoch(2), Some((1, 24)));
    assert_eq!(log.latest_epoch(), Some(3));
    log.truncate_to(0).unwrap();
    assert_eq!(
        (
            log.log_end_offset(),
            log.segment_count(),
            log.latest_epoch()
        ),
        (0, 1, None)
    );
}

#[test]
fn epoch_cache_tracks_leader_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    assert_eq!(log.latest_epoch(), None);
    log.append_as_leader(&batch(2, 0), 1, 0).unwrap();
    log.append_as_leader(&batch(2, 0), 1, 0).unwrap();
    log.append_as_leader(&batch(2, 0), 4, 0).unwrap();
    assert_eq!(log.latest_epoch(), Some(4));
    assert_eq!(log.end_offset_for_epoch(0), None);
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 4)));
    assert_eq!(log.end_offset_for_epoch(3), Some((1, 4)));
    assert_eq!(log.end_offset_for_epoch(4), Some((4, 6)));
    drop(log);
    let log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    assert_eq!(log.end_offset_for_epoch(2), Some((1, 4)));
}

#[test]
fn flush_policy_by_count_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_messages: 5,
        flush_ms: 100,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, 0).unwrap();
    let recovery_point = || checkpoint::read_offset(dir.path(), RECOVERY_POINT_FILE).unwrap();
    log.append_as_leader(&batch(3, 0), 0, 1_000).unwrap();
    assert_eq!(recovery_point().unwrap_or(0), 0);
    log.append_as_leader(&batch(3, 0), 0, 1_010).unwrap();
    assert_eq!(recovery_point(), Some(6));
    log.append_as_leader(&batch(1, 0), 0, 2_000).unwrap();
    assert!(!log.maybe_flush(2_050).unwrap());
    assert!(log.maybe_flush(2_100).unwrap());
    assert_eq!(recovery_point(), Some(7));
    assert!(!log.maybe_flush(5_000).unwrap());
}

#[test]
fn delete_removes_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topic-0");
    let mut log = Log::open(&path, LogConfig::default(), 0).unwrap();
    log.append_as_leader(&batch(1, 0), 0, 0).unwrap();
    log.delete().unwrap();
    assert!(!path.exists());
}

#[test]
fn a_flush_in_two_steps_records_the_flushed_end_while_appends_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_ms: 100,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config, 0).unwrap();
    let recovery_point = || checkpoint::read_offset(dir.path(), RECOVERY_POINT_FILE).unwrap();
    log.append_as_leader(&batch(4, 0), 0, 1_000).unwrap();
    assert!(log.begin_flush(1_050).unwrap().is_none());
    let pending = log.begin_flush(1_100).unwrap().expect("flush is due");
    // Appends go on while the files are synced and the checkpoint written.
    log.append_as_leader(&batch(2, 0), 0, 1_120).unwrap();
    assert_eq!(recovery_point().unwrap_or(0), 0);
    pending.sync().unwrap();
    assert_eq!(recovery_point(), Some(4));
    log.complete_flush(pending);
    // The later append is still due for the next flush, which records it.
    let pending = log.begin_flush(1_300).unwrap().expect("flush is due");
    pending.sync().unwrap();
    log.complete_flush(pending);
    assert_eq!(recovery_point(), Some(6));
}

#[test]
fn a_roll_leaves_the_flush_to_the_flush_task_and_makes_it_due_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 300,
        flush_ms: 60_000,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config.clone(), 0).unwrap();
    let recovery_point = || checkpoint::read_offset(dir.path(), RECOVERY_POINT_FILE).unwrap();
    log.append_as_leader(&batch(4, 0), 0, 1_000).unwrap();
    assert!(
        log.begin_flush(1_001).unwrap().is_none(),
        "not due by flush.ms"
    );
    // The next append does not fit: the segment rolls, without an fsync under the lock.
    log.append_as_leader(&batch(4, 0), 0, 1_002).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(recovery_point().unwrap_or(0), 0);
    let pending = log
        .begin_flush(1_003)
        .unwrap()
        .expect("due at once after a roll");
    pending.sync().unwrap();
    log.complete_flush(pending);
    assert_eq!(recovery_point(), Some(8));
    assert!(
        log.begin_flush(1_004).unwrap().is_none(),
        "due once, not again"
    );
    drop(log);

    // Had the process died before that flush, recovery scans from the rolled segment.
    let mut log = Log::open(dir.path(), config, 0).unwrap();
    log.append_as_leader(&batch(4, 0), 0, 2_000).unwrap();
    assert_eq!(log.segment_count(), 3);
    drop(log);
    checkpoint::write_offset(dir.path(), RECOVERY_POINT_FILE, 4).unwrap();
    let log = Log::open(dir.path(), LogConfig::default(), 0).unwrap();
    assert_eq!(log.log_end_offset(), 12);
    assert_eq!(
        offsets(&log.read(0, 1 << 20, i64::MAX).unwrap()),
        (0..12).collect::<Vec<_>>()
    );
}

#[test]
fn a_flush_begun_before_a_truncation_does_not_record_its_older_end() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_ms: 0,
        ..LogConfig::default()
    };
    let mut log = Log::open(dir.path(), config.clone(), 0).unwrap();
    let recovery_point = || checkpoint::read_offset(dir.path(), RECOVERY_POINT_FILE).unwrap();
    for _ in 0..3 {
        log.append_as_leader(&batch(2, 0), 0, 0).unwrap();
    }
    let pending = log.begin_flush(0).unwrap().expect("flush is due");
    // A follower cut back by its new leader, and a new (unflushed) batch at the cut.
    log.truncate_to(2).unwrap();
    log.append_as_leader(&batch(2, 0), 1, 0).unwrap();
    pending.sync().unwrap();
    // The point recorded at the cut stays: the batch now at 2..=3 was never flushed.
    assert_eq!(recovery_point(), Some(0));
    log.complete_flush(pending);
    assert_eq!(recovery_point(), Some(0));
    drop(log);

    // Without a cut, a slower flush never moves the file back below a later one.
    let mut log = Log::open(dir.path(), config, 0).unwrap();
    log.append_as_leader(&batch(1, 0), 0, 0).unwrap();
    let early = log.begin_flush(0).unwrap().expect("flush is due");
    log.append_as_leader(&batch(1, 0), 0, 0).unwrap();
    log.flush().unwrap();
    let end = log.log_end_offset();
    early.sync().unwrap();
    log.complete_flush(early);
    assert_eq!(recovery_point(), Some(end));
}

#[test]
fn restart_at_empties_the_log_and_follows_from_the_new_start() {
    let dir = tempfile::tempdir().unwrap();
    let leader_dir = tempfile::tempdir().unwrap();
    let mut leader = Log::open(leader_dir.path(), small_config(), 0).unwrap();
    for _ in 0..30 {
        leader.append_as_leader(&batch(1, 0), 3, 0).unwrap();
    }
    let mut follower = Log::open(dir.path(), small_config(), 0).unwrap();
    for _ in 0..5 {
        follower.append_as_leader(&batch(1, 0), 1, 0).unwrap();
    }
    // The leader's log now starts at 35, inside a batch of offsets 30..=39: the follower
    // (log end 5) cannot catch up by fetching.
    leader.append_as_leader(&batch(10, 0), 3, 0).unwrap();
    leader.delete_records_before(35).unwrap();
    follower.restart_at(leader.log_start_offset()).unwrap();
    assert_eq!(
        (
            follower.log_start_offset(),
            follower.log_end_offset(),
            follower.latest_epoch(),
            follower.segment_count()
        ),
        (35, 35, None, 1)
    );
    // The leader serves the whole batch holding 35; the follower takes it as it is.
    let fetched = leader.read(35, 1 << 20, i64::MAX).unwrap();
    assert_eq!(offsets(&fetched)[0], 30);
    follower.append_as_follower(&fetched, 0).unwrap();
    assert_eq!(
        (follower.log_start_offset(), follower.log_end_offset()),
        (35, 40)
    );
    assert_eq!(follower.latest_epoch(), Some(3));
    drop(follower);
    let follower = Log::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(
        (follower.log_start_offset(), follower.log_end_offset()),
        (35, 40)
    );
    assert!(follower.read(34, 1 << 20, i64::MAX).is_err());
    assert_eq!(
        offsets(&follower.read(35, 1 << 20, i64::MAX).unwrap()),
        (30..40).collect::<Vec<_>>()
    );
}
