"""Produce and consume with every compression.type librdkafka offers; keys, values, headers and
order must come back exactly."""

from confluent_kafka import Producer

from e2e import (
    DeliveryLog,
    admin,
    bootstrap_from_argv,
    check,
    check_equal,
    consume_all,
    create_topic,
    flush,
)

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
RECORDS = 2000


def main():
    bootstrap = bootstrap_from_argv()
    client = admin(bootstrap)
    for codec in CODECS:
        topic = f"compression-{codec}"
        create_topic(client, topic, 1)
        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "compression.type": codec,
                "acks": "all",
                "linger.ms": 20,
            }
        )
        log = DeliveryLog()
        sent = []
        for i in range(RECORDS):
            key = f"key-{i % 17}".encode()
            # Repetitive values so that every codec really compresses.
            value = (f"{codec}:{i:06d}:" + "abcdefgh" * (i % 50)).encode()
            headers = [("index", str(i).encode()), ("codec", codec.encode())]
            producer.produce(topic, key=key, value=value, headers=headers, on_delivery=log)
            sent.append((key, value, headers))
            producer.poll(0)
        flush(producer, f"{codec} producer")
        log.check_no_errors(f"{codec} producer")
        check_equal(len(log.delivered), RECORDS, f"{codec}: every record acknowledged")

        messages = consume_all(bootstrap, topic, 1, RECORDS)
        check_equal(len(messages), RECORDS, f"{codec}: consumed exactly {RECORDS} records")
        for i, (message, (key, value, headers)) in enumerate(zip(messages, sent)):
            if message.offset() != i:
                check(False, f"{codec}: record {i} has offset {message.offset()}")
            if message.key() != key or message.value() != value:
                check(False, f"{codec}: record {i} differs: {message.key()!r} {message.value()[:40]!r}")
            if message.headers() != headers:
                check(False, f"{codec}: record {i} headers {message.headers()!r} != {headers!r}")
        check(True, f"{codec}: keys, values, headers and offsets match in order")
    print("compression: all checks passed")


if __name__ == "__main__":
    main()
