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
- meta-churn: 1,000,000 client ids, each connects once (clean session) to one of three nodes (round
  robin: one `loadgen --churn` per node) and disconnects; per node, before, after the first 10,000
  and after all: the gauges metadata_objects and metadata_tombstones, the bytes of the metadata
  store's RocksDB directory and the RSS; and the connect rate.
- meta-churn-persistent: --sessions (100,000) persistent sessions, each subscribes `churn/<id>` at
  QoS 1, disconnects, and a clean connect with its id ends it; the same figures right after, and
  once metadata_tombstones stopped falling (polled every second, up to 60 s): are deletes collected?
- split-30s: a subscriber on A (persistent, QoS 1, `split/#`), 10 QoS 1 publishers on C (1,000
  msg/s in all, sequence-numbered payloads) and a client on C holding 100,000 subscriptions; C is cut
  off for 30 s (its network namespace's link down; SIGSTOP where namespaces are impossible), then
  healed. Publishers move to A/B when acks stop and republish what was not acknowledged: acked,
  received, acked but never received (must be 0), duplicates, the longest time without acks, and
  from the heal until publishes on A reach C's 100,000 subscriptions again. VerneMQ's defaults
  (allow_*_during_netsplit off on every node: the majority refuses too); split-30s-allow: on.
- dead-leave: leave-10k's sessions and messages on C, but C is SIGKILLed and removed with `cluster
  leave` from A while it is down; the clients come back on A and B: messages found and lost.
  dead-leave-replica: the same with offline_message_replica = on (copies on A and B).
- late-join: A and B hold 100,000 subscriptions and 10,000 retained messages; C joins: seconds until
  `vernemq ping` says pong on C, and whether C has them all then.
- replica-cost: QoS 1 fan-in (10 -> 1) on A with 4 offline persistent sessions on A subscribing the
  same topics (each message stored 4 times), offline_message_replica off, then on: msg/s and ratio.
`--scale F` multiplies every count (not the rates or durations): develop with --scale 0.02.
`--conf 'KEY = VALUE'` (repeatable) adds a vernemq.conf line to every node.
Needs bench/loadgen (`make bench`) and paho-mqtt (in the venv); split-30s wants root (namespaces).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent))
from broker import REPO, Broker, free_port, rss_kib, start_vmqpy  # noqa: E402
from scenarios import LOADGEN, Run  # noqa: E402

HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
NAMES = "ABC"
PYTHON = str(REPO / ".venv/bin/python")
ADMIN = [PYTHON, "-m", "vmqpy.scripts.vmq_admin"]
VERNEMQ = [PYTHON, "-m", "vmqpy.scripts.vernemq"]
CONF: list[str] = []  # --conf: vernemq.conf lines for every node of every scenario


def start_cluster(n: int, extra: tuple[str, ...] = (), hosts: Sequence[Any] = (), joined: int | None = None
                  ) -> list[Broker]:
    """n nodes on 127.0.0.2-4, or on `hosts` (test/cluster/netns.py Hosts: each node in its namespace);
    the first `joined` (all) in one cluster, the others started with the same cluster port, standing alone."""
    cport = free_port()
    nodes: list[Broker] = []
    try:
        for k in range(n):
            ip = hosts[k].ip if hosts else HOSTS[k]
            cmd = hosts[k].run(VERNEMQ) if hosts else None
            cluster = f"listener.vmq.clustering = {ip}:{cport}"
            nodes.append(start_vmqpy(None, cmd, host=ip, extra=(cluster, *extra, *CONF)))
        for node in nodes[1:joined]:
            admin(node, "cluster", "join", f"discovery-node=bench{nodes[0].port}@{nodes[0].host}")
    except BaseException:
        stop_all(nodes)
        raise
    return nodes


def stop_all(nodes: Sequence[Broker]) -> None:
    for node in nodes:
        node.stop()


def admin(node: Broker, *argv: str) -> str:
    out = subprocess.run([*ADMIN, "--config", node.extra["conf"], *argv], capture_output=True, text=True,
                         timeout=60)
    if out.returncode:
        raise RuntimeError(f"vmq-admin {' '.join(argv)}: {out.stdout}{out.stderr}")
    return out.stdout


class Client:
    """A paho client whose messages, SUBACKs and PUBACKs arrive on queues; `rc` is the CONNACK's code."""

    def __init__(self, node: Broker, cid: str, clean: bool = True, keepalive: int = 60) -> None:
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, clean_session=clean)
        self.c.max_inflight_messages_set(1000)
        self.c.max_queued_messages_set(0)
        self.msgs: queue.Queue = queue.Queue()
        self.acks: queue.Queue = queue.Queue()
        self.connack: queue.Queue = queue.Queue()
        self.rc: Any = None
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.msgs.put((time.monotonic(), m.payload))
        self.c.on_subscribe = lambda c, u, mid, codes, p: self.acks.put((time.monotonic(), mid))
        self.c.on_publish = lambda c, u, mid, rc, p: self.acks.put((time.monotonic(), mid))
        self.c.connect(node.host, node.port, keepalive)
        # paho leaves Nagle on: a SUBSCRIBE right after a PUBACK would wait for the broker's delayed ACK
        self.c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.c.loop_start()
        try:
            self.present = self.connack.get(timeout=30)
        except queue.Empty:
            self.close()  # else paho's loop would go on reconnecting
            raise

    def _on_connect(self, c: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.rc = rc
        self.connack.put(flags.session_present)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(p / 100 * len(values)))], 3)


def throughput(name: str, qos: int, o: argparse.Namespace) -> dict:
    """The loadgen's 10->1 fan-in: publishers on B, the subscriber on A (cross) or both on A (one)."""
    nodes = start_cluster(2) if name.startswith("cross") else [start_vmqpy(None, host=HOSTS[0], extra=tuple(CONF))]
    try:
        pub, sub = nodes[-1], nodes[0]
        cmd = [str(LOADGEN), "--host", pub.host, "--port", str(pub.port), "--sub-host", sub.host,
               "--sub-port", str(sub.port), "--pattern", "fanin", "--pubs", "10", "--subs", "1",
               "--qos", str(qos), "--duration", str(o.duration), "--label", name]
        res = Run(cmd, o.duration + 120, lambda ev: None).result()
        return {"scenario": name, "msg_s": res.get("recv_rate"), "lost": res.get("lost"), "loadgen": res}
    finally:
        stop_all(nodes)


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
        stop_all(nodes)


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
        stop_all(nodes)


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
        stop_all(nodes)


def offline_sessions(holder: Broker, publisher: Broker, prefix: str, n: int = 100, per: int = 100) -> list[str]:
    """n persistent sessions `<prefix>-<i>` on `holder`, each subscribing `<prefix>/<id>` at QoS 1 and
    offline then, with `per` QoS 1 messages (payloads 0..per-1) published to each from `publisher`, all
    acknowledged. Returns the client ids."""
    ids = [f"{prefix}-{i}" for i in range(n)]
    for cid in ids:
        client = Client(holder, cid, clean=False)
        client.c.subscribe(f"{prefix}/{cid}", 1)
        client.acks.get(timeout=30)
        client.close()
    pub = Client(publisher, f"{prefix}-pub")
    for cid in ids:
        for i in range(per):
            pub.c.publish(f"{prefix}/{cid}", str(i).encode(), 1)
    for _ in range(n * per):
        pub.acks.get(timeout=60)
    pub.close()
    return ids


def leave_10k(o: argparse.Namespace) -> dict:
    """100 persistent sessions on C with 100 offline QoS 1 messages each; `cluster leave -k` of C;
    the clients come back on A and B: lost, duplicated, how long the leave took."""
    a, b, c = nodes = start_cluster(3, ("max_offline_messages = -1",))
    try:
        ids = offline_sessions(c, a, "leave")
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
        stop_all(nodes)


# -- a node gone for good, and what offline_message_replica costs ---------------------------------------

def held(node: Broker, name: str) -> int:
    """The offline messages `node` last heard node `name` keeps (`cluster show --sessions`)."""
    for line in admin(node, "cluster", "show", "--sessions").splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == name:
            return int(cells[3])
    return -1


def dead_leave(o: argparse.Namespace, replica: bool) -> dict:
    """leave-10k's sessions and messages on C, but C is SIGKILLed and removed from A with `cluster leave`
    while down; the clients come back on A and B: how many messages they find, with offline_message_replica
    off (lost: they were only on C's disk) or on (restored from the copies on A and B)."""
    extra = ("max_offline_messages = -1", f"offline_message_replica = {'on' if replica else 'off'}")
    a, b, c = nodes = start_cluster(3, extra)
    try:
        ids = offline_sessions(c, a, "dead")
        name = f"bench{c.port}@{c.host}"
        while held(a, name) != len(ids) * 100:
            time.sleep(0.2)  # C reports what it keeps every second
        c.proc.kill()
        c.proc.wait()
        while "false" not in admin(a, "cluster", "show"):
            time.sleep(0.1)
        t0 = time.monotonic()
        out = admin(a, "cluster", "leave", f"node={name}")
        took = time.monotonic() - t0
        got = dup = 0
        for k, cid in enumerate(ids):
            back = Client((a, b)[k % 2], cid, clean=False)
            seqs = [int(p) for _, p in drain(back.msgs, 2)]
            got += len(set(seqs))
            dup += len(seqs) - len(set(seqs))
            back.close()
        return {"scenario": "dead-leave-replica" if replica else "dead-leave", "sessions": len(ids),
                "messages": len(ids) * 100, "found": got, "lost": len(ids) * 100 - got, "duplicated": dup,
                "leave_s": round(took, 3), "output": out.strip()}
    finally:
        stop_all(nodes)


def replica_cost(o: argparse.Namespace) -> dict:
    """The loadgen's 10->1 fan-in at QoS 1 on A of a 3-node cluster while 4 offline persistent sessions on A
    subscribe the same topics (every message stored 4 times), with offline_message_replica off and on."""
    out: dict = {"scenario": "replica-cost"}
    for replica in ("off", "on"):
        nodes = start_cluster(3, ("max_offline_messages = -1", f"offline_message_replica = {replica}"))
        try:
            a = nodes[0]
            for k in range(4):
                client = Client(a, f"cost-{k}", clean=False)
                client.c.subscribe("lg/in/+", 1)
                client.acks.get(timeout=30)
                client.close()
            cmd = [str(LOADGEN), "--host", a.host, "--port", str(a.port), "--pattern", "fanin", "--pubs", "10",
                   "--subs", "1", "--qos", "1", "--duration", str(o.duration), "--label", f"replica-{replica}"]
            res = Run(cmd, o.duration + 120, lambda ev: None).result()
            out[replica] = {"msg_s": res.get("recv_rate"), "stored_s": 4 * (res.get("recv_rate") or 0),
                            "lost": res.get("lost")}
        finally:
            stop_all(nodes)
    out["ratio"] = round(out["on"]["msg_s"] / out["off"]["msg_s"], 2) if out["off"]["msg_s"] else None
    return out


def late_join(o: argparse.Namespace) -> dict:
    """A and B hold 100,000 subscriptions (a client on A) and 10,000 retained messages (set on B); C joins:
    seconds from the join until `vernemq ping` says pong on C, and whether C then has every retained
    message and routes to the subscriptions (a sample of 100)."""
    n_subs, n_retained = round(100_000 * o.scale), round(10_000 * o.scale)
    a, b, c = nodes = start_cluster(3, joined=2)
    try:
        sub = Client(a, "late-sub")
        for i in range(0, n_subs, SUB_BATCH):
            sub.c.subscribe([(f"late/{j}", 1) for j in range(i, min(i + SUB_BATCH, n_subs))])
        for _ in range(0, n_subs, SUB_BATCH):
            sub.acks.get(timeout=600)
        pub = Client(b, "late-retain")
        for i in range(n_retained):
            pub.c.publish(f"kept/{i}", b"r", 1, retain=True)
        for _ in range(n_retained):
            pub.acks.get(timeout=60)
        ping = [*VERNEMQ, "--config", c.extra["conf"], "ping"]
        t0 = time.monotonic()
        admin(c, "cluster", "join", f"discovery-node=bench{a.port}@{a.host}")
        joined = time.monotonic() - t0
        polls = 0
        while subprocess.run(ping, capture_output=True, timeout=30).returncode:
            polls += 1
        ready = time.monotonic() - t0
        retained = metrics(c).get("retain_messages")
        probe = Client(c, "late-probe")
        sample = random.Random(2).sample(range(n_subs), min(100, n_subs))
        for i in sample:
            probe.c.publish(f"late/{i}", str(i).encode(), 1)
        got = {int(payload) for _, payload in drain(sub.msgs, 5)}
        return {"scenario": "late-join", "subscriptions": n_subs, "retained": n_retained,
                "join_returned_s": round(joined, 3), "pong_s": round(ready, 3), "not_ready_answers": polls,
                "retained_at_pong": retained, "routed": len(got & set(sample)), "sampled": len(sample)}
    finally:
        stop_all(nodes)


# -- metadata under client churn -------------------------------------------------------------------------

CHURN_BURST = 64  # connections in progress at once per loadgen (one per node)


def metrics(node: Broker) -> dict[str, float]:
    """`vmq-admin metrics show`, whose lines read `gauge.NAME = VALUE` or `counter.NAME = VALUE`, by NAME."""
    out: dict[str, float] = {}
    for line in admin(node, "metrics", "show").splitlines():
        key, sep, value = line.partition(" = ")
        with contextlib.suppress(ValueError):
            out[key.split(".", 1)[-1]] = float(value) if "." in value else int(value)
    return out


def meta_bytes(node: Broker) -> int:
    """Bytes on disk of the node's metadata store, a RocksDB directory: `metadata.dir`, by default
    $(platform_data_dir)/meta, and bench/broker.py sets platform_data_dir = TMPDIR/data."""
    root = Path(node.tmpdir) / "data" / "meta"
    if not root.is_dir():
        raise RuntimeError(f"no metadata store at {root}")
    total = 0
    for f in root.rglob("*"):
        with contextlib.suppress(FileNotFoundError):  # a compaction may delete it meanwhile
            total += f.stat().st_size if f.is_file() else 0
    return total


def node_figures(nodes: Sequence[Broker]) -> dict[str, dict]:
    """Per node: the metadata gauges, the metadata store's bytes on disk, the RSS."""
    out = {}
    for name, node in zip(NAMES, nodes, strict=False):
        m = metrics(node)
        out[name] = {"metadata_objects": m.get("metadata_objects"), "metadata_tombstones": m.get("metadata_tombstones"),
                     "meta_bytes": meta_bytes(node), "rss_kib": rss_kib(node.pids())}
    return out


def churn(nodes: Sequence[Broker], n: int, prefix: str, session: bool = False) -> dict:
    """n client ids spread evenly over the nodes, one `loadgen --churn` per node, all at once. Each id
    (`<prefix><node>-c<i>`) connects with a clean session, disconnects and waits for the broker to close;
    with `session`, it first makes a persistent session subscribing `churn/<id>` at QoS 1."""
    cmds = []
    for k, node in enumerate(nodes):
        share = n // len(nodes) + (k < n % len(nodes))
        ids = f"{prefix}{NAMES[k]}"
        # The broker closes first, so its side keeps the TIME_WAITs; four source addresses spread the
        # 4-tuples a new connection could share with one of them.
        binds = ",".join(f"127.{k + 1}.{j}.1" for j in range(1, 5))
        cmd = [str(LOADGEN), "--host", node.host, "--port", str(node.port), "--churn", str(share),
               "--connect-burst", str(CHURN_BURST), "--id-prefix", ids, "--bind", binds,
               "--connect-timeout", "3600", "--label", ids]
        if session:
            cmd += ["--churn-session", "--sub-topic", f"churn/{ids}-c%d", "--sub-qos", "1"]
        cmds.append(cmd)
    t0 = time.monotonic()
    runs = [Run(cmd, 3700, lambda ev: None) for cmd in cmds]
    try:
        parts = [r.result() for r in runs]
    except BaseException:  # interrupted: no loadgen (nor its watchdog timer) outlives us
        for r in runs:
            r.proc.kill()
            r.watchdog.cancel()
        raise
    took = time.monotonic() - t0
    if any(p["loadgen_rc"] for p in parts):
        raise RuntimeError(f"loadgen --churn failed: {parts}")
    return {"client_ids": n, "connacks": sum(p["connected"] for p in parts), "seconds": took}


def meta_churn(o: argparse.Namespace) -> dict:
    n, first = round(1_000_000 * o.scale), round(10_000 * o.scale)
    nodes = start_cluster(3)
    try:
        checkpoints = [{"client_ids": 0, **node_figures(nodes)}]
        runs = []
        for part, prefix in ((first, "mca"), (n - first, "mcb")):
            runs.append(churn(nodes, part, prefix))
            checkpoints.append({"client_ids": sum(r["client_ids"] for r in runs), **node_figures(nodes)})
        took = sum(r["seconds"] for r in runs)
        return {"scenario": "meta-churn", "client_ids": n, "seconds": round(took, 1),
                "connect_rate": round(sum(r["connacks"] for r in runs) / took), "checkpoints": checkpoints}
    finally:
        stop_all(nodes)


def total_tombstones(nodes: Sequence[Broker]) -> int:
    return sum(metrics(node).get("metadata_tombstones") or 0 for node in nodes)


def meta_churn_persistent(o: argparse.Namespace) -> dict:
    """Persistent sessions made and ended: what the metadata keeps right after, and once the tombstones
    stopped falling: 0 on every node, or no fall for 15 s (three anti-entropy rounds) once they fell,
    or 60 s."""
    n = round(o.sessions * o.scale)
    nodes = start_cluster(3)
    try:
        before = node_figures(nodes)
        run = churn(nodes, n, "mcp", session=True)
        after = node_figures(nodes)
        t0 = time.monotonic()
        series = [total_tombstones(nodes)]
        fell = None
        while series[-1] and time.monotonic() - t0 < 60 and (fell is None or time.monotonic() - fell < 15):
            time.sleep(max(0.0, t0 + len(series) - time.monotonic()))  # one poll a second
            series.append(total_tombstones(nodes))
            if series[-1] < series[-2]:
                fell = time.monotonic()
        return {"scenario": "meta-churn-persistent", "sessions": n, "seconds": round(run["seconds"], 1),
                "sessions_s": round(n / run["seconds"]), "connect_rate": round(run["connacks"] / run["seconds"]),
                "before": before, "after": after, "waited_s": round(time.monotonic() - t0, 1),
                "tombstones_each_s": series, "settled": node_figures(nodes)}
    finally:
        stop_all(nodes)


# -- a netsplit of 30 s ----------------------------------------------------------------------------------

ACK_TIMEOUT = 3.0  # a publisher that got no PUBACK for this long moves to another node
NETSPLIT_ALLOW = tuple(f"allow_{op}_during_netsplit = on" for op in ("register", "publish", "subscribe", "unsubscribe"))
SUB_BATCH = 1000  # filters per SUBSCRIBE


def open_hosts(n: int) -> Any | None:
    """n open Hosts of test/cluster/netns.py (network namespaces on a bridge, each with split()/heal()), or
    None where namespaces are impossible. netns.py imports the tests' own `broker` module, whose name is
    bench/broker.py's too: it is imported with the tests' one in place, then ours is put back."""
    ours = sys.modules.pop("broker")
    sys.path[:0] = [str(REPO / "test" / "cluster"), str(REPO / "test")]
    netns: ModuleType | None = None
    try:
        import netns
    except ImportError as e:  # pytest missing, say
        print(f"cluster_bench: no test/cluster/netns.py ({e}): SIGSTOP instead of a link cut", file=sys.stderr)
    finally:
        del sys.path[:2]
        sys.modules["broker"] = ours
    if netns is None:
        return None
    if (why := netns.netns_unavailable()) is not None:
        print(f"cluster_bench: no network namespaces ({why}): SIGSTOP instead of a link cut", file=sys.stderr)
        return None
    return netns.Hosts(n, netns=True).open()


class Cut:
    """Splits a node off and heals it: its namespace's link down and up (a netns Host), or without
    namespaces SIGSTOP and SIGCONT (then the node is frozen rather than cut off, and sees no split)."""

    def __init__(self, node: Broker, host: Any | None) -> None:
        self.node, self.host = node, host
        self.method = "netns link down" if host is not None else "SIGSTOP"
        self.pids: list[int] = []

    def split(self) -> None:
        if self.host is not None:
            self.host.split()
        else:
            self.pids = self.node.pids()
            for pid in self.pids:
                os.kill(pid, signal.SIGSTOP)

    def heal(self) -> None:
        """Idempotent (a finally heals what may not be split)."""
        if self.host is not None and self.host.is_split:
            self.host.heal()
        for pid in reversed(self.pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.pids = []


class SeqPublisher(threading.Thread):
    """A QoS 1 publisher of `split/<k>` at `rate` msg/s, payloads b"k:seq", keeping its own account of what
    is unacknowledged: when no PUBACK came for ACK_TIMEOUT s (its node is cut off, or refuses publishes
    during the split) or its connection dropped, it moves to the next node of `fallback` (round and round)
    and publishes there again, in order, everything unacknowledged. It goes on making messages at the rate
    while it has no connection (they go out once it has one). After finish(): no new messages; it ends
    once everything is acknowledged, or at the deadline."""

    def __init__(self, k: int, first: Broker, fallback: Sequence[Broker], rate: float) -> None:
        super().__init__(daemon=True, name=f"split-pub-{k}")
        self.k = k
        self.nodes = itertools.chain([first], itertools.cycle(fallback))
        self.interval = 1 / rate
        self.client: Client | None = None
        self.node: Broker | None = None
        self.seq = 0
        self.unacked: dict[int, None] = {}  # sequence numbers, in order
        self.acked: set[int] = set()
        self.ack_times: list[float] = []
        self.moves = self.refused = self.failed = 0
        self.error: str | None = None
        self._closing: list[threading.Thread] = []
        self._deadline = math.inf
        self._finish = threading.Event()

    def finish(self, deadline: float) -> None:
        self._deadline = deadline
        self._finish.set()

    def run(self) -> None:
        try:
            self._run()
        except Exception as e:  # reported in the result rather than lost with the thread
            self.error = repr(e)
        finally:
            if self.client is not None:
                self.client.close()
            for t in self._closing:
                t.join(10)

    def _run(self) -> None:
        mids: dict[int, tuple[int, float]] = {}  # packet id on the current connection -> (seq, sent at)
        due = time.monotonic()
        while True:
            now = time.monotonic()
            done = self._finish.is_set()
            if done and (not self.unacked or now > self._deadline):
                return
            while not done and now >= due:
                self.seq += 1
                self.unacked[self.seq] = None
                if self.client is not None:
                    mids[self._send(self.seq)] = (self.seq, now)
                due += self.interval
            if self.client is None:
                if not self._connect():
                    time.sleep(0.2)
                    continue
                sent = time.monotonic()  # a CONNACK may have taken seconds
                mids = {self._send(seq): (seq, sent) for seq in self.unacked}
            wait = 0.05 if done else min(max(due - time.monotonic(), 0.0), 0.05)
            with contextlib.suppress(queue.Empty):
                t, mid = self.client.acks.get(timeout=wait)
                seq = mids.pop(mid, (0, 0.0))[0]
                if seq in self.unacked:
                    del self.unacked[seq]
                    self.acked.add(seq)
                    self.ack_times.append(t)
            oldest = next(iter(mids.values()), (0, math.inf))[1]
            if time.monotonic() - oldest > ACK_TIMEOUT or not self.client.c.is_connected():
                self.moves += 1
                self._close_later(self.client)
                self.client = None

    def _send(self, seq: int) -> int:
        assert self.client is not None
        return self.client.c.publish(f"split/{self.k}", f"{self.k}:{seq}".encode(), 1).mid

    def _connect(self) -> bool:
        node = next(self.nodes)
        try:
            client = Client(node, f"split-pub-{self.k}")
        except (OSError, queue.Empty):
            self.failed += 1
            return False
        if client.rc.is_failure:  # CONNACK 3: the cluster is split (allow_register_during_netsplit = off)
            self.refused += 1
            self._close_later(client)
            return False
        self.client, self.node = client, node
        return True

    def _close_later(self, client: Client) -> None:
        """Closing a dead connection may take a while: not in the way of publishing."""
        t = threading.Thread(target=client.close, daemon=True)
        t.start()
        self._closing.append(t)


def routed(probe: Client, sub: Client, topics: Sequence[int], since: float, timeout: float = 120) -> dict:
    """Every 100 ms `probe` publishes (QoS 0) to each conv/<i> of `topics` that `sub` has not received yet,
    payload i: seconds from `since` until `sub` had them all, and until it had topics[0]."""
    while not sub.msgs.empty():  # stragglers of an earlier round
        sub.msgs.get()
    first: dict[int, float] = {}
    deadline = time.monotonic() + timeout
    while len(first) < len(topics) and time.monotonic() < deadline:
        for i in topics:
            if i not in first:
                probe.c.publish(f"conv/{i}", str(i).encode(), 0)
        end = time.monotonic() + 0.1
        while (left := end - time.monotonic()) > 0:
            try:
                t, payload = sub.msgs.get(timeout=left)
            except queue.Empty:
                break
            first.setdefault(int(payload), t)
    return {"all_s": round(max(first.values()) - since, 3) if len(first) == len(topics) else None,
            "last_subscribed_s": round(first[topics[0]] - since, 3) if topics[0] in first else None,
            "received": len(first), "sampled": len(topics)}


def drain(q: queue.Queue, quiet: float) -> list:
    """What arrives on `q` until nothing did for `quiet` seconds."""
    out = []
    with contextlib.suppress(queue.Empty):
        while True:
            out.append(q.get(timeout=quiet))
    return out


def longest_gap(times: Sequence[float]) -> float:
    times = sorted(times)
    return round(max((b - a for a, b in itertools.pairwise(times)), default=0.0), 3)


def split_30s(o: argparse.Namespace, allow: bool) -> dict:
    """Subscriber on A, publishers and a client with many subscriptions on C; C cut off for --split-s
    seconds (30), then healed. See the module docstring."""
    n_subs = round(100_000 * o.scale)
    hosts = open_hosts(3)
    nodes: list[Broker] = []
    clients: list[Client] = []
    pubs: list[SeqPublisher] = []
    cut: Cut | None = None
    try:
        nodes = start_cluster(3, NETSPLIT_ALLOW if allow else (), hosts.hosts if hosts is not None else ())
        a, b, c = nodes
        cut = Cut(c, hosts[2] if hosts is not None else None)
        sub = Client(a, "split-sub", clean=False)
        clients.append(sub)
        sub.c.subscribe("split/#", 1)
        sub.acks.get(timeout=30)
        # keepalive longer than the split: neither end of this idle connection gives up on the other
        conv = Client(c, "conv-sub", keepalive=600)
        clients.append(conv)
        t0 = time.monotonic()
        for i in range(0, n_subs, SUB_BATCH):
            conv.c.subscribe([(f"conv/{j}", 0) for j in range(i, min(i + SUB_BATCH, n_subs))])
        for _ in range(0, n_subs, SUB_BATCH):
            conv.acks.get(timeout=600)
        subscribe_s = time.monotonic() - t0
        probe = Client(a, "conv-probe")
        clients.append(probe)
        sample = [n_subs - 1, *random.Random(1).sample(range(n_subs - 1), min(100, n_subs - 1))]
        before = routed(probe, conv, sample, time.monotonic())
        pubs = [SeqPublisher(k, c, (a, b) if k % 2 == 0 else (b, a), o.split_rate / 10) for k in range(10)]
        for p in pubs:
            p.start()
        time.sleep(5)  # steady publishing first
        cut.split()
        time.sleep(o.split_s)
        t_heal = time.monotonic()
        cut.heal()
        after = routed(probe, conv, sample, t_heal)
        time.sleep(max(0.0, t_heal + 10 - time.monotonic()))  # publishing goes on for 10 s after the heal
        for p in pubs:
            p.finish(time.monotonic() + 60)
        for p in pubs:
            p.join(90)
        got = [tuple(int(x) for x in payload.split(b":")) for _, payload in drain(sub.msgs, 5)]
        seen = set(got)
        acked = {(p.k, seq) for p in pubs for seq in p.acked}
        res = {"scenario": "split-30s-allow" if allow else "split-30s", "split": cut.method, "split_s": o.split_s,
               "allow_during_netsplit": "on" if allow else "off", "publishers": len(pubs), "rate": o.split_rate,
               "sent": sum(p.seq for p in pubs), "acked": len(acked), "received": len(got),
               "acked_not_received": len(acked - seen), "duplicates": len(got) - len(seen),
               "never_acked": sum(len(p.unacked) for p in pubs),
               "no_ack_s": longest_gap([t for p in pubs for t in p.ack_times]),
               "no_ack_max_s": max(longest_gap(p.ack_times) for p in pubs),
               "moves": sum(p.moves for p in pubs), "connects_refused": sum(p.refused for p in pubs),
               "connects_failed": sum(p.failed for p in pubs),
               "publishers_end_on": "".join(sorted(NAMES[nodes.index(p.node)] for p in pubs if p.node)),
               "errors": [p.error for p in pubs if p.error],
               "subscriptions": n_subs, "subscribe_s": round(subscribe_s, 3),
               "routed_before_split": before, "routed_after_heal": after,
               "netsplit": {name: {k: v for k, v in metrics(node).items() if k.startswith("netsplit_") and v}
                            for name, node in zip(NAMES, nodes, strict=True)}}
        res["failed"] = bool(res["acked_not_received"] or res["errors"] or after["all_s"] is None)
        return res
    finally:  # heal first: nothing waits on a dead link then
        if cut is not None:
            cut.heal()
        for p in pubs:
            p.finish(0)
        deadline = time.monotonic() + 20
        for p in pubs:
            p.join(max(0.0, deadline - time.monotonic()))
        for client in clients:
            with contextlib.suppress(Exception):
                client.close()
        stop_all(nodes)
        if hosts is not None:
            hosts.close()


SCENARIOS = {
    "one-q0": lambda o: throughput("one-q0", 0, o),
    "cross-q0": lambda o: throughput("cross-q0", 0, o),
    "one-q1": lambda o: throughput("one-q1", 1, o),
    "cross-q1": lambda o: throughput("cross-q1", 1, o),
    "sub-latency": sub_latency,
    "sub-10k": sub_10k,
    "migrate-10k": migrate_10k,
    "leave-10k": leave_10k,
    "meta-churn": meta_churn,
    "meta-churn-persistent": meta_churn_persistent,
    "split-30s": lambda o: split_30s(o, allow=False),
    "split-30s-allow": lambda o: split_30s(o, allow=True),
    "dead-leave": lambda o: dead_leave(o, replica=False),
    "dead-leave-replica": lambda o: dead_leave(o, replica=True),
    "replica-cost": replica_cost,
    "late-join": late_join,
}


def interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main() -> int:
    # SIGTERM (timeout(1), say) unwinds like ^C: each scenario's finally stops its nodes, loadgens, namespaces
    signal.signal(signal.SIGTERM, interrupt)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=5, help="seconds of publishing per throughput run")
    p.add_argument("--subs", type=int, default=1000, help="subscriptions timed by sub-latency")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiplies the counts of meta-churn* and split-30s* (0.02 to try them out)")
    p.add_argument("--sessions", type=int, default=100_000, help="persistent sessions of meta-churn-persistent")
    p.add_argument("--split-s", type=float, default=30, help="seconds split-30s* keeps C cut off")
    p.add_argument("--split-rate", type=float, default=1000, help="msg/s of split-30s*'s 10 publishers in all")
    p.add_argument("--conf", action="append", default=[], metavar="'KEY = VALUE'",
                   help="a vernemq.conf line for every node (repeatable)")
    p.add_argument("--list", action="store_true")
    p.add_argument("scenarios", nargs="*")
    o = p.parse_args()
    CONF.extend(o.conf)
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
