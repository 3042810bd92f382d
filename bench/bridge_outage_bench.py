"""vmq_bridge with the remote down: N QoS 1 messages published to a vmqpy node whose bridge has a
persistent queue while mosquitto is down, the node restarted (SIGKILL by default, `--restart stop`
for a graceful one) after N/2; then mosquitto comes back and a persistent subscriber there must
get all N, in order, none twice. Prints one JSON line: what was buffered, what arrived, the disk
the buffer used at its fullest (queue_dir) and after the drain, publish and drain rates.

    .venv/bin/python bench/bridge_outage_bench.py [--messages 100000] [--restart kill|stop]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

TEST = Path(__file__).resolve().parent.parent / "test"
sys.path[:0] = [str(TEST), str(TEST / "bridge")]

import bulk  # noqa: E402
from bridgekit import Mosquitto, bridge_conf  # noqa: E402
from broker import Broker, wait_until  # noqa: E402


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run(root: Path, messages: int, restart: str) -> dict:
    mosq = Mosquitto(root / "mosquitto").start()
    node = None
    try:
        bulk.persistent_sessions(mosq.port, ["bench-remote-sub"], "lg/#", 1)
        mosq.stop()
        node = Broker(root / "node", {**bridge_conf(mosq.port, "lg/# out 1", persistent_queue="on",
                                                    max_outgoing_buffered_messages=str(messages)),
                                      "log.console.level": "warning"}).start()
        queue_dir = node.root / "data" / "vmq_bridge" / "br0"
        half = messages // 2
        t = time.perf_counter()
        bulk.publish(node.port, "bench-pub", "lg/seq", half, 1)
        node.kill() if restart == "kill" else node.stop()
        node.start()
        bulk.publish(node.port, "bench-pub", "lg/seq", messages - half, 1, first=half)
        publish_s = time.perf_counter() - t
        buffered = int(node.rows("bridge", "show")[0]["buffer size"])
        disk = _du(queue_dir)
        mosq.start()
        sub = bulk.Raw(mosq.port)
        t = time.perf_counter()
        assert sub.connect("bench-remote-sub", clean=False).session_present
        got = [int(p) for p in bulk.receive(sub, messages, timeout=300)]
        drain_s = time.perf_counter() - t
        wait_until(lambda: node.rows("bridge", "show")[0]["buffer size"] == "0", 60, "buffer emptied")
        return {"messages": messages, "restart": restart, "buffered_before_return": buffered,
                "delivered": len(got), "in_order_none_twice": got == list(range(messages)),
                "duplicates": len(got) - len(set(got)), "buffer_disk_bytes": disk,
                "buffer_disk_bytes_per_msg": round(disk / messages, 1),
                "publish_msgs_s": round(messages / publish_s), "drain_msgs_s": round(messages / drain_s),
                "disk_after_drain_bytes": _du(queue_dir)}
    finally:
        if node is not None:
            node.stop()
            node.cleanup()
        mosq.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--restart", choices=("kill", "stop"), default="kill")
    o = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-bridge-"))
    try:
        print(json.dumps(run(root, o.messages, o.restart)), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
