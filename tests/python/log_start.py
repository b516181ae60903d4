"""A partition's log start offset (earliest offset):
log_start.py delete BOOTSTRAP TOPIC PARTITION OFFSET    DeleteRecords before OFFSET
log_start.py expect BOOTSTRAP TOPIC PARTITION OFFSET    earliest offset is OFFSET (waits up to 60 s,
                                                        through leader changes)"""
import sys
import time

from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

mode, bootstrap, topic, partition, offset = sys.argv[1:6]
partition, offset = int(partition), int(offset)
admin = AdminClient({"bootstrap.servers": bootstrap})
tp = TopicPartition(topic, partition, offset)

if mode == "delete":
    (future,) = admin.delete_records([tp], request_timeout=15).values()
    low = future.result(timeout=20).low_watermark
    print(f"deleted records before {offset}: low watermark {low}")
    sys.exit(0 if low == offset else 1)

deadline = time.time() + 60
seen = None
while time.time() < deadline:
    # A new client each time: one whose cached leader is dead keeps asking it.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        (future,) = admin.list_offsets({TopicPartition(topic, partition): OffsetSpec.earliest()}).values()
        seen = future.result(timeout=10).offset
        if seen == offset:
            print(f"earliest offset of {topic}-{partition}: {seen}")
            sys.exit(0)
    except Exception as error:  # a leader change in progress: ask again
        seen = repr(error)
    time.sleep(0.5)
print(f"FAIL: earliest offset of {topic}-{partition} is {seen}, expected {offset}")
sys.exit(1)
