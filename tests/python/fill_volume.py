"""Fill a cluster's volumes through a topic, and check what was acknowledged.

Usage: fill_volume.py BOOTSTRAP TOPIC ACKED_LOG MODE [ARG]
  bytes N      produce until N bytes more are acknowledged
  until-full   produce until the brokers refuse writes with KAFKA_STORAGE_ERROR (at most 120 s)
  verify       read TOPIC from the beginning; every value in ACKED_LOG must be there

The producer is acks=all without retries (retries would hide the brokers' answer): every
record is either acknowledged, and appended to ACKED_LOG, or failed with the broker's error
code. Prints one JSON line: {"acked": n, "ackedBytes": n, "errors": {"CODE_NAME": n}} or, for
verify, {"expected": n, "read": n, "missing": n}. Creates TOPIC (3 partitions, 3 replicas,
min.insync.replicas 2) when missing."""
import json
import sys
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

RECORD_BYTES = 16 * 1024
bootstrap, topic, acked_log, mode = sys.argv[1:5]
arg = sys.argv[5] if len(sys.argv) > 5 else None


def ensure_topic():
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(topic, 3, 3, config={"min.insync.replicas": "2"})
    try:
        admin.create_topics([new])[topic].result(timeout=30)
    except KafkaException as error:
        if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
        if len(partitions) == 3 and all(p.leader >= 0 for p in partitions.values()):
            return
        time.sleep(0.2)
    sys.exit(f"{topic} has no leaders")


def produce(stop_after_bytes=None, until_full=False):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False,
                         "retries": 0, "linger.ms": 5, "message.timeout.ms": 30000})
    run = uuid.uuid4().hex[:8]
    acked, acked_bytes, errors = [], 0, {}

    def report(error, message):
        nonlocal acked_bytes
        if error is None:
            acked.append(message.value()[:32].decode())
            acked_bytes += len(message.value())
        else:
            errors[error.name()] = errors.get(error.name(), 0) + 1

    deadline = time.monotonic() + 120
    sequence = 0
    while time.monotonic() < deadline:
        if stop_after_bytes is not None and acked_bytes >= stop_after_bytes:
            break
        if until_full and errors.get("KAFKA_STORAGE_ERROR"):
            break
        value = f"{run}-{sequence:012d}".ljust(32).encode() + b"x" * (RECORD_BYTES - 32)
        sequence += 1
        try:
            producer.produce(topic, value, on_delivery=report)
        except BufferError:
            producer.poll(0.1)
            continue
        producer.poll(0)
        if sequence % 16 == 0:
            producer.flush(30)
    producer.flush(60)
    with open(acked_log, "a") as log:
        for value in acked:
            log.write(value.strip() + "\n")
    print(json.dumps({"acked": len(acked), "ackedBytes": acked_bytes, "errors": errors}), flush=True)


def verify():
    with open(acked_log) as log:
        expected = {line.strip() for line in log if line.strip()}
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"verify-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False})
    admin = AdminClient({"bootstrap.servers": bootstrap})
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    done, seen, read = set(), set(), 0
    deadline = time.monotonic() + 120
    while len(done) < len(ends) and time.monotonic() < deadline:
        done |= {p for p, end in ends.items() if end == 0}
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        read += 1
        seen.add(message.value()[:32].decode().strip())
        if message.offset() + 1 >= ends[message.partition()]:
            done.add(message.partition())
    consumer.close()
    missing = expected - seen
    print(json.dumps({"expected": len(expected), "read": read, "missing": len(missing),
                      "sample": sorted(missing)[:5]}), flush=True)


ensure_topic()
if mode == "bytes":
    produce(stop_after_bytes=int(arg))
elif mode == "until-full":
    produce(until_full=True)
elif mode == "verify":
    verify()
else:
    sys.exit(f"unknown mode {mode}")
