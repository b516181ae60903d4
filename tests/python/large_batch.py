"""A record above the default 1 MB limit on a 3-replica topic: refused at first, accepted
once every broker's message.max.bytes was raised dynamically, copied by the followers (every
replica back in sync) and read back whole. large_batch.py BOOTSTRAP"""
import hashlib
import os
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   NewTopic, ResourceType)

bootstrap = sys.argv[1]
admin = AdminClient({"bootstrap.servers": bootstrap})
admin.create_topics([NewTopic("large", 1, 3, config={"min.insync.replicas": "2"})])[
    "large"].result(60)
value = os.urandom(3 * 1024 * 1024)


def produce():
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "message.max.bytes": 8 << 20,
                         "compression.type": "none"})
    outcome = {}

    def done(error, message):
        outcome["error"] = error
        outcome["offset"] = None if error else message.offset()
    producer.produce("large", value, on_delivery=done)
    producer.flush(60)
    return outcome


refused = produce()
if refused.get("error") is None or refused["error"].code() != KafkaError.MSG_SIZE_TOO_LARGE:
    sys.exit(f"FAIL: a 3 MiB record under the default limit: {refused}")
print("refused under the default limit:", refused["error"].name())

cluster = admin.describe_cluster(request_timeout=30).result(timeout=60)
for node in cluster.nodes:
    resource = ConfigResource(ResourceType.BROKER, str(node.id), incremental_configs=[
        ConfigEntry("message.max.bytes", str(4 << 20),
                    incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([resource])[resource].result(timeout=60)
print("message.max.bytes raised to 4 MiB on", len(cluster.nodes), "brokers")

accepted = produce()
if accepted.get("error") is not None:
    sys.exit(f"FAIL: the 3 MiB record after the raise: {accepted}")
print("acknowledged at offset", accepted["offset"])

deadline = time.time() + 60
while True:
    partition = admin.list_topics("large", timeout=10).topics["large"].partitions[0]
    if sorted(partition.isrs) == sorted(partition.replicas) and len(partition.replicas) == 3:
        break
    if time.time() > deadline:
        sys.exit(f"FAIL: the followers did not copy the record: isr {partition.isrs}")
    time.sleep(0.2)
print("all 3 replicas in sync")

consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "large-reader",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False,
                     "fetch.max.bytes": 16 << 20, "max.partition.fetch.bytes": 16 << 20})
consumer.subscribe(["large"])
deadline = time.time() + 60
while time.time() < deadline:
    message = consumer.poll(1.0)
    if message is None:
        continue
    if message.error():
        raise KafkaException(message.error())
    if message.offset() == accepted["offset"]:
        if hashlib.sha256(message.value()).digest() != hashlib.sha256(value).digest():
            sys.exit("FAIL: the record read back differs")
        print("read back whole:", len(message.value()), "bytes")
        consumer.close()
        sys.exit(0)
sys.exit("FAIL: the record was not read back")
