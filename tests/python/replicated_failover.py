"""Produce with acks=all and idempotence to a replicated topic while a broker is killed -9,
then read everything back: every acknowledged record must be there exactly once, at its
acknowledged offset, with its content. Usage: replicated_failover.py BOOTSTRAP TOPIC VICTIM_PID"""
import os
import signal
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

bootstrap, topic, victim = sys.argv[1], sys.argv[2], int(sys.argv[3])
run = uuid.uuid4().hex[:8]
producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                     "acks": "all", "linger.ms": 5})
acked, errors, acked_at = {}, [], {}


def delivered(error, message):
    if error:
        errors.append(str(error))
    else:
        acked[(message.partition(), message.offset())] = message.value()
        acked_at[int(message.key())] = time.time()


start = time.time()
sent, killed_at, first_after_kill = 0, None, None
while time.time() - start < 12:
    producer.produce(topic, value=f"{run}-{sent}".encode(), key=str(sent).encode(),
                     on_delivery=delivered)
    sent += 1
    producer.poll(0)
    if killed_at is None and time.time() - start > 2:
        os.kill(victim, signal.SIGKILL)
        killed_at, first_after_kill = time.time(), sent
        print(f"killed pid {victim} after {sent} records")
    time.sleep(0.0005)
producer.flush(60)
# Time from the kill to the first acknowledgement of a record sent after it.
after = [t for i, t in acked_at.items() if first_after_kill is not None and i >= first_after_kill]
recovered_after = min(after) - killed_at if after else None
print(f"sent {sent}, acknowledged {len(acked)}, delivery errors {len(errors)} {errors[:3]}")
print(f"produce resumed {recovered_after:.2f} s after the kill" if recovered_after else
      "produce did not resume")

consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"verify-{run}",
                     "enable.auto.commit": False})
partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
seen, deadline = {}, time.time() + 60
while time.time() < deadline and not all(k in seen for k in acked):
    message = consumer.poll(1.0)
    if message is None or message.error():
        continue
    key = (message.partition(), message.offset())
    if key in seen and seen[key] != message.value():
        print(f"FAIL: offset {key} changed content")
        sys.exit(1)
    seen[key] = message.value()
missing = [k for k in acked if k not in seen]
changed = [k for k in acked if k in seen and seen[k] != acked[k]]
ours = [v for v in seen.values() if v.startswith(run.encode())]
duplicates = len(ours) - len(set(ours))
print(f"read {len(seen)}: missing {len(missing)}, changed {len(changed)}, duplicated {duplicates}")
if missing or changed or duplicates or not acked or recovered_after is None:
    print("FAIL")
    sys.exit(1)
print("OK")
