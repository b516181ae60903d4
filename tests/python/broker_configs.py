"""Dynamic broker configuration through IncrementalAlterConfigs on the BROKER resource, as
`kafka-configs.sh --entity-type brokers --entity-name 1 --alter` or an admin client does it:
a log default changed at runtime reaches every topic that does not override it, at once;
settings read at start are refused with INVALID_CONFIG; DELETE returns to the start flag."""

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, ResourceType

from e2e import admin, bootstrap_from_argv, check_equal, create_topic, fail

BROKER = "1"
DEFAULT_RETENTION_MS = str(7 * 24 * 3600 * 1000)


def describe(client, kind, name):
    resource = ConfigResource(kind, name)
    futures = client.describe_configs([resource], request_timeout=15)
    return futures[resource].result(timeout=20)


def alter_broker(client, name, value, op=AlterConfigOpType.SET):
    resource = ConfigResource(
        ResourceType.BROKER,
        BROKER,
        incremental_configs=[ConfigEntry(name, value, incremental_operation=op)],
    )
    futures = client.incremental_alter_configs([resource], request_timeout=15)
    return futures[resource].result(timeout=20)


def main():
    bootstrap = bootstrap_from_argv()
    client = admin(bootstrap)
    create_topic(client, "follows-broker", 1, {})
    create_topic(client, "overrides", 1, {"retention.ms": "3600000"})

    broker = describe(client, ResourceType.BROKER, BROKER)
    check_equal(broker["log.retention.ms"].value, DEFAULT_RETENTION_MS, "log.retention.ms from the flags")
    check_equal(broker["log.retention.ms"].source, ConfigSource.STATIC_BROKER_CONFIG.value, "a static source")
    check_equal(broker["log.retention.ms"].is_read_only, False, "log.retention.ms is dynamic")
    check_equal(broker["auto.create.topics.enable"].is_read_only, True, "auto.create is read at start")

    alter_broker(client, "log.retention.ms", "60000")
    broker = describe(client, ResourceType.BROKER, BROKER)
    check_equal(broker["log.retention.ms"].value, "60000", "log.retention.ms after SET")
    check_equal(broker["log.retention.ms"].source, ConfigSource.DYNAMIC_BROKER_CONFIG.value, "a dynamic source")
    topic = describe(client, ResourceType.TOPIC, "follows-broker")
    check_equal(topic["retention.ms"].value, "60000", "a topic without an override follows the broker")
    topic = describe(client, ResourceType.TOPIC, "overrides")
    check_equal(topic["retention.ms"].value, "3600000", "a topic override wins over the broker")

    for name, value, why in [
        ("auto.create.topics.enable", "true", "a setting read at start"),
        ("log.retention.ms", "soon", "a non-numeric value"),
        ("no.such.setting", "1", "an unknown setting"),
    ]:
        try:
            alter_broker(client, name, value)
            fail(f"{why} ({name}={value}) was accepted")
        except KafkaException as error:
            check_equal(error.args[0].code(), KafkaError.INVALID_CONFIG, f"{why} is INVALID_CONFIG")
    check_equal(
        describe(client, ResourceType.BROKER, BROKER)["log.retention.ms"].value, "60000", "unchanged by refusals"
    )

    alter_broker(client, "log.retention.ms", None, AlterConfigOpType.DELETE)
    topic = describe(client, ResourceType.TOPIC, "follows-broker")
    check_equal(topic["retention.ms"].value, DEFAULT_RETENTION_MS, "back to the flag after DELETE")
    print("broker_configs: all checks passed")


if __name__ == "__main__":
    main()
