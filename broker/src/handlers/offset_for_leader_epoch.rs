//! OffsetForLeaderEpoch: where a leader epoch ended in this leader's log. A follower that
//! comes back asks it for its own last epoch and truncates its log there, so that it never
//! keeps (or serves) records the current leader does not have.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use crate::broker::Broker;

pub async fn handle(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .into_iter()
                .map(|wanted| {
                    let answer = EpochEndOffset::default()
                        .with_partition(wanted.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let Some(partition) = broker.partitions.get(&topic.topic, wanted.partition)
                    else {
                        return answer
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let current = partition.leader_epoch();
                    if !partition.is_leader() {
                        return answer.with_error_code(ResponseError::NotLeaderOrFollower.code());
                    }
                    if wanted.current_leader_epoch > current {
                        return answer.with_error_code(ResponseError::UnknownLeaderEpoch.code());
                    }
                    if wanted.current_leader_epoch >= 0 && wanted.current_leader_epoch < current {
                        return answer.with_error_code(ResponseError::FencedLeaderEpoch.code());
                    }
                    match partition.end_offset_for_epoch(wanted.leader_epoch) {
                        Some((epoch, end_offset)) => {
                            answer.with_leader_epoch(epoch).with_end_offset(end_offset)
                        }
                        // No epoch at or below the one asked for: the follower keeps nothing
                        // beyond this log's start.
                        None => answer.with_end_offset(partition.log_start_offset()),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
