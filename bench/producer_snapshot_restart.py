"""Start-up of a broker over a log of many small idempotent batches, with and without its
producer-state snapshot: how long until the partition answers ListOffsets, and the broker's
peak RSS. Without the snapshot the broker replays every batch header, as it did before
producer-state snapshots existed.

Usage: python3 bench/producer_snapshot_restart.py target/release/millrace-broker 1000000
(needs the confluent-kafka package; uses ports 19092 and 19644 and /tmp/restart-measure)."""
import glob
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

from confluent_kafka import Consumer, Producer, TopicPartition

binary, records = sys.argv[1], int(sys.argv[2])
root = "/tmp/restart-measure"
shutil.rmtree(root, ignore_errors=True)
os.makedirs(root)
args = [binary, "--node-id", "1", "--data-dir", f"{root}/data", "--listen", "127.0.0.1:19092",
        "--admin-listen", "127.0.0.1:19644", "--auto-create-topics"]

def start():
    log = open(f"{root}/broker.log", "a")
    t0 = time.monotonic()
    proc = subprocess.Popen(args, stdout=log, stderr=log)
    while True:
        try:
            if urllib.request.urlopen("http://127.0.0.1:19644/ready", timeout=1).status == 200:
                break
        except Exception:
            pass
        time.sleep(0.01)
    ready = time.monotonic() - t0
    # The partition opens after the broker is ready (the metadata sync opens it): time until
    # it answers ListOffsets with its log end.
    c = Consumer({"bootstrap.servers": "127.0.0.1:19092", "group.id": "restart-measure"})
    while True:
        try:
            low, high = c.get_watermark_offsets(TopicPartition("restart", 0), timeout=1)
            if high > 0:
                break
        except Exception:
            pass
        time.sleep(0.01)
    took = time.monotonic() - t0
    c.close()
    hwm = [l for l in open(f"/proc/{proc.pid}/status") if l.startswith("VmHWM")][0].split()[1]
    return proc, took, int(hwm) / 1024

proc = subprocess.Popen(args, stdout=open(f"{root}/broker.log", "a"), stderr=subprocess.STDOUT)
time.sleep(2)
p = Producer({"bootstrap.servers": "127.0.0.1:19092", "enable.idempotence": True,
              "batch.num.messages": 1, "linger.ms": 0, "queue.buffering.max.messages": 200000})
value = b"x" * 100
t0 = time.monotonic()
for i in range(records):
    while True:
        try:
            p.produce("restart", value)
            break
        except BufferError:
            p.poll(0.01)
    if i % 10000 == 0:
        p.poll(0)
p.flush(60)
print(f"produced {records} records in {time.monotonic() - t0:.1f} s", flush=True)
time.sleep(2)  # a flush (1 s) writes the snapshot
for run in range(3):
    for with_snapshot in (True, False):
        proc.send_signal(signal.SIGKILL); proc.wait()
        if with_snapshot:
            # Written by the flush after the produce; a restart without one leaves none.
            if not glob.glob(f"{root}/data/logs/restart-0/producer-state-snapshot"):
                proc, _, _ = start(); proc.send_signal(signal.SIGTERM); proc.wait()
        else:
            for f in glob.glob(f"{root}/data/logs/*/producer-state-snapshot"):
                os.remove(f)
        snap = glob.glob(f"{root}/data/logs/restart-0/producer-state-snapshot")
        proc, took, hwm = start()
        print(f"run {run}: snapshot={'yes' if snap else 'no '} partition serving after {took:.2f} s, peak RSS {hwm:.1f} MiB", flush=True)
        time.sleep(2)
proc.send_signal(signal.SIGTERM); proc.wait()
