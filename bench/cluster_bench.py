#!/usr/bin/env python3
"""Cluster benchmarks: three vmqpy nodes (one process each) on 127.0.0.2-4, joined with
`vmq-admin cluster join`; one JSON line per scenario.

    bench/cluster_bench.py                   # every scenario
    bench/cluster_bench.py cross-q0 one-q0   # some
    bench/cluster_bench.py --list

- cross-q0/-q1: 10 publishers on node B, 1 subscriber on node A (the loadgen's fan-in, max rate),
  next to one-q0/-q1, the same on node A alone. The issue's target: cross >= 0.5x one.
- sub-latency: 1,000 times, a client on A subscribes to a fresh topic and, at its SUBACK, a
  client on B publishes to it; from SUBSCRIBE sent to the message received (p50/p99, ms).
- sub-10k: one client on A sends 10,000 subscriptions at once; until every SUBACK is in (every
  node routes each of them then), and until a publish from B to each of them arrived.
- migrate-10k: 10,000 offline QoS 1 messages for a persistent session on A, published on C;
  the client reconnects on B: lost, duplicated, and the time until it had them all.
- leave-10k: `cluster leave -k` of a node holding 10,000 offline messages across 100 sessions;
  the clients come back on the other nodes: lost, duplicated, how long the leave took.
Needs bench/loadgen (`make bench`) and paho-mqtt (in the venv).
"""

from __future__ import annotations

import argparse
import json
import queue
import socket
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent))
from broker import REPO, Broker, free_port, start_vmqpy  # noqa: E402
from scenarios import LOADGEN, Run  # noqa: E402

HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
ADMIN = [str(REPO / ".venv/bin/python"), "-m", "vmqpy.scripts.vmq_admin"]


def start_cluster(n: int, extra: tuple[str, ...] = ()) -> list[Broker]:
    cport = free_port()
    nodes = [start_vmqpy(None, host=h, extra=(f"listener.vmq.clustering = {h}:{cport}", *extra))
             for h in HOSTS[:n]]
    for node in nodes[1:]:
        admin(node, "cluster", "join", f"discovery-node=bench{nodes[0].port}@{nodes[0].host}")
    return nodes


def admin(node: Broker, *argv: str) -> str:
    out = subprocess.run([*ADMIN, "--config", node.extra["conf"], *argv], capture_output=True, text=True,
                         timeout=60)
    if out.returncode:
        raise RuntimeError(f"vmq-admin {' '.join(argv)}: {out.stdout}{out.stderr}")
    return out.stdout


class Client:
    """A paho client whose messages, SUBACKs and PUBACKs arrive on queues."""

    def __init__(self, node: Broker, cid: str, clean: bool = True) -> None:
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, clean_session=clean)
        self.c.max_inflight_messages_set(1000)
        self.c.max_queued_messages_set(0)
        self.msgs: queue.Queue = queue.Queue()
        self.acks: queue.Queue = queue.Queue()
        self.connack: queue.Queue = queue.Queue()
        self.c.on_connect = lambda c, u, f, rc, p: self.connack.put(f.session_present)
        self.c.on_message = lambda c, u, m: self.msgs.put((time.monotonic(), m.payload))
        self.c.on_subscribe = lambda c, u, mid, codes, p: self.acks.put((time.monotonic(), mid))
        self.c.on_publish = lambda c, u, mid, rc, p: self.acks.put((time.monotonic(), mid))
        self.c.connect(node.host, node.port, 60)
        # paho leaves Nagle on: a SUBSCRIBE right after a PUBACK would wait for the broker's delayed ACK
        self.c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.c.loop_start()
        self.present = self.connack.get(timeout=30)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(p / 100 * len(values)))], 3)


def throughput(name: str, qos: int, o: argparse.Namespace) -> dict:
    """The loadgen's 10->1 fan-in: publishers on B, the subscriber on A (cross) or both on A (one)."""
    nodes = start_cluster(2) if name.startswith("cross") else [start_vmqpy(None, host=HOSTS[0])]
    try:
        pub, sub = nodes[-1], nodes[0]
        cmd = [str(LOADGEN), "--host", pub.host, "--port", str(pub.port), "--sub-host", sub.host,
               "--sub-port", str(sub.port), "--pattern", "fanin", "--pubs", "10", "--subs", "1",
               "--qos", str(qos), "--duration", str(o.duration), "--label", name]
        res = Run(cmd, o.duration + 120, lambda ev: None).result()
        return {"scenario": name, "msg_s": res.get("recv_rate"), "lost": res.get("lost"), "loadgen": res}
    finally:
        for node in nodes:
            node.stop()


def sub_latency(o: argparse.Namespace) -> dict:
    a, b = nodes = start_cluster(2)
    try:
        sub, pub = Client(a, "lat-sub"), Client(b, "lat-pub")
        times = []
        for i in range(o.subs):
            t0 = time.monotonic()
            sub.c.subscribe(f"lat/{i}", 1)
            sub.acks.get(timeout=30)
            pub.c.publish(f"lat/{i}", b"x", 1)
            t1, _ = sub.msgs.get(timeout=30)
            times.append((t1 - t0) * 1000)
        return {"scenario": "sub-latency", "subscriptions": o.subs, "p50_ms": pct(times, 50),
                "p99_ms": pct(times, 99), "max_ms": pct(times, 100)}
    finally:
        for node in nodes:
            node.stop()


