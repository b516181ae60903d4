//! The rdkafka crate (librdkafka built from source) as a Rust client: admin, a FutureProducer
//! with acks=all, and a StreamConsumer in a group.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{BrokerOptions, BrokerProcess};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "rust-client";
const PARTITIONS: i32 = 3;
const RECORDS: usize = 1000;

fn key(i: usize) -> String {
    format!("key-{}", i % 37)
}

fn value(i: usize) -> String {
    format!("value-{i:05}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdkafka_keyed_produce_and_group_consume() {
    let broker = BrokerProcess::start(BrokerOptions::default());
    let bootstrap = broker.bootstrap();

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("creating the admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new().request_timeout(Some(Duration::from_secs(20))),
        )
        .await
        .expect("CreateTopics");
    for result in results {
        result.unwrap_or_else(|(topic, code)| panic!("creating {topic}: {code:?}"));
    }

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("creating the producer");
    let sends = (0..RECORDS).map(|i| {
        let producer = producer.clone();
        async move {
            let (key, value) = (key(i), value(i));
            let delivery = producer
                .send(
                    FutureRecord::to(TOPIC).key(&key).payload(&value),
                    Duration::from_secs(30),
                )
                .await;
            (i, delivery)
        }
    });
    // (partition, offset) -> record index, from the delivery reports.
    let mut acknowledged: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    let mut partition_of_key: BTreeMap<String, i32> = BTreeMap::new();
    for (i, delivery) in futures_join_all(sends).await {
        let delivery =
            delivery.unwrap_or_else(|(error, _)| panic!("record {i} was not delivered: {error}"));
        let (partition, offset) = (delivery.partition, delivery.offset);
        assert!(
            acknowledged.insert((partition, offset), i).is_none(),
            "two records acknowledged at {partition}/{offset}"
        );
        let owner = *partition_of_key.entry(key(i)).or_insert(partition);
        assert_eq!(owner, partition, "records of {} in two partitions", key(i));
    }
    assert_eq!(acknowledged.len(), RECORDS);

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "rust-group")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("creating the consumer");
    consumer.subscribe(&[TOPIC]).expect("subscribing");
    let mut consumed: BTreeMap<(i32, i64), (String, String)> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while consumed.len() < RECORDS {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("consumed {} of {RECORDS} in 60 s", consumed.len()))
            .expect("consumer error");
        let key = String::from_utf8(message.key().expect("a key").to_vec()).unwrap();
        let value = String::from_utf8(message.payload().expect("a value").to_vec()).unwrap();
        let previous = consumed.insert((message.partition(), message.offset()), (key, value));
        assert!(
            previous.is_none(),
            "{}/{} consumed twice",
            message.partition(),
            message.offset()
        );
    }
    for ((partition, offset), i) in &acknowledged {
        assert_eq!(
            consumed.get(&(*partition, *offset)),
            Some(&(key(*i), value(*i))),
            "record {i} at {partition}/{offset}"
        );
    }
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .expect("committing");
    let mut ends = BTreeMap::new();
    for (partition, offset) in acknowledged.keys() {
        let end = ends.entry(*partition).or_insert(0);
        *end = (*end).max(offset + 1);
    }
    let mut wanted = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        wanted.add_partition(TOPIC, partition);
    }
    let committed = consumer
        .committed_offsets(wanted, Duration::from_secs(10))
        .expect("fetching committed offsets");
    for element in committed.elements() {
        let want = ends.get(&element.partition()).copied().unwrap_or(0);
        assert_eq!(
            element.offset(),
            Offset::Offset(want),
            "committed offset of partition {}",
            element.partition()
        );
    }
}

/// Awaits every future, concurrently, keeping their order (a small join_all without a crate).
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.expect("a send task panicked"));
    }
    outputs
}
