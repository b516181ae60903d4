"""Wait until every partition of TOPIC has REPLICAS in-sync replicas:
wait_in_sync.py BOOTSTRAP TOPIC REPLICAS TIMEOUT_S"""
import sys
import time

from confluent_kafka.admin import AdminClient

bootstrap, topic, replicas, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
admin = AdminClient({"bootstrap.servers": bootstrap})
deadline = time.time() + timeout
while time.time() < deadline:
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions.values()
    isrs = {p.id: sorted(p.isrs) for p in partitions}
    if all(len(isr) == replicas for isr in isrs.values()):
        print(f"in sync: {isrs}")
        sys.exit(0)
    time.sleep(0.5)
print(f"FAIL: in-sync replicas after {timeout} s: {isrs}")
sys.exit(1)
