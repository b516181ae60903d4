"""A classic consumer group under rebalances: A and B consume a 6-partition topic, C joins, B
leaves. Every record is consumed, and no record is consumed again after its offset was committed.

Each consumer is polled by its own thread (a synchronous commit may wait for a rebalance that
needs the other members to poll). Events (consumptions, successful commits) go to one shared
list in the order they happened.
"""

import sys
import threading
import time
from collections import defaultdict

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from e2e import DeliveryLog, admin, bootstrap_from_argv, check, check_equal, create_topic, fail, flush

TOPIC = "grouped"
GROUP = "group-g"
PARTITIONS = 6
RECORDS = 20_000
DEADLINE_S = 60


class Member:
    def __init__(self, name, bootstrap, strategy, events):
        self.name = name
        self.events = events
        self.assignments = []
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": GROUP,
                "group.protocol": "classic",
                "partition.assignment.strategy": strategy,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 1000,
                "client.id": f"member-{name}",
            }
        )
        self.consumer.subscribe([TOPIC], on_assign=self.on_assign, on_revoke=self.on_revoke)
        self.closed = False
        self.running = threading.Event()
        self.thread = None
        self.error = None
        self.owned_now = []

    def start(self):
        self.running.set()
        self.thread = threading.Thread(target=self.loop, name=self.name, daemon=True)
        self.thread.start()

    def loop(self):
        try:
            while self.running.is_set():
                self.step()
                self.owned_now = self.owned()
        except SystemExit as error:
            self.error = f"{self.name} failed (see above): {error}"
        except Exception as error:  # noqa: BLE001 - reported by the main thread
            self.error = f"{self.name}: {error!r}"

    def stop(self):
        self.running.clear()
        if self.thread is not None:
            self.thread.join(timeout=90)
            if self.thread.is_alive():
                fail(f"{self.name}'s polling thread did not stop within 90 s")

    def on_assign(self, consumer, partitions):
        self.assignments.append(("assign", sorted(p.partition for p in partitions)))
        print(f"{self.name}: assigned {sorted(p.partition for p in partitions)}", flush=True)

    def on_revoke(self, consumer, partitions):
        self.assignments.append(("revoke", sorted(p.partition for p in partitions)))
        print(f"{self.name}: revoked {sorted(p.partition for p in partitions)}", flush=True)

    def owned(self):
        return sorted(p.partition for p in self.consumer.assignment())

    def step(self):
        """Polls one batch, records it, commits it synchronously; returns the batch size."""
        batch = self.consumer.consume(num_messages=250, timeout=0.1)
        next_offsets = {}
        for message in batch:
            if message.error():
                fail(f"{self.name}: consumer error: {message.error()}")
            self.events.append(("consumed", self.name, message.partition(), message.offset(), message.value()))
            next_offsets[message.partition()] = message.offset() + 1
        if not next_offsets:
            return 0
        offsets = [TopicPartition(TOPIC, p, o) for p, o in sorted(next_offsets.items())]
        try:
            committed = self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as error:
            # Refused as a whole (e.g. the group is rebalancing): nothing was committed, and these
            # records may legitimately be consumed again.
            self.events.append(("commit-failed", self.name, str(error)))
            print(f"{self.name}: commit refused: {error}", flush=True)
            return len(batch)
        for tp in committed:
            if tp.error is None:
                self.events.append(("committed", self.name, tp.partition, tp.offset))
            else:
                self.events.append(("commit-failed", self.name, f"{tp.partition}: {tp.error}"))
                print(f"{self.name}: commit of partition {tp.partition} refused: {tp.error}", flush=True)
        return len(batch)

    def commit_positions(self):
        """Commits the position of every owned partition (the next record to process), so that
        a batch whose commit was refused during a rebalance is covered once the group is stable."""
        owned = self.consumer.assignment()
        if not owned:
            return
        positions = [tp for tp in self.consumer.position(owned) if tp.offset >= 0]
        if not positions:
            return
        for tp in self.consumer.commit(offsets=positions, asynchronous=False):
            if tp.error is not None:
                fail(f"{self.name}: committing the position of partition {tp.partition}: {tp.error}")
            self.events.append(("committed", self.name, tp.partition, tp.offset))

    def close(self):
        self.consumer.close()
        self.closed = True


