"""Helpers shared by the end-to-end client scripts.

Each script takes the broker's bootstrap address as its first argument, prints every check it
makes, and exits non-zero (through `fail`) at the first one that does not hold.
"""

import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def bootstrap_from_argv():
    if len(sys.argv) < 2:
        print(f"usage: {sys.argv[0]} BOOTSTRAP [ARGS...]", file=sys.stderr)
        sys.exit(2)
    return sys.argv[1]


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)
    print(f"ok: {message}", flush=True)


def check_equal(got, want, message):
    if got != want:
        fail(f"{message}: got {got!r}, want {want!r}")
    print(f"ok: {message} ({got!r})", flush=True)


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})


def create_topic(admin_client, name, partitions, config=None, timeout=30):
    topic = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
    futures = admin_client.create_topics([topic], request_timeout=timeout)
    try:
        futures[name].result(timeout=timeout)
    except KafkaException as error:
        fail(f"creating topic {name} ({partitions} partitions, {config}): {error}")
    print(f"ok: created topic {name} with {partitions} partitions {config or ''}", flush=True)


def partition_count(admin_client, name, timeout=10):
    """Partitions of `name` in the metadata, or None when the topic is unknown."""
    metadata = admin_client.list_topics(topic=name, timeout=timeout)
    topic = metadata.topics.get(name)
    if topic is None or topic.error is not None:
        return None
    return len(topic.partitions)


def wait_for(predicate, what, timeout=20.0, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            print(f"ok: {what}", flush=True)
            return value
        if time.monotonic() > deadline:
            fail(f"timed out after {timeout}s waiting for: {what}")
        time.sleep(interval)


def watermarks(bootstrap, topic, partition, timeout=10):
    """(low, high) of a partition. UNKNOWN_TOPIC_OR_PART is retriable, as in Kafka: a broker
    serves a partition a moment after the metadata shows it (it opens it then)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "e2e-watermarks"})
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
            except KafkaException as error:
                retriable = error.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
                if not retriable or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        consumer.close()


def consume_all(bootstrap, topic, partitions, expected, timeout=60.0, extra_config=None):
    """Reads every partition from the beginning (no group) until `expected` messages arrived;
    returns the messages. Fails on any consumer error or on timeout."""
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": "e2e-reader",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    }
    config.update(extra_config or {})
    consumer = Consumer(config)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    messages = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < expected:
            if time.monotonic() > deadline:
                fail(f"consumed {len(messages)} of {expected} messages from {topic} in {timeout}s")
            batch = consumer.consume(num_messages=1000, timeout=0.5)
            for message in batch:
                if message.error():
                    fail(f"consumer error on {topic}: {message.error()}")
                messages.append(message)
        # Anything beyond `expected` would be a duplicate or a stray record: give it a moment.
        for message in consumer.consume(num_messages=1000, timeout=1.0):
            if message.error():
                fail(f"consumer error on {topic}: {message.error()}")
            messages.append(message)
    finally:
        consumer.close()
    return messages


class DeliveryLog:
    """Collects producer delivery reports and fails on the first error."""

    def __init__(self):
        self.delivered = []
        self.errors = []

    def __call__(self, error, message):
        if error is not None:
            self.errors.append((error, message.key(), message.value()))
        else:
            self.delivered.append(message)

    def check_no_errors(self, what):
        if self.errors:
            fail(f"{what}: {len(self.errors)} delivery errors, first: {self.errors[0][0]}")


def flush(producer, what, timeout=60):
    remaining = producer.flush(timeout)
    if remaining:
        fail(f"{what}: {remaining} messages still undelivered after {timeout}s")
