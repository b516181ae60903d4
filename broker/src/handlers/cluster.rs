//! DescribeCluster: this broker is the whole cluster and its controller.

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
    let (host, port) = broker.config.advertised_host_port();
    let node = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(broker.config.node_id))
        .with_host(str_bytes(host))
        .with_port(port)
        .with_rack(broker.config.rack.clone().map(str_bytes));
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(broker.config.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.config.node_id))
        .with_brokers(vec![node])
}
