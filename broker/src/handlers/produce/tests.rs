use crate::dispatch::DispatchError;
use crate::handlers::testing::{
    batch, broker_with_topic, call, produce, produce_request, send, ProducerSequence,
};

use super::*;

#[tokio::test]
async fn acks_0_appends_without_an_answer_and_acks_1_answers_with_the_offset() {
    let (_dir, broker) = broker_with_topic("acks", 1).await;
    let partition = broker.partitions.get("acks", 0).unwrap();

    let request = produce_request("acks", 0, batch(&[b"a", b"b"], None), 0);
    let answer = send(&broker, ApiKey::Produce, 9, &request).await.unwrap();
    assert!(answer.is_none(), "acks=0 gets no response");
    assert_eq!(partition.log_end_offset(), 2);

    let produced = produce(&broker, "acks", 0, batch(&[b"c"], None)).await;
    assert_eq!(produced.error_code, 0);
    assert_eq!(produced.base_offset, 2);
    assert_eq!(partition.log_end_offset(), 3);

    // acks outside -1..=1 is refused, and nothing is appended.
    let request = produce_request("acks", 0, batch(&[b"d"], None), 2);
    let refused: ProduceResponse = call(&broker, ApiKey::Produce, 9, &request).await;
    assert_eq!(
        refused.responses[0].partition_responses[0].error_code,
        ResponseError::InvalidRequiredAcks.code()
    );
    assert_eq!(partition.log_end_offset(), 3);
}

#[tokio::test]
async fn a_refused_acks_0_produce_closes_the_connection() {
    let (_dir, broker) = broker_with_topic("acks0", 1).await;
    let request = produce_request("acks0", 3, batch(&[b"lost"], None), 0);
    let answer = send(&broker, ApiKey::Produce, 9, &request).await;
    match answer {
        Err(DispatchError::Close(reason)) => {
            assert!(reason.contains("acks0-3"), "{reason}");
            assert!(reason.contains("UnknownTopicOrPartition"), "{reason}");
        }
        other => panic!("expected the connection to be closed, got {other:?}"),
    }
}

async fn new_producer(broker: &Arc<Broker>) -> (i64, i16) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
        .with_transaction_timeout_ms(60_000);
    let answer: InitProducerIdResponse = call(broker, ApiKey::InitProducerId, 4, &request).await;
    assert_eq!(answer.error_code, 0);
    (answer.producer_id.0, answer.producer_epoch)
}

#[tokio::test]
async fn idempotent_retries_are_acknowledged_once_and_gaps_and_old_epochs_refused() {
    let (_dir, broker) = broker_with_topic("idempotent", 1).await;
    let partition = broker.partitions.get("idempotent", 0).unwrap();
    let (producer_id, producer_epoch) = new_producer(&broker).await;
    let at = |base_sequence| {
        Some(ProducerSequence {
            producer_id,
            producer_epoch,
            base_sequence,
        })
    };

    let first = batch(&[b"a", b"b"], at(0));
    assert_eq!(
        produce(&broker, "idempotent", 0, first.clone())
            .await
            .base_offset,
        0
    );
    let second = batch(&[b"c"], at(2));
    assert_eq!(
        produce(&broker, "idempotent", 0, second.clone())
            .await
            .base_offset,
        2
    );

    // Retries (the answer was lost, say): acknowledged at their first offsets, not appended.
    for (retry, offset) in [(second, 2), (first, 0)] {
        let answer = produce(&broker, "idempotent", 0, retry).await;
        assert_eq!((answer.error_code, answer.base_offset), (0, offset));
    }
    assert_eq!(partition.log_end_offset(), 3);

    // A batch that skips sequence numbers (3 and 4 never arrived) is refused.
    let gap = produce(&broker, "idempotent", 0, batch(&[b"f"], at(5))).await;
    assert_eq!(
        gap.error_code,
        ResponseError::OutOfOrderSequenceNumber.code()
    );
    assert_eq!(partition.log_end_offset(), 3);
    let next = produce(&broker, "idempotent", 0, batch(&[b"d"], at(3))).await;
    assert_eq!((next.error_code, next.base_offset), (0, 3));

    // The producer is re-initialised (a new epoch): the old epoch is fenced.
    let request = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(producer_epoch)
        .with_transaction_timeout_ms(60_000);
    let bumped: InitProducerIdResponse = call(&broker, ApiKey::InitProducerId, 4, &request).await;
    assert_eq!(bumped.error_code, 0);
    assert_eq!(bumped.producer_epoch, producer_epoch + 1);
    let new_epoch = Some(ProducerSequence {
        producer_id,
        producer_epoch: bumped.producer_epoch,
        base_sequence: 0,
    });
    let restarted = produce(&broker, "idempotent", 0, batch(&[b"e"], new_epoch)).await;
    assert_eq!((restarted.error_code, restarted.base_offset), (0, 4));
    let fenced = produce(&broker, "idempotent", 0, batch(&[b"g"], at(4))).await;
    assert_eq!(
        fenced.error_code,
        ResponseError::InvalidProducerEpoch.code()
    );
    assert_eq!(partition.log_end_offset(), 5);
}
