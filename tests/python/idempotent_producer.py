"""An idempotent producer (enable.idempotence=true, acks=all) writes 10,000 records; reading them
back finds no duplicates, and each partition holds its records in the order they were sent."""

from collections import defaultdict

from confluent_kafka import Producer

from e2e import (
    DeliveryLog,
    admin,
    bootstrap_from_argv,
    check,
    check_equal,
    consume_all,
    create_topic,
    fail,
    flush,
)

TOPIC = "idempotent"
PARTITIONS = 3
RECORDS = 10_000


def main():
    bootstrap = bootstrap_from_argv()
    client = admin(bootstrap)
    create_topic(client, TOPIC, PARTITIONS)

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "max.in.flight.requests.per.connection": 5,
            "linger.ms": 5,
            "batch.num.messages": 200,
        }
    )
    log = DeliveryLog()
    sent_per_partition = defaultdict(list)
    for i in range(RECORDS):
        partition = i % PARTITIONS
        value = f"record-{i:06d}".encode()
        sent_per_partition[partition].append(value)
        producer.produce(TOPIC, key=str(i).encode(), value=value, partition=partition, on_delivery=log)
        producer.poll(0)
    flush(producer, "idempotent producer")
    log.check_no_errors("idempotent producer")
    check_equal(len(log.delivered), RECORDS, "every record acknowledged")

    acked = defaultdict(dict)
    for message in log.delivered:
        offsets = acked[message.partition()]
        if message.offset() in offsets:
            fail(f"two records acknowledged at partition {message.partition()} offset {message.offset()}")
        offsets[message.offset()] = message.value()

    messages = consume_all(bootstrap, TOPIC, PARTITIONS, RECORDS)
    check_equal(len(messages), RECORDS, "consumed exactly as many records as produced")
    values = [m.value() for m in messages]
    check_equal(len(set(values)), RECORDS, "no value consumed twice")

    by_partition = defaultdict(list)
    for message in messages:
        by_partition[message.partition()].append(message)
    for partition in range(PARTITIONS):
        got = by_partition[partition]
        offsets = [m.offset() for m in got]
        check_equal(offsets, list(range(len(got))), f"partition {partition}: offsets are 0..n without gaps")
        check(
            [m.value() for m in got] == sent_per_partition[partition],
            f"partition {partition}: records are in the order they were produced",
        )
        for m in got:
            if acked[partition].get(m.offset()) != m.value():
                fail(
                    f"partition {partition} offset {m.offset()} holds {m.value()!r}, "
                    f"the delivery report said {acked[partition].get(m.offset())!r}"
                )
        check(True, f"partition {partition}: every record sits at its acknowledged offset")
    print("idempotent_producer: all checks passed")


if __name__ == "__main__":
    main()