def consumed_count(events):
    return len({(e[2], e[3]) for e in events if e[0] == "consumed"})


def main():
    bootstrap = bootstrap_from_argv()
    strategy = sys.argv[2] if len(sys.argv) > 2 else "range"
    client = admin(bootstrap)
    create_topic(client, TOPIC, PARTITIONS)

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    log = DeliveryLog()
    for i in range(RECORDS):
        producer.produce(TOPIC, value=f"record-{i}".encode(), partition=i % PARTITIONS, on_delivery=log)
        producer.poll(0)
    flush(producer, "pre-producing")
    log.check_no_errors("pre-producing")
    produced = {(m.partition(), m.offset()): m.value() for m in log.delivered}
    check_equal(len(produced), RECORDS, f"{RECORDS} records pre-produced")
    ends = defaultdict(int)
    for partition, offset in produced:
        ends[partition] = max(ends[partition], offset + 1)

    started = time.monotonic()
    events = []

    def run(members, until, what):
        while not until():
            for member in members:
                if member.error:
                    fail(f"{what}: {member.error}")
            if time.monotonic() - started > DEADLINE_S:
                fail(
                    f"{what}: not done after {DEADLINE_S}s; consumed {consumed_count(events)} distinct records; "
                    + "; ".join(f"{m.name} owns {m.owned_now}" for m in members)
                )
            time.sleep(0.05)

    def covered(*members):
        owned = [p for m in members for p in m.owned_now]
        return all(m.owned_now for m in members) and sorted(owned) == list(range(PARTITIONS))

    a = Member("A", bootstrap, strategy, events)
    b = Member("B", bootstrap, strategy, events)
    a.start()
    b.start()
    run([a, b], lambda: consumed_count(events) >= 4000 and covered(a, b), "A and B share the partitions")
    check(True, f"A owns {a.owned_now}, B owns {b.owned_now}")

    c = Member("C", bootstrap, strategy, events)
    c.start()
    before_c = consumed_count(events)
    run(
        [a, b, c],
        lambda: covered(a, b, c) and consumed_count(events) >= min(before_c + 3000, RECORDS - 3000),
        "C joins and the three share the partitions",
    )
    check(True, f"after C joined: A owns {a.owned_now}, B owns {b.owned_now}, C owns {c.owned_now}")

    b.stop()
    b.close()
    print("B left the group", flush=True)
    run([a, c], lambda: covered(a, c) and consumed_count(events) >= RECORDS, "A and C consume the rest")
    check(True, f"after B left: A owns {a.owned_now}, C owns {c.owned_now}")
    a.stop()
    c.stop()
    # Nothing left to read and the group is stable: commit where each member stands.
    a.commit_positions()
    c.commit_positions()

    # Every record consumed, with its produced value.
    consumed = {}
    for event in events:
        if event[0] == "consumed":
            _, name, partition, offset, value = event
            if produced.get((partition, offset)) != value:
                fail(f"{name} read {value!r} at {partition}/{offset}; produced {produced.get((partition, offset))!r}")
            consumed[(partition, offset)] = value
    check_equal(len(consumed), RECORDS, "every record consumed at least once, with its produced value")

    # No record consumed again after a commit covering it succeeded.
    committed = defaultdict(int)
    redelivered = 0
    seen = set()
    for event in events:
        if event[0] == "committed":
            _, name, partition, offset = event
            committed[partition] = max(committed[partition], offset)
        elif event[0] == "consumed":
            _, name, partition, offset, _ = event
            if offset < committed[partition]:
                fail(
                    f"{name} consumed {partition}/{offset} after offset {committed[partition]} "
                    f"of partition {partition} had been committed"
                )
            if (partition, offset) in seen:
                redelivered += 1
            seen.add((partition, offset))
    check(True, f"no committed record consumed again ({redelivered} uncommitted records redelivered)")

    checker = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP})
    final = checker.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=10)
    checker.close()
    check_equal(
        {tp.partition: tp.offset for tp in final},
        dict(ends),
        "the group's committed offsets are the partitions' ends",
    )
    a.close()
    c.close()
    print(f"consumer_groups ({strategy}): all checks passed in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
