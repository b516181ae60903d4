"""Create a topic: create_topic.py BOOTSTRAP TOPIC PARTITIONS REPLICATION [KEY=VALUE,...]"""
import sys
import time

from confluent_kafka.admin import AdminClient, NewTopic

bootstrap, topic, partitions, replication = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
config = dict(pair.split("=", 1) for pair in sys.argv[5].split(",")) if len(sys.argv) > 5 else {}
admin = AdminClient({"bootstrap.servers": bootstrap})
for future in admin.create_topics([NewTopic(topic, partitions, replication, config=config)]).values():
    future.result(timeout=30)
# Wait until every partition has a leader.
deadline = time.time() + 30
while time.time() < deadline:
    meta = admin.list_topics(topic, timeout=10).topics[topic]
    if len(meta.partitions) == partitions and all(p.leader >= 0 for p in meta.partitions.values()):
        print(f"created {topic}: {partitions} partitions x {replication} replicas")
        sys.exit(0)
    time.sleep(0.2)
print("FAIL: partitions without a leader")
sys.exit(1)
