"""Topic names Kafka rejects are refused with INVALID_TOPIC_EXCEPTION; producing to one fails the
delivery; the broker keeps serving."""

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import NewTopic

from e2e import DeliveryLog, admin, bootstrap_from_argv, check, check_equal, create_topic, fail, partition_count

BAD_NAMES = ["with space", "slash/y", "x" * 250, "..", ".", "star*", "umlaut-\u00fc"]


def main():
    bootstrap = bootstrap_from_argv()
    client = admin(bootstrap)
    for name in BAD_NAMES:
        futures = client.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
        try:
            futures[name].result(timeout=20)
            fail(f"creating topic {name!r} succeeded")
        except KafkaException as error:
            check_equal(
                error.args[0].code(),
                KafkaError.TOPIC_EXCEPTION,
                f"creating topic {name[:30]!r} is INVALID_TOPIC_EXCEPTION",
            )

    # The longest legal name is fine.
    create_topic(client, "y" * 249, 1)

    producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 10000})
    log = DeliveryLog()
    try:
        producer.produce("with space", value=b"nope", on_delivery=log)
        producer.flush(20)
        check(len(log.delivered) == 0 and len(log.errors) == 1, f"producing to 'with space' fails: {log.errors}")
    except KafkaException as error:
        check(True, f"producing to 'with space' is refused by the client: {error}")

    topics = client.list_topics(timeout=10).topics
    for name in BAD_NAMES:
        check(name not in topics, f"{name[:30]!r} is not in the metadata")
    check_equal(partition_count(client, "y" * 249), 1, "the broker still answers metadata")
    print("invalid_topic_names: all checks passed")


if __name__ == "__main__":
    main()
