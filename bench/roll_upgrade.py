"""An in-place version upgrade of a 3-broker cluster holding data, driven through the control
plane while a producer runs: wall time of the roll, time each broker spent out of the ISR, produce
errors, the longest produce stall, and p99 produce latency during the roll against the steady
p99 measured just before it. It prints figures; it is not a test.

Usage (after the README's build of millrace, millrace-agent and millrace-broker):
    python3 bench/roll_upgrade.py [--bin-dir target/release] [--gib 1] [--rate 500]
                                  [--old-broker PATH]

The cluster starts on version `millrace-0.0.1-bench` and is upgraded to `millrace-0.1.0`. The
old version is `--old-broker` (e.g. the broker the tests build from an earlier commit,
~/.cache/millrace-old-broker/target/debug/millrace-broker) or, by default, a copy of the current
broker: the roll then measures the mechanism (drain, stop, start another binary on the same
volume, catch up, preferred leaders back), not a difference between versions. Needs the
confluent-kafka package; uses ports from 40000 and a temporary directory."""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

TOKEN = "mr_bench_roll_token_0123456789abcdef"
OLD, NEW = "millrace-0.0.1-bench", "millrace-0.1.0"

parser = argparse.ArgumentParser()
parser.add_argument("--bin-dir", default="target/release")
parser.add_argument("--gib", type=float, default=1.0, help="data on each broker before the roll")
parser.add_argument("--rate", type=int, default=500, help="records/s during the measurement")
parser.add_argument("--old-broker", default=None)
parser.add_argument("--producer-config", action="append", default=[], metavar="KEY=VALUE",
                    help="a librdkafka setting for the measured producer (repeatable)")
parser.add_argument("--timeline", action="store_true",
                    help="print the roll's steps and its slow records against time")
args = parser.parse_args()

work = tempfile.mkdtemp(prefix="millrace-bench-roll-")
bin_dir = os.path.join(work, "bin")
os.makedirs(os.path.join(bin_dir, OLD))
for name in ("millrace", "millrace-agent", "millrace-broker"):
    os.symlink(os.path.abspath(os.path.join(args.bin_dir, name)), os.path.join(bin_dir, name))
shutil.copy(args.old_broker or os.path.join(args.bin_dir, "millrace-broker"),
            os.path.join(bin_dir, OLD, "millrace-broker"))
port = 40000
log = open(os.path.join(work, "serve.log"), "w")
server = subprocess.Popen(
    [os.path.join(bin_dir, "millrace"), "serve", "--listen", f"127.0.0.1:{port}",
     "--data-dir", os.path.join(work, "data"), "--node-ports", "40100-40300",
     "--bin-dir", bin_dir],
    env={**os.environ, "MILLRACE_ADMIN_TOKEN": TOKEN}, stdout=log, stderr=subprocess.STDOUT)


