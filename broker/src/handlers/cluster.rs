//! DescribeCluster: the live brokers and the active controller, from the cluster metadata.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::*;

use super::str_bytes;
use crate::broker::Broker;

pub async fn describe_cluster(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    _request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let metadata = broker.metadata();
    let brokers = metadata
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(str_bytes(b.host.clone()))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.clone().map(str_bytes))
        })
        .collect();
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(broker.config.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.quorum.leader_id().unwrap_or(-1)))
        .with_brokers(brokers)
}
