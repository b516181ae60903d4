"""A steady workload with a history checker, for tests that upgrade, roll or reboot brokers
under load: an idempotent acks=all producer at RATE records/s and a consumer group run until
STOP_FILE exists; then every acknowledged record is checked against a read of the whole topic.

Usage: workload.py BOOTSTRAP TOPIC STOP_FILE REPORT_JSON [RATE]

Creates TOPIC (3 partitions, 3 replicas, min.insync.replicas=2) unless it exists, prints
`producing` once records flow, and writes the report to REPORT_JSON (and stdout). It exits 0
whenever it wrote a report, whatever the report says: the caller judges it. Only the script's
own failures (no topic, a crash) exit non-zero."""
import json
import os
import sys
import threading
import time
import uuid

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer,
                             TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS, REPLICATION = 3, 3
# Errors no retry cures: anything else (no controller yet, too few brokers registered for the
# replication factor, timeouts) may pass while the cluster forms.
PERMANENT = {KafkaError.INVALID_CONFIG, KafkaError.POLICY_VIOLATION,
             KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.TOPIC_EXCEPTION}
SAMPLES = 10

bootstrap, topic, stop_file, report_path = sys.argv[1:5]
rate = float(sys.argv[5]) if len(sys.argv) > 5 else 200.0
run = uuid.uuid4().hex[:8]
script_started = time.monotonic()


def log(text):
    print(f"{time.strftime('%X')} {text}", flush=True)


def create_topic():
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + 60
    new = NewTopic(topic, PARTITIONS, REPLICATION, config={"min.insync.replicas": "2"})
    while True:
        try:
            admin.create_topics([new])[topic].result(timeout=30)
            log(f"created {topic}")
            break
        except Exception as exception:  # a KafkaException, or the future's own timeout
            error = exception.args[0] if isinstance(exception, KafkaException) else exception
            code = error.code() if isinstance(error, KafkaError) else None
            if code == KafkaError.TOPIC_ALREADY_EXISTS:
                log(f"{topic} exists already")
                break
            if code in PERMANENT or time.monotonic() > deadline:
                sys.exit(f"cannot create {topic}: {error!r}")
            log(f"creating {topic} failed, retrying: {error!r}")
            time.sleep(1)
    while True:
        try:
            partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
            if len(partitions) == PARTITIONS and all(p.leader >= 0 for p in partitions.values()):
                return
        except KafkaException as exception:
            log(f"metadata of {topic}: {exception}")
        if time.monotonic() > deadline:
            sys.exit(f"{topic} has no leader for each of its {PARTITIONS} partitions after 60 s")
        time.sleep(0.2)


class GroupConsumer(threading.Thread):
    """Reads the topic in a consumer group, as an application would, until told to stop."""

    def __init__(self):
        super().__init__(daemon=True)
        self.lock = threading.Lock()
        self.seen = set()
        self.redelivered = 0
        self.stopping = threading.Event()

    def run(self):
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"workload-{run}",
                             "auto.offset.reset": "earliest", "enable.auto.commit": True})
        consumer.subscribe([topic])
        errors = 0
        while not self.stopping.is_set():
            message = consumer.poll(0.2)
            if message is None:
                continue
            if message.error():
                errors += 1
                if errors <= SAMPLES:
                    log(f"group consumer: {message.error()}")
                continue
            value = message.value().decode()
            if not value.startswith(f"{run}-"):
                continue
            with self.lock:
                if value in self.seen:
                    self.redelivered += 1
                else:
                    self.seen.add(value)
        consumer.close()

    def missing(self, values):
        with self.lock:
            return [value for value in values if value not in self.seen]


def stall_ms(sent_at, finished, until):
    """The longest time in which records were outstanding and no acknowledgement arrived.

    `sent_at` holds each record's send time, `finished` each resolved record's (time, acked),
    `until` the end of the run (records still outstanding then stalled until it)."""
    events = sorted([(t, 1, False) for t in sent_at] + [(t, -1, ok) for t, ok in finished])
    longest, outstanding, since = 0.0, 0, None
    for t, step, acknowledged in events:
        if step == 1:
            outstanding += 1
            if outstanding == 1:
                since = t
            continue
        if since is None:  # resolved before its send was recorded: cannot happen, ignored
            continue
        # The wait ends with an acknowledgement, or when nothing is outstanding any more (the
        # last outstanding record failed); a failure with records still outstanding does not
        # end it.
        if acknowledged or outstanding == 1:
            longest = max(longest, t - since)
        outstanding -= 1
        if outstanding == 0:
            since = None
        elif acknowledged:
            since = t
    if outstanding and since is not None:
        longest = max(longest, until - since)
    return round(longest * 1000, 1)


def percentile(sorted_values, fraction):
    if not sorted_values:
        return None
    return round(sorted_values[int(fraction * (len(sorted_values) - 1))] * 1000, 1)