def api(method, path, body=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        sys.exit(f"{method} {path}: {error.code} {error.read().decode()}")


def wait(what, check, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception:
            pass
        time.sleep(0.2)
    sys.exit(f"{what} did not happen in {timeout} s; see {work}/serve.log")


try:
    wait("millrace serve", lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz"))
    cluster = api("POST", "/v1/clusters", {
        "clusterName": "bench-roll", "kafkaVersion": OLD, "numberOfBrokerNodes": 3,
        "brokerNodeGroupInfo": {"instanceType": "kafka.m5.large",
                                "zones": ["zone-a", "zone-b", "zone-c"],
                                "storageInfo": {"ebsStorageInfo": {"volumeSize": 10}}}})
    cid = cluster["clusterId"]
    wait("ACTIVE", lambda: api("GET", f"/v1/clusters/{cid}")["state"] == "ACTIVE")
    bootstrap = api("GET", f"/v1/clusters/{cid}/bootstrap-brokers")["bootstrapBrokerString"]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("roll", 3, 3, config={"min.insync.replicas": "2"})])[
        "roll"].result(60)

    # Fill: every broker holds a replica of every partition, so each holds the whole topic.
    t0 = time.time()
    fill = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20,
                     "batch.size": 1 << 20, "compression.type": "none"})
    value = os.urandom(10_000)
    for _ in range(int(args.gib * (1 << 30) / len(value))):
        while True:
            try:
                fill.produce("roll", value)
                break
            except BufferError:
                fill.poll(0.05)
        fill.poll(0)
    fill.flush(300)
    print(f"filled {args.gib} GiB (3 replicas) in {time.time() - t0:.1f} s")
    # The steady figures must not measure the disk still writing the fill back.
    t0 = time.time()
    os.sync()
    print(f"the disk took {time.time() - t0:.1f} s more to write the fill")

    latencies, errors, acks, sent_at = [], [], [], []
    # The producer's first records wait for its metadata, connections and producer id; they are
    # not the steady state.
    phase = {"name": "warm-up"}
    stop = threading.Event()

    def produce():
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                             "enable.idempotence": True, "linger.ms": 5,
                             **dict(kv.split("=", 1) for kv in args.producer_config)})
        sent = 0
        start = time.time()
        while not stop.is_set():
            ahead = start + sent / args.rate - time.time()
            if ahead > 0:
                time.sleep(ahead)
            at, name = time.time(), phase["name"]

            def done(error, _message, at=at, name=name):
                now = time.time()
                if error:
                    errors.append((name, str(error)))
                else:
                    latencies.append((name, (now - at) * 1000))
                    sent_at.append((name, at, (now - at) * 1000, _message.partition()))
                    acks.append((name, now))
            producer.produce("roll", b"x" * 100, on_delivery=done)
            sent += 1
            producer.poll(0)
        producer.flush(120)

    out_of_isr = {b: 0.0 for b in (1, 2, 3)}

    def watch_isr():
        last = time.time()
        while not stop.is_set():
            try:
                topics = admin.list_topics("roll", timeout=5).topics["roll"].partitions.values()
                now = time.time()
                missing = {b for p in topics for b in p.replicas if b not in p.isrs}
                if phase["name"] == "roll":
                    for b in missing:
                        out_of_isr[b] = out_of_isr.get(b, 0.0) + (now - last)
                last = now
            except Exception:
                pass
            time.sleep(0.1)

    threads = [threading.Thread(target=produce), threading.Thread(target=watch_isr)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    phase["name"] = "steady"
    time.sleep(20)
    phase["name"] = "roll"
    cluster = api("GET", f"/v1/clusters/{cid}")
    t0 = time.time()
    op = api("PUT", f"/v1/clusters/{cid}/version", {
        "currentVersion": cluster["currentVersion"], "targetKafkaVersion": NEW,
        "upgradeStrategy": "inPlace"})["operationId"]
    final = wait("the upgrade", lambda: (lambda o: o if o["operationState"] in (
        "UPDATE_COMPLETE", "UPDATE_FAILED") else None)(api("GET", f"/v1/operations/{op}")),
        timeout=900)
    roll_s = time.time() - t0
    phase["name"] = "after"
    time.sleep(5)
    stop.set()
    for thread in threads:
        thread.join()

    def p99(name):
        values = sorted(ms for n, ms in latencies if n == name)
        return values[int(len(values) * 0.99)] if values else float("nan")

    def longest_stall(name):
        times = sorted(t for n, t in acks if n == name)
        return max((b - a for a, b in zip(times, times[1:])), default=0.0) * 1000

    print(f"operation {final['operationState']} ({final.get('errorInfo') or 'no error'})")
    print(f"in-place upgrade of 3 brokers holding {args.gib} GiB each: {roll_s:.1f} s")
    for step in final["operationSteps"]:
        if step["stepName"].startswith(("RestartBroker", "WaitInSync")):
            print(f"  {step['stepName']}: {step.get('message', '')}")
    print("time out of the ISR (any partition): " +
          ", ".join(f"broker {b} {s:.1f} s" for b, s in sorted(out_of_isr.items())))
    print(f"produce errors during the roll: {sum(1 for n, _ in errors if n == 'roll')}"
          f" {[e for n, e in errors][:3]}")
    print(f"p99 produce latency: steady {p99('steady'):.1f} ms, during the roll "
          f"{p99('roll'):.1f} ms ({p99('roll') / p99('steady'):.1f}x)")
    print(f"longest produce stall during the roll: {longest_stall('roll'):.0f} ms "
          f"(steady: {longest_stall('steady'):.0f} ms)")
    if args.timeline:
        from datetime import datetime
        slow = 3 * p99("steady")
        print(f"timeline (s from the request): steps, then records over {slow:.0f} ms "
              "by send time (partition: count, worst ms)")
        for step in final["operationSteps"]:
            if step.get("startTime"):
                begin = datetime.fromisoformat(step["startTime"]).timestamp() - t0
                end = datetime.fromisoformat(step["endTime"]).timestamp() - t0 \
                    if step.get("endTime") else float("nan")
                print(f"  {begin:6.2f} .. {end:6.2f}  {step['stepName']}")
        buckets = {}
        for name, at, ms, partition in sent_at:
            if name == "roll" and ms > slow:
                key = (round((at - t0) * 10) / 10, partition)
                count, worst = buckets.get(key, (0, 0.0))
                buckets[key] = (count + 1, max(worst, ms))
        for (second, partition), (count, worst) in sorted(buckets.items()):
            print(f"  {second:6.1f}  p{partition}: {count} records, worst {worst:.0f} ms")
    api("DELETE", f"/v1/clusters/{cid}")
    wait("the delete", lambda: not api("GET", "/v1/clusters")["clusterInfoList"], timeout=120)
finally:
    server.terminate()
    server.wait(60)
    shutil.rmtree(work, ignore_errors=True)
