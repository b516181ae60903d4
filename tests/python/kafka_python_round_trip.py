"""kafka-python 3.x: admin create/delete topic, a producer per compression codec (each codec whose
python package is installed; gzip always), a consumer reading everything back in order."""

import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.codec import has_lz4, has_snappy, has_zstd
from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

RECORDS = 1000


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def check_equal(got, want, message):
    if got != want:
        fail(f"{message}: got {got!r}, want {want!r}")
    print(f"ok: {message} ({got!r})", flush=True)


def topics_of(admin):
    return set(admin.list_topics())


def wait_for(predicate, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            fail(f"timed out waiting for: {what}")
        time.sleep(0.2)
    print(f"ok: {what}", flush=True)


def round_trip(bootstrap, admin, codec):
    topic = f"kafka-python-{codec}"
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)], timeout_ms=20000)
    wait_for(lambda: topic in topics_of(admin), f"{topic} is listed after create_topics")

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type=None if codec == "none" else codec,
        acks="all",
        linger_ms=10,
    )
    sent = {0: [], 1: []}
    futures = []
    for i in range(RECORDS):
        partition = i % 2
        key = f"k{i}".encode()
        value = (f"{codec}-{i:05d}-" + "payload" * (i % 30)).encode()
        headers = [("i", str(i).encode())]
        futures.append(producer.send(topic, key=key, value=value, headers=headers, partition=partition))
        sent[partition].append((key, value, headers))
    producer.flush(timeout=60)
    for future in futures:
        metadata = future.get(timeout=30)
        if metadata.offset < 0:
            fail(f"{codec}: record acknowledged without an offset: {metadata}")
    producer.close(timeout=10)
    print(f"ok: {codec}: {RECORDS} records acknowledged", flush=True)

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=15000,
    )
    consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
    consumer.seek_to_beginning()
    got = {0: [], 1: []}
    deadline = time.monotonic() + 60
    while sum(len(v) for v in got.values()) < RECORDS:
        if time.monotonic() > deadline:
            fail(f"{codec}: consumed {sum(len(v) for v in got.values())} of {RECORDS}")
        for tp, records in consumer.poll(timeout_ms=1000).items():
            for record in records:
                if record.offset != len(got[tp.partition]):
                    fail(f"{codec}: partition {tp.partition} offset {record.offset} after {len(got[tp.partition])}")
                got[tp.partition].append((record.key, record.value, [(h[0], h[1]) for h in record.headers]))
    consumer.close()
    for partition in (0, 1):
        check_equal(len(got[partition]), len(sent[partition]), f"{codec}: partition {partition} count")
        if got[partition] != sent[partition]:
            first = next(i for i, (a, b) in enumerate(zip(got[partition], sent[partition])) if a != b)
            fail(f"{codec}: partition {partition} record {first}: {got[partition][first]!r} != {sent[partition][first]!r}")
        print(f"ok: {codec}: partition {partition} keys, values and headers match in order", flush=True)

    admin.delete_topics([topic], timeout_ms=20000)
    wait_for(lambda: topic not in topics_of(admin), f"{topic} is gone after delete_topics")


def main():
    bootstrap = sys.argv[1]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)
    codecs = ["none", "gzip"]
    for codec, available in (("lz4", has_lz4()), ("zstd", has_zstd()), ("snappy", has_snappy())):
        if available:
            codecs.append(codec)
        else:
            print(f"SKIP: {codec}: its python package is not installed (see tests/requirements.txt)")
    # With --require-all-codecs (the Rust test passes it) a missing codec package is a failure.
    if "--require-all-codecs" in sys.argv and len(codecs) != 5:
        fail(f"only {codecs} are available; pip install -r tests/requirements.txt")
    for codec in codecs:
        round_trip(bootstrap, admin, codec)

    admin.create_topics([NewTopic("kafka-python-twice", num_partitions=1, replication_factor=1)])
    try:
        admin.create_topics([NewTopic("kafka-python-twice", num_partitions=1, replication_factor=1)])
        fail("creating an existing topic succeeded")
    except TopicAlreadyExistsError:
        print("ok: creating an existing topic raises TopicAlreadyExistsError")
    try:
        admin.delete_topics(["kafka-python-never-created"], timeout_ms=10000)
        fail("deleting an unknown topic succeeded")
    except UnknownTopicOrPartitionError:
        print("ok: deleting an unknown topic raises UnknownTopicOrPartitionError")
    admin.close()
    print("kafka_python_round_trip: all checks passed")


if __name__ == "__main__":
    main()
