"""DescribeConfigs and IncrementalAlterConfigs on a topic; unsupported settings (compaction) and
unknown keys are refused with a clear error."""

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from e2e import admin, bootstrap_from_argv, check, check_equal, create_topic, fail

TOPIC = "configured"
DEFAULT_RETENTION_MS = str(7 * 24 * 3600 * 1000)


def describe(client, topic):
    resource = ConfigResource(ResourceType.TOPIC, topic)
    futures = client.describe_configs([resource], request_timeout=15)
    return futures[resource].result(timeout=20)


def alter(client, topic, name, value, op=AlterConfigOpType.SET):
    resource = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[ConfigEntry(name, value, incremental_operation=op)],
    )
    futures = client.incremental_alter_configs([resource], request_timeout=15)
    return futures[resource].result(timeout=20)


def main():
    bootstrap = bootstrap_from_argv()
    client = admin(bootstrap)
    create_topic(client, TOPIC, 1, {"retention.ms": "3600000", "segment.bytes": "1048576"})

    configs = describe(client, TOPIC)
    check_equal(configs["retention.ms"].value, "3600000", "retention.ms set at creation")
    check_equal(configs["retention.ms"].is_default, False, "retention.ms is not a default")
    check_equal(configs["segment.bytes"].value, "1048576", "segment.bytes set at creation")
    check_equal(configs["cleanup.policy"].value, "delete", "cleanup.policy is delete")

    alter(client, TOPIC, "retention.ms", "12345")
    check_equal(describe(client, TOPIC)["retention.ms"].value, "12345", "retention.ms after SET")

    try:
        alter(client, TOPIC, "cleanup.policy", "compact")
        fail("setting cleanup.policy=compact succeeded")
    except KafkaException as error:
        kafka_error = error.args[0]
        check_equal(kafka_error.code(), KafkaError.INVALID_CONFIG, "cleanup.policy=compact is INVALID_CONFIG")
        check("compact" in kafka_error.str().lower(), f"the error says why: {kafka_error.str()!r}")
    check_equal(describe(client, TOPIC)["cleanup.policy"].value, "delete", "cleanup.policy unchanged")
    check_equal(describe(client, TOPIC)["retention.ms"].value, "12345", "retention.ms unchanged by the refusal")

    try:
        alter(client, TOPIC, "no.such.config", "1")
        fail("setting an unknown config succeeded")
    except KafkaException as error:
        check_equal(error.args[0].code(), KafkaError.INVALID_CONFIG, "an unknown config key is INVALID_CONFIG")

    try:
        alter(client, TOPIC, "retention.ms", "soon")
        fail("setting retention.ms=soon succeeded")
    except KafkaException as error:
        check_equal(error.args[0].code(), KafkaError.INVALID_CONFIG, "a non-numeric retention.ms is INVALID_CONFIG")

    alter(client, TOPIC, "retention.ms", None, AlterConfigOpType.DELETE)
    configs = describe(client, TOPIC)
    check_equal(configs["retention.ms"].value, DEFAULT_RETENTION_MS, "retention.ms back to the default after DELETE")

    futures = client.create_topics(
        [NewTopic("compacted", num_partitions=1, replication_factor=1, config={"cleanup.policy": "compact"})]
    )
    try:
        futures["compacted"].result(timeout=20)
        fail("creating a topic with cleanup.policy=compact succeeded")
    except KafkaException as error:
        check_equal(
            error.args[0].code(), KafkaError.INVALID_CONFIG, "creating a compacted topic is INVALID_CONFIG"
        )

    try:
        describe(client, "no-such-topic")
        fail("describe_configs of an unknown topic succeeded")
    except KafkaException as error:
        check_equal(
            error.args[0].code(),
            KafkaError.UNKNOWN_TOPIC_OR_PART,
            "describe_configs of an unknown topic is UNKNOWN_TOPIC_OR_PART",
        )
    print("topic_configs: all checks passed")


if __name__ == "__main__":
    main()
