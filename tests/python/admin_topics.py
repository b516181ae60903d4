"""Admin API with confluent-kafka: create a topic, add partitions, delete it, create it again."""

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import NewPartitions, NewTopic

from e2e import (
    DeliveryLog,
    admin,
    bootstrap_from_argv,
    check,
    check_equal,
    create_topic,
    fail,
    flush,
    partition_count,
    wait_for,
    watermarks,
)

TOPIC = "admin-topic"


def main():
    bootstrap = bootstrap_from_argv()
    client = admin(bootstrap)

    create_topic(client, TOPIC, 3)
    check_equal(partition_count(client, TOPIC), 3, "metadata shows 3 partitions after create")

    duplicate = client.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=1)])
    try:
        duplicate[TOPIC].result(timeout=30)
        fail("creating an existing topic succeeded")
    except KafkaException as error:
        check_equal(
            error.args[0].code(),
            KafkaError.TOPIC_ALREADY_EXISTS,
            "creating an existing topic is refused with TOPIC_ALREADY_EXISTS",
        )

    futures = client.create_partitions([NewPartitions(TOPIC, 5)])
    try:
        futures[TOPIC].result(timeout=30)
    except KafkaException as error:
        fail(f"create_partitions to 5: {error}")
    wait_for(lambda: partition_count(client, TOPIC) == 5, "metadata shows 5 partitions")

    shrink = client.create_partitions([NewPartitions(TOPIC, 2)])
    try:
        shrink[TOPIC].result(timeout=30)
        fail("shrinking a topic from 5 to 2 partitions succeeded")
    except KafkaException as error:
        check_equal(
            error.args[0].code(),
            KafkaError.INVALID_PARTITIONS,
            "shrinking partitions is refused with INVALID_PARTITIONS",
        )

    # Records in the new partitions 3 and 4 must be accepted.
    log = DeliveryLog()
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for partition in range(5):
        producer.produce(TOPIC, value=f"p{partition}".encode(), partition=partition, on_delivery=log)
    flush(producer, "producing to each of the 5 partitions")
    log.check_no_errors("producing to each of the 5 partitions")
    check_equal(
        sorted(m.partition() for m in log.delivered), [0, 1, 2, 3, 4], "one record in each partition"
    )

    futures = client.delete_topics([TOPIC], operation_timeout=30)
    try:
        futures[TOPIC].result(timeout=30)
    except KafkaException as error:
        fail(f"delete_topics: {error}")
    wait_for(lambda: partition_count(client, TOPIC) is None, "the deleted topic is gone from metadata")

    create_topic(client, TOPIC, 2)
    check_equal(partition_count(client, TOPIC), 2, "the recreated topic has 2 partitions")
    for partition in range(2):
        check_equal(
            watermarks(bootstrap, TOPIC, partition),
            (0, 0),
            f"the recreated topic's partition {partition} is empty",
        )

    futures = client.delete_topics(["no-such-topic"], operation_timeout=30)
    try:
        futures["no-such-topic"].result(timeout=30)
        fail("deleting an unknown topic succeeded")
    except KafkaException as error:
        check_equal(
            error.args[0].code(),
            KafkaError.UNKNOWN_TOPIC_OR_PART,
            "deleting an unknown topic is refused with UNKNOWN_TOPIC_OR_PART",
        )
    print("admin_topics: all checks passed")


if __name__ == "__main__":
    main()
