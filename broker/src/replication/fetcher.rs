//! The follower side: one task per leader broker fetches every partition this broker follows
//! there, appends what it gets, and takes the leader's high watermark.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use tokio::sync::watch;
use tracing::{debug, info, warn, Instrument};

use super::client::BrokerConnection;
use super::{FollowedPartition, ReplicaFetchers};
use crate::handlers::topic_name;
use crate::partition::TopicPartition;

const FETCH_VERSION: i16 = 12;
const EPOCH_VERSION: i16 = 4;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const FETCH_MAX_WAIT_MS: i32 = 500;
const PARTITION_MAX_BYTES: i32 = 4 * 1024 * 1024;
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// While a leadership moves: the leader (or this broker) has not applied the new leader epoch
/// yet, which takes milliseconds; acks=all producers wait for this replica meanwhile.
const LEADERSHIP_PAUSE: Duration = Duration::from_millis(20);
const LEADERSHIP_MAX_WAIT_MS: i32 = 20;

/// How a round ended.
enum RoundEnd {
    Fetched,
    /// This broker's set of partitions followed from the leader changed during the fetch: the
    /// fetch was abandoned (with its connection, whose answer is still to come) so that the
    /// next one asks for the new set at once instead of after the long poll.
    FollowedChanged,
}

/// Fetches from `leader_id` until this broker follows nothing there.
pub async fn run(fetchers: Arc<ReplicaFetchers>, leader_id: i32) {
    let span = tracing::info_span!("replica_fetcher", leader = leader_id);
    async move {
        info!("replica fetcher started");
        let mut connection: Option<(String, BrokerConnection)> = None;
        let mut idle_rounds = 0;
        let mut changes = fetchers.changes_from(leader_id);
        loop {
            changes.borrow_and_update();
            let followed = fetchers.followed_from(leader_id);
            let Some((_, first)) = followed.first() else {
                idle_rounds += 1;
                if idle_rounds > 10 {
                    debug!("nothing left to follow; fetcher stops");
                    return;
                }
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            };
            idle_rounds = 0;
            let address = first.leader_address.clone();
            if connection.as_ref().is_none_or(|(a, _)| *a != address) {
                let client_id = format!("millrace-replica-{}", fetchers.local_id);
                match BrokerConnection::connect(&address, client_id, REQUEST_TIMEOUT).await {
                    Ok(c) => connection = Some((address.clone(), c)),
                    Err(error) => {
                        debug!(%error, %address, "cannot reach the leader yet");
                        tokio::time::sleep(RETRY_PAUSE).await;
                        continue;
                    }
                }
            }
            let (_, conn) = connection.as_mut().expect("connected above");
            match round(&fetchers, conn, &followed, &mut changes).await {
                Ok(RoundEnd::Fetched) => {}
                Ok(RoundEnd::FollowedChanged) => {
                    debug!("followed partitions changed; fetching the new set");
                    connection = None;
                }
                Err(error) => {
                    debug!(%error, "replica fetch failed; reconnecting");
                    connection = None;
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }
    .instrument(span)
    .await
}

/// One round: check logs at new epochs against the leader's, then one fetch.
async fn round(
    fetchers: &ReplicaFetchers,
    conn: &mut BrokerConnection,
    followed: &[(TopicPartition, FollowedPartition)],
    changes: &mut watch::Receiver<u64>,
) -> anyhow::Result<RoundEnd> {
    let unchecked: Vec<&(TopicPartition, FollowedPartition)> = followed
        .iter()
        .filter(|(_, f)| f.truncated_for_epoch != Some(f.leader_epoch))
        .collect();
    if !unchecked.is_empty() {
        truncate_diverged(fetchers, conn, &unchecked).await?;
    }
    let ready: Vec<&(TopicPartition, FollowedPartition)> = followed
        .iter()
        .filter(|(_, f)| f.truncated_for_epoch == Some(f.leader_epoch))
        .collect();
    // A partition the leader could not answer for yet (it has not applied its new leadership)
    // is asked about again soon: the long poll does not hold it up.
    if ready.is_empty() {
        tokio::time::sleep(LEADERSHIP_PAUSE).await;
        return Ok(RoundEnd::Fetched);
    }
    let max_wait_ms = if ready.len() < followed.len() {
        LEADERSHIP_MAX_WAIT_MS
    } else {
        FETCH_MAX_WAIT_MS
    };
    fetch(fetchers, conn, &ready, max_wait_ms, changes).await
}

/// The partitions grouped by topic, topics and partitions in the order given.
fn by_topic<'a, T>(
    followed: &[&'a (TopicPartition, FollowedPartition)],
    entry: impl Fn(&'a FollowedPartition) -> T,
) -> Vec<(String, Vec<T>)> {
    let mut topics: Vec<(String, Vec<T>)> = Vec::new();
    for (id, f) in followed {
        match topics.iter_mut().find(|(topic, _)| *topic == id.topic) {
            Some((_, entries)) => entries.push(entry(f)),
            None => topics.push((id.topic.clone(), vec![entry(f)])),
        }
    }
    topics
}

/// Asks the leader where this replica's last epoch ended there and cuts the log at that point,
/// so that nothing the leader does not have is kept.
async fn truncate_diverged(
    fetchers: &ReplicaFetchers,
    conn: &mut BrokerConnection,
    unchecked: &[&(TopicPartition, FollowedPartition)],
) -> anyhow::Result<()> {
    // An empty log has nothing that could diverge.
    let mut asking = Vec::new();
    for entry in unchecked {
        let (id, f) = entry;
        match f.partition.latest_epoch() {
            Some(_) if f.partition.log_end_offset() > 0 => asking.push(*entry),
            _ => fetchers.mark_truncated(id, f.leader_epoch),
        }
    }
    if asking.is_empty() {
        return Ok(());
    }
    let topics = by_topic(&asking, |f| {
        OffsetForLeaderPartition::default()
            .with_partition(f.partition.id.partition)
            .with_current_leader_epoch(f.leader_epoch)
            .with_leader_epoch(f.partition.latest_epoch().unwrap_or(-1))
    })
    .into_iter()
    .map(|(topic, partitions)| {
        OffsetForLeaderTopic::default()
            .with_topic(topic_name(&topic))
            .with_partitions(partitions)
    })
    .collect();
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(fetchers.local_id))
        .with_topics(topics);
    let response: OffsetForLeaderEpochResponse = conn
        .call(
            ApiKey::OffsetForLeaderEpoch,
            EPOCH_VERSION,
            &request,
            REQUEST_TIMEOUT,
        )
        .await?;
    for topic in response.topics {
        for answer in topic.partitions {
            let id = TopicPartition {
                topic: topic.topic.to_string(),
                partition: answer.partition,
            };
            let Some((_, f)) = asking.iter().find(|(i, _)| *i == id) else {
                continue;
            };
            if answer.error_code != 0 {
                debug!(partition = %id, code = answer.error_code, "leader cannot answer for the epoch yet");
                continue;
            }
            let log_end = f.partition.log_end_offset();
            let mut point = answer.end_offset.min(log_end);
            // The leader ended at an older epoch than ours: keep only what we had of that one.
            if let Some((_, own_end)) = f.partition.end_offset_for_epoch(answer.leader_epoch) {
                point = point.min(own_end);
            }
            if point < log_end && point >= 0 {
                info!(partition = %id, from = log_end, to = point, "truncating a diverged log tail");
                if let Err(error) = f.partition.truncate_to(point) {
                    warn!(partition = %id, message = %error.message, "truncation failed");
                    continue;
                }
            }
            fetchers.mark_truncated(&id, f.leader_epoch);
        }
    }
    Ok(())
}

async fn fetch(
    fetchers: &ReplicaFetchers,
    conn: &mut BrokerConnection,
    ready: &[&(TopicPartition, FollowedPartition)],
    max_wait_ms: i32,
    changes: &mut watch::Receiver<u64>,
) -> anyhow::Result<RoundEnd> {
    // Only the first partition with data may return a batch beyond the size limits: start
    // each round at another partition (as Kafka's fetcher does), so that a large batch in any
    // of them is fetched within a few rounds.
    let first = fetchers.next_fetch_round() % ready.len();
    let rotated: Vec<_> = ready[first..]
        .iter()
        .chain(&ready[..first])
        .copied()
        .collect();
    let topics = by_topic(&rotated, |f| {
        FetchPartition::default()
            .with_partition(f.partition.id.partition)
            .with_current_leader_epoch(f.leader_epoch)
            .with_fetch_offset(f.partition.log_end_offset())
            .with_last_fetched_epoch(f.partition.latest_epoch().unwrap_or(-1))
            .with_log_start_offset(f.partition.log_start_offset())
            .with_partition_max_bytes(PARTITION_MAX_BYTES)
    })
    .into_iter()
    .map(|(topic, partitions)| {
        FetchTopic::default()
            .with_topic(topic_name(&topic))
            .with_partitions(partitions)
    })
    .collect();
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(fetchers.local_id))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(64 * 1024 * 1024)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    let sent = tokio::time::Instant::now();
    let response: FetchResponse = tokio::select! {
        response = conn.call(ApiKey::Fetch, FETCH_VERSION, &request, REQUEST_TIMEOUT) => response?,
        Ok(()) = changes.changed() => return Ok(RoundEnd::FollowedChanged),
    };
    if response.error_code != 0 {
        anyhow::bail!("fetch refused with error {}", response.error_code);
    }
    let mut pause: Option<Duration> = None;
    let mut fetched_records = false;
    for topic in response.responses {
        for data in topic.partitions {
            let id = TopicPartition {
                topic: topic.topic.to_string(),
                partition: data.partition_index,
            };
            let Some((_, f)) = ready.iter().find(|(i, _)| *i == id) else {
                continue;
            };
            match ResponseError::try_from_code(data.error_code) {
                None => {
                    let records = data.records.unwrap_or_default();
                    fetched_records |= !records.is_empty();
                    if let Err(error) = f
                        .partition
                        .append_as_follower(&records, data.high_watermark)
                    {
                        warn!(partition = %id, message = %error.message, "follower append failed");
                        // Check the log against the leader again before the next fetch.
                        fetchers.mark_truncated(&id, -1);
                        pause = Some(RETRY_PAUSE);
                    } else if let Err(error) =
                        f.partition.follow_leader_log_start(data.log_start_offset)
                    {
                        warn!(partition = %id, message = %error.message, "following the leader's log start failed");
                        pause = Some(RETRY_PAUSE);
                    }
                }
                // The leader no longer has the records this replica needs next.
                Some(ResponseError::OffsetOutOfRange)
                    if data.log_start_offset > f.partition.log_end_offset() =>
                {
                    info!(
                        partition = %id,
                        log_end_offset = f.partition.log_end_offset(),
                        leader_log_start = data.log_start_offset,
                        "behind the leader's log start: restarting the replica there"
                    );
                    if let Err(error) = f.partition.follow_leader_log_start(data.log_start_offset) {
                        warn!(partition = %id, message = %error.message, "restarting the replica log failed");
                        pause = Some(RETRY_PAUSE);
                    }
                }
                // A leadership on the move: one side has not applied the new epoch yet.
                Some(
                    error @ (ResponseError::NotLeaderOrFollower
                    | ResponseError::FencedLeaderEpoch
                    | ResponseError::UnknownLeaderEpoch),
                ) => {
                    debug!(partition = %id, ?error, "leader epochs differ for now");
                    pause = pause.or(Some(LEADERSHIP_PAUSE));
                }
                Some(error) => {
                    debug!(partition = %id, ?error, "leader refused the replica fetch");
                    pause = Some(RETRY_PAUSE);
                }
            }
        }
    }
    if let Some(pause) = pause {
        tokio::time::sleep(pause).await;
        return Ok(RoundEnd::Fetched);
    }
    // A leader answers nothing before the long poll ends only when it is stopping (or when it
    // does not wait, as a leader throttling this replica might): wait out the rest of the poll
    // here, unless what this broker follows changes, rather than asking again at once.
    let long_poll = Duration::from_millis(max_wait_ms.max(0) as u64);
    let answered_in = sent.elapsed();
    if !fetched_records && answered_in < long_poll {
        tokio::select! {
            _ = tokio::time::sleep((long_poll - answered_in).min(RETRY_PAUSE)) => {}
            _ = changes.changed() => {}
        }
    }
    Ok(RoundEnd::Fetched)
}
