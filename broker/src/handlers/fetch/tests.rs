use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use tokio::time::Instant;

use super::*;
use crate::handlers::testing::{batch, broker_with_topic, call, produce};
use crate::handlers::topic_name;
use crate::partition::replicas::ReplicaSet;

const FETCH_VERSION: i16 = 12;

/// A consumer's fetch of `topic`'s partitions from the given offsets.
fn fetch_request(topic: &str, from: &[(i32, i64)], partition_max_bytes: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(
                from.iter()
                    .map(|&(partition, offset)| {
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(partition_max_bytes)
                    })
                    .collect(),
            )])
}

async fn fetch(broker: &Arc<Broker>, request: &FetchRequest) -> FetchResponse {
    call(broker, ApiKey::Fetch, FETCH_VERSION, request).await
}

/// The record bytes each partition of the (single-topic) answer returned.
fn bytes_per_partition(response: &FetchResponse) -> Vec<usize> {
    response.responses[0]
        .partitions
        .iter()
        .map(|p| p.records.as_ref().map_or(0, Bytes::len))
        .collect()
}

/// A consumer's fetch of `topic`-0 from `offset` that may wait 20 s, running in the background.
fn waiting_fetch(
    broker: &Arc<Broker>,
    topic: &str,
    offset: i64,
) -> tokio::task::JoinHandle<FetchResponse> {
    let broker = broker.clone();
    let request = fetch_request(topic, &[(0, offset)], 1 << 20).with_max_wait_ms(20_000);
    tokio::spawn(async move { fetch(&broker, &request).await })
}

