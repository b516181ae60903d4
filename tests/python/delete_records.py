"""DeleteRecords moves a partition's earliest offset; what is before it can no longer be read."""

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import OffsetSpec

from e2e import (
    DeliveryLog,
    admin,
    bootstrap_from_argv,
    check_equal,
    create_topic,
    fail,
    flush,
    watermarks,
)

TOPIC = "deletable"
RECORDS = 100


def delete_before(client, partition, offset):
    futures = client.delete_records([TopicPartition(TOPIC, partition, offset)], request_timeout=15)
    (future,) = futures.values()
    return future.result(timeout=20)


def earliest(client, partition):
    futures = client.list_offsets({TopicPartition(TOPIC, partition): OffsetSpec.earliest()})
    (future,) = futures.values()
    return future.result(timeout=20).offset


def main():
    bootstrap = bootstrap_from_argv()
    client = admin(bootstrap)
    create_topic(client, TOPIC, 2)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    log = DeliveryLog()
    for partition in range(2):
        for i in range(RECORDS):
            producer.produce(TOPIC, value=f"p{partition}-{i}".encode(), partition=partition, on_delivery=log)
    flush(producer, "producer")
    log.check_no_errors("producer")

    try:
        deleted = delete_before(client, 0, 40)
    except KafkaException as error:
        fail(f"delete_records before offset 40: {error}")
    check_equal(deleted.low_watermark, 40, "delete_records reports the new low watermark")
    check_equal(watermarks(bootstrap, TOPIC, 0), (40, RECORDS), "partition 0 watermarks after delete_records")
    check_equal(earliest(client, 0), 40, "ListOffsets earliest after delete_records")
    check_equal(earliest(client, 1), 0, "the other partition is untouched")

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "e2e-deleted",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(TOPIC, 0, OFFSET_BEGINNING)])
    got = []
    while len(got) < RECORDS - 40:
        batch = consumer.consume(num_messages=100, timeout=5)
        if not batch:
            fail(f"consumed {len(got)} records after delete_records, want {RECORDS - 40}")
        for message in batch:
            if message.error():
                fail(f"consumer error: {message.error()}")
            got.append((message.offset(), message.value()))
    check_equal(got[0], (40, b"p0-40"), "reading from the beginning starts at offset 40")
    check_equal([o for o, _ in got], list(range(40, RECORDS)), "offsets 40..99 are all there")

    # Reading from offset 10, below the new start, is out of range and resets to the earliest.
    consumer.assign([TopicPartition(TOPIC, 0, 10)])
    batch = consumer.consume(num_messages=1, timeout=10)
    if not batch or batch[0].error():
        fail(f"reading from a deleted offset: {batch[0].error() if batch else 'nothing'}")
    check_equal(batch[0].offset(), 40, "a fetch below the log start resets to offset 40")
    consumer.close()

    try:
        delete_before(client, 0, RECORDS + 50)
        fail("delete_records beyond the high watermark succeeded")
    except KafkaException as error:
        check_equal(
            error.args[0].code(),
            KafkaError.OFFSET_OUT_OF_RANGE,
            "delete_records beyond the high watermark is OFFSET_OUT_OF_RANGE",
        )

    deleted = delete_before(client, 1, OFFSET_END)
    check_equal(deleted.low_watermark, RECORDS, "delete_records at OFFSET_END empties the partition")
    check_equal(watermarks(bootstrap, TOPIC, 1), (RECORDS, RECORDS), "partition 1 watermarks")
    print("delete_records: all checks passed")


if __name__ == "__main__":
    main()
