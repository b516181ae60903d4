//! Helpers for handler tests: requests sent through the real dispatcher, producer batches
//! built with the kafka-protocol crate, topics created and waited for.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::broker::Broker;
use crate::dispatch::{handle_frame, DispatchError};
use crate::handlers::topic_name;

/// Sends `request` through the real dispatcher (decode, handler, encode at `version`); the
/// encoded answer, none (acks=0), or the reason the connection would be closed.
pub async fn send<Req: Encodable>(
    broker: &Arc<Broker>,
    key: ApiKey,
    version: i16,
    request: &Req,
) -> Result<Option<BytesMut>, DispatchError> {
    handle_frame(broker, request_frame(key, version, request)).await
}

/// A request frame as a client sends it (without the length prefix), from client
/// `handler-test`.
pub fn request_frame<Req: Encodable>(key: ApiKey, version: i16, request: &Req) -> Bytes {
    let mut frame = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("handler-test")))
        .encode(&mut frame, key.request_header_version(version))
        .unwrap();
    request.encode(&mut frame, version).unwrap();
    frame.freeze()
}

/// Sends `request` through the real dispatcher and decodes the answer.
pub async fn call<Req: Encodable, Resp: Decodable + HeaderVersion>(
    broker: &Arc<Broker>,
    key: ApiKey,
    version: i16,
    request: &Req,
) -> Resp {
    let response = send(broker, key, version, request)
        .await
        .unwrap_or_else(|error| panic!("{key:?} v{version}: {error:?}"))
        .expect("a response");
    let mut body = response.freeze();
    ResponseHeader::decode(&mut body, Resp::header_version(version)).unwrap();
    Resp::decode(&mut body, version).unwrap()
}

/// An idempotent producer's identity and the sequence of a batch's first record.
#[derive(Clone, Copy)]
pub struct ProducerSequence {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

/// One uncompressed batch holding `values`, as a producer would send it: idempotent when
/// `producer` is given.
pub fn batch(values: &[&[u8]], producer: Option<ProducerSequence>) -> Bytes {
    let (producer_id, producer_epoch, base_sequence) = producer.map_or((-1, -1, -1), |p| {
        (p.producer_id, p.producer_epoch, p.base_sequence)
    });
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, value)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch while offset - sequence is constant.
            sequence: if base_sequence < 0 {
                i as i32 - 1
            } else {
                base_sequence + i as i32
            },
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(Bytes::copy_from_slice(value)),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).expect("encode batch");
    buf.freeze()
}

/// A started single-node broker (default flags) with `topic` created; the directory lives as
/// long as the returned guard.
pub async fn broker_with_topic(topic: &str, partitions: i32) -> (tempfile::TempDir, Arc<Broker>) {
    let dir = tempfile::tempdir().unwrap();
    let broker = crate::broker::testing::open(dir.path(), &[]).await;
    create_topic(&broker, topic, partitions).await;
    (dir, broker)
}

/// Creates `topic` with `partitions` partitions (one replica each) and waits until this broker
/// leads them all.
pub async fn create_topic(broker: &Broker, topic: &str, partitions: i32) {
    broker
        .create_topic(topic, partitions, Some(1), BTreeMap::new())
        .await
        .expect("topic created");
    wait_for_partitions(broker, topic, partitions).await;
}

/// Waits until this broker opened and leads the topic's partitions.
pub async fn wait_for_partitions(broker: &Broker, topic: &str, count: i32) {
    for _ in 0..500 {
        if (0..count).all(|p| {
            broker
                .partitions
                .get(topic, p)
                .is_some_and(|p| p.is_leader())
        }) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("partitions of {topic} not ready");
}

/// A produce request of one batch to one partition.
pub fn produce_request(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

/// Produces one batch with acks=1 and returns the partition's answer.
pub async fn produce(
    broker: &Arc<Broker>,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> PartitionProduceResponse {
    let response: ProduceResponse = call(
        broker,
        ApiKey::Produce,
        9,
        &produce_request(topic, partition, records, 1),
    )
    .await;
    response.responses[0].partition_responses[0].clone()
}

/// Waits until the cluster metadata has not moved for half a second (the entries that follow a
/// topic's creation applied), so that a test's own replica assignment is not overwritten by the
/// next metadata pass.
pub async fn wait_for_quiet_metadata(broker: &Broker) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut last = broker.metadata().applied_index;
    let mut since = tokio::time::Instant::now();
    while since.elapsed() < Duration::from_millis(500) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "metadata never settled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = broker.metadata().applied_index;
        if now != last {
            last = now;
            since = tokio::time::Instant::now();
        }
    }
}
