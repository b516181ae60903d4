"""Size- and time-based retention delete old segments: the earliest offset moves past 0 within a
bounded wait, and everything from it to the end stays readable.

usage: retention.py BOOTSTRAP
"""

import time

from confluent_kafka import Producer

from e2e import DeliveryLog, admin, bootstrap_from_argv, check, check_equal, consume_all, create_topic, fail, flush, watermarks

RECORDS = 500
VALUE_BYTES = 1000


def produce(bootstrap, topic):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "batch.size": 4000})
    log = DeliveryLog()
    for i in range(RECORDS):
        value = f"{i:06d}:".encode() + b"r" * VALUE_BYTES
        producer.produce(topic, value=value, partition=0, on_delivery=log)
        producer.poll(0)
    flush(producer, f"producing to {topic}")
    log.check_no_errors(f"producing to {topic}")
    check_equal(len(log.delivered), RECORDS, f"{topic}: ~500 KB acknowledged")


def wait_for_retention(bootstrap, topic, timeout=20.0):
    """Waits until the earliest offset moved past 0 and then stayed put for a second (several
    retention checks): retention is done with what it can delete."""
    deadline = time.monotonic() + timeout
    stable_since, last = None, None
    while True:
        low, high = watermarks(bootstrap, topic, 0)
        if low > 0 and (low, high) == last:
            if time.monotonic() - stable_since >= 1.0:
                print(f"ok: {topic}: earliest offset moved to {low} and stayed (end {high})", flush=True)
                return low, high
        else:
            stable_since, last = time.monotonic(), (low, high)
        if time.monotonic() > deadline:
            fail(f"{topic}: earliest offset {low} (end {high}) did not move past 0 and settle in {timeout}s")
        time.sleep(0.2)


def check_readable(bootstrap, topic, low, high):
    check_equal(high, RECORDS, f"{topic}: the end offset is unchanged")
    messages = consume_all(bootstrap, topic, 1, high - low)
    offsets = [m.offset() for m in messages]
    check_equal((offsets[0], offsets[-1], len(offsets)), (low, high - 1, high - low), f"{topic}: offsets from the earliest to the end")
    for message in messages:
        if not message.value().startswith(f"{message.offset():06d}:".encode()):
            fail(f"{topic}: offset {message.offset()} holds {message.value()[:10]!r}")
    check(True, f"{topic}: every retained record is intact")


def main():
    bootstrap = bootstrap_from_argv()
    client = admin(bootstrap)

    by_size = "retention-bytes"
    create_topic(client, by_size, 1, {"segment.bytes": "16384", "retention.bytes": "50000"})
    produce(bootstrap, by_size)
    low, high = wait_for_retention(bootstrap, by_size)
    # Kafka deletes a segment only while what remains is still at least retention.bytes.
    check((high - low) * VALUE_BYTES >= 50000 - 16384, f"{by_size}: {high - low} records (>= ~retention.bytes) kept")
    check_readable(bootstrap, by_size, low, high)

    by_time = "retention-ms"
    create_topic(client, by_time, 1, {"segment.bytes": "16384", "retention.ms": "1000"})
    produce(bootstrap, by_time)
    low, high = wait_for_retention(bootstrap, by_time)
    if low < high:
        check_readable(bootstrap, by_time, low, high)
    print("retention: all checks passed")


if __name__ == "__main__":
    main()
