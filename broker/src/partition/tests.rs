use std::path::Path;

use millrace_log::checkpoint;

use super::*;
use crate::handlers::testing::{batch, ProducerSequence};

const SNAPSHOT: &str = "producer-state-snapshot";

fn open(dir: &Path) -> Partition {
    let id = TopicPartition {
        topic: "snapshots".to_string(),
        partition: 0,
    };
    Partition::open(
        1,
        id,
        Uuid::from_u128(7),
        dir,
        LogConfig::default(),
        FetchWakeups::default(),
    )
    .unwrap()
}

/// A batch of `records` records of producer `producer_id` (epoch `epoch`) from `sequence`.
fn idempotent(producer_id: i64, epoch: i16, sequence: i32, records: usize) -> Bytes {
    let values: Vec<&[u8]> = vec![b"value"; records];
    batch(
        &values,
        Some(ProducerSequence {
            producer_id,
            producer_epoch: epoch,
            base_sequence: sequence,
        }),
    )
}

fn snapshot_entries(dir: &Path) -> Option<Vec<String>> {
    checkpoint::read(dir, SNAPSHOT).unwrap()
}

#[test]
fn a_reopened_partition_takes_its_snapshot_and_replays_only_the_batches_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let partition = open(dir.path());
    let first = idempotent(7, 0, 0, 2);
    partition.append_as_leader(&first).unwrap();
    partition.flush().unwrap();
    assert_eq!(
        snapshot_entries(dir.path()),
        Some(vec!["2".to_string(), "7 0 0:1:0".to_string()])
    );
    let second = idempotent(7, 0, 2, 1);
    assert_eq!(partition.append_as_leader(&second).unwrap().base_offset, 2);
    drop(partition);

    // A producer only the snapshot knows: if it is known after the reopen, the snapshot was
    // taken rather than the log replayed from its start.
    let mut entries = snapshot_entries(dir.path()).unwrap();
    entries.push("999 5 0:0:1".to_string());
    checkpoint::write(dir.path(), SNAPSHOT, &entries).unwrap();

    let partition = open(dir.path());
    let fenced = partition.append_as_leader(&idempotent(999, 4, 0, 1));
    assert_eq!(
        fenced.unwrap_err().error,
        ResponseError::InvalidProducerEpoch
    );
    // Retries of the batch in the snapshot and of the one replayed after it.
    for (retry, offset) in [(first, 0), (second, 2)] {
        let outcome = partition.append_as_leader(&retry).unwrap();
        assert!(outcome.duplicate);
        assert_eq!(outcome.base_offset, offset);
    }
    assert_eq!(partition.log_end_offset(), 3);
}

#[test]
fn the_snapshot_is_kept_below_a_truncation_and_discarded_above_it() {
    let dir = tempfile::tempdir().unwrap();
    let partition = open(dir.path());
    partition.append_as_leader(&idempotent(7, 0, 0, 2)).unwrap();
    partition.append_as_leader(&idempotent(7, 0, 2, 1)).unwrap();
    partition.flush().unwrap();
    partition.append_as_leader(&idempotent(7, 0, 3, 1)).unwrap();

    // Cut at the snapshot (offset 3): it still holds, and the state after the cut is its own.
    partition.truncate_to(3).unwrap();
    assert_eq!(snapshot_entries(dir.path()).unwrap()[0], "3");
    let again = partition.append_as_leader(&idempotent(7, 0, 3, 1)).unwrap();
    assert!(!again.duplicate, "the cut batch is appended again");
    assert_eq!(again.base_offset, 3);

    // Cut below it: discarded, the state rebuilt from the log's start.
    partition.truncate_to(2).unwrap();
    assert_eq!(snapshot_entries(dir.path()), None);
    let retry = partition.append_as_leader(&idempotent(7, 0, 0, 2)).unwrap();
    assert!(retry.duplicate);
    let next = partition.append_as_leader(&idempotent(7, 0, 2, 1)).unwrap();
    assert_eq!((next.duplicate, next.base_offset), (false, 2));
}

#[test]
fn an_empty_log_gets_no_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path()).flush().unwrap();
    assert_eq!(snapshot_entries(dir.path()), None);
}

#[test]
fn a_snapshot_beyond_the_recovered_log_end_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let partition = open(dir.path());
    partition.append_as_leader(&idempotent(7, 0, 0, 2)).unwrap();
    partition.flush().unwrap();
    drop(partition);
    // As if the log had lost records the snapshot describes.
    checkpoint::write(
        dir.path(),
        SNAPSHOT,
        &["100".to_string(), "999 5".to_string()],
    )
    .unwrap();

    let partition = open(dir.path());
    assert_eq!(snapshot_entries(dir.path()), None);
    // Rebuilt from the log: producer 7 known, producer 999 not.
    assert!(
        partition
            .append_as_leader(&idempotent(7, 0, 0, 2))
            .unwrap()
            .duplicate
    );
    let unknown = partition
        .append_as_leader(&idempotent(999, 0, 0, 1))
        .unwrap();
    assert_eq!(unknown.base_offset, 2);
}

#[tokio::test]
async fn an_acks_all_wait_ends_when_the_leadership_moves() {
    let dir = tempfile::tempdir().unwrap();
    let partition = std::sync::Arc::new(open(dir.path()));
    // Led by this broker (1) at epoch 1, with follower 2 in sync: the high watermark waits for 2.
    partition.set_replicas(ReplicaSet::new(
        1,
        1,
        1,
        1,
        vec![1, 2],
        vec![1, 2],
        now_ms(),
    ));
    let appended = partition.append_as_leader(&batch(&[b"a"], None)).unwrap();
    assert_eq!(appended.leader_epoch, 1);
    let waiting = {
        let partition = partition.clone();
        tokio::spawn(async move {
            partition
                .wait_for_high_watermark(
                    appended.last_offset + 1,
                    appended.leader_epoch,
                    std::time::Duration::from_secs(30),
                )
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "the follower has not fetched yet");
    // A controlled shutdown hands the leadership to broker 2 at epoch 2.
    partition.set_replicas(ReplicaSet::new(
        1,
        2,
        2,
        2,
        vec![1, 2],
        vec![1, 2],
        now_ms(),
    ));
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(1), waiting)
        .await
        .expect("answered at once, not at the request timeout")
        .unwrap();
    assert_eq!(outcome, ReplicationWait::LeadershipMoved);
    // Alone in the ISR, the wait ends with the append.
    let alone = tempfile::tempdir().unwrap();
    let partition = open(alone.path());
    let appended = partition.append_as_leader(&batch(&[b"b"], None)).unwrap();
    assert_eq!(
        partition
            .wait_for_high_watermark(
                appended.last_offset + 1,
                appended.leader_epoch,
                std::time::Duration::from_secs(1)
            )
            .await,
        ReplicationWait::Replicated
    );
}
