//! InitProducerId: producer ids for idempotent producers. Transactions are not supported yet.

use std::sync::Arc;

use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;
use tracing::{info, warn};

use crate::broker::Broker;

pub async fn init_producer_id(
    broker: &Arc<Broker>,
    _header: &RequestHeader,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let failed = |error: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(error.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if request.transactional_id.is_some() {
        warn!("refusing InitProducerId with a transactional id: transactions are not supported");
        return failed(ResponseError::TransactionalIdAuthorizationFailed);
    }
    // KIP-360: a producer that hit a fatal sequence error bumps its epoch and keeps its id.
    if request.producer_id.0 >= 0
        && request.producer_epoch >= 0
        && request.producer_epoch < i16::MAX - 1
    {
        return InitProducerIdResponse::default()
            .with_producer_id(request.producer_id)
            .with_producer_epoch(request.producer_epoch + 1);
    }
    match broker
        .producer_ids
        .allocate(&broker.quorum, broker.config.node_id)
        .await
    {
        Ok(id) => {
            info!(producer_id = id, "producer id allocated");
            InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(0)
        }
        Err(error) => {
            warn!(%error, "could not get a producer id block from the controller");
            failed(ResponseError::CoordinatorNotAvailable)
        }
    }
}
