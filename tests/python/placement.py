"""Print every partition's replicas, in-sync replicas and leader (the group offsets topic's
too, which Millrace brokers leave out of an all-topics answer), and the brokers, as JSON:
placement.py BOOTSTRAP"""
import json
import sys

from confluent_kafka.admin import AdminClient

admin = AdminClient({"bootstrap.servers": sys.argv[1]})
metadata = admin.list_topics(timeout=30)
topics = list(metadata.topics.values())
if "__consumer_offsets" not in metadata.topics:
    offsets = admin.list_topics("__consumer_offsets", timeout=30).topics["__consumer_offsets"]
    if offsets.error is None:
        topics.append(offsets)
print(json.dumps({
    "brokers": sorted(metadata.brokers),
    "partitions": [
        {
            "topic": topic.topic,
            "partition": p.id,
            "replicas": list(p.replicas),
            "isr": sorted(p.isrs),
            "leader": p.leader,
        }
        for topic in topics
        for p in topic.partitions.values()
    ],
}))
