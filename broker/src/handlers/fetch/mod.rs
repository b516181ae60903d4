//! Fetch: reads whole batches up to the high watermark, with long polling.
//!
//! A fetch waits up to `max_wait_ms` until at least `min_bytes` are available: a follower's is
//! woken by appends (it reads up to the log end), a consumer's by high watermark moves (it reads
//! up to the high watermark); a graceful shutdown answers waiting fetches at once. Fetch sessions (KIP-227) are
//! refused cleanly: the broker answers with session id 0, which tells the client to keep
//! sending full fetch requests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use tokio::time::Instant;

use crate::broker::Broker;
use crate::partition::Fetcher;

/// Longest long poll the broker honours, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

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
    let mut wakeups = broker.partitions.fetch_wakeups().subscribe(fetcher);
    let mut stopping = broker.stopping.subscribe();
    loop {
        wakeups.borrow_and_update();
        let (responses, bytes, has_error) = read_all(broker, &request);
        let stopping_now = *stopping.borrow_and_update();
        if bytes >= min_bytes || has_error || Instant::now() >= deadline || stopping_now {
            for topic in &responses {
                for partition in &topic.partitions {
                    if let Some(records) = &partition.records {
                        broker
                            .metrics
                            .fetched(&topic.topic, count_records(records), records.len());
                    }
                }
            }
            return FetchResponse::default().with_responses(responses);
        }
        // Woken, past the deadline, or the broker stopping (a graceful shutdown answers long
        // polls at once rather than waiting for them): the next pass answers with what it has.
        tokio::select! {
            _ = tokio::time::timeout_at(deadline, wakeups.changed()) => {}
            _ = stopping.changed() => {}
        }
    }
}

/// Reads every requested partition once: the responses, the record bytes found, and whether
/// any partition answered with an error (which ends the long poll, as in Kafka).
fn read_all(broker: &Broker, request: &FetchRequest) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut remaining = request.max_bytes.max(0) as usize;
    let mut total = 0usize;
    let mut has_error = false;
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
                    let limit = if first_with_data { limit.max(1) } else { limit };
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
    (responses, total, has_error)
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
