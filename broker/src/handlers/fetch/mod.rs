//! Fetch: reads whole batches up to the high watermark, with long polling.
//!
//! A fetch waits up to `max_wait_ms` until at least `min_bytes` are available: a follower's is
//! woken by appends (it reads up to the log end), a consumer's by high watermark moves (it reads
//! up to the high watermark); a graceful shutdown answers waiting fetches at once. Fetch sessions (KIP-227) are
//! refused cleanly: the broker answers with session id 0, which tells the client to keep
//! sending full fetch requests.
//!
//! A follower's fetch of partitions it is being added to by a reassignment takes from the
//! replication throttle ([`crate::replication::throttle`]): when its bucket is empty those
//! partitions return no records, the others answer as usual, and a fetch left with nothing
//! waits for the bucket to refill or its deadline, whichever comes first.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use tokio::time::Instant;

use crate::broker::Broker;
use crate::partition::Fetcher;
use crate::replication::throttle;

/// Longest long poll the broker honours, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);
/// Shortest wait for the replication throttle's bucket to refill, so that rounding never
/// makes a long poll spin.
const MIN_THROTTLE_WAIT: Duration = Duration::from_millis(1);

pub async fn handle(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: FetchRequest,
) -> FetchResponse {
    if request.session_id != 0 {
        return FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code());
    }
    let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let deadline = Instant::now() + wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    let fetcher = if request.replica_id.0 >= 0 {
        Fetcher::Follower
    } else {
        Fetcher::Consumer
    };
    let throttle_limit = match fetcher {
        Fetcher::Follower => {
            throttle::limit_of(broker.defaults().leader_replication_throttled_rate)
        }
        Fetcher::Consumer => None,
    };
    let throttle = &broker.replication_throttle;
    let mut wakeups = broker.partitions.fetch_wakeups().subscribe(fetcher);
    let mut stopping = broker.stopping.subscribe();
    loop {
        wakeups.borrow_and_update();
        let now = Instant::now();
        let allowance = throttle.allowance(throttle_limit, now.into_std());
        let read = read_all(broker, &request, allowance);
        let stopping_now = *stopping.borrow_and_update();
        if read.bytes >= min_bytes || read.has_error || now >= deadline || stopping_now {
            if allowance.is_some() {
                throttle.spend(read.throttled_bytes as u64, now.into_std());
                broker
                    .metrics
                    .throttled_fetch(read.throttled_bytes, read.held_back);
            }
            for topic in &read.responses {
                for partition in &topic.partitions {
                    if let Some(records) = &partition.records {
                        broker
                            .metrics
                            .fetched(&topic.topic, count_records(records), records.len());
                    }
                }
            }
            return FetchResponse::default().with_responses(read.responses);
        }
        // A partition held back by the throttle is read again once the bucket has refilled,
        // if that comes before the deadline (at rate 0 it never does).
        let wake_at = match read
            .held_back
            .then(|| throttle.until_available(now.into_std()))
        {
            Some(Some(refill)) => deadline.min(now + refill.max(MIN_THROTTLE_WAIT)),
            _ => deadline,
        };
        // Woken, past the deadline, or the broker stopping (a graceful shutdown answers long
        // polls at once rather than waiting for them): the next pass answers with what it has.
        tokio::select! {
            _ = tokio::time::timeout_at(wake_at, wakeups.changed()) => {}
            _ = stopping.changed() => {}
        }
    }
}

/// One pass over the requested partitions.
struct Read {
    responses: Vec<FetchableTopicResponse>,
    /// Record bytes found.
    bytes: usize,
    /// Some partition answered with an error (which ends the long poll, as in Kafka).
    has_error: bool,
    /// Record bytes of the partitions the replication throttle applies to.
    throttled_bytes: usize,
    /// A throttled partition got nothing because the throttle's allowance was used up.
    held_back: bool,
}