#[tokio::test]
async fn a_long_poll_answers_once_min_bytes_arrived_or_at_max_wait() {
    let (_dir, broker) = broker_with_topic("poll", 1).await;

    // Nothing arrives: the answer comes at max_wait_ms, empty.
    let started = Instant::now();
    let empty = fetch(
        &broker,
        &fetch_request("poll", &[(0, 0)], 1 << 20).with_max_wait_ms(300),
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(290));
    assert_eq!(bytes_per_partition(&empty), vec![0]);

    // A waiting fetch answers when an append brings it min_bytes, not before.
    let waiting = {
        let broker = broker.clone();
        tokio::spawn(async move {
            let request = fetch_request("poll", &[(0, 0)], 1 << 20)
                .with_max_wait_ms(20_000)
                .with_min_bytes(4_000);
            fetch(&broker, &request).await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        produce(&broker, "poll", 0, batch(&[b"small"], None))
            .await
            .error_code,
        0
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "answered below min_bytes");
    let started = Instant::now();
    let large = vec![b'x'; 5_000];
    assert_eq!(
        produce(&broker, "poll", 0, batch(&[&large], None))
            .await
            .error_code,
        0
    );
    let answered = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("answered once min_bytes arrived")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(bytes_per_partition(&answered)[0] > 5_000);
}

#[tokio::test]
async fn only_the_first_partition_with_data_may_exceed_the_size_limits() {
    let (_dir, broker) = broker_with_topic("sizes", 3).await;
    let value = vec![b'v'; 1_000];
    for partition in 0..3 {
        let produced = produce(&broker, "sizes", partition, batch(&[&value], None)).await;
        assert_eq!(produced.error_code, 0);
    }
    let all = [(0, 0), (1, 0), (2, 0)];
    let whole = fetch(&broker, &fetch_request("sizes", &all, 1 << 20)).await;
    let one_batch = bytes_per_partition(&whole)[0];
    assert!(one_batch > 1_000);
    assert_eq!(bytes_per_partition(&whole), vec![one_batch; 3]);

    // partition_max_bytes below a batch: the first partition still returns its batch whole,
    // so that the consumer progresses; the others return nothing.
    let small = fetch(&broker, &fetch_request("sizes", &all, 100)).await;
    assert_eq!(bytes_per_partition(&small), vec![one_batch, 0, 0]);

    // The same when the first partition has nothing: the second is the first with data.
    let from_second = [(0, 1), (1, 0), (2, 0)];
    let small = fetch(&broker, &fetch_request("sizes", &from_second, 100)).await;
    assert_eq!(bytes_per_partition(&small), vec![0, one_batch, 0]);

    // max_bytes room for a batch and a half: one batch, then nothing more; room for two: one
    // from each of the first two partitions, or both of the first once it holds two.
    let with_max_bytes =
        |max_bytes: usize| fetch_request("sizes", &all, 1 << 20).with_max_bytes(max_bytes as i32);
    let sized = |request| {
        let broker = broker.clone();
        async move { bytes_per_partition(&fetch(&broker, &request).await) }
    };
    assert_eq!(
        sized(with_max_bytes(one_batch * 3 / 2)).await,
        vec![one_batch, 0, 0]
    );
    assert_eq!(
        sized(with_max_bytes(one_batch * 2)).await,
        vec![one_batch, one_batch, 0]
    );
    let produced = produce(&broker, "sizes", 0, batch(&[&value], None)).await;
    assert_eq!(produced.error_code, 0);
    assert_eq!(
        sized(with_max_bytes(one_batch * 3 / 2)).await,
        vec![one_batch, 0, 0]
    );
    assert_eq!(
        sized(with_max_bytes(one_batch * 2)).await,
        vec![2 * one_batch, 0, 0]
    );
}

#[tokio::test]
async fn fetch_sessions_are_refused_so_that_clients_send_full_requests() {
    let (_dir, broker) = broker_with_topic("sessions", 1).await;

    // A client asking for a new session (id 0, epoch 0) gets no session: id 0, no error.
    let asked = fetch(
        &broker,
        &fetch_request("sessions", &[(0, 0)], 1 << 20).with_session_epoch(0),
    )
    .await;
    assert_eq!(asked.error_code, 0);
    assert_eq!(asked.session_id, 0);
    assert_eq!(asked.responses.len(), 1);

    // An incremental fetch in a session the broker never gave is refused.
    let incremental = fetch(
        &broker,
        &fetch_request("sessions", &[], 1 << 20)
            .with_session_id(7)
            .with_session_epoch(1),
    )
    .await;
    assert_eq!(
        incremental.error_code,
        ResponseError::FetchSessionIdNotFound.code()
    );
    assert!(incremental.responses.is_empty());
}

#[tokio::test]
async fn a_consumer_waiting_at_the_high_watermark_wakes_when_a_follower_moves_it() {
    let (_dir, broker) = broker_with_topic("replicated", 1).await;
    let partition = broker.partitions.get("replicated", 0).unwrap();
    // Give the partition a follower in sync (broker 2), as the cluster metadata would.
    let current = partition.replicas();
    partition.set_replicas(ReplicaSet::new(
        broker.config.node_id,
        current.leader_id,
        current.leader_epoch,
        current.partition_epoch,
        vec![broker.config.node_id, 2],
        vec![broker.config.node_id, 2],
        crate::partition::now_ms(),
    ));

    // acks=1: appended on the leader, not yet visible to consumers.
    let produced = produce(&broker, "replicated", 0, batch(&[b"replicated"], None)).await;
    assert_eq!(produced.error_code, 0);
    assert_eq!(partition.high_watermark(), 0);
    let waiting = waiting_fetch(&broker, "replicated", 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiting.is_finished(),
        "answered before the high watermark moved"
    );

    // The follower fetches from the log end: it has the record, the high watermark moves.
    let follower_fetch =
        fetch_request("replicated", &[(0, 1)], 1 << 20).with_replica_id(BrokerId(2));
    fetch(&broker, &follower_fetch).await;
    assert_eq!(partition.high_watermark(), 1);
    let answered = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("woken by the high watermark's move")
        .unwrap();
    assert!(bytes_per_partition(&answered)[0] > 0);
}

#[tokio::test]
async fn a_waiting_fetch_answers_not_leader_as_soon_as_the_leadership_moves() {
    let (_dir, broker) = broker_with_topic("moving", 1).await;
    let partition = broker.partitions.get("moving", 0).unwrap();
    let waiting = waiting_fetch(&broker, "moving", 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished());

    // Broker 2 leads from the next epoch on, as the cluster metadata would say.
    let current = partition.replicas();
    partition.set_replicas(ReplicaSet::new(
        broker.config.node_id,
        2,
        current.leader_epoch + 1,
        current.partition_epoch + 1,
        vec![broker.config.node_id, 2],
        vec![broker.config.node_id, 2],
        crate::partition::now_ms(),
    ));
    let answered = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("woken by the leadership change")
        .unwrap();
    assert_eq!(
        answered.responses[0].partitions[0].error_code,
        ResponseError::NotLeaderOrFollower.code()
    );
}

/// Gives `topic`-`partition` followers 2 and 3 as the cluster metadata would: `isr` in sync
/// (this broker included), `adding` being added by a reassignment.
fn assign(broker: &Broker, topic: &str, partition: i32, isr: Vec<i32>, adding: Vec<i32>) {
    let partition = broker.partitions.get(topic, partition).unwrap();
    let current = partition.replicas();
    let me = broker.config.node_id;
    partition.set_replicas(
        ReplicaSet::new(
            me,
            current.leader_id,
            current.leader_epoch,
            current.partition_epoch,
            vec![me, 2, 3],
            isr,
            crate::partition::now_ms(),
        )
        .with_adding_replicas(adding),
    );
}

/// A fetch by follower `replica` of `topic`'s partitions from the given offsets.
fn follower_fetch(
    topic: &str,
    replica: i32,
    from: &[(i32, i64)],
    max_wait_ms: i32,
) -> FetchRequest {
    fetch_request(topic, from, 1 << 20)
        .with_replica_id(BrokerId(replica))
        .with_max_wait_ms(max_wait_ms)
}

#[tokio::test]
async fn an_empty_throttle_holds_back_only_the_replica_a_reassignment_is_adding() {
    let dir = tempfile::tempdir().unwrap();
    let broker =
        crate::broker::testing::open(dir.path(), &["--leader-replication-throttled-rate=0"]).await;
    crate::handlers::testing::create_topic(&broker, "throttled", 2).await;
    for partition in 0..2 {
        let produced = produce(&broker, "throttled", partition, batch(&[b"data"], None)).await;
        assert_eq!(produced.error_code, 0);
    }
    crate::handlers::testing::wait_for_quiet_metadata(&broker).await;
    // Partition 0 is being moved onto broker 3; broker 3 is in sync on partition 1.
    let me = broker.config.node_id;
    assign(&broker, "throttled", 0, vec![me, 2], vec![3]);
    assign(&broker, "throttled", 1, vec![me, 3], vec![]);

    // Broker 3 gets its in-sync partition's data at once, and nothing of the other.
    let both = fetch(
        &broker,
        &follower_fetch("throttled", 3, &[(0, 0), (1, 0)], 5_000),
    )
    .await;
    let sizes = bytes_per_partition(&both);
    assert_eq!(sizes[0], 0, "throttled");
    assert!(sizes[1] > 0, "in sync, not throttled");
    assert!(both.responses[0]
        .partitions
        .iter()
        .all(|p| p.error_code == 0));

    // Only the throttled partition: empty after the long poll, neither an error nor sooner.
    let started = Instant::now();
    let held = fetch(&broker, &follower_fetch("throttled", 3, &[(0, 0)], 300)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(290),
        "{:?} {held:?}",
        started.elapsed()
    );
    assert_eq!(bytes_per_partition(&held), vec![0]);
    assert_eq!(held.responses[0].partitions[0].error_code, 0);

    // The in-sync follower of partition 0 is not throttled, and once it has everything the
    // high watermark moves and consumers read as always.
    let in_sync = fetch(&broker, &follower_fetch("throttled", 2, &[(0, 0)], 0)).await;
    assert!(bytes_per_partition(&in_sync)[0] > 0);
    fetch(&broker, &follower_fetch("throttled", 2, &[(0, 1)], 0)).await;
    let consumed = fetch(&broker, &fetch_request("throttled", &[(0, 0)], 1 << 20)).await;
    assert!(bytes_per_partition(&consumed)[0] > 0);

    let metrics = broker.metrics.render(0, false, &[]);
    assert!(
        metrics.contains("millrace_replication_throttled_fetches_total 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_throttled_replica_is_served_again_as_soon_as_the_bucket_refilled() {
    let dir = tempfile::tempdir().unwrap();
    let broker =
        crate::broker::testing::open(dir.path(), &["--leader-replication-throttled-rate=100000"])
            .await;
    crate::handlers::testing::create_topic(&broker, "refill", 1).await;
    // Two batches, each larger than the bucket's 100 kB burst.
    let value = vec![b'v'; 150_000];
    for _ in 0..2 {
        let produced = produce(&broker, "refill", 0, batch(&[&value], None)).await;
        assert_eq!(produced.error_code, 0);
    }
    crate::handlers::testing::wait_for_quiet_metadata(&broker).await;
    let me = broker.config.node_id;
    assign(&broker, "refill", 0, vec![me, 2], vec![3]);

    // The first batch comes whole from a full bucket, which then owes ~50 kB.
    let first = fetch(&broker, &follower_fetch("refill", 3, &[(0, 0)], 0)).await;
    let batch_bytes = bytes_per_partition(&first)[0];
    assert!(
        batch_bytes > 150_000 && batch_bytes < 151_000,
        "{batch_bytes}"
    );
    let owed = fetch(&broker, &follower_fetch("refill", 3, &[(0, 1)], 0)).await;
    assert_eq!(bytes_per_partition(&owed), vec![0]);

    // A long poll answers once the debt and the smallest grant (5 kB) are refilled, ~0.55 s
    // after the first batch, not at its 10 s deadline.
    let started = Instant::now();
    let second = fetch(&broker, &follower_fetch("refill", 3, &[(0, 1)], 10_000)).await;
    let waited = started.elapsed();
    assert_eq!(bytes_per_partition(&second), vec![batch_bytes]);
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
        "answered after {waited:?}"
    );

    let metrics = broker.metrics.render(0, false, &[]);
    let sent = format!(
        "millrace_replication_throttled_bytes_total {}",
        2 * batch_bytes
    );
    assert!(metrics.contains(&sent), "{metrics}");
}
