//! Fetch: reads whole batches up to the high watermark, with long polling.
//!
//! A fetch waits up to `max_wait_ms` until at least `min_bytes` are available, waking on every
//! append. Fetch sessions (KIP-227) are refused cleanly: the broker answers with session id 0,
//! which tells the client to keep sending full fetch requests.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use tokio::time::Instant;

use crate::broker::Broker;

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
    let mut appends = broker.partitions.subscribe_appends();
    loop {
        appends.borrow_and_update();
        let (responses, bytes, has_error) = read_all(broker, &request);
        if bytes >= min_bytes || has_error || Instant::now() >= deadline {
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
        // Deadline passed or the broker is going away: the next pass answers with what it has.
        let _ = tokio::time::timeout_at(deadline, appends.changed()).await;
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
                    // The first partition with data may exceed max_bytes by one batch, so
                    // that a batch larger than the limit is never stuck.
                    let limit = (wanted.partition_max_bytes.max(0) as usize).min(if total == 0 {
                        usize::MAX
                    } else {
                        remaining
                    });
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
                        Ok(read) => {
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

/// Records in a run of whole batches (the count sits at a fixed place in each batch header).
fn count_records(batches: &Bytes) -> i64 {
    let mut position = 0usize;
    let mut records = 0i64;
    while position + 61 <= batches.len() {
        let length = i32::from_be_bytes(
            batches[position + 8..position + 12]
                .try_into()
                .expect("4 bytes"),
        );
        records += i32::from_be_bytes(
            batches[position + 57..position + 61]
                .try_into()
                .expect("4 bytes"),
        ) as i64;
        position += 12 + length.max(0) as usize;
    }
    records
}
