"""A consumer group keeps consuming across its coordinator's death (kill -9) without reading
again what it had committed. Usage: group_coordinator_failover.py BOOTSTRAP TOPIC COUNT PIDS
where PIDS is "broker_id:pid,..." of the cluster's brokers."""
import os
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
pids = dict(tuple(int(x) for x in pair.split(":")) for pair in sys.argv[4].split(","))
group = "failover-group"

producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
for i in range(count):
    producer.produce(topic, value=str(i).encode())
    producer.poll(0)
assert producer.flush(60) == 0

consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "session.timeout.ms": 10000})
consumer.subscribe([topic])
consumed = []             # (partition, offset) in order
committed = {}            # partition -> next offset, as acknowledged by the coordinator
killed, committed_at_kill = None, {}
deadline = time.time() + 90
while len({(p, o) for p, o in consumed}) < count and time.time() < deadline:
    message = consumer.poll(0.5)
    if message is None or message.error():
        continue
    consumed.append((message.partition(), message.offset()))
    if len(consumed) % 100 == 0:
        try:
            for tp in consumer.commit(asynchronous=False):
                committed[tp.partition] = tp.offset
        except KafkaException as error:
            print(f"commit failed (retried with the next batch): {error}")
    if killed is None and len(consumed) >= count // 2:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        description = admin.describe_consumer_groups([group])[group].result(timeout=10)
        coordinator = description.coordinator.id
        committed_at_kill = dict(committed)
        os.kill(pids[coordinator], signal.SIGKILL)
        killed = time.time()
        print(f"killed coordinator {coordinator} after {len(consumed)} records; committed {committed_at_kill}")
consumer.close()

distinct = {(p, o) for p, o in consumed}
first_after_kill = {}
position = next((i for i, _ in enumerate(consumed) if killed and i >= count // 2), len(consumed))
for p, o in consumed[position + 1:]:
    first_after_kill.setdefault(p, o)
reread = [(p, o) for (p, o) in consumed[position + 1:]
          if o < committed_at_kill.get(p, 0) and (p, o) in set(consumed[:position + 1])]
if reread:
    print(f"re-read sample: {reread[:5]} ... {reread[-5:]}")
print(f"first offsets read after the kill: {first_after_kill}")
print(f"consumed {len(consumed)} ({len(distinct)} distinct of {count}); "
      f"re-read below the committed offsets: {len(reread)}")
if killed is None or len(distinct) < count or reread:
    print("FAIL")
    sys.exit(1)
print("OK")
