"""Produce N records with acks=all: produce_count.py BOOTSTRAP TOPIC N"""
import sys

from confluent_kafka import Producer

bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
failures = []
for i in range(count):
    producer.produce(topic, value=str(i).encode(), key=str(i).encode(),
                     on_delivery=lambda e, m: failures.append(e) if e else None)
    producer.poll(0)
producer.flush(60)
print(f"produced {count}, failures {len(failures)}")
sys.exit(1 if failures else 0)
