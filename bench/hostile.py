#!/usr/bin/env python3
"""Well-behaved clients next to hostile ones: their p99 latency and throughput, the node's RSS.

    bench/hostile.py                                  # every scenario, one JSON line each
    bench/hostile.py alone slow-connect --slow 10000 --duration 10
    bench/hostile.py storm --workers 2
    bench/hostile.py --repeat 3          # the figures in docs/hostile-clients.md: medians of 3 rounds

Starts one vmqpy node as bench/broker.py does (pinned to --broker-core, loadgen on
--loadgen-core) but with authentication on (allow_anonymous = off, one user in
vmq.passwd, every well-behaved client logs in) and the shipped max_online_messages
(1,000). Each scenario measures the same well-behaved load twice: `latency`, 10
pairs QoS 1 at --rate msg/s open loop (p50/p99/max), and `throughput`, 10 pairs
QoS 1 at max rate (recv_rate); RSS before the hostile clients, with them (before
the runs) and after the runs. Scenarios:

  alone             nothing else
  slow-connect      --slow (10,000) connections trickling a CONNECT a byte a second
                    (loadgen --slow), reopened as the node closes them at
                    mqtt_connect_timeout (5 s): socket_close_timeout counts them
  stuck-subscriber  one client subscribed to every pair's topic (lg/pair/+, QoS 1)
                    that never reads: queue_message_drop counts what it loses
  storm             a connection storm running through both runs: client ids
                    connecting as fast as loadgen can, every second one with a
                    wrong password (loadgen --churn-bad-every 2); `ping_ms` is
                    the admin socket's ping round trip sampled every 50 ms
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from broker import REPO, _spawn, free_port, process_tree, rss_kib, vmqpy_config  # noqa: E402
from scenarios import LOADGEN, Run, loadgen_cmd  # noqa: E402

USER, PASSWORD = "bench", "bench-pw"
PAIRS = ("--pattern", "pairs", "--pubs", "10", "--subs", "10", "--qos", "1")


class Node:
    """vmqpy with authentication on and the shipped online queue limit."""

    def __init__(self, o: argparse.Namespace) -> None:
        tmpdir, port = tempfile.mkdtemp(prefix="bench-hostile-"), free_port()
        text = vmqpy_config(port, tmpdir, o.workers).replace("allow_anonymous = on", "allow_anonymous = off")
        text = "\n".join("max_online_messages = 1000" if line.startswith("max_online_messages") else line
                         for line in text.splitlines()) + "\n"
        self.conf = Path(tmpdir) / "vernemq.conf"
        self.conf.write_text(text)
        subprocess.run([str(REPO / "bin" / "vmq-passwd"), "-cf", f"{tmpdir}/etc/vmq.passwd", USER],
                       input=f"{PASSWORD}\n{PASSWORD}\n", text=True, check=True, capture_output=True)
        python = str(REPO / ".venv/bin/python")
        self.broker = _spawn("vmqpy", [python, "-m", "vmqpy.scripts.vernemq", "console", "--config",
                                       str(self.conf)], tmpdir, port, o.broker_core, 120)
        self.admin_socket = next(line.split("=", 1)[1].strip() for line in
                                 self._admin(["config", "effective"]).splitlines() if
                                 line.startswith("admin.socket ="))

    def _admin(self, argv: list[str]) -> str:
        cmd = [str(REPO / "bin" / ("vernemq" if argv[0] == "config" else "vmq-admin")), "--config",
               str(self.conf), *argv]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout

    def rss(self) -> int:
        return rss_kib(process_tree(self.broker.proc.pid))

    def counters(self) -> dict[str, float]:
        out = self._admin(["metrics", "show"])
        return {k.split(".", 1)[1]: float(v) for k, _, v in (line.partition(" = ") for line in out.splitlines())
                if v and k.startswith("counter.")}

    def ping_ms(self) -> float | None:
        """One ping over the admin socket (what `vernemq ping` asks); None when not pong."""
        t0 = time.monotonic()
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(10)
                s.connect(self.admin_socket)
                s.sendall(b'{"argv":["ping"]}\n')
                reply = b""
                while chunk := s.recv(4096):
                    reply += chunk
            ok = json.loads(reply).get("output") == "pong"
        except (OSError, ValueError):
            ok = False
        return round(1000 * (time.monotonic() - t0), 2) if ok else None


def well_behaved(o: argparse.Namespace, node: Node, label: str, *extra: str) -> dict:
    args = [*PAIRS, *extra, "--username", USER, "--password", PASSWORD, "--duration", str(o.duration),
            "--label", label]
    res = Run(loadgen_cmd("127.0.0.1", node.broker.port, o.loadgen_core, args), o.duration + 120,
              lambda ev: None).result()
    keep = ("recv_rate", "sent", "received", "lost", "latency_us", "loadgen_rc", "errors", "disconnects")
    return {k: res.get(k) for k in keep}


def runs(o: argparse.Namespace, node: Node) -> dict:
    return {"latency": well_behaved(o, node, "latency", "--rate", str(o.rate)),
            "throughput": well_behaved(o, node, "throughput")}


def background(o: argparse.Namespace, node: Node, args: list[str], timeout: float) -> tuple[Run, threading.Event]:
    """A hostile loadgen; the event is set once it printed `ready` (every connection up)."""
    ready = threading.Event()
    cmd = loadgen_cmd("127.0.0.1", node.broker.port, o.loadgen_core, args)
    return Run(cmd, timeout, lambda ev: ev["event"] == "ready" and ready.set()), ready


def binds(k: int) -> str:
    return ",".join(f"127.{k}.{j}.1" for j in range(1, 5))


def alone(o: argparse.Namespace, node: Node) -> dict:
    rss0 = node.rss()
    res = runs(o, node)
    return {**res, "rss_before_kib": rss0, "rss_after_kib": node.rss()}


def slow_connect(o: argparse.Namespace, node: Node) -> dict:
    before = node.counters()
    rss0 = node.rss()
    hold = 2 * o.duration + 30  # covers both runs
    slow, ready = background(o, node, ["--slow", str(o.slow), "--trickle-ms", "1000", "--hold", str(hold),
                                       "--bind", binds(2), "--connect-timeout", "120", "--connect-burst", "512",
                                       "--label", "slow"],
                             hold + 300)
    if not ready.wait(150):
        return {"error": "the slow connections did not all open", "slow": slow.result()}
    rss1 = node.rss()
    res = runs(o, node)
    rss2 = node.rss()
    slow.proc.terminate()  # loadgen ends its run and prints its figures
    after = node.counters()
    return {**res, "rss_before_kib": rss0, "rss_with_kib": rss1, "rss_after_kib": rss2,
            "socket_close_timeout": after["socket_close_timeout"] - before["socket_close_timeout"],
            "slow": {k: v for k, v in slow.result().items() if k in (
                "connections", "opened", "closed_by_broker", "completed", "open_min", "open_avg", "bytes_sent")}}


def stuck_subscriber(o: argparse.Namespace, node: Node) -> dict:
    before = node.counters()
    rss0 = node.rss()
    stuck = socket.create_connection(("127.0.0.1", node.broker.port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(_connect("stuck") + _subscribe("lg/pair/+", 1))
    time.sleep(1)  # its SUBACK is in before the runs start (the bench never reads it)
    rss1 = node.rss()
    res = runs(o, node)
    rss2 = node.rss()
    after = node.counters()
    stuck.close()
    return {**res, "rss_before_kib": rss0, "rss_with_kib": rss1, "rss_after_kib": rss2,
            "queue_message_drop": after["queue_message_drop"] - before["queue_message_drop"]}


def storm(o: argparse.Namespace, node: Node) -> dict:
    rss0 = node.rss()
    pings: list[float | None] = []
    done = threading.Event()

    def ping_loop() -> None:
        while not done.is_set():
            pings.append(node.ping_ms())
            time.sleep(0.05)

    args = ["--churn", str(o.storm), "--username", USER, "--password", PASSWORD, "--churn-bad-every", "2",
            "--bind", binds(3), "--connect-timeout", str(4 * o.duration + 60), "--label", "storm"]
    churn, _ = background(o, node, args, 4 * o.duration + 300)
    pinger = threading.Thread(target=ping_loop, daemon=True)
    pinger.start()
    time.sleep(1)  # the storm is under way
    res = runs(o, node)
    still = churn.proc.poll() is None
    rss1 = node.rss()
    churn.proc.terminate()
    done.set()
    pinger.join()
    out = churn.result()
    answered = sorted(p for p in pings if p is not None)
    tried = len(pings)
    return {**res, "rss_before_kib": rss0, "rss_after_kib": rss1, "storm_covered_the_runs": still,
            "storm": {"accepted": out.get("connected"), "refused": out.get("refused"),
                      "connects_per_s": round((out.get("connected", 0) + out.get("refused", 0)) /
                                              max(out.get("connect_s") or 1e-3, 1e-3)),
                      "errors": out.get("errors")},
            "ping_ms": {"n": tried, "failed": tried - len(answered),
                        "p50": answered[len(answered) // 2] if answered else None,
                        "p99": answered[int(len(answered) * 0.99)] if answered else None,
                        "max": answered[-1] if answered else None}}


def _str(s: str) -> bytes:
    b = s.encode()
    return len(b).to_bytes(2, "big") + b


def _frame(first: int, body: bytes) -> bytes:
    n, rl = len(body), b""
    while True:
        byte, n = n & 0x7F, n >> 7
        rl += bytes([byte | (0x80 if n else 0)])
        if not n:
            return bytes([first]) + rl + body


def _connect(client_id: str) -> bytes:
    return _frame(0x10, _str("MQTT") + bytes([4, 0xC2, 0, 60]) + _str(client_id) + _str(USER) + _str(PASSWORD))


def _subscribe(filt: str, qos: int) -> bytes:
    return _frame(0x82, b"\x00\x01" + _str(filt) + bytes([qos]))


SCENARIOS = {"alone": alone, "slow-connect": slow_connect, "stuck-subscriber": stuck_subscriber, "storm": storm}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenarios", nargs="*", help=f"of {', '.join(SCENARIOS)} (default: all, in this order)")
    p.add_argument("--workers", type=int, default=1, help="nr_of_workers (1)")
    p.add_argument("--broker-core", default="0")
    p.add_argument("--loadgen-core", default="1")
    p.add_argument("--duration", type=float, default=10, help="seconds of each well-behaved run (10)")
    p.add_argument("--rate", type=int, default=2000, help="msg/s of the latency run (2000)")
    p.add_argument("--slow", type=int, default=10_000, help="slow-CONNECT connections (10000)")
    p.add_argument("--storm", type=int, default=300_000, help="client ids of the storm, ended after the runs (300000)")
    p.add_argument("--repeat", type=int, default=1, help="rounds over the scenarios; the summary has medians")
    o = p.parse_args()
    if not LOADGEN.exists():
        sys.exit("bench/loadgen is missing: run bench/build.sh")
    unknown = set(o.scenarios) - set(SCENARIOS)
    if unknown:
        sys.exit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    failed = False
    results: dict[str, list[dict]] = {}
    for _ in range(o.repeat):  # round robin: a busy spell of the machine hits every scenario alike
        for name in o.scenarios or list(SCENARIOS):
            node = Node(o)
            try:
                res = {"scenario": name, "workers": o.workers, "load": os.getloadavg()[0],
                       **SCENARIOS[name](o, node)}
            finally:
                node.broker.stop()
            failed |= any(res.get(r, {}).get("loadgen_rc") for r in ("latency", "throughput"))
            results.setdefault(name, []).append(res)
            print(json.dumps(res), flush=True)
    print(json.dumps({"summary": {name: summary(rs) for name, rs in results.items()}}), flush=True)
    return 1 if failed else 0


def summary(results: list[dict]) -> dict:
    """Medians over the repeats of the figures the docs quote."""
    def median(values: list) -> float | None:
        values = sorted(v for v in values if v is not None)
        return values[len(values) // 2] if values else None

    def pick(*path: str) -> float | None:
        def get(r: dict):
            for key in path:
                r = r.get(key) if isinstance(r, dict) else None
            return r
        return median([get(r) for r in results])

    out = {"runs": len(results), "latency_p50_us": pick("latency", "latency_us", "p50"),
           "latency_p99_us": pick("latency", "latency_us", "p99"),
           "throughput_msg_s": pick("throughput", "recv_rate"),
           "rss_before_kib": pick("rss_before_kib"), "rss_with_kib": pick("rss_with_kib"),
           "rss_after_kib": pick("rss_after_kib")}
    for extra in ("socket_close_timeout", "queue_message_drop"):
        if extra in results[0]:
            out[extra] = pick(extra)
    if "ping_ms" in results[0]:
        out.update(ping_p99_ms=pick("ping_ms", "p99"), ping_max_ms=pick("ping_ms", "max"),
                   ping_failed=pick("ping_ms", "failed"), storm_connects_per_s=pick("storm", "connects_per_s"))
    return {k: v for k, v in out.items() if v is not None}


if __name__ == "__main__":
    sys.exit(main())