/// Reads every requested partition once. `allowance` is what the replication throttle lets
/// this pass send to partitions the fetching follower is being added to (None: no limit).
fn read_all(broker: &Broker, request: &FetchRequest, allowance: Option<u64>) -> Read {
    let mut remaining = request.max_bytes.max(0) as usize;
    let mut total = 0usize;
    let mut has_error = false;
    let mut throttled_bytes = 0usize;
    let mut held_back = false;
    let responses = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|wanted| {
                    let response = PartitionData::default().with_partition_index(wanted.partition);
                    let Some(partition) = broker.partitions.get(&topic.topic, wanted.partition)
                    else {
                        has_error = true;
                        return response
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_high_watermark(-1)
                            .with_last_stable_offset(-1)
                            .with_log_start_offset(-1)
                            .with_records(Some(Bytes::new()));
                    };
                    let epoch = partition.leader_epoch();
                    let epoch_error = match wanted.current_leader_epoch {
                        -1 => None,
                        asked if asked > epoch => Some(ResponseError::UnknownLeaderEpoch),
                        asked if asked < epoch => Some(ResponseError::FencedLeaderEpoch),
                        _ => None,
                    };
                    // As in Kafka, the first batch of the first partition with data is
                    // returned whole whatever the limits (the log's read does), so that a batch
                    // larger than them is never stuck; after it, both limits hold.
                    let first_with_data = total == 0;
                    let limit = (wanted.partition_max_bytes.max(0) as usize).min(remaining);
                    let mut limit = if first_with_data { limit.max(1) } else { limit };
                    // A replica a reassignment is adding gets what is left of the allowance
                    // (the first batch whole, as above, which the bucket pays back later);
                    // with nothing left, no records this time.
                    let throttled_left = allowance
                        .filter(|_| partition.is_catching_up_for_reassignment(request.replica_id.0))
                        .map(|allowance| (allowance as usize).saturating_sub(throttled_bytes));
                    if let Some(left) = throttled_left {
                        held_back |= left == 0;
                        limit = limit.min(left);
                    }
                    let throttled = throttled_left.is_some();
                    let read = match (epoch_error, request.replica_id.0) {
                        (Some(error), _) => Err(error.into()),
                        // A follower replicating this partition (Kafka's replica fetch).
                        (None, replica) if replica >= 0 => partition.read_for_follower(
                            replica,
                            wanted.fetch_offset,
                            wanted.log_start_offset,
                            limit,
                        ),
                        (None, _) if limit == 0 => partition.read(partition.high_watermark(), 0),
                        (None, _) => partition.read(wanted.fetch_offset, limit),
                    };
                    match read {
                        Ok(mut read) => {
                            if !first_with_data {
                                let within = whole_batches_within(&read.records, limit);
                                read.records.truncate(within);
                            }
                            total += read.records.len();
                            remaining = remaining.saturating_sub(read.records.len());
                            if throttled {
                                throttled_bytes += read.records.len();
                            }
                            response
                                .with_high_watermark(read.high_watermark)
                                .with_last_stable_offset(read.high_watermark)
                                .with_log_start_offset(read.log_start_offset)
                                .with_records(Some(read.records))
                        }
                        Err(error) => {
                            has_error = true;
                            response
                                .with_error_code(error.error.code())
                                .with_high_watermark(partition.high_watermark())
                                .with_last_stable_offset(partition.high_watermark())
                                .with_log_start_offset(partition.log_start_offset())
                                .with_records(Some(Bytes::new()))
                        }
                    }
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    Read {
        responses,
        bytes: total,
        has_error,
        throttled_bytes,
        held_back,
    }
}

/// Each whole batch in a run of batches: where it ends and how many records it holds (the
/// length and the count sit at fixed places in each batch header).
fn batch_ends(batches: &[u8]) -> impl Iterator<Item = (usize, i64)> + '_ {
    let mut position = 0usize;
    std::iter::from_fn(move || {
        if position + 61 > batches.len() {
            return None;
        }
        let length = i32::from_be_bytes(batches[position + 8..position + 12].try_into().ok()?);
        let records = i32::from_be_bytes(batches[position + 57..position + 61].try_into().ok()?);
        position += 12 + length.max(0) as usize;
        Some((position, records as i64))
    })
}

/// Records in a run of whole batches.
fn count_records(batches: &[u8]) -> i64 {
    batch_ends(batches).map(|(_, records)| records).sum()
}

/// The length of the longest run of whole batches at the start of `batches` that fits in
/// `limit` bytes.
fn whole_batches_within(batches: &[u8], limit: usize) -> usize {
    batch_ends(batches)
        .map(|(end, _)| end)
        .take_while(|&end| end <= limit)
        .last()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