def sub_10k(o: argparse.Namespace) -> dict:
    a, b = nodes = start_cluster(2)
    n = 10_000
    try:
        sub, pub = Client(a, "many-sub"), Client(b, "many-pub")
        t0 = time.monotonic()
        for i in range(n):
            sub.c.subscribe(f"many/{i}", 0)
        last = max(sub.acks.get(timeout=120)[0] for _ in range(n))
        for i in range(n):
            pub.c.publish(f"many/{i}", b"x", 0)
        got = [sub.msgs.get(timeout=60)[0] for _ in range(n)]
        return {"scenario": "sub-10k", "subscriptions": n, "all_subacks_s": round(last - t0, 3),
                "all_routed_s": round(max(got) - t0, 3)}
    finally:
        for node in nodes:
            node.stop()


def migrate_10k(o: argparse.Namespace) -> dict:
    n = 10_000
    a, b, c = nodes = start_cluster(3, ("max_offline_messages = -1",))
    try:
        first = Client(a, "mover", clean=False)
        first.c.subscribe("move/q", 1)
        first.acks.get(timeout=30)
        first.close()
        pub = Client(c, "mover-pub")
        for i in range(n):
            pub.c.publish("move/q", str(i).encode(), 1)
        for _ in range(n):
            pub.acks.get(timeout=60)  # every one acknowledged: stored for the offline session on A
        t0 = time.monotonic()
        again = Client(b, "mover", clean=False)
        payloads = []
        deadline = time.monotonic() + 120
        while len(payloads) < n and time.monotonic() < deadline:
            try:
                payloads.append(int(again.msgs.get(timeout=5)[1]))
            except queue.Empty:
                break
        took = time.monotonic() - t0
        extra = 0
        while True:  # duplicates would follow
            try:
                again.msgs.get(timeout=1)
                extra += 1
            except queue.Empty:
                break
        seen = set(payloads)
        return {"scenario": "migrate-10k", "messages": n, "session_present": again.present,
                "received": len(payloads) + extra, "lost": n - len(seen),
                "duplicated": len(payloads) - len(seen) + extra, "in_order": payloads == sorted(payloads),
                "seconds": round(took, 3)}
    finally:
        for node in nodes:
            node.stop()


def leave_10k(o: argparse.Namespace) -> dict:
    """100 persistent sessions on C with 100 offline QoS 1 messages each; `cluster leave -k` of C;
    the clients come back on A and B: lost, duplicated, how long the leave took."""
    a, b, c = nodes = start_cluster(3, ("max_offline_messages = -1",))
    try:
        ids = [f"leaver-{i}" for i in range(100)]
        for cid in ids:
            client = Client(c, cid, clean=False)
            client.c.subscribe(f"leave/{cid}", 1)
            client.acks.get(timeout=30)
            client.close()
        pub = Client(a, "leave-pub")
        for cid in ids:
            for i in range(100):
                pub.c.publish(f"leave/{cid}", str(i).encode(), 1)
        for _ in range(len(ids) * 100):
            pub.acks.get(timeout=60)
        t0 = time.monotonic()
        out = admin(c, "cluster", "leave", f"node=bench{c.port}@{c.host}", "-k")
        took = time.monotonic() - t0
        lost = dup = 0
        for k, cid in enumerate(ids):
            back = Client((a, b)[k % 2], cid, clean=False)
            got = []
            while True:
                try:
                    got.append(int(back.msgs.get(timeout=2)[1]))
                except queue.Empty:
                    break
            lost += 100 - len(set(got))
            dup += len(got) - len(set(got))
            back.close()
        return {"scenario": "leave-10k", "sessions": len(ids), "messages": len(ids) * 100, "lost": lost,
                "duplicated": dup, "leave_s": round(took, 3), "output": out.strip()}
    finally:
        for node in nodes:
            node.stop()


SCENARIOS = {
    "one-q0": lambda o: throughput("one-q0", 0, o),
    "cross-q0": lambda o: throughput("cross-q0", 0, o),
    "one-q1": lambda o: throughput("one-q1", 1, o),
    "cross-q1": lambda o: throughput("cross-q1", 1, o),
    "sub-latency": sub_latency,
    "sub-10k": sub_10k,
    "migrate-10k": migrate_10k,
    "leave-10k": leave_10k,
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=5, help="seconds of publishing per throughput run")
    p.add_argument("--subs", type=int, default=1000, help="subscriptions timed by sub-latency")
    p.add_argument("--list", action="store_true")
    p.add_argument("scenarios", nargs="*")
    o = p.parse_args()
    if o.list:
        print("\n".join(SCENARIOS))
        return 0
    for name in o.scenarios or list(SCENARIOS):
        if name not in SCENARIOS:
            sys.exit(f"unknown scenario {name}; see --list")
        print(json.dumps(SCENARIOS[name](o)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
