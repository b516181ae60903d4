"""Produce with acks=all and the client's default retries for SECONDS, at about RATE records/s,
while brokers are restarted around it; then read everything back. Fails on any delivery error,
or if an acknowledged record is missing. Usage: produce_steadily.py BOOTSTRAP TOPIC SECONDS RATE"""
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

bootstrap, topic, seconds, rate = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
run = uuid.uuid4().hex[:8]
producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
acked, errors = {}, []


def delivered(error, message):
    if error:
        errors.append(f"{time.strftime('%X')} {error}")
    else:
        acked[(message.partition(), message.offset())] = message.value()


start, sent = time.time(), 0
while time.time() - start < seconds:
    # One reading of the clock: checking and then reading it again could sleep a negative time.
    ahead = start + sent / rate - time.time()
    if ahead > 0:
        time.sleep(ahead)
    producer.produce(topic, value=f"{run}-{sent}".encode(), on_delivery=delivered)
    sent += 1
    producer.poll(0)
producer.flush(120)
print(f"sent {sent}, acknowledged {len(acked)}, delivery errors {len(errors)}: {errors[:5]}")

consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"verify-{run}",
                     "enable.auto.commit": False})
partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
seen, deadline = {}, time.time() + 60
while time.time() < deadline and not all(k in seen for k in acked):
    message = consumer.poll(1.0)
    if message is not None and not message.error():
        seen[(message.partition(), message.offset())] = message.value()
missing = [k for k in acked if seen.get(k) != acked[k]]
print(f"read back {len(seen)}, missing or changed {len(missing)}")
if errors or missing or len(acked) != sent:
    print("FAIL")
    sys.exit(1)
print("OK")
