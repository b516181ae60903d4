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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::testing;
    use crate::handlers::testing::call;

    #[tokio::test]
    async fn describe_cluster_names_the_advertised_address_rack_and_controller() {
        let dir = tempfile::tempdir().unwrap();
        let broker = testing::open(
            dir.path(),
            &[
                "--rack",
                "zone-a",
                "--advertised-listener",
                "broker-1.example:19092",
                "--cluster-id",
                "described",
            ],
        )
        .await;
        for version in 0..=1 {
            let described: DescribeClusterResponse = call(
                &broker,
                ApiKey::DescribeCluster,
                version,
                &DescribeClusterRequest::default(),
            )
            .await;
            assert_eq!(described.error_code, 0);
            assert_eq!(described.cluster_id.as_str(), "described");
            assert_eq!(described.controller_id, BrokerId(1));
            assert_eq!(described.brokers.len(), 1);
            let only = &described.brokers[0];
            assert_eq!(only.broker_id, BrokerId(1));
            assert_eq!(only.host.as_str(), "broker-1.example");
            assert_eq!(only.port, 19092);
            assert_eq!(only.rack.as_deref(), Some("zone-a"));
        }
    }
}
