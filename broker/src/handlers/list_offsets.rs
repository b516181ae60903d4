//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3) and by timestamp.

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use crate::broker::Broker;
use crate::partition::{Partition, PartitionError};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub async fn handle(
    broker: &Arc<Broker>,
    header: &RequestHeader,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    // The leader epoch is part of the answer from v4 on.
    let with_epoch = header.request_api_version >= 4;
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .into_iter()
                .map(|wanted| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(wanted.partition_index);
                    let partition = broker.partitions.get(&topic.name, wanted.partition_index);
                    let lookup = match &partition {
                        None => Err(ResponseError::UnknownTopicOrPartition.into()),
                        Some(partition) => lookup(partition, wanted.timestamp),
                    };
                    match lookup {
                        Ok((offset, timestamp)) => response
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            .with_leader_epoch(match (&partition, with_epoch) {
                                (Some(partition), true) => partition.leader_epoch(),
                                _ => -1,
                            }),
                        Err(error) => response
                            .with_error_code(error.error.code())
                            .with_offset(-1)
                            .with_timestamp(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

fn lookup(partition: &Partition, timestamp: i64) -> Result<(i64, i64), PartitionError> {
    match timestamp {
        LATEST => Ok((partition.high_watermark(), -1)),
        EARLIEST => Ok((partition.log_start_offset(), -1)),
        MAX_TIMESTAMP => Ok(partition.max_timestamp()?.unwrap_or((-1, -1))),
        ts if ts < 0 => Err(ResponseError::InvalidRequest.into()),
        // Kafka answers -1 when no record is as recent as the timestamp asked for.
        ts => Ok(partition.offset_for_timestamp(ts)?.unwrap_or((-1, -1))),
    }
}
