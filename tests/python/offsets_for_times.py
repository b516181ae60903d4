"""ListOffsets by timestamp (offsets_for_times, and the admin list_offsets specs) on records
produced with explicit timestamps."""

import time

from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, Producer, TopicPartition
from confluent_kafka.admin import OffsetSpec

from e2e import (
    DeliveryLog,
    admin,
    bootstrap_from_argv,
    check_equal,
    consume_all,
    create_topic,
    fail,
    flush,
)

TOPIC = "timestamps"
RECORDS = 100
STEP_MS = 1000


def main():
    bootstrap = bootstrap_from_argv()
    client = admin(bootstrap)
    create_topic(client, TOPIC, 2)
    # In the past (well inside the default 7-day retention), one second apart.
    base = int(time.time() * 1000) - 3_600_000

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 50})
    log = DeliveryLog()
    for i in range(RECORDS):
        producer.produce(TOPIC, value=f"t{i}".encode(), partition=0, timestamp=base + i * STEP_MS, on_delivery=log)
    # Partition 1: timestamps out of order; the largest one is at offset 1.
    for i, offset_ts in enumerate([base + 100, base + 900, base + 300]):
        producer.produce(TOPIC, value=f"u{i}".encode(), partition=1, timestamp=offset_ts, on_delivery=log)
    flush(producer, "timestamped producer")
    log.check_no_errors("timestamped producer")

    messages = consume_all(bootstrap, TOPIC, 1, RECORDS)
    for message in messages:
        want = (TIMESTAMP_CREATE_TIME, base + message.offset() * STEP_MS)
        if message.timestamp() != want:
            fail(f"offset {message.offset()} has timestamp {message.timestamp()}, want {want}")
    check_equal(len(messages), RECORDS, "every record carries its CreateTime timestamp")

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "e2e-times"})
    cases = [
        (base - 5000, 0, "a timestamp before the first record"),
        (base, 0, "the first record's timestamp"),
        (base + 10 * STEP_MS, 10, "an exact timestamp"),
        (base + 10 * STEP_MS + 1, 11, "a timestamp between two records"),
        (base + (RECORDS - 1) * STEP_MS, RECORDS - 1, "the last record's timestamp"),
        (base + RECORDS * STEP_MS, -1, "a timestamp after the last record (no offset)"),
    ]
    for timestamp, want, what in cases:
        result = consumer.offsets_for_times([TopicPartition(TOPIC, 0, timestamp)], timeout=10)
        if result[0].error is not None:
            fail(f"offsets_for_times for {what}: {result[0].error}")
        check_equal(result[0].offset, want, f"offsets_for_times: {what}")
    consumer.close()

    specs = {
        "earliest": (OffsetSpec.earliest(), 0, 0),
        "latest": (OffsetSpec.latest(), 0, RECORDS),
        "for_timestamp": (OffsetSpec.for_timestamp(base + 42 * STEP_MS), 0, 42),
        "max_timestamp (ordered)": (OffsetSpec.max_timestamp(), 0, RECORDS - 1),
        "max_timestamp (out of order)": (OffsetSpec.max_timestamp(), 1, 1),
    }
    for what, (spec, partition, want) in specs.items():
        futures = client.list_offsets({TopicPartition(TOPIC, partition): spec}, request_timeout=10)
        for tp, future in futures.items():
            try:
                info = future.result(timeout=15)
            except Exception as error:  # noqa: BLE001 - report whatever the client raised
                fail(f"list_offsets {what} on partition {partition}: {error}")
            check_equal(info.offset, want, f"list_offsets {what} on partition {tp.partition}")
    print("offsets_for_times: all checks passed")


if __name__ == "__main__":
    main()