def verification_read():
    """Every record of the topic, read from the beginning of each partition to its high
    watermark without a group: {value: [(partition, offset), ...]} for this run's values."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"verify-{run}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    deadline = time.monotonic() + 60
    ends = {}
    while len(ends) < PARTITIONS and time.monotonic() < deadline:
        for partition in range(PARTITIONS):
            if partition not in ends:
                try:
                    ends[partition] = consumer.get_watermark_offsets(
                        TopicPartition(topic, partition), timeout=10)[1]
                except KafkaException as exception:
                    log(f"watermarks of partition {partition}: {exception}")
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
    positions = {p: 0 for p in ends}
    found, records = {}, 0
    while time.monotonic() < deadline and any(positions[p] < ends[p] for p in ends):
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        records += 1
        positions[message.partition()] = message.offset() + 1
        value = message.value().decode()
        if value.startswith(f"{run}-"):
            found.setdefault(value, []).append((message.partition(), message.offset()))
    consumer.close()
    complete = len(ends) == PARTITIONS and all(positions[p] >= ends[p] for p in ends)
    return found, records, complete


create_topic()
group = GroupConsumer()
group.start()

producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                     "linger.ms": 5, "delivery.timeout.ms": 120000,
                     "message.timeout.ms": 120000})
sent_at = []          # by sequence number: monotonic send time
acked = {}            # value -> (partition, offset)
latencies = []        # seconds from send to acknowledgement
finished = []         # (monotonic time, acknowledged) of each resolved record
errors = []           # "wall time seq error"


def on_delivery(seq, error, message):
    now = time.monotonic()
    finished.append((now, error is None))
    if error is None:
        acked[message.value().decode()] = (message.partition(), message.offset())
        latencies.append(now - sent_at[seq])
    else:
        errors.append(f"{time.strftime('%X')} seq {seq}: {error}")


log(f"producing to {topic} at {rate:g} records/s (run {run})")
started = time.monotonic()
next_stop_check = started
while True:
    now = time.monotonic()
    if now >= next_stop_check:
        if os.path.exists(stop_file):
            break
        next_stop_check = now + 0.1
    seq = len(sent_at)
    value = f"{run}-{seq}"
    sent_at.append(time.monotonic())
    while True:
        try:
            producer.produce(topic, value=value.encode(),
                             on_delivery=lambda e, m, seq=seq: on_delivery(seq, e, m))
            break
        except BufferError:
            producer.poll(0.1)
    # Serving callbacks while waiting for the next send time timestamps acknowledgements as
    # they arrive. One reading of the clock: reading it twice could wait a negative time.
    ahead = started + (seq + 1) / rate - time.monotonic()
    producer.poll(max(ahead, 0))
produced_for = time.monotonic() - started
log(f"stop file seen: sent {len(sent_at)}, flushing")
unflushed = producer.flush(120)
flushed_at = time.monotonic()
log(f"flushed: acknowledged {len(acked)}, errors {len(errors)}, unresolved {unflushed}")

deadline = time.monotonic() + 60
while group.missing(acked) and time.monotonic() < deadline:
    time.sleep(0.2)
group.stopping.set()
group.join(30)

found, verified_records, verification_complete = verification_read()
lost = [v for v in acked if v not in found]
misplaced = [v for v, at in acked.items() if v in found and at not in found[v]]
duplicated = [v for v, ats in found.items() if len(ats) > 1]
group_missing = group.missing(acked)
latencies.sort()
report = {
    "run_id": run,
    "topic": topic,
    "rate": rate,
    "sent": len(sent_at),
    "acknowledged": len(acked),
    "unresolved": len(sent_at) - len(finished),
    "produce_errors": len(errors),
    "produce_error_samples": errors[:SAMPLES],
    "verification_complete": verification_complete,
    "verified_records": verified_records,
    "lost": len(lost),
    "lost_samples": sorted(lost)[:SAMPLES],
    "duplicated": len(duplicated),
    "duplicated_samples": [f"{v} at {found[v]}" for v in sorted(duplicated)[:SAMPLES]],
    "misplaced": len(misplaced),
    "misplaced_samples": [f"{v} acknowledged at {acked[v]}, found at {found[v]}"
                          for v in sorted(misplaced)[:SAMPLES]],
    "group_consumed": len(group.seen),
    "group_missing": len(group_missing),
    "group_missing_samples": sorted(group_missing)[:SAMPLES],
    "group_redelivered": group.redelivered,
    "longest_stall_ms": stall_ms(sent_at, finished, flushed_at),
    "p50_ms": percentile(latencies, 0.50),
    "p99_ms": percentile(latencies, 0.99),
    "max_ms": percentile(latencies, 1.0),
    "duration_s": round(produced_for, 2),
    "total_s": round(time.monotonic() - script_started, 2),
}
text = json.dumps(report, indent=2)
with open(report_path + ".tmp", "w") as out:
    out.write(text)
os.replace(report_path + ".tmp", report_path)
print(text, flush=True)
