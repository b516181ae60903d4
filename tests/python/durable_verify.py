"""After a restart: every acknowledged record (from durable_produce.py's state files) is in the
log exactly once at its acknowledged offset, nothing else is, and the committed group offsets
survived.

usage: durable_verify.py BOOTSTRAP STATE_FILE [STATE_FILE...]
"""

import json
import sys
from collections import defaultdict

from confluent_kafka import Consumer, TopicPartition

from e2e import bootstrap_from_argv, check, check_equal, consume_all, fail, watermarks


def main():
    bootstrap = bootstrap_from_argv()
    states = []
    for path in sys.argv[2:]:
        with open(path) as state_file:
            states.append(json.load(state_file))
    topic = states[0]["topic"]
    expected = {}
    for state in states:
        for partition, offset, value in state["acknowledged"]:
            if (partition, offset) in expected:
                fail(f"two acknowledgements for {partition}/{offset}")
            expected[(partition, offset)] = value
    partitions = sorted({p for p, _ in expected})
    ends = defaultdict(int)
    for partition, offset in expected:
        ends[partition] = max(ends[partition], offset + 1)
    for partition in partitions:
        check_equal(
            watermarks(bootstrap, topic, partition),
            (0, ends[partition]),
            f"partition {partition} watermarks match the acknowledged records",
        )

    messages = consume_all(bootstrap, topic, len(partitions), len(expected))
    found = defaultdict(list)
    for message in messages:
        found[(message.partition(), message.offset())].append(message.value().decode())
    for (partition, offset), value in expected.items():
        got = found.get((partition, offset), [])
        if got != [value]:
            fail(f"{partition}/{offset}: acknowledged {value!r}, the log has {got!r}")
    extra = set(found) - set(expected)
    if extra:
        fail(f"{len(extra)} records nobody acknowledged, e.g. {sorted(extra)[:5]}")
    values = [v for vs in found.values() for v in vs]
    check_equal(len(values), len(set(values)), "no value appears twice")
    check(True, f"all {len(expected)} acknowledged records are at their offsets, exactly once")

    group, positions = states[-1]["group"], states[-1]["committed"]
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    committed = consumer.committed([TopicPartition(topic, int(p)) for p in positions], timeout=10)
    consumer.close()
    check_equal(
        {str(tp.partition): tp.offset for tp in committed},
        positions,
        "the committed group offsets survived the restart",
    )
    print("durable_verify: all checks passed")


if __name__ == "__main__":
    main()
