"""Broker-level offline store throughput: QoS 1 to an offline persistent session, then drain.

For each sync setting and publisher window it starts a fresh node (test/broker.py,
a `vernemq console` subprocess), creates one offline persistent session, publishes
N QoS 1 messages from one raw-socket publisher keeping `window` PUBLISHes in
flight (window 1 = wait for each PUBACK), then reconnects the subscriber and
drains everything (PUBACK per message, max_inflight_messages as configured).
Prints one JSON line per run: publish and drain messages/s.

    .venv/bin/python bench/offline_bench.py [--messages N] [--payload B] [--windows 1,1000]
        [--sync off,on] [--inflight 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "test"))

import bulk  # noqa: E402
from broker import Broker  # noqa: E402


def run(root: str, sync: str, window: int, messages: int, payload: int, inflight: int) -> dict:
    node = Broker(Path(tempfile.mkdtemp(dir=root)), {
        "max_offline_messages": "-1", "message_store.sync": sync, "max_inflight_messages": str(inflight),
        "log.console.level": "warning"}).start()
    try:
        bulk.persistent_sessions(node.port, ["bench-sub"], "bench/t", 1)
        body = b"x" * payload
        t = time.perf_counter()
        bulk.publish(node.port, "bench-pub", "bench/t", messages, 1, window=window, payload=body)
        publish = messages / (time.perf_counter() - t)
        assert bulk.store_stats(node)["index_entries"] == messages
        sub = bulk.Raw(node.port)
        t = time.perf_counter()
        assert sub.connect("bench-sub", clean=False).session_present
        got = bulk.receive(sub, messages)
        drain = messages / (time.perf_counter() - t)
        assert len(got) == messages
        sub.close()
        return {"sync": sync, "window": window, "messages": messages, "payload": payload,
                "max_inflight": inflight, "publish_msgs_s": round(publish), "drain_msgs_s": round(drain)}
    finally:
        node.stop()
        node.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--payload", type=int, default=64)
    ap.add_argument("--windows", default="1,1000", help="publisher windows, comma separated")
    ap.add_argument("--sync", default="off,on", help="message_store.sync values, comma separated")
    ap.add_argument("--inflight", type=int, default=20, help="max_inflight_messages for the drain")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as root:
        for sync in args.sync.split(","):
            for window in map(int, args.windows.split(",")):
                # Waiting for each PUBACK is a round trip per message: use a tenth of the count.
                n = args.messages if window > 1 else max(1, args.messages // 10)
                print(json.dumps(run(root, sync, window, n, args.payload, args.inflight)), flush=True)


if __name__ == "__main__":
    main()
