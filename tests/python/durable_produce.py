"""Writes acknowledged records and a committed group offset, and saves what the broker promised
to a JSON file, for durable_verify.py to check after the broker restarts.

usage: durable_produce.py BOOTSTRAP STATE_FILE TOPIC RECORDS
"""

import json
import os
import sys

from confluent_kafka import Consumer, Producer, TopicPartition

from e2e import DeliveryLog, admin, bootstrap_from_argv, check_equal, create_topic, fail, flush, partition_count

PARTITIONS = 3
GROUP = "durable-group"


def main():
    bootstrap = bootstrap_from_argv()
    state_file, topic, records = sys.argv[2], sys.argv[3], int(sys.argv[4])
    # Values are unique across runs: the file name tells runs apart.
    run = os.path.splitext(os.path.basename(state_file))[0]
    client = admin(bootstrap)
    if partition_count(client, topic) is None:
        create_topic(client, topic, PARTITIONS)

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    log = DeliveryLog()
    for i in range(records):
        producer.produce(topic, key=str(i).encode(), value=f"{run}-{i:06d}".encode(), partition=i % PARTITIONS, on_delivery=log)
        producer.poll(0)
    flush(producer, "producer")
    log.check_no_errors("producer")
    check_equal(len(log.delivered), records, "every record acknowledged")
    acknowledged = [[m.partition(), m.offset(), m.value().decode()] for m in log.delivered]

    # Commit a position in the middle of each partition, as a consumer that processed that far.
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False})
    positions = {p: 1000 + 111 * p for p in range(PARTITIONS)}
    result = consumer.commit(
        offsets=[TopicPartition(topic, p, o) for p, o in positions.items()], asynchronous=False
    )
    for tp in result:
        if tp.error is not None:
            fail(f"committing partition {tp.partition}: {tp.error}")
    committed = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
    check_equal({tp.partition: tp.offset for tp in committed}, positions, "committed offsets read back")
    consumer.close()

    with open(state_file, "w") as out:
        json.dump({"topic": topic, "group": GROUP, "acknowledged": acknowledged, "committed": positions}, out)
    print(f"durable_produce: {records} records acknowledged, state in {state_file}")


if __name__ == "__main__":
    main()
